"""Word embeddings of a clip's transcript (Qian & Han: word2vec GoogleNews-300, 30 words;
MPUC on CMU-MOSEI: GloVe 300-d).

The transcript is tokenised (:mod:`pipeline.text.tokenize`) and each token looked up in word
vectors loaded once per worker (:mod:`pipeline.text.vectors`). Word times come from the
clip's alignment when the corpus has one (``meta['word_times']``: JSON list of
``[word, start, end]``, seconds from the clip's start; CMU-MOSEI, IEMOCAP forced alignment,
subtitle cues); otherwise the tokens are spread evenly over the clip.

Output (T = tokens, or ``max_words`` when padding):

- ``vectors``: float32 (T, D); zeros for out-of-vocabulary tokens and padding.
- ``oov``: bool (T,); True where the token has no vector (padding rows are False).
- ``tokens``: fixed-width UTF-8 bytes ``S<n>`` (T,); ``b""`` on padding rows.
- ``word_end``: float64 (T,); end of each word in seconds (``timestamps`` is its start).
- ``valid``: False on padding rows. attrs: ``n_tokens``, ``n_oov`` (before padding/cutting:
  the stage sums them into the corpus OOV rate), ``n_words_cut``, ``timing``
  (``aligned`` | ``even``).

``vectors.format: mosei-csd`` takes the vectors the CMU Multimodal SDK ships for CMU-MOSEI
(``CMU_MOSEI_TimestampedGloveVectors.csd``) instead of a lookup: the aligned words of the
clip (from the SDK's word sequence, unchanged) are matched to the vector rows by start time.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..config import ConfigError
from ..extras import needs
from ..store import ClipFeatures
from ..text.alignment import WORD_TIMES_KEY, parse_word_times
from ..text.limits import max_bytes, transcript_problem
from ..text.tokenize import SILENCE_TOKENS, TokenizerSettings, tokenize, tokenize_timed
from ..text.vectors import (
    VectorsConfig,
    VectorsError,
    VectorsMissingError,
    load_vectors,
    lookup,
    vectors_token,
)
from . import register
from .base import ClipSource, ExtractionError, Extractor


@dataclass(frozen=True)
class WordsConfig:
    vectors: VectorsConfig = field(default_factory=VectorsConfig)
    lowercase: bool = True  # false for case-sensitive vectors (word2vec GoogleNews)
    punctuation: bool = False  # keep punctuation marks as tokens
    drop_annotations: bool = True  # drop [LAUGHTER], (laughs), <sil>, ++NOISE++
    max_words: int = 0  # cut to this many tokens; 0 = keep all (Qian & Han: 30)
    pad: bool = False  # with max_words: pad shorter clips with zero rows (valid False)

    def validate(self, key: str) -> None:
        if self.max_words < 0:
            raise ConfigError(f"{key}.max_words: must be >= 0, got {self.max_words}")
        if self.pad and not self.max_words:
            raise ConfigError(f"{key}.pad: padding needs max_words > 0")

    @property
    def tokenizer(self) -> TokenizerSettings:
        return TokenizerSettings(self.lowercase, self.punctuation, self.drop_annotations)


def _clip_seconds(source: ClipSource) -> float:
    if source.end > source.start:
        return source.end - source.start
    return max(source.duration, 0.0)


@register
class WordsExtractor(Extractor):
    name = "words"
    config_class = WordsConfig
    primary = "vectors"
    row_unit = "words"
    version = "2"  # 2: ``timing`` is "aligned" only for clips that have word times
    libraries = ("numpy", "gensim")
    summed_attrs: ClassVar[tuple[str, ...]] = ("n_tokens", "n_oov")
    source_fields: ClassVar[tuple[str, ...]] = (
        "transcript",
        f"meta.{WORD_TIMES_KEY}",
        "meta.video_id",  # vectors.format mosei-csd: the SDK's video and segment start
        "meta.segment_start",
    )

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._kv = None
        self._csd = None

    def setup(self) -> None:
        vc = self.config.vectors
        try:
            if vc.format == "mosei-csd":
                self._csd = _open_csd(Path(vc.path).expanduser())
            else:
                self._kv = load_vectors(vc)
        except VectorsError as e:
            raise ExtractionError(str(e)) from e

    def model_token(self) -> str:
        return vectors_token(self.config.vectors)

    @classmethod
    def corpus_metrics(cls, sums: dict[str, float]) -> dict[str, Any]:
        n, oov = sums.get("n_tokens", 0), sums.get("n_oov", 0)
        return {
            "tokens": int(n),
            "oov_tokens": int(oov),
            "oov_rate": round(oov / n, 4) if n else 0.0,
        }

    def extract(self, source: ClipSource) -> ClipFeatures:
        self.ensure_setup()
        timed = self._timed_tokens(source)
        tokens = [t for t, _, _ in timed]
        if self.config.vectors.format == "mosei-csd":
            vecs, oov = self._csd_vectors(source, timed)
        else:
            vecs, oov = self._lookup(tokens)
        starts = np.array([s for _, s, _ in timed], dtype=np.float64)
        ends = np.array([e for _, _, e in timed], dtype=np.float64)
        n_tokens, n_oov = len(tokens), int(oov.sum())
        valid = np.ones(n_tokens, dtype=bool)
        cut = 0
        m = self.config.max_words
        if m and n_tokens > m:
            cut = n_tokens - m
            tokens, vecs, oov, starts, ends, valid = (
                tokens[:m],
                vecs[:m],
                oov[:m],
                starts[:m],
                ends[:m],
                valid[:m],
            )
        if m and self.config.pad and len(tokens) < m:
            pad = m - len(tokens)
            tail = max(_clip_seconds(source), float(ends[-1]) if len(ends) else 0.0)
            tokens = tokens + [""] * pad
            vecs = np.concatenate([vecs, np.zeros((pad, vecs.shape[1]), np.float32)])
            oov = np.concatenate([oov, np.zeros(pad, bool)])
            starts = np.concatenate([starts, np.full(pad, tail)])
            ends = np.concatenate([ends, np.full(pad, tail)])
            valid = np.concatenate([valid, np.zeros(pad, bool)])
        encoded = [t.encode("utf-8") for t in tokens]
        width = max([len(b) for b in encoded] + [1])
        return ClipFeatures(
            arrays={
                "vectors": vecs.astype(np.float32, copy=False),
                "oov": oov,
                "tokens": np.array(encoded, dtype=f"S{width}"),
                "word_end": ends,
            },
            timestamps=starts,
            valid=valid,
            attrs={
                "n_tokens": n_tokens,
                "n_oov": n_oov,
                "n_words_cut": cut,
                "timing": "aligned" if source.meta.get(WORD_TIMES_KEY, "").strip() else "even",
                "audio_seconds": _clip_seconds(source),
            },
        )

    def _timed_tokens(self, source: ClipSource) -> list[tuple[str, float, float]]:
        settings = self.config.tokenizer
        raw = source.meta.get(WORD_TIMES_KEY, "")
        # refused before tokenising: memory is bounded by the clip's length (text.limits)
        seconds = _clip_seconds(source)
        if why := transcript_problem(source.transcript, seconds):
            raise ExtractionError(f"{source.clip_id}: {why}")
        if seconds > 0 and len(raw) > 2 * max_bytes(seconds):
            raise ExtractionError(
                f"{source.clip_id}: word times of {len(raw)} characters for a clip of "
                f"{seconds:.2f} s: they cannot belong to this clip"
            )
        if raw:
            try:
                words = parse_word_times(raw)
            except (ValueError, TypeError) as e:
                raise ExtractionError(f"{source.clip_id}: bad word alignment: {e}") from e
            if self.config.vectors.format == "mosei-csd":
                # the SDK's vectors are per SDK word: keep its words as they are
                timed = [(w, s, e) for w, s, e in words if w.strip().lower() not in SILENCE_TOKENS]
            else:
                timed = tokenize_timed(words, settings)
            if not timed:
                raise ExtractionError(f"{source.clip_id}: empty transcript (no aligned words)")
            return [(t, max(s, 0.0), max(e, 0.0)) for t, s, e in timed]
        if self.config.vectors.format == "mosei-csd":
            raise ExtractionError(
                f"{source.clip_id}: vectors.format mosei-csd needs the clip's word alignment "
                f"(meta word_times, written by the mosei adapter from the SDK's words .csd)"
            )
        if not source.transcript.strip():
            raise ExtractionError(f"{source.clip_id}: empty transcript")
        tokens = tokenize(source.transcript, settings)
        if not tokens:
            raise ExtractionError(
                f"{source.clip_id}: empty transcript (no words in {source.transcript[:60]!r})"
            )
        step = _clip_seconds(source) / len(tokens)
        return [(t, i * step, (i + 1) * step) for i, t in enumerate(tokens)]

    def _lookup(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        kv = self._kv
        rows = np.array([lookup(kv, t) for t in tokens], dtype=np.int64)
        oov = rows < 0
        vecs = np.zeros((len(tokens), kv.vector_size), dtype=np.float32)
        if (~oov).any():
            vecs[~oov] = kv.vectors[rows[~oov]]
        return vecs, oov

    def _csd_vectors(
        self, source: ClipSource, timed: list[tuple[str, float, float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        vid = source.meta.get("video_id", "")
        offset = float(source.meta.get("segment_start", source.start) or 0.0)
        try:
            group = self._csd[vid]
        except KeyError:
            raise ExtractionError(
                f"{source.clip_id}: video {vid!r} is not in {self.config.vectors.path}"
            ) from None
        intervals = np.asarray(group["intervals"][()], dtype=np.float64)
        feats = np.asarray(group["features"][()], dtype=np.float32)
        vecs = np.zeros((len(timed), feats.shape[1]), dtype=np.float32)
        oov = np.ones(len(timed), dtype=bool)
        order = np.argsort(intervals[:, 0], kind="stable")
        starts = intervals[order, 0]
        for i, (_, s, _) in enumerate(timed):
            j = int(np.searchsorted(starts, offset + s - 1e-3))
            if j < len(starts) and abs(starts[j] - (offset + s)) < 2e-3:
                v = feats[order[j]]
                if np.any(v):
                    vecs[i], oov[i] = v, False
        return vecs, oov


def _open_csd(path: Path):
    """The ``data`` groups of a computational sequence, by video id, read through mmsdk."""
    if not path.is_file():
        raise VectorsMissingError(
            f"CMU-MOSEI GloVe vectors not found: {path}; put "
            f"CMU_MOSEI_TimestampedGloveVectors.csd there or set words.vectors.path"
        )
    with needs("words (CMU-MOSEI vectors)", "extract"):
        from mmsdk.mmdatasdk import computational_sequence

    with contextlib.redirect_stdout(io.StringIO()):
        seq = computational_sequence(str(path))
    return seq.data
