"""Backbones, heads and the multimodal encoder of the trainer (torch modules).

``config`` holds their hyper-parameters without importing torch; ``factory.build_backbone``
builds a backbone for a modality from its input shape.
"""
