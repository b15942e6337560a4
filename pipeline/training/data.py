"""A corpus as the trainer sees it: clip manifest, labels, fold manifest and feature shards."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..hashing import params_hash
from ..manifest import ManifestEntry, read_manifest
from ..paths import Layout
from ..store import FeatureReader
from ..store.format import INDEX_NAME
from ..store.reader import ShardError
from .config import InputConfig, InputsConfig, TrainConfig
from .windowset import DataError

if TYPE_CHECKING:  # torch: imported when a dataset is built, not to read folds
    from .dataset import WindowDataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelSpace:
    """Class names; single-label targets are class indices, multi-label targets 0/1 vectors."""

    names: tuple[str, ...]
    multi_label: bool
    threshold: float = 0.0

    def encode(self, entry: ManifestEntry) -> np.ndarray:
        if self.multi_label:
            return np.array(
                [float(entry.scores.get(n, 0.0) > self.threshold) for n in self.names],
                dtype=np.float32,
            )
        return np.int64(self.names.index(entry.label))

    def labelled(self, entry: ManifestEntry) -> bool:
        return bool(entry.scores) if self.multi_label else entry.label in self.names


def label_space(entries: Sequence[ManifestEntry], task: str, threshold: float) -> LabelSpace:
    """``auto`` is multi-label whenever the manifest has ``score_<emotion>`` columns (only
    multi-label corpora, CMU-MOSEI, write them): MOSEI's ``label`` column holds the dominant
    emotion for reading, never the task. In a multi-label task a clip is labelled when it has
    scores, so clips with no emotion present (all scores 0) are kept, their target all 0."""
    labels = sorted({e.label for e in entries if e.label})
    scores = sorted({k for e in entries for k in e.scores})
    multi = task == "multi" or (task == "auto" and bool(scores))
    names = tuple(scores if multi else labels)
    if len(names) < 2:
        what = "score_<emotion> columns" if multi else "labels"
        raise DataError(f"the clip manifest has {len(names)} distinct {what}; need at least 2")
    return LabelSpace(names, multi, threshold)


@dataclass(frozen=True)
class Fold:
    number: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


def read_folds(path: Path, select: Sequence[int] = ()) -> list[Fold]:
    if not path.exists():
        raise DataError(
            f"fold manifest {path} not found; run the folds stage, or set train.scheme to one "
            f"of the schemes in params.yaml folds.schemes"
        )
    doc = json.loads(path.read_text())
    folds = [
        Fold(int(f["fold"]), tuple(f["train"]), tuple(f.get("val", ())), tuple(f["test"]))
        for f in doc["folds"]
    ]
    if select:
        known = {f.number for f in folds}
        bad = sorted(set(select) - known)
        if bad:
            raise DataError(f"{path}: no fold {bad[0]}; folds: {sorted(known)}")
        folds = [f for f in folds if f.number in set(select)]
    return folds


class CorpusData:
    """Builds WindowDatasets for clip subsets of one corpus."""

    def __init__(
        self,
        layout: Layout,
        cfg: TrainConfig,
        task: str = "auto",
        threshold: float = 0.0,
    ) -> None:
        self.layout = layout
        self.cfg = cfg
        self.entries = {e.clip_id: e for e in read_manifest(layout.clips_csv)}
        self.labels = label_space(list(self.entries.values()), task, threshold)
        self._available: dict[str, set[str]] = {}
        self._meta: dict = {}  # clips' timestamps and validity, shared by every dataset

    def window_cache(self) -> Path | bool:
        """Where ``train.cache_clips`` keeps decoded clips (shared by every process and
        both stages), or False."""
        if not self.cfg.cache_clips:
            return False
        return self.layout.root / self.cfg.checkpoint_dir / self.layout.corpus / "windows"

    def feature_dir(self, modality: str) -> Path:
        return self.layout.features_dir(modality)

    def available(self, modality: str) -> set[str]:
        if modality not in self._available:
            try:
                with FeatureReader(self.feature_dir(modality)) as r:
                    self._available[modality] = set(r.clip_ids)
            except ShardError as e:
                raise DataError(
                    f"modality {modality!r}: {e}. Run its extraction stage (dvc repro "
                    f"{modality}) or remove it from train.modalities"
                ) from e
        return self._available[modality]

    def feature_fingerprint(self, modalities: Sequence[str] | None = None) -> str:
        """A hash of the feature indexes (changes whenever a feature is re-extracted)."""
        mods = modalities or [m for m in InputsConfig.names() if self._has(m)]
        texts = {m: (self.feature_dir(m) / INDEX_NAME).read_text() for m in mods}
        return params_hash(texts)

    def _has(self, modality: str) -> bool:
        return (self.feature_dir(modality) / INDEX_NAME).exists()

    def folds(self) -> list[Fold]:
        path = self.layout.folds_dir / f"{self.cfg.scheme}.json"
        return read_folds(path, self.cfg.folds)

    def usable(self, clip_ids: Sequence[str], modalities: Sequence[str]) -> list[str]:
        """The clips that are labelled and present in every modality's shards."""
        out, dropped = [], 0
        for cid in clip_ids:
            e = self.entries.get(cid)
            ok = e is not None and self.labels.labelled(e)
            ok = ok and all(cid in self.available(m) for m in modalities)
            if ok:
                out.append(cid)
            else:
                dropped += 1
        if dropped:
            log.warning("%d clip(s) left out: unlabelled or missing from %s", dropped, modalities)
        return out

    def dataset(
        self,
        clip_ids: Sequence[str],
        modalities: Sequence[str],
        window_seconds: float | None = None,
        views: int = 1,
        random_windows: bool = False,
        seed: int | None = None,
        inputs: Mapping[str, InputConfig] | None = None,
    ) -> WindowDataset:
        """``inputs`` replaces ``train.inputs`` for the modalities it names."""
        ids = self.usable(clip_ids, modalities)
        inputs = inputs or {}
        entries = [self.entries[c] for c in ids]
        targets = np.stack([self.labels.encode(e) for e in entries]) if ids else np.zeros(0)
        durations = [e.duration if e.duration > 0 else max(e.end - e.start, 0.0) for e in entries]
        from .dataset import WindowDataset

        return WindowDataset(
            {m: self.feature_dir(m) for m in modalities},
            {m: inputs.get(m) or self.cfg.input(m) for m in modalities},
            ids,
            targets,
            durations,
            window_seconds=self.cfg.window.seconds if window_seconds is None else window_seconds,
            views=views,
            random_windows=random_windows,
            seed=self.cfg.seed if seed is None else seed,
            cache=self.window_cache(),
            meta=self._meta,
            workers=self.cfg.loader_workers(),
            prefetch_factor=self.cfg.prefetch_factor,
            eval_at=self.cfg.window.eval_at,
        )
