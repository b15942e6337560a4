"""Where each stage reads and writes, relative to the project root (one place for paths)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    corpus: str
    root: Path = Path(".")
    cache_root: Path = Path("data/cache")

    @property
    def manifest_dir(self) -> Path:
        return self.root / "manifests" / self.corpus

    @property
    def clips_csv(self) -> Path:
        return self.manifest_dir / "clips.csv"

    @property
    def folds_dir(self) -> Path:
        return self.manifest_dir / "folds"

    def failures_csv(self, stage: str) -> Path:
        return self.manifest_dir / "failures" / f"{stage}.csv"

    def warnings_csv(self, stage: str) -> Path:
        return self.manifest_dir / "warnings" / f"{stage}.csv"

    def features_dir(self, feature: str) -> Path:
        return self.root / "data" / "features" / self.corpus / feature

    def metrics_json(self, stage: str) -> Path:
        return self.root / "data" / "metrics" / self.corpus / f"{stage}.json"

    @property
    def cache_dir(self) -> Path:
        return self.root / self.cache_root / self.corpus
