"""The ``syncnet`` backend of ``faces.select: speaker``: each track scored by SyncNet.

How it works (the settings are ``faces.speaker.syncnet_*``; the network and its inputs are in
:mod:`pipeline.vision.syncnet` and :mod:`pipeline.vision.syncnet_inputs`):

1. Frames on SyncNet's clock: the network was trained on 25 fps video. While the clip
   streams, each point k / 25 s of the clip (its *step*) takes the frame nearest to it
   (a 30 fps clip skips a frame in six; a 12.5 fps sampling repeats each frame), and every
   track with a face in that frame gets its 224 x 224 crop for step k.
2. Lips: every run of five consecutive steps of one track (k .. k + 4) is a window; windows
   go through the lip stream ``syncnet_batch_size`` at a time (on the GPU when the faces
   stage runs there), and only the 1024-d embeddings are kept (4 KiB a window: 100 KiB per
   second of clip and face, as much again for the sound), not the crops.
3. Sound: the clip's audio at 16 kHz, 13 MFCCs every 10 ms; step k's window is MFCC steps
   4k .. 4k + 19 (0.2 s from k / 25 s), embedded by the audio stream.
4. Distances (``SyncNetInstance.py`` lines 19-31 and 129-135 of ``joonson/syncnet_python``):
   for each offset d in -``syncnet_vshift`` .. +``syncnet_vshift`` steps, the mean Euclidean
   distance between a track's window k and the sound's window k + d, over the windows where
   both exist (the authors pad the sound with zero vectors instead). The track's *confidence*
   is the median of these mean distances minus the smallest one, as the authors define it,
   except that the smallest is taken over the offsets audiovisual sync allows
   (``speaker.lag_s``, as the lips backend): a face that matches the sound only half a second
   off is not the speaker of a well-muxed clip. Its lag is that offset (d / 25 s; positive:
   the sound after the lips).
5. The verdict is :func:`pipeline.vision.speaker.decide`'s with the SyncNet thresholds
   (``syncnet_min_conf``, ``syncnet_sure_conf``, ``syncnet_margin``). Tracks with fewer than
   a quarter of the longest track's windows (or 10) are not scored; a turn is scored on the
   windows inside it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .speaker import MIN_ROWS, SpeakerConfig, lag_frames
from .syncnet import load_syncnet, syncnet_token
from .syncnet_inputs import CROP, SAMPLE_RATE, face_crop, syncnet_mfcc
from .syncnet_net import EMBED_DIM, SyncNet, embed

if TYPE_CHECKING:
    from .face_track import FrameFaces

FPS = 25.0  # SyncNet's video rate
STEP_S = 1 / FPS
WINDOW = 5  # frames per lip window
MFCC_PER_STEP, MFCC_WINDOW = 4, 20  # 10 ms MFCC steps per video step; 0.2 s of sound


class SyncNetScorer:
    """The loaded network (one per worker) and the clip-independent parts of the backend."""

    def __init__(self, cfg: SpeakerConfig, device: str = "cpu") -> None:
        self.cfg = cfg
        self.device = device
        self.net: SyncNet = load_syncnet(cfg.syncnet_model, cfg.syncnet_sha256, device)

    def token(self) -> str:
        return syncnet_token(self.cfg.syncnet_model, self.cfg.syncnet_sha256)

    def reader(self, start: float) -> SyncLips:
        """A reader for one clip whose time 0 (the first audio sample) is ``start`` s."""
        return SyncLips(self, start)

    def sound(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """float32 (K, 1024): the embedding of each step's 0.2 s of ``audio`` (mono, from
        the clip's time 0; resampled to 16 kHz by the caller)."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"SyncNet reads {SAMPLE_RATE} Hz audio, got {sample_rate}")
        mfcc = syncnet_mfcc(audio)
        n = (mfcc.shape[1] - MFCC_WINDOW) // MFCC_PER_STEP + 1
        if n <= 0:
            return np.zeros((0, EMBED_DIM), np.float32)
        starts = np.arange(n) * MFCC_PER_STEP
        windows = np.stack([mfcc[:, s : s + MFCC_WINDOW] for s in starts])[:, None]
        return embed(self.net, "embed_sound", windows.astype(np.float32), self.device,
                     self.cfg.syncnet_batch_size)  # fmt: skip


