"""The stable Python API for other projects.

Everything here keeps its name and behaviour across minor versions; the file layout it reads
is specified in docs/FORMAT.md (schema version in every file; a newer schema is refused with a
reason rather than misread).

    from pipeline.api import open_features, read_clips, read_folds, WindowDataset

    with open_features("data/features/sample/mel") as mel:
        for clip_id in mel.clip_ids:
            f = mel.read(clip_id)          # ClipFeatures: arrays, timestamps (s), valid
    clips = read_clips("manifests/sample/clips.csv")       # list of ManifestEntry
    folds = read_folds("manifests/sample/folds/actor_kfold.json")   # train/val/test ids

``WindowDataset`` is the torch ``Dataset`` the trainer uses: aligned windows of several
modalities cut at the same times, over one fold's clip ids (see docs/training.md).
"""

from __future__ import annotations

from pathlib import Path

from .manifest import ManifestEntry, read_manifest
from .store import ClipFeatures, FeatureReader, ShardError
from .training.data import Fold
from .training.data import read_folds as _read_folds
from .training.dataset import WindowDataset


def open_features(feature_dir: str | Path) -> FeatureReader:
    """A reader over one feature directory (``data/features/<corpus>/<feature>``)."""
    return FeatureReader(feature_dir)


def read_clips(clips_csv: str | Path) -> list[ManifestEntry]:
    """The rows of a clip manifest."""
    return read_manifest(clips_csv)


def read_folds(fold_json: str | Path) -> list[Fold]:
    """The folds of a fold manifest, each with its train, val and test clip ids."""
    return _read_folds(Path(fold_json))


__all__ = [
    "ClipFeatures",
    "FeatureReader",
    "Fold",
    "ManifestEntry",
    "ShardError",
    "WindowDataset",
    "open_features",
    "read_clips",
    "read_folds",
]
