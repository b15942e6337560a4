"""CMU-MOSEI-shaped computational sequences, for dry runs and tests without the corpus.

Writes ``CMU_MOSEI_Labels.csd`` (7 columns: sentiment, then the six emotion intensities) and
``CMU_MOSEI_TimestampedWords.csd`` with the SDK itself (mmsdk), over real video ids of the
SDK's standard folds, so that the MOSEI adapter, the ``predefined`` fold scheme and the
multi-label trainer read them as they read the real files. Scores are drawn like MOSEI's:
most segments have one or two emotions present (intensities in thirds, 0.33 to 3), and a
share has none at all. Nothing here is real data: the words are a fixed small vocabulary.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .mosei import EMOTIONS, LABELS_CSD, WORDS_CSD

VOCAB = ("i", "really", "think", "this", "movie", "was", "not", "good", "great", "bad",
         "so", "very", "and", "the", "it", "love", "hate", "okay")  # fmt: skip


@dataclass(frozen=True)
class MoseiShape:
    # videos per standard fold; the SDK's full lists are 2,250 / 300 / 678
    videos: tuple[int, int, int] = (2250, 300, 678)
    segments: tuple[int, int] = (4, 10)  # segments per video, drawn in [lo, hi]
    seconds: tuple[float, float] = (3.0, 12.0)  # segment length (MOSEI: ~7 s on average)
    no_emotion: float = 0.15  # share of segments with every emotion score 0
    seed: int = 0


def write_csd(path: Path, name: str, data: dict) -> None:
    """A computational sequence written by the CMU Multimodal SDK itself."""
    from mmsdk.mmdatasdk import computational_sequence
    from mmsdk.mmdatasdk.configurations.metadataconfigs import featuresetMetadataTemplate

    with contextlib.redirect_stdout(io.StringIO()):
        seq = computational_sequence(name)
        seq.setData(data, name)
        meta = {k: "generated" for k in featuresetMetadataTemplate}
        meta["root name"] = name
        seq.setMetadata(meta, name)
        seq.deploy(str(path))


def standard_video_ids(counts: tuple[int, int, int]) -> list[str]:
    """The first ``counts`` video ids of the SDK's train / valid / test fold lists."""
    from mmsdk.mmdatasdk.dataset.standard_datasets.CMU_MOSEI import cmu_mosei_std_folds as f

    lists = (f.standard_train_fold, f.standard_valid_fold, f.standard_test_fold)
    out = []
    for n, ids in zip(counts, lists, strict=True):
        if n > len(ids):
            raise ValueError(f"asked for {n} videos of a fold that has {len(ids)}")
        out += list(ids[:n])
    return out


def _scores(rng: np.random.Generator, no_emotion: float) -> np.ndarray:
    row = np.zeros(7, np.float32)
    row[0] = np.round(rng.uniform(-3, 3) * 3) / 3  # sentiment
    if rng.random() >= no_emotion:
        k = 1 if rng.random() < 0.6 else 2
        for e in rng.choice(6, size=k, replace=False):
            row[1 + e] = np.round(rng.integers(1, 10) / 3, 4)
    return row


def write_mosei_shaped(root: str | Path, shape: MoseiShape | None = None) -> dict[str, int]:
    """Write the two ``.csd`` files under ``root``; returns counts (videos, segments, with
    no emotion)."""
    shape = shape or MoseiShape()
    rng = np.random.default_rng(shape.seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    labels, words = {}, {}
    n_seg = n_none = 0
    for vid in standard_video_ids(shape.videos):
        k = int(rng.integers(shape.segments[0], shape.segments[1] + 1))
        ends = np.cumsum(rng.uniform(*shape.seconds, size=k))
        starts = np.concatenate([[0.0], ends[:-1]])
        rows = np.stack([_scores(rng, shape.no_emotion) for _ in range(k)])
        labels[vid] = {"intervals": np.stack([starts, ends], 1), "features": rows}
        n_seg += k
        n_none += int((rows[:, 1:] == 0).all(1).sum())
        t = np.arange(0.0, float(ends[-1]) - 0.3, 0.4)
        drawn = rng.integers(0, len(VOCAB), len(t))
        words[vid] = {
            "intervals": np.stack([t, t + 0.35], 1),
            "features": np.array([[VOCAB[i].encode()] for i in drawn]),
        }
    write_csd(root / LABELS_CSD, "All Labels", labels)
    write_csd(root / WORDS_CSD, "words", words)
    return {"videos": len(labels), "segments": n_seg, "no_emotion": n_none}


def dominant_class(scores: dict[str, float]) -> int:
    """0 for no emotion, else 1 + the index of the strongest emotion (for synthetic features)."""
    if not scores or max(scores.values()) <= 0:
        return 0
    return 1 + EMOTIONS.index(max(scores, key=lambda e: scores[e]))
