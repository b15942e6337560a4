"""CMU-MOSEI: segments of YouTube monologues with six emotion intensities.

Two ways in, both yielding one clip per labelled segment:

- ``source='sdk'`` (default): the CMU Multimodal SDK's computational sequences, read through
  ``mmsdk``: ``CMU_MOSEI_Labels.csd`` (7 columns: sentiment, then happy, sad, anger,
  surprise, disgust, fear; ``CMU_MOSEI_LabelsEmotions.csd`` with the six emotions alone also
  works) gives the segments and their scores; ``CMU_MOSEI_TimestampedWords.csd`` gives the
  words and when each is said (``sp`` = silence). The words go into the clip's transcript and,
  with their times, into ``meta['word_times']`` (seconds from the segment start). The SDK's
  GloVe vectors (``CMU_MOSEI_TimestampedGloveVectors.csd``) are read by the words stage with
  ``words.vectors.format: mosei-csd``.
- ``source='raw'``: the raw release: segments and transcripts from
  ``Raw/Transcript/Segmented/Combined/<video>.txt`` (lines ``VIDEO___SEG___START___END___TEXT``),
  scores from the labels ``.csd`` when it is there (matched by segment times); our own
  stages tokenise and embed the words.

Media: ``media='full'`` (default) points at ``Raw/Videos/Full/Combined/<video>.mp4`` with the
segment's start/end; ``media='segmented'`` at ``Raw/Videos/Segmented/Combined/<video>_<seg>.mp4``.

Labels: ``scores`` holds the six intensities (0..3); an emotion is *present* when its score is
> 0 (``meta['present']``, ``+``-joined). ``label`` is the present emotion with the highest
score ("" when none is present). ``meta['split']`` is the SDK's standard fold of the video
(``train``/``valid``/``test``; "" for videos in none): the ``predefined`` fold scheme reads it.

Nothing is downloaded: a missing file raises an error naming it and where it goes.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..extras import needs
from ..files import read_text
from ..text.alignment import WORD_TIMES_KEY, dump_word_times
from .base import Clip, CorpusAdapter, check_options, safe_clip_id

log = logging.getLogger(__name__)

EMOTIONS = ("happy", "sad", "angry", "surprised", "disgust", "fearful")  # SDK column order
LABELS_CSD = "CMU_MOSEI_Labels.csd"
WORDS_CSD = "CMU_MOSEI_TimestampedWords.csd"
GLOVE_CSD = "CMU_MOSEI_TimestampedGloveVectors.csd"
SILENCE = {"sp", "sil", ""}
# The SDK's standard folds cover 3,228 videos: 2,250 train, 300 valid, 678 test.
STANDARD_FOLD_SIZES = {"train": 2250, "valid": 300, "test": 678}
WHERE = (
    "the CMU Multimodal SDK's CMU-MOSEI release (file names in "
    "mmsdk.mmdatasdk.cmu_mosei.labels / .raw / .highlevel); see docs/corpora.md"
)


def standard_folds() -> dict[str, str]:
    """Video id -> ``train`` | ``valid`` | ``test``, from the SDK's standard fold lists."""
    with needs("the CMU-MOSEI adapter", "extract"):
        from mmsdk.mmdatasdk.dataset.standard_datasets.CMU_MOSEI import cmu_mosei_std_folds as f

    return folds_by_video(f)


def folds_by_video(folds_module: Any) -> dict[str, str]:
    """Video id -> ``train`` | ``valid`` | ``test`` from an SDK ``*_std_folds`` module."""
    out: dict[str, str] = {}
    for name, ids in (
        ("train", folds_module.standard_train_fold),
        ("valid", folds_module.standard_valid_fold),
        ("test", folds_module.standard_test_fold),
    ):
        for vid in ids:
            out[vid] = name
    return out


