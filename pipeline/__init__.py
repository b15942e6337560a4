"""mer-pipeline: feature extraction and contrastive training for multimodal emotion recognition.

The stable entry points for other projects are re-exported in :mod:`pipeline.api`, which
needs only the core install (numpy, h5py, pyyaml); what needs an extra says which one
(:mod:`pipeline.extras`).
"""

__version__ = "0.1.0"
