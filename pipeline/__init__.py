"""mer-pipeline: feature extraction and contrastive training for multimodal emotion recognition.

The stable entry points for other projects are re-exported in :mod:`pipeline.api`.
"""

__version__ = "0.1.0"