def read_sequence(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A computational sequence through mmsdk: video id -> (intervals (N,2), features (N,D))."""
    with needs("the CMU-MOSEI adapter", "extract"):
        from mmsdk.mmdatasdk import computational_sequence

    with contextlib.redirect_stdout(io.StringIO()):
        seq = computational_sequence(str(path))
    try:
        return {
            vid: (np.asarray(g["intervals"][()], np.float64), g["features"][()])
            for vid, g in seq.data.items()
        }
    finally:
        if seq.h5handle is not None:
            seq.h5handle.close()


def _decode(x) -> str:
    v = x[0] if isinstance(x, np.ndarray) and x.shape else x
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def clip_id_for(video_id: str, segment: int | str) -> str:
    return safe_clip_id(f"{video_id}_{segment}")


def _segment_meta(vid: str, seg: str, start: float, end: float, split: str) -> dict[str, str]:
    return {
        "video_id": vid,
        "segment": seg,
        "segment_start": f"{start:.4f}",
        "segment_end": f"{end:.4f}",
        "split": split,
    }


class Mosei(CorpusAdapter):
    """CMU-MOSEI segments (see the module docstring for options and rules)."""

    name = "mosei"
    labels = EMOTIONS
    multi_label = True

    def __init__(
        self,
        root: str | Path,
        source: str = "sdk",
        media: str = "full",
        labels_csd: str = LABELS_CSD,
        words_csd: str = WORDS_CSD,
        raw_dir: str = "Raw",
    ) -> None:
        super().__init__(root)
        check_options("mosei", (
            ("source", source, ("sdk", "raw")),
            ("media", media, ("full", "segmented")),
        ))  # fmt: skip
        self.source = source
        self.media = media
        self.labels_csd = self.root / labels_csd
        self.words_csd = self.root / words_csd
        self.raw = self.root / raw_dir
        self.raw_dir = raw_dir
        self.skipped: list[tuple[str, str]] = []

    # -- files --------------------------------------------------------------------------
    @property
    def transcripts_dir(self) -> Path:
        return self.raw / "Transcript" / "Segmented" / "Combined"

    def _require(self, path: Path, what: str) -> None:
        if not path.is_file():
            raise FileNotFoundError(
                f"CMU-MOSEI {what} not found: {path}. Put the file there (or set "
                f"corpus.options in params.yaml); it comes from {WHERE}"
            )

    def video_path(self, video_id: str, segment: int | str) -> str:
        if self.media == "full":
            return f"{self.raw_dir}/Videos/Full/Combined/{video_id}.mp4"
        return f"{self.raw_dir}/Videos/Segmented/Combined/{video_id}_{segment}.mp4"

    def raw_segments(self, video_id: str) -> list[tuple[str, float, float, str]]:
        """(segment, start, end, text) of a raw segmented transcript; [] if there is none."""
        path = self.transcripts_dir / f"{video_id}.txt"
        if not path.is_file():
            return []
        out = []
        for line in read_text(path, errors="replace").splitlines():
            parts = line.strip().split("___", 4)
            if len(parts) == 5:
                try:
                    out.append((parts[1], float(parts[2]), float(parts[3]), parts[4].strip()))
                except ValueError:
                    continue
        return out

    # -- clips --------------------------------------------------------------------------
    def clips(self) -> Iterator[Clip]:
        self.check_root()
        self.skipped = []
        folds = standard_folds()
        if self.source == "sdk":
            yield from self._sdk_clips(folds)
        else:
            yield from self._raw_clips(folds)

    def _scores(self, row: np.ndarray) -> dict[str, float]:
        row = np.asarray(row, dtype=np.float64).ravel()
        emo = row[1:7] if row.size == 7 else row[:6]
        if emo.size != 6:
            raise ValueError(f"labels have {row.size} columns; expected 7 or 6")
        return {e: round(float(v), 4) for e, v in zip(EMOTIONS, emo, strict=True)}

    def _labelled(self, scores: dict[str, float], row: np.ndarray, meta: dict[str, str]) -> str:
        present = [e for e in EMOTIONS if scores[e] > 0]
        meta["present"] = "+".join(present)
        row = np.asarray(row).ravel()
        if row.size == 7:
            meta["sentiment"] = f"{float(row[0]):.4f}"
        return max(present, key=lambda e: scores[e]) if present else ""

    def _sdk_clips(self, folds: dict[str, str]) -> Iterator[Clip]:
        self._require(self.labels_csd, "labels (computational sequence)")
        labels = read_sequence(self.labels_csd)
        words = read_sequence(self.words_csd) if self.words_csd.is_file() else None
        if words is None:
            log.warning(
                "CMU-MOSEI words %s not found: clips get their transcripts from %s if "
                "present, and no word timings",
                self.words_csd,
                self.transcripts_dir,
            )
        for vid in sorted(labels):
            intervals, feats = labels[vid]
            raw = self.raw_segments(vid)
            for i in np.argsort(intervals[:, 0], kind="stable"):
                start, end = (float(t) for t in intervals[i])
                if end - start <= 1e-3:
                    continue
                seg = self._segment_number(raw, start, end, default=str(int(i)))
                meta = _segment_meta(vid, seg, start, end, folds.get(vid, ""))
                try:
                    scores = self._scores(feats[i])
                except ValueError as e:
                    self.skipped.append((vid, str(e)))
                    continue
                label = self._labelled(scores, feats[i], meta)
                transcript = ""
                if words is not None and vid in words:
                    aligned = self._words_in(words[vid], start, end)
                    transcript = " ".join(w for w, _, _ in aligned)
                    if aligned:
                        meta[WORD_TIMES_KEY] = dump_word_times(aligned)
                elif raw:
                    transcript = next((t for s, a, b, t in raw if s == seg), "")
                yield self._clip(vid, seg, start, end, label, scores, transcript, meta)

    @staticmethod
    def _segment_number(raw, start: float, end: float, default: str) -> str:
        for seg, a, b, _ in raw:
            if abs(a - start) < 0.05 and abs(b - end) < 0.05:
                return seg
        return default

    @staticmethod
    def _words_in(seq: tuple[np.ndarray, np.ndarray], start: float, end: float):
        """Non-silence words whose midpoint lies in [start, end), times from ``start``."""
        intervals, feats = seq
        out = []
        for (a, b), f in zip(intervals, feats, strict=False):
            mid = (a + b) / 2
            if start <= mid < end:
                w = _decode(f).strip()
                if w.lower() not in SILENCE:
                    out.append((w, max(a - start, 0.0), min(b, end) - start))
        out.sort(key=lambda x: x[1])
        return out

    def _raw_clips(self, folds: dict[str, str]) -> Iterator[Clip]:
        if not self.transcripts_dir.is_dir():
            raise FileNotFoundError(
                f"CMU-MOSEI transcripts not found: {self.transcripts_dir} (files "
                f"<video>.txt, lines VIDEO___SEG___START___END___TEXT); it comes from {WHERE}"
            )
        labels = read_sequence(self.labels_csd) if self.labels_csd.is_file() else {}
        if not labels:
            log.warning("CMU-MOSEI labels %s not found: clips have no scores", self.labels_csd)
        for path in sorted(self.transcripts_dir.glob("*.txt")):
            vid = path.stem
            lab = labels.get(vid)
            for seg, start, end, text in self.raw_segments(vid):
                meta = _segment_meta(vid, seg, start, end, folds.get(vid, ""))
                scores: dict[str, float] = {}
                label = ""
                if lab is not None:
                    hit = [
                        k
                        for k, (a, b) in enumerate(lab[0])
                        if abs(a - start) < 0.05 and abs(b - end) < 0.05
                    ]
                    if hit:
                        scores = self._scores(lab[1][hit[0]])
                        label = self._labelled(scores, lab[1][hit[0]], meta)
                yield self._clip(vid, seg, start, end, label, scores, text, meta)

    def _clip(self, vid, seg, start, end, label, scores, transcript, meta) -> Clip:
        full = self.media == "full"
        return Clip(
            clip_id=clip_id_for(vid, seg),
            path=self.video_path(vid, seg),
            speaker=vid,  # MOSEI has one speaker per video and no speaker ids
            session=vid,
            label=label,
            scores=scores,
            transcript=transcript,
            start=start if full else 0.0,
            end=end if full else 0.0,
            meta=meta,
        )
