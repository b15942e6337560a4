"""Which face track a clip's rows follow: one person for the whole clip.

The tracker (:mod:`pipeline.vision.face_track`) links faces into tracks; :class:`TrackLog`
records every track's faces frame by frame (boxes, scores, points and, for ``speaker``, a
mouth signal: a few numbers a frame), and :meth:`TrackLog.choose` picks one track by a rule:

- ``largest``: the largest summed face area over the clip (big and long-lived wins);
- ``confidence``: the largest summed MTCNN probability (confident and long-lived wins);
- ``central``: the largest summed closeness of the face centre to the frame centre;
- ``side``: the largest summed face area on the given half of the frame (``left``/``right``,
  e.g. the manifest's ``face_side`` for IEMOCAP's two-actor dialogue video);
- ``speaker``: the track whose mouth follows the audio: the Pearson correlation of a mouth
  signal (the mouth region's darkness relative to the face, a proxy for its opening) with the
  log energy envelope of the clip's audio at the frame times, the best over lags of up to
  ``SPEAKER_MAX_LAG`` frames. Tracks on fewer than a quarter of the frames (or 10) are not
  candidates; when no candidate reaches ``speaker_min_corr`` the rule falls back to
  ``largest`` and says so.

A clip with one track keeps it, whatever the rule (nothing to choose, nothing to warn about).

Sums make the rules clip-level: a person who is there longer outweighs one who is briefly
more confident, and no rule ever switches people mid-clip. While the clip streams, the leader
so far (``largest`` for ``speaker``) is written; the extractor rewrites the frames where the
final choice differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .face_track import Face, FrameFaces

SELECT_RULES = ("largest", "confidence", "central", "side", "speaker")
SPEAKER_MAX_LAG = 2  # frames


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
    note: str = ""  # why the asked rule was not the one used


class TrackLog:
    """Every track's presence in a clip's frames, and the running sums the rules use."""

    def __init__(self, frame_size: tuple[int, int], side: str = "", mouth: bool = False) -> None:
        self.w, self.h = frame_size
        self.side = side
        self.mouth = mouth
        self.tracks: dict[int, _Track] = {}
        self.times: list[float] = []

    def add(self, ff: FrameFaces) -> None:
        i = len(self.times)
        self.times.append(ff.time)
        half_diag = math.hypot(self.w, self.h) / 2
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
            if self.mouth:
                k = ff.scale  # the frame may be a smaller working copy
                t.mouth.append(mouth_signal(ff.rgb, b * k, f.points * k))

    def leader(self, rule: str) -> int | None:
        """The track the rule prefers on the frames so far (``largest`` for ``speaker``)."""
        key = "largest" if rule == "speaker" or (rule == "side" and not self.side) else rule
        best = None
        for tid, t in self.tracks.items():
            if best is None or t.sums[key] > self.tracks[best].sums[key]:
                best = tid
        return best

    def faces_of(self, tid: int | None) -> dict[int, Face]:
        """Frame index -> face of track ``tid`` (empty for None)."""
        if tid is None:
            return {}
        t = self.tracks[tid]
        return dict(zip(t.frames, t.faces, strict=True))

    def choose(
        self, rule: str, envelope: np.ndarray | None = None, min_corr: float = 0.2
    ) -> Choice:
        """The clip's track by ``rule``. ``envelope``: the audio's log energy at each frame
        (``speaker`` only; None = no audio)."""
        if not self.tracks:
            return Choice(None, rule, math.nan, math.nan)
        if len(self.tracks) == 1:  # one person: nothing to choose, whatever the rule
            tid, t = next(iter(self.tracks.items()))
            return Choice(tid, rule, t.sums.get(rule, math.nan), math.nan)
        note = ""
        if rule == "side" and self.side not in ("left", "right"):
            note = "select 'side' needs the manifest's face_side (left/right); used 'largest'"
            rule = "largest"
        if rule == "speaker":
            scores = self.speaker_scores(envelope) if envelope is not None else {}
            if not scores:
                note = "select 'speaker': no audio or no track long enough; used 'largest'"
            elif max(scores.values()) < min_corr:
                note = (
                    f"select 'speaker': no mouth follows the audio (best r = "
                    f"{max(scores.values()):.2f} < {min_corr}); used 'largest'"
                )
            else:
                return _best(scores, rule, note)
            rule = "largest"
        return _best({tid: t.sums[rule] for tid, t in self.tracks.items()}, rule, note)

    def speaker_scores(self, envelope: np.ndarray) -> dict[int, float]:
        """Each candidate track's best correlation of its mouth signal with ``envelope``."""
        n = len(self.times)
        longest = max(len(t.frames) for t in self.tracks.values())
        out = {}
        for tid, t in self.tracks.items():
            if len(t.frames) < max(10, longest // 4):
                continue
            m = np.full(n, np.nan)
            m[t.frames] = t.mouth
            out[tid] = lagged_corr(m, np.asarray(envelope, np.float64), SPEAKER_MAX_LAG)
        return out


def _best(scores: dict[int, float], rule: str, note: str) -> Choice:
    order = sorted(scores, key=lambda tid: (-scores[tid], tid))
    nxt = scores[order[1]] if len(order) > 1 else math.nan
    return Choice(order[0], rule, float(scores[order[0]]), float(nxt), note)


def lagged_corr(x: np.ndarray, y: np.ndarray, max_lag: int) -> float:
    """The largest Pearson correlation of ``x[i]`` with ``y[i + lag]`` over |lag| <= max_lag,
    on the rows where both are finite (0 when too few rows or no variance)."""
    best = -1.0
    n = min(len(x), len(y))
    for lag in range(-max_lag, max_lag + 1):
        a = x[max(0, -lag) : n - max(0, lag)]
        b = y[max(0, lag) : n - max(0, -lag)]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 10:
            continue
        a, b = a[ok], b[ok]
        flat = a.std() < 1e-9 or b.std() < 1e-9
        r = 0.0 if flat else float(np.corrcoef(a, b)[0, 1])
        best = max(best, r)
    return best if best > -1.0 else 0.0


def mouth_signal(rgb: np.ndarray, box: np.ndarray, points: np.ndarray) -> float:
    """How dark the mouth region is against the face (higher = more open): the mean grey level
    of the face box over that of the region between the mouth corners (MTCNN's points 3, 4),
    reaching 0.35 mouth widths above and 0.45 below the corners' line."""
    ml, mr = points[3], points[4]
    width = float(np.hypot(*(mr - ml)))
    if not np.isfinite(width) or width < 2:
        return math.nan
    cx, cy = (ml + mr) / 2
    region = (cx - 0.6 * width, cy - 0.35 * width, cx + 0.6 * width, cy + 0.45 * width)
    mouth = _mean_grey(rgb, region)
    face = _mean_grey(rgb, tuple(box))
    if not (mouth > 0 and face > 0):
        return math.nan
    return face / mouth


def _mean_grey(rgb: np.ndarray, region: tuple[float, ...]) -> float:
    h, w = rgb.shape[:2]
    x1, y1 = max(0, int(region[0])), max(0, int(region[1]))
    x2, y2 = min(w, int(math.ceil(region[2]))), min(h, int(math.ceil(region[3])))
    if x2 <= x1 or y2 <= y1:
        return math.nan
    step = max(1, min(x2 - x1, y2 - y1) // 32)  # about 32 x 32 samples whatever the size
    patch = rgb[y1:y2:step, x1:x2:step].astype(np.float32)
    return float(patch.mean()) + 1.0


def energy_envelope(audio: np.ndarray, sample_rate: int, times: np.ndarray) -> np.ndarray:
    """Log energy (dB) of ``audio`` (time 0 = its first sample) around each of ``times``: over
    [t - d / 2, t + 3 d / 2), d the median frame interval (NaN outside the audio)."""
    times = np.asarray(times, np.float64)
    d = float(np.median(np.diff(times))) if len(times) > 1 else 1 / 30
    c = np.concatenate([[0.0], np.cumsum(np.asarray(audio, np.float64) ** 2)])
    lo = np.clip(np.round((times - d / 2) * sample_rate).astype(int), 0, len(audio))
    hi = np.clip(np.round((times + 1.5 * d) * sample_rate).astype(int), 0, len(audio))
    out = np.full(len(times), np.nan)
    ok = hi > lo
    out[ok] = 10 * np.log10((c[hi[ok]] - c[lo[ok]]) / (hi[ok] - lo[ok]) + 1e-10)
    return out
