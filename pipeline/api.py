"""The stable Python API for other projects.

Everything here keeps its name and behaviour across minor versions; the file layout it reads
is specified in docs/FORMAT.md (schema version in every file; a newer schema is refused with a
reason rather than misread). Reading needs only the core install (numpy, h5py, pyyaml:
``pip install .`` in a checkout, or the wheel ``make wheel`` builds); importing this module
imports neither torch nor the extraction stack.

    from pipeline.api import open_features, read_clips, read_folds, iter_windows

    with open_features("data/features/sample/mel") as mel:
        for clip_id in mel.clip_ids:
            f = mel.read(clip_id)          # ClipFeatures: arrays, timestamps (s), valid
    clips = read_clips("manifests/sample/clips.csv")       # list of ManifestEntry
    folds = read_folds("manifests/sample/folds/actor_kfold.json")   # train/val/test ids
    for item in iter_windows({"mel": "data/features/sample/mel"}, {"mel": {"steps": 32}},
                             folds[0].train, window_seconds=2.0):
        x, mask = item["views"][0]["mel"]["x"], item["views"][0]["mel"]["mask"]

``iter_windows`` and ``WindowSet`` cut aligned windows of several modalities at the same times,
by the trainer's rules, as numpy arrays. ``WindowDataset`` is the torch ``Dataset`` the trainer
uses (the same windows as tensors); it needs the ``train`` extra and is
imported only when first used.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .extras import MissingExtraError, needs
from .manifest import ManifestEntry, read_manifest
from .store import ClipFeatures, FeatureReader, ShardError
from .training.config import InputConfig
from .training.data import Fold
from .training.data import read_folds as _read_folds
from .training.windowset import DataError, WindowSet

if TYPE_CHECKING:
    pass


def open_features(feature_dir: str | Path) -> FeatureReader:
    """A reader over one feature directory (``data/features/<corpus>/<feature>``)."""
    return FeatureReader(feature_dir)


def read_clips(clips_csv: str | Path) -> list[ManifestEntry]:
    """The rows of a clip manifest."""
    return read_manifest(clips_csv)


def read_folds(fold_json: str | Path) -> list[Fold]:
    """The folds of a fold manifest, each with its train, val and test clip ids."""
    return _read_folds(Path(fold_json))


def input_config(spec: InputConfig | Mapping[str, Any]) -> InputConfig:
    """An :class:`InputConfig` from itself or a mapping of its fields (``array``, ``steps``,
    ``mode``: time | sequence | clip)."""
    if isinstance(spec, InputConfig):
        return spec
    unknown = set(spec) - set(InputConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(
            f"unknown input field(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(InputConfig.__dataclass_fields__)}"
        )
    cfg = InputConfig(**spec)
    if cfg.mode not in ("time", "sequence", "clip"):
        raise ValueError(f"input mode must be time, sequence or clip, got {cfg.mode!r}")
    cfg.validate("input")
    return cfg


def window_set(
    feature_dirs: Mapping[str, str | Path],
    inputs: Mapping[str, InputConfig | Mapping[str, Any]],
    clip_ids: Sequence[str] | None = None,
    **options: Any,
) -> WindowSet:
    """A :class:`WindowSet` (numpy windows) over ``clip_ids``, by default every clip of the
    first modality's feature directory. ``options``: ``window_seconds`` (0 = whole clip),
    ``views``, ``random_windows``, ``seed``, ``durations``, ``targets``, ``cache``."""
    specs = {m: input_config(s) for m, s in inputs.items()}
    if clip_ids is None:
        first = next(iter(specs), None)
        if first is None:
            raise ValueError("no inputs given")
        with FeatureReader(feature_dirs[first]) as r:
            clip_ids = list(r.clip_ids)
    return WindowSet(feature_dirs, specs, clip_ids, **options)


def iter_windows(
    feature_dirs: Mapping[str, str | Path],
    inputs: Mapping[str, InputConfig | Mapping[str, Any]],
    clip_ids: Sequence[str] | None = None,
    epoch: int = 0,
    **options: Any,
) -> Iterator[dict[str, Any]]:
    """One item per clip: ``{"index", "clip_id", "target", "views": [{modality: {"x", "mask"}}]}``
    with numpy arrays, the windows of ``epoch`` (see :func:`window_set` for the options)."""
    ws = window_set(feature_dirs, inputs, clip_ids, **options)
    try:
        for i in range(len(ws)):
            yield ws[(epoch, i)]
    finally:
        ws.close()


def __getattr__(name: str) -> Any:
    if name == "WindowDataset":  # torch: only when asked for
        with needs("WindowDataset", "train"):
            from .training.dataset import WindowDataset

        return WindowDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# WindowDataset is not in __all__: a star import must work without torch.
__all__ = [
    "ClipFeatures",
    "DataError",
    "FeatureReader",
    "Fold",
    "InputConfig",
    "ManifestEntry",
    "MissingExtraError",
    "ShardError",
    "WindowSet",
    "input_config",
    "iter_windows",
    "open_features",
    "read_clips",
    "read_folds",
    "window_set",
]
