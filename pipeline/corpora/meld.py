"""MELD: the Multimodal EmotionLines Dataset (Poria et al. 2019), dialogues from *Friends*.

Layout (the annotation CSVs of the declare-lab/MELD repository beside the unpacked
``MELD.Raw`` clip archives)::

    train_sent_emo.csv  dev_sent_emo.csv  test_sent_emo.csv
    train_splits/dia<D>_utt<U>.mp4                 (train.tar.gz)
    dev_splits_complete/dia<D>_utt<U>.mp4          (dev.tar.gz)
    output_repeated_splits_test/dia<D>_utt<U>.mp4  (test.tar.gz)

A split's clip folder (and its CSV) is also found one level down, under ``train/``, ``dev/`` or
``test/`` (as the archives unpack). CSV columns: ``Sr No., Utterance, Speaker, Emotion, Sentiment,
Dialogue_ID, Utterance_ID, Season, Episode, StartTime, EndTime``; the clip of a row is
``dia<Dialogue_ID>_utt<Utterance_ID>.mp4`` in its split's folder. Dialogue ids restart in each
split, so the clip id is ``<split>_dia<D>_utt<U>``.

Labels: ``label='emotion'`` (default; neutral, joy, surprise, anger, sadness, disgust, fear)
or ``label='sentiment'`` (positive, negative, neutral); both are kept in ``meta`` either way.
Speaker = the CSV's speaker name (the same character appears in every split: the official
split is by dialogue, not speaker-disjoint). Transcript = the ``Utterance`` column.
``meta['split']`` holds train/dev/test for the ``predefined`` fold scheme.

Several people are often in frame: set the faces stage to follow the active speaker.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from ..config import FoldScheme
from ..files import text_file
from .base import Clip, CorpusAdapter, check_options, safe_clip_id

EMOTIONS = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
SENTIMENTS = ("positive", "negative", "neutral")
SPLITS = {
    "train": "train_splits",
    "dev": "dev_splits_complete",
    "test": "output_repeated_splits_test",
}
COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
OPTIONAL_COLUMNS = ("Season", "Episode", "StartTime", "EndTime")
UTTERANCES = {"train": 9989, "dev": 1109, "test": 2610}


class Meld(CorpusAdapter):
    """MELD utterances (see the module docstring)."""

    name = "meld"
    title = "MELD"
    labels = EMOTIONS
    has_transcripts = True
    layout = """train_sent_emo.csv  dev_sent_emo.csv  test_sent_emo.csv
train_splits/dia<D>_utt<U>.mp4
dev_splits_complete/dia<D>_utt<U>.mp4
output_repeated_splits_test/dia<D>_utt<U>.mp4   (or under train/, dev/, test/)"""
    fold_schemes = (FoldScheme("official", "predefined", split_by="split"),)
    disjoint = {"official": "dialogue"}  # split by dialogue; speakers recur across splits

    def __init__(
        self,
        root: str | Path,
        label: str = "emotion",
        splits: list[str] | tuple[str, ...] = ("train", "dev", "test"),
    ) -> None:
        super().__init__(root)
        check_options("meld", (
            ("label", label, ("emotion", "sentiment")),
            *(("splits", s, SPLITS) for s in splits),
        ))  # fmt: skip
        self.label = label
        self.splits = tuple(splits)
        if label == "sentiment":
            self.labels = SENTIMENTS

    def label_file(self, split: str) -> Path:
        """``<split>_sent_emo.csv`` in the root, else in the split's folder (as some copies
        unpack it); the root's path when neither exists."""
        name = f"{split}_sent_emo.csv"
        for path in (self.root / name, self.root / split / name):
            if path.is_file():
                return path
        return self.root / name

    def clip_dir(self, split: str) -> Path | None:
        for rel in (SPLITS[split], f"{split}/{SPLITS[split]}"):
            if (self.root / rel).is_dir():
                return self.root / rel
        return None

    def clips(self) -> Iterator[Clip]:
        self.check_root()
        self.skipped = []
        csvs = {s: self.label_file(s) for s in self.splits}
        if not any(p.is_file() for p in csvs.values()):
            raise self.layout_error(
                "none of " + ", ".join(p.name for p in csvs.values()) + " is in the root"
            )
        for split, path in csvs.items():
            if not path.is_file():
                self.skip(
                    path.name,
                    f"label file {path.name} not found: the {split} split is left out "
                    f"(expected layout:\n{self.layout})",
                )
                continue
            folder = self.clip_dir(split)
            if folder is None:
                self.skip(
                    SPLITS[split],
                    f"clip folder {SPLITS[split]}/ of the {split} split not found (nor "
                    f"{split}/{SPLITS[split]}/): its utterances are left out",
                )
                continue
            yield from self._split_clips(split, path, folder)

    def _split_clips(self, split: str, csv_path: Path, folder: Path) -> Iterator[Clip]:
        rel = csv_path.relative_to(self.root).as_posix()
        with text_file(csv_path, rel, errors="replace") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                self.skip(
                    rel,
                    f"missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}",
                )
                return
            for line, row in enumerate(reader, start=2):
                row = {k: (v or "").strip() for k, v in row.items() if k}
                where = f"{rel}:{line}"
                try:
                    dia, utt = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
                except ValueError:
                    self.skip(where, "Dialogue_ID/Utterance_ID are not whole numbers")
                    continue
                emotion, sentiment = row["Emotion"].lower(), row["Sentiment"].lower()
                if emotion not in EMOTIONS or sentiment not in SENTIMENTS:
                    self.skip(where, f"emotion {emotion!r} / sentiment {sentiment!r} unknown")
                    continue
                name = f"dia{dia}_utt{utt}"
                meta = {
                    "split": split,
                    "dialogue": f"{split}_dia{dia}",
                    "utterance": str(utt),
                    "emotion": emotion,
                    "sentiment": sentiment,
                }
                for col in OPTIONAL_COLUMNS:
                    if row.get(col):
                        meta[col.lower()] = row[col]
                yield Clip(
                    clip_id=f"{split}_{name}",
                    path=(folder / f"{name}.mp4").relative_to(self.root).as_posix(),
                    speaker=safe_clip_id(row["Speaker"]) if row["Speaker"] else "",
                    session=meta["dialogue"],
                    label=emotion if self.label == "emotion" else sentiment,
                    transcript=row["Utterance"],
                    meta=meta,
                )
