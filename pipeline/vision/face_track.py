"""One face per frame over a stream of frames: MTCNN on key frames, the face followed between.

Full MTCNN detection (its P-net scan of an image pyramid) is what makes face extraction slow.
So frames are handled in windows of about ``batch_size`` frames that end on a key frame:

1. Every ``key_interval``-th frame (and the last one) is a key frame. The key frames of a
   window are detected together in one batch, on a copy scaled so that its longer side is at
   most ``detect_max_side`` pixels, then refined at full resolution by the O-net.
2. Each frame between two key frames starts from the box interpolated between them (the
   nearer one's box when only one has a face or the two boxes do not overlap) and is refined
   at full resolution by MTCNN's later stages only (O-net, optionally R-net first), all frames
   of the window in one batch.
3. A frame whose refinement loses the face (score under ``min_prob``, or the box moved off
   its start) falls back to full detection; a key frame whose refinement fails keeps its
   detection.
4. The crop is cut from the full-resolution frame.

``key_interval`` 1 with ``detect_max_side`` 0 detects every frame at full size. Memory holds at
most one window of RGB frames (``batch_size + key_interval`` of them), whatever the length of
the video.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from time import perf_counter

import av
import numpy as np

from ..extras import needs
from ..media.video import to_rgb, upright_size
from .boxes import crop_box, cut, iou
from .mtcnn import FaceBatch, FaceDetector

# A refined box must overlap the box it started from at least this much (else the face is
# taken as lost there and the frame falls back to full detection).
MIN_FOLLOW_IOU = 0.3


@dataclass(frozen=True)
class TrackSettings:
    crop_size: int = 112
    margin: float = 0.3
    detect_max_side: int = 320
    key_interval: int = 10
    batch_size: int = 30
    refine_rnet: bool = False
    min_prob: float = 0.9


@dataclass
class FrameFace:
    """The face found in one frame (``box`` None when there is none)."""

    time: float
    box: np.ndarray | None = None  # (4,) x1, y1, x2, y2 source pixels
    prob: float = 0.0
    points: np.ndarray | None = None  # (5, 2) source pixels
    region: np.ndarray | None = None  # (4,) the square the crop was cut from
    crop: np.ndarray | None = None  # (S, S, 3) uint8
    how: str = ""  # "key", "followed", "redetected"


@dataclass
class _Item:
    index: int
    time: float
    rgb: np.ndarray
    small: np.ndarray | None


class FaceTracker:
    """Turns a stream of ``(time, av.VideoFrame)`` into a stream of :class:`FrameFace`."""

    def __init__(
        self, detector: FaceDetector, settings: TrackSettings, buffer: np.ndarray | None = None
    ) -> None:
        """``buffer``: a frame buffer of an earlier tracker (``frames_buffer``) to reuse when
        its frame size fits, which saves allocating and touching it again for every clip."""
        self.detector = detector
        self.s = settings
        self._spare = buffer
        self.frame_size: tuple[int, int] | None = None  # (width, height), upright
        self.detect_size: tuple[int, int] | None = None
        self.stats = {"key": 0, "followed": 0, "redetected": 0, "detect_calls": 0}
        # Seconds spent per step (for benchmarks; not stored with the features).
        self.seconds = {"convert": 0.0, "detect": 0.0, "refine": 0.0, "crop": 0.0}
        self._frames = np.empty((0, 0, 0, 3), np.uint8)

    @property
    def frames_buffer(self) -> np.ndarray | None:
        """The reusable frame buffer (None before the first frame)."""
        return self._frames if len(self._frames) else None

    @property
    def detect_scale(self) -> float:
        if not self.frame_size or not self.detect_size:
            return 1.0
        return self.detect_size[0] / self.frame_size[0]

    def _sizes(self, frame: av.VideoFrame) -> None:
        w, h = upright_size(frame)
        self.frame_size = (w, h)
        m = self.s.detect_max_side
        scale = min(1.0, m / max(w, h)) if m > 0 else 1.0
        self.detect_size = (max(1, round(w * scale)), max(1, round(h * scale)))

    def _small(self, frame: av.VideoFrame, rgb: np.ndarray) -> np.ndarray:
        if self.detect_size == self.frame_size:
            return rgb
        return to_rgb(frame, size=self.detect_size)

    def run(self, frames: Iterable[tuple[float, av.VideoFrame]]) -> Iterator[FrameFace]:
        k = max(1, self.s.key_interval)
        keys_per_window = max(1, self.s.batch_size // k)
        window: list[_Item] = []
        n_keys = 0
        prev_key: tuple[int, np.ndarray | None] | None = None
        pending: tuple[float, av.VideoFrame] | None = None
        index = 0
        for item in frames:
            # Hold one frame back so the last frame of the stream is known to be the last.
            if pending is not None:
                window.append(self._item(len(window), index, *pending, key=index % k == 0))
                n_keys += index % k == 0
                index += 1
                if n_keys >= keys_per_window and (index - 1) % k == 0:
                    out, prev_key = self._window(window, prev_key, k)
                    yield from out
                    window, n_keys = [], 0
            pending = item
        if pending is not None:
            window.append(self._item(len(window), index, *pending, key=True))
        if window:
            out, prev_key = self._window(window, prev_key, k)
            yield from out

    def _item(self, slot: int, index: int, time: float, frame: av.VideoFrame, key: bool) -> _Item:
        if self.frame_size is None:
            self._sizes(frame)
            w, h = self.frame_size
            # One window of RGB frames, allocated once and reused (see to_rgb).
            k = max(1, self.s.key_interval)
            cap = max(1, self.s.batch_size // k) * k + 1
            spare = self._spare
            if spare is not None and spare.shape[1:3] == (h, w) and len(spare) >= cap:
                self._frames = spare
            else:
                self._frames = np.empty((cap, h, w, 3), np.uint8)
            self._spare = None
        if upright_size(frame) != self.frame_size:
            raise ValueError(f"frame size changed mid-stream at {time:.3f} s")
        out = self._frames[slot] if slot < len(self._frames) else None
        t0 = perf_counter()
        rgb = to_rgb(frame, out=out)
        item = _Item(index, time, rgb, self._small(frame, rgb) if key else None)
        self.seconds["convert"] += perf_counter() - t0
        return item

    def _detect(self, items: list[_Item]) -> FaceBatch:
        smalls = [it.small if it.small is not None else self._small_from(it) for it in items]
        t0 = perf_counter()
        res = self.detector.detect(np.stack(smalls))
        self.seconds["detect"] += perf_counter() - t0
        self.stats["detect_calls"] += 1
        sx = self.frame_size[0] / self.detect_size[0]
        sy = self.frame_size[1] / self.detect_size[1]
        res.boxes = res.boxes * np.array([sx, sy, sx, sy])
        res.points = res.points * np.array([sx, sy])
        return res

    def _small_from(self, item: _Item) -> np.ndarray:
        with needs("faces", "extract"):
            import cv2

        if self.detect_size == self.frame_size:
            return item.rgb
        return cv2.resize(item.rgb, self.detect_size, interpolation=cv2.INTER_AREA)

    def _refine(self, items: list[_Item], start: np.ndarray) -> tuple[FaceBatch, np.ndarray]:
        """Refine ``start`` boxes; also returns which refinements kept the face."""
        t0 = perf_counter()
        res = self.detector.refine([it.rgb for it in items], start, rnet=self.s.refine_rnet)
        self.seconds["refine"] += perf_counter() - t0
        ok = (res.probs >= self.s.min_prob) & (iou(res.boxes, start) >= MIN_FOLLOW_IOU)
        ok &= np.isfinite(res.boxes).all(axis=1)
        return res, ok

    def _window(
        self, window: list[_Item], prev_key: tuple[int, np.ndarray | None] | None, k: int
    ) -> tuple[list[FrameFace], tuple[int, np.ndarray | None]]:
        n = len(window)
        final = FaceBatch.empty(n)
        how = [""] * n
        key_pos = [j for j, it in enumerate(window) if it.small is not None]
        # 1. key frames: detect on the small copies, refine at full resolution.
        det = self._detect([window[j] for j in key_pos])
        found = [i for i in range(len(key_pos)) if det.found[i]]
        for i in range(len(key_pos)):
            j = key_pos[i]
            final.copy_from(j, det, i)
            how[j] = "key"
        if found:
            items = [window[key_pos[i]] for i in found]
            ref, ok = self._refine(items, det.boxes[found])
            for r, i in enumerate(found):
                if ok[r]:
                    j = key_pos[i]
                    final.copy_from(j, ref, r)
        # 2. frames between key frames: start from the interpolated box, refine.
        anchors: list[tuple[int, np.ndarray | None]] = []
        if prev_key is not None:
            anchors.append(prev_key)
        anchors += [
            (window[j].index, final.boxes[j] if np.isfinite(final.boxes[j]).all() else None)
            for j in key_pos
        ]
        follow = [j for j in range(n) if window[j].small is None]
        start = np.full((n, 4), np.nan)
        for j in follow:
            start[j] = _start_box(window[j].index, anchors)
        follow = [j for j in follow if np.isfinite(start[j]).all()]
        lost: list[int] = []
        if follow:
            ref, ok = self._refine([window[j] for j in follow], start[follow])
            for r, j in enumerate(follow):
                if ok[r]:
                    final.copy_from(j, ref, r)
                    how[j] = "followed"
                else:
                    lost.append(j)
        # 3. frames where the face was lost: full detection.
        if lost:
            det = self._detect([window[j] for j in lost])
            for r, j in enumerate(lost):
                final.copy_from(j, det, r)
                how[j] = "redetected"
        # 4. crops from the full-resolution frames.
        t0 = perf_counter()
        out = []
        for j, it in enumerate(window):
            face = FrameFace(time=it.time)
            if np.isfinite(final.boxes[j]).all():
                box = final.boxes[j]
                region = crop_box(box, self.s.margin)
                face = FrameFace(
                    time=it.time,
                    box=box,
                    prob=float(final.probs[j]),
                    points=final.points[j],
                    region=region,
                    crop=cut(it.rgb, region, self.s.crop_size),
                    how=how[j],
                )
                self.stats[how[j]] += 1
            out.append(face)
        self.seconds["crop"] += perf_counter() - t0
        last = key_pos[-1]
        last_box = final.boxes[last] if np.isfinite(final.boxes[last]).all() else None
        return out, (window[last].index, last_box)


def _start_box(index: int, anchors: list[tuple[int, np.ndarray | None]]) -> np.ndarray:
    """Box to start following from at frame ``index``, from the key frames around it."""
    before = [a for a in anchors if a[0] < index]
    after = [a for a in anchors if a[0] > index]
    a = before[-1] if before else None
    b = after[0] if after else None
    if a is not None and b is not None and a[1] is not None and b[1] is not None:
        if iou(a[1], b[1]) >= MIN_FOLLOW_IOU:
            w = (index - a[0]) / (b[0] - a[0])
            return (1 - w) * a[1] + w * b[1]
        return a[1] if index - a[0] <= b[0] - index else b[1]
    for anchor in (a, b):
        if anchor is not None and anchor[1] is not None:
            return anchor[1]
    return np.full(4, np.nan)
