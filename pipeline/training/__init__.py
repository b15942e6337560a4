"""The trainer: a window Dataset over the feature shards, MPUC contrastive pretraining,
Qian & Han contrastive regularization, supervised baselines, metrics and evaluation.

Importing this package only registers the parameter sections (``train``, ``pretrain``,
``evaluate``); torch is imported by the submodules that need it.
"""

from __future__ import annotations

from ..config import register_section
from .config import EvaluateConfig, PretrainConfig, TrainConfig

register_section("train", TrainConfig)
register_section("pretrain", PretrainConfig)
register_section("evaluate", EvaluateConfig)

__all__ = ["EvaluateConfig", "PretrainConfig", "TrainConfig"]