class SyncLips:
    """One clip's lip embeddings per track (steps 1-2 of the module docstring)."""

    def __init__(self, scorer: SyncNetScorer, start: float) -> None:
        self.scorer = scorer
        self.start = start
        self.prev: tuple[float, dict[int, np.ndarray]] | None = None  # last frame's crops
        self.next_step = 0  # the first step not given a frame yet
        self.runs: dict[int, list[tuple[int, np.ndarray]]] = {}  # track -> last steps' crops
        self.batch: list[tuple[int, int, list[np.ndarray]]] = []  # (track, first step, crops)
        self.starts: dict[int, list[int]] = {}  # track -> first steps of embedded windows
        self.embeds: dict[int, list[np.ndarray]] = {}

    def add(self, ff: FrameFaces) -> None:
        """Take a frame: its faces' crops go to the steps nearer to it than to the next
        frame (decided when the next frame comes, or at :meth:`finish`)."""
        t = ff.time - self.start
        crops = {}
        for tid, face in ff.faces.items():
            crop = face_crop(ff.rgb, face.box * ff.scale)
            if crop is not None:
                crops[tid] = crop
        if self.prev is None:
            self.next_step = max(0, math.ceil((t - STEP_S / 2) * FPS - 1e-9))
        else:
            self._give(self.prev[1], (self.prev[0] + t) / 2)
        self.prev = (t, crops)

    def finish(self) -> None:
        """Give the last frame its steps and embed the windows still waiting."""
        if self.prev is not None:
            self._give(self.prev[1], self.prev[0] + STEP_S / 2)
            self.prev = None
        self._flush()

    def _give(self, crops: dict[int, np.ndarray], until: float) -> None:
        """Steps before ``until`` s get ``crops``; a track absent from them ends its run."""
        while self.next_step * STEP_S < until - 1e-9:
            k = self.next_step
            for tid, crop in crops.items():
                run = self.runs.setdefault(tid, [])
                if run and run[-1][0] != k - 1:
                    run.clear()
                run.append((k, crop))
                del run[:-WINDOW]
                if len(run) == WINDOW:
                    self.batch.append((tid, run[0][0], [c for _, c in run]))
            self.next_step += 1
            if len(self.batch) >= self.scorer.cfg.syncnet_batch_size:
                self._flush()

    def _flush(self) -> None:
        if not self.batch:
            return
        # (N, 5, 224, 224, 3) BGR -> (N, 3, 5, 224, 224), as the authors' transpose
        x = np.stack([np.stack(c) for _, _, c in self.batch]).transpose(0, 4, 1, 2, 3)
        e = embed(self.scorer.net, "embed_lips", x.astype(np.float32), self.scorer.device,
                  self.scorer.cfg.syncnet_batch_size)  # fmt: skip
        for (tid, k, _), row in zip(self.batch, e, strict=True):
            self.starts.setdefault(tid, []).append(k)
            self.embeds.setdefault(tid, []).append(row)
        self.batch.clear()

    def windows(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Track -> (first steps (n,), embeddings (n, 1024)) of its lip windows."""
        self.finish()
        return {
            tid: (np.array(self.starts[tid]), np.stack(self.embeds[tid]))
            for tid in sorted(self.starts)
        }

    def score(
        self, sound: np.ndarray, cfg: SpeakerConfig, span: tuple[float, float] | None = None
    ) -> dict[int, tuple[float, float]]:
        """Each track's (confidence, lag in seconds) against ``sound`` (from
        :meth:`SyncNetScorer.sound`), over the whole clip or the windows inside ``span``
        (seconds from the clip's time 0)."""
        lips = self.windows()
        if span is not None:
            lo, hi = math.ceil(span[0] * FPS - 1e-9), math.floor(span[1] * FPS + 1e-9)
            lips = {
                tid: (k[keep], e[keep])
                for tid, (k, e) in lips.items()
                if (keep := (k >= lo) & (k + WINDOW - 1 <= hi)).any()
            }
        return sync_scores(lips, sound, cfg)


def offset_distances(
    starts: np.ndarray, lips: np.ndarray, sound: np.ndarray, vshift: int
) -> np.ndarray:
    """(2 vshift + 1,) the mean distance between lip window k and sound window k + d for
    d = -vshift .. vshift, over the windows where both exist (NaN where none do)."""
    out = np.full(2 * vshift + 1, np.nan)
    a = lips.astype(np.float64)
    s = sound.astype(np.float64)
    for i, d in enumerate(range(-vshift, vshift + 1)):
        j = starts + d
        ok = (j >= 0) & (j < len(s))
        if ok.any():
            out[i] = float(np.linalg.norm(a[ok] - s[j[ok]], axis=1).mean())
    return out


def sync_scores(
    lips: dict[int, tuple[np.ndarray, np.ndarray]], sound: np.ndarray, cfg: SpeakerConfig
) -> dict[int, tuple[float, float]]:
    """Step 4 of the module docstring for every track with enough windows; the confidence
    is rounded to 0.01 (the warnings show two decimals) so that the last bits of the
    network's sums, which differ between CPUs, rarely reach the stored score."""
    counts = {tid: len(k) for tid, (k, _) in lips.items()}
    longest = max(counts.values(), default=0)
    vshift = cfg.syncnet_vshift
    allowed = [d + vshift for d in lag_frames(cfg, STEP_S) if -vshift <= d <= vshift]
    out = {}
    for tid, (starts, emb) in lips.items():
        if counts[tid] < max(MIN_ROWS, longest // 4) or len(sound) == 0:
            continue
        mdist = offset_distances(starts, emb, sound, vshift)
        near = mdist[allowed]
        if not np.isfinite(near).any():
            continue
        best = allowed[int(np.nanargmin(near))]
        conf = float(np.nanmedian(mdist)) - float(mdist[best])
        out[tid] = (round(conf, 2), round((best - vshift) * STEP_S, 4))
    return out


__all__ = ["CROP", "FPS", "SyncLips", "SyncNetScorer", "offset_distances", "sync_scores"]
