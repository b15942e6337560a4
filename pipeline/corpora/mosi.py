"""CMU-MOSI: opinion segments of 93 YouTube movie-review videos, sentiment in [-3, 3].

Two ways in, as for CMU-MOSEI (the helpers that read computational sequences are shared):

- ``source='sdk'`` (default): the CMU Multimodal SDK's computational sequences in the root:
  ``CMU_MOSI_Opinion_Labels.csd`` (one column: the segment's sentiment, the mean of the
  annotators' ratings in [-3, 3]) gives the segments; ``CMU_MOSI_TimestampedWords.csd`` gives
  the words and their times (``sp`` = silence), the transcript and ``meta['word_times']``.
- ``source='raw'``: the raw release's segmented transcripts,
  ``Raw/Transcript/Segmented/<video>.annotprocessed`` (lines ``<segment>_DELIM_<text>``); the
  sentiment comes from the labels ``.csd`` when it is in the root, the k-th labelled segment of
  a video (in time order) being segment k (an assumption: the raw transcripts have no times).

Segments are numbered from 1 in time order (the labels file's own order), as the raw release
names them. Media:
``media='segmented'`` (default) gives ``Raw/Video/Segmented/<video>_<segment>.mp4``;
``media='full'`` (sdk only: it needs the segment times) the full video
``Raw/Video/Full/<video>.mp4`` with the segment's start/end.

Labels: ``meta['sentiment']`` always holds the score. ``label`` follows the literature's
classification metrics: ``label='7class'`` (default; Acc-7) is the score rounded to an
integer in [-3, 3], named ``strongly_negative`` .. ``strongly_positive``; ``label='binary'``
(Acc-2, "negative / non-negative") is ``negative`` (< 0) or ``non_negative`` (>= 0);
``label='binary_nonzero'`` (Acc-2, "negative / positive") leaves out segments scored exactly 0.
:mod:`pipeline.training.sentiment` computes MAE, correlation, Acc-7, Acc-2 and F1 of both
kinds from scores.

Speaker = session = the video id (the SDK has no speaker ids; nearly every speaker has one
video). ``meta['split']`` is the SDK's standard fold of the video (52 train, 10 valid,
31 test videos; the folds share no video).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..config import FoldScheme
from ..files import read_text
from ..text.alignment import WORD_TIMES_KEY, dump_word_times
from .base import Clip, CorpusAdapter, check_options
from .mosei import Mosei, clip_id_for, folds_by_video, read_sequence

log = logging.getLogger(__name__)

LABELS_CSD = "CMU_MOSI_Opinion_Labels.csd"
WORDS_CSD = "CMU_MOSI_TimestampedWords.csd"
STANDARD_FOLD_SIZES = {"train": 52, "valid": 10, "test": 31}
SEVEN = (
    "strongly_negative",
    "negative",
    "weakly_negative",
    "neutral",
    "weakly_positive",
    "positive",
    "strongly_positive",
)
BINARY = ("negative", "non_negative")
BINARY_NONZERO = ("negative", "positive")
WHERE = (
    "the CMU Multimodal SDK's CMU-MOSI release (file names in mmsdk.mmdatasdk.cmu_mosi.labels "
    "/ .raw); see docs/corpora.md"
)


def standard_folds() -> dict[str, str]:
    """Video id -> ``train`` | ``valid`` | ``test``, from the SDK's standard MOSI folds."""
    from mmsdk.mmdatasdk.dataset.standard_datasets.CMU_MOSI import cmu_mosi_std_folds as f

    return folds_by_video(f)


def seven_class(score: float) -> str:
    """The Acc-7 class of a sentiment score: round(clip(score, -3, 3))."""
    return SEVEN[int(np.round(np.clip(score, -3.0, 3.0))) + 3]


