"""Which face track a clip's rows follow: one person for the whole clip.

The tracker (:mod:`pipeline.vision.face_track`) links faces into tracks; :class:`TrackLog`
records every track's faces frame by frame (boxes, scores, points and, for ``speaker``, each
face's mouth opening), and :meth:`TrackLog.choose` picks one track by a rule:

- ``largest``: the largest summed face area over the clip (big and long-lived wins);
- ``confidence``: the largest summed MTCNN probability (confident and long-lived wins);
- ``central``: the largest summed closeness of the face centre to the frame centre;
- ``side``: the largest summed face area on the given half of the frame (``left``/``right``,
  e.g. the manifest's ``face_side`` for IEMOCAP's two-actor dialogue video);
- ``speaker``: the track whose lips follow the clip's sound (lip opening from dlib's 68 points
  against the speech-band energy, at the syllable rate, over the lags audiovisual sync
  allows: :mod:`pipeline.vision.speaker`; or, with ``speaker.backend: syncnet``, SyncNet's
  confidence: :mod:`pipeline.vision.sync_speaker`), with a verdict on how sure the choice
  is; when no track follows the sound the rule falls back to ``largest`` and says so.

A clip with one track keeps it, whatever the rule (nothing to choose, nothing to warn about).

Sums make the rules clip-level: a person who is there longer outweighs one who is briefly
more confident, and no rule ever switches people mid-clip. While the clip streams, the leader
so far (``largest`` for ``speaker``) is written; the extractor rewrites the frames where the
final choice differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .face_track import Face, FrameFaces
from .speaker import (
    SpeakerConfig,
    Turn,
    Verdict,
    decide,
    frame_interval,
    score_tracks,
    turns_from_words,
)

if TYPE_CHECKING:
    from .lip_motion import MouthMeter
    from .sync_speaker import SyncLips

SELECT_RULES = ("largest", "confidence", "central", "side", "speaker")


@dataclass
class _Track:
    frames: list[int] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)
    mouth: list[float] = field(default_factory=list)
    sums: dict[str, float] = field(
        default_factory=lambda: {"largest": 0.0, "confidence": 0.0, "central": 0.0, "side": 0.0}
    )


@dataclass
class Choice:
    track: int | None  # None: no track at all
    rule: str  # the rule that decided (the fallback's when one was needed)
    score: float
    runner_up: float  # the next track's score by the same rule (nan: no other track)
    note: str = ""  # why the asked rule was not the one used, or why it is not sure
    verdict: Verdict | None = None  # ``speaker``: the whole clip's verdict


class TrackLog:
    """Every track's presence in a clip's frames, and the running sums the rules use."""

    def __init__(
        self,
        frame_size: tuple[int, int],
        side: str = "",
        mouth: MouthMeter | None = None,
        sync: SyncLips | None = None,
    ) -> None:
        """``mouth``: measures each face's mouth opening as it is added (``speaker``, lips
        backend); ``sync``: takes each frame's faces for SyncNet (syncnet backend)."""
        self.w, self.h = frame_size
        self.side = side
        self.mouth = mouth
        self.sync = sync
        self.tracks: dict[int, _Track] = {}
        self.times: list[float] = []

    def add(self, ff: FrameFaces) -> None:
        i = len(self.times)
        self.times.append(ff.time)
        half_diag = math.hypot(self.w, self.h) / 2
        grey = self.mouth.grey(ff.rgb) if self.mouth is not None and ff.faces else None
        if self.sync is not None:
            self.sync.add(ff)
        for tid, f in ff.faces.items():
            t = self.tracks.setdefault(tid, _Track())
            t.frames.append(i)
            t.faces.append(f)
            b = f.box
            area = float((b[2] - b[0]) * (b[3] - b[1]))
            cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            s = t.sums
            s["largest"] += area
            s["confidence"] += f.prob
            s["central"] += max(0.0, 1.0 - math.hypot(cx - self.w / 2, cy - self.h / 2) / half_diag)
            on_side = cx < self.w / 2 if self.side == "left" else cx >= self.w / 2
            s["side"] += area if (self.side and on_side) else 0.0
            if grey is not None:
                assert self.mouth is not None
                t.mouth.append(self.mouth.measure(grey, b * ff.scale))  # maybe a working copy

    def leader(self, rule: str) -> int | None:
        """The track the rule prefers on the frames so far (``largest`` for ``speaker``)."""
        key = "largest" if rule == "speaker" or (rule == "side" and not self.side) else rule
        best = None
        for tid, t in self.tracks.items():
            if best is None or t.sums[key] > self.tracks[best].sums[key]:
                best = tid
        return best

    def kept_faces(
        self, track: int | None, turns: list[Turn], times: np.ndarray
    ) -> dict[int, tuple[int, Face]]:
        """Frame index -> (track, face) of the rows: ``track``'s faces, except inside a turn
        whose speaker is known, where that speaker's faces are kept (none where that speaker
        has no face)."""
        at = _turn_faces(self, turns, times)
        out = {}
        for tid in self.tracks:
            for i, face in self.faces_of(tid).items():
                if at.get(i, track) == tid:
                    out[i] = (tid, face)
        return dict(sorted(out.items()))

    def turn_verdicts(
        self,
        energy: np.ndarray,
        words: list[tuple[str, float, float]],
        times: np.ndarray,
        min_corr: float,
        cfg: SpeakerConfig,
    ) -> list[Turn]:
        """A speaker verdict per turn of ``words`` (start, end in seconds on ``times``, the
        frame times from the clip's start), each on the frames of its padded span."""
        out = []
        for start, end in turns_from_words(words, cfg.turn_gap_s):
            lo, hi = start - cfg.turn_pad_s, end + cfg.turn_pad_s
            frames = np.flatnonzero((times >= lo) & (times <= hi))
            out.append((start, end, self.speaker_verdict(energy, min_corr, cfg, frames)))
        return out

    def faces_of(self, tid: int | None) -> dict[int, Face]:
        """Frame index -> face of track ``tid`` (empty for None)."""
        if tid is None:
            return {}
        t = self.tracks[tid]
        return dict(zip(t.frames, t.faces, strict=True))

    def choose(
        self,
        rule: str,
        energy: np.ndarray | None = None,
        min_corr: float = 0.2,
        speaker: SpeakerConfig | None = None,
    ) -> Choice:
        """The clip's track by ``rule``. ``energy``: the sound's speech-band energy at each
        frame (``speaker`` only; None = no audio)."""
        if not self.tracks:
            return Choice(None, rule, math.nan, math.nan)
        verdict = None
        if rule == "speaker":
            verdict = self.speaker_verdict(energy, min_corr, speaker or SpeakerConfig())
        if len(self.tracks) == 1:  # one person: nothing to choose, whatever the rule
            tid, t = next(iter(self.tracks.items()))
            if verdict is None:
                return Choice(tid, rule, t.sums.get(rule, math.nan), math.nan)
            note = ""
            if verdict.status == "no_match":  # said, but the only face is kept
                note = "select 'speaker': " + verdict.describe(speaker or SpeakerConfig(), min_corr)
            return Choice(tid, rule, verdict.score, math.nan, note, verdict)
        note = ""
        if rule == "side" and self.side not in ("left", "right"):
            note = "select 'side' needs the manifest's face_side (left/right); used 'largest'"
            rule = "largest"
        if verdict is not None:
            why = verdict.describe(speaker or SpeakerConfig(), min_corr)
            if verdict.track is not None:
                return Choice(
                    verdict.track, rule, verdict.score, verdict.runner_up,
                    f"select 'speaker' {why}" if why else "", verdict,
                )  # fmt: skip
            note = f"select 'speaker': {why}; used 'largest'"
            rule = "largest"
        choice = _best({tid: t.sums[rule] for tid, t in self.tracks.items()}, rule, note)
        choice.verdict = verdict
        return choice

    def mouth_series(self, frames: np.ndarray | None = None) -> dict[int, np.ndarray]:
        """Each track's mouth opening per frame (NaN where it has no face), on all frames or
        on the frame indices ``frames``."""
        n = len(self.times)
        out = {}
        for tid, t in self.tracks.items():
            m = np.full(n, np.nan)
            m[t.frames] = t.mouth
            out[tid] = m if frames is None else m[frames]
        return out

    def speaker_verdict(
        self,
        energy: np.ndarray | None,
        min_corr: float,
        cfg: SpeakerConfig,
        frames: np.ndarray | None = None,
    ) -> Verdict:
        """The ``speaker`` verdict over all frames or over the frame indices ``frames``.
        ``energy``: the sound as the backend reads it (the lips backend: the speech-band
        energy at each frame; syncnet: the embedding of each 1/25 s step's sound)."""
        if energy is None:
            return Verdict(None, "no_sound")
        times = np.asarray(self.times)
        if self.sync is not None:
            span = None
            if frames is not None:
                if len(frames) == 0:
                    return Verdict(None, "no_sound")
                t = times[frames] - self.sync.start
                span = (float(t.min()), float(t.max()))
            return decide(self.sync.score(energy, cfg, span), cfg, min_corr)
        interval = frame_interval(times)
        e = np.asarray(energy, np.float64)
        if frames is not None:
            e = e[frames]
        scored = score_tracks(self.mouth_series(frames), e, interval, cfg)
        return decide(scored, cfg, min_corr)


def _best(scores: dict[int, float], rule: str, note: str) -> Choice:
    order = sorted(scores, key=lambda tid: (-scores[tid], tid))
    nxt = scores[order[1]] if len(order) > 1 else math.nan
    return Choice(order[0], rule, float(scores[order[0]]), float(nxt), note)


def _turn_faces(log: TrackLog, turns: list[Turn], times: np.ndarray) -> dict[int, int]:
    """Frame index -> the track of the turn the frame is in (turns whose speaker is known)."""
    at: dict[int, int] = {}
    for start, end, v in turns:
        if v.track is None:
            continue
        for i in np.flatnonzero((times >= start) & (times <= end)):
            at[int(i)] = v.track
    return at