class Mosi(CorpusAdapter):
    """CMU-MOSI segments (see the module docstring for options and rules)."""

    name = "mosi"
    title = "CMU-MOSI"
    labels = SEVEN
    has_transcripts = True
    layout = """CMU_MOSI_Opinion_Labels.csd                    source: sdk (default)
CMU_MOSI_TimestampedWords.csd
Raw/Video/Segmented/<video>_<segment>.mp4     media: segmented (default)
Raw/Video/Full/<video>.mp4                    media: full
Raw/Transcript/Segmented/<video>.annotprocessed   source: raw"""
    fold_schemes = (FoldScheme("sdk_standard", "predefined", split_by="split"),)
    disjoint = {"sdk_standard": "speaker"}  # the standard folds split by video

    def __init__(
        self,
        root: str | Path,
        source: str = "sdk",
        media: str = "segmented",
        label: str = "7class",
        labels_csd: str = LABELS_CSD,
        words_csd: str = WORDS_CSD,
        raw_dir: str = "Raw",
    ) -> None:
        super().__init__(root)
        check_options("mosi", (
            ("source", source, ("sdk", "raw")),
            ("media", media, ("segmented", "full")),
            ("label", label, ("7class", "binary", "binary_nonzero")),
        ))  # fmt: skip
        if source == "raw" and media == "full":
            raise ValueError("mosi: media=full needs segment times, which only source=sdk has")
        self.source, self.media, self.label = source, media, label
        self.labels = {"7class": SEVEN, "binary": BINARY, "binary_nonzero": BINARY_NONZERO}[label]
        self.labels_csd = self.root / labels_csd
        self.words_csd = self.root / words_csd
        self.raw_dir = raw_dir

    @property
    def transcripts_dir(self) -> Path:
        return self.root / self.raw_dir / "Transcript" / "Segmented"

    def _label(self, score: float) -> str | None:
        if self.label == "7class":
            return seven_class(score)
        if self.label == "binary":
            return "negative" if score < 0 else "non_negative"
        return None if score == 0 else ("negative" if score < 0 else "positive")

    def video_path(self, vid: str, seg: str) -> str:
        if self.media == "full":
            return f"{self.raw_dir}/Video/Full/{vid}.mp4"
        return f"{self.raw_dir}/Video/Segmented/{vid}_{seg}.mp4"

    def raw_segments(self, vid: str) -> list[tuple[str, str]]:
        path = self.transcripts_dir / f"{vid}.annotprocessed"
        out = []
        for n, line in enumerate(read_text(path, errors="replace").splitlines()):
            if not line.strip():
                continue
            seg, sep, text = line.partition("_DELIM_")
            if not sep or not seg.strip().isdigit():
                self.skip(f"{path.relative_to(self.root)}:{n + 1}", "not <segment>_DELIM_<text>")
                continue
            out.append((seg.strip(), text.strip()))
        return out

    def clips(self) -> Iterator[Clip]:
        self.check_root()
        self.skipped = []
        folds = standard_folds()
        if self.source == "sdk":
            if not self.labels_csd.is_file():
                raise self.layout_error(f"labels file {self.labels_csd.name} not found ({WHERE})")
            yield from self._sdk_clips(folds)
        else:
            if not self.transcripts_dir.is_dir():
                raise self.layout_error(
                    f"no {self.raw_dir}/Transcript/Segmented/ folder (source: raw; {WHERE})"
                )
            yield from self._raw_clips(folds)

    def _sdk_clips(self, folds: dict[str, str]) -> Iterator[Clip]:
        labels = read_sequence(self.labels_csd)
        words = read_sequence(self.words_csd) if self.words_csd.is_file() else None
        if words is None:
            log.warning("CMU-MOSI words %s not found: clips have no transcripts", self.words_csd)
        for vid in sorted(labels):
            intervals, feats = labels[vid]
            order = np.argsort(intervals[:, 0], kind="stable")
            for n, i in enumerate(order, start=1):
                start, end = (float(t) for t in intervals[i])
                meta = self._meta(vid, str(n), folds, start, end)
                aligned = Mosei._words_in(words[vid], start, end) if words and vid in words else []
                if aligned:
                    meta[WORD_TIMES_KEY] = dump_word_times(aligned)
                clip = self._clip(vid, str(n), feats[i], " ".join(w for w, _, _ in aligned), meta)
                if clip is not None:
                    if self.media == "full":
                        clip.start, clip.end = start, end
                    yield clip

    def _raw_clips(self, folds: dict[str, str]) -> Iterator[Clip]:
        labels = read_sequence(self.labels_csd) if self.labels_csd.is_file() else {}
        if not labels:
            self.skip(
                self.labels_csd.name,
                f"labels file {self.labels_csd} not found: clips have no sentiment ({WHERE})",
            )
        for path in sorted(self.transcripts_dir.glob("*.annotprocessed")):
            vid = path.stem
            scores = []
            if vid in labels:
                intervals, feats = labels[vid]
                scores = [feats[i] for i in np.argsort(intervals[:, 0], kind="stable")]
            for seg, text in self.raw_segments(vid):
                k = int(seg) - 1
                row = scores[k] if 0 <= k < len(scores) else None
                meta = self._meta(vid, seg, folds)
                clip = self._clip(vid, seg, row, text, meta)
                if clip is not None:
                    yield clip

    def _meta(self, vid, seg, folds, start=None, end=None) -> dict[str, str]:
        meta = {"video_id": vid, "segment": seg, "split": folds.get(vid, "")}
        if start is not None:
            meta.update(segment_start=f"{start:.4f}", segment_end=f"{end:.4f}")
        return meta

    def _clip(self, vid, seg, row, transcript, meta) -> Clip | None:
        label = ""
        if row is not None:
            score = float(np.asarray(row, dtype=np.float64).ravel()[0])
            meta["sentiment"] = f"{score:.4f}"
            lab = self._label(score)
            if lab is None:
                return None  # binary_nonzero: a neutral (0) segment is not part of the task
            label = lab
        return Clip(
            clip_id=clip_id_for(vid, seg),
            path=self.video_path(vid, seg),
            speaker=vid,
            session=vid,
            label=label,
            transcript=transcript,
            meta=meta,
        )
