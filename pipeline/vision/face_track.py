"""Faces over a stream of frames, linked into tracks: MTCNN on key frames, followed between.

Full MTCNN detection (its P-net scan of an image pyramid) is what makes face extraction slow.
So frames are handled in windows that end on a key frame:

1. Every ``key_interval``-th frame (and the last one) is a key frame. The key frames of a
   window are detected together in one batch, on a copy scaled so that its longer side is at
   most ``detect_max_side`` pixels, then refined at full resolution by the O-net. A key frame
   where that fast scan finds nothing is scanned again for small faces (see below).
2. Every face of a key frame is linked to a *track* (one person): the track whose box at its
   last key frame overlaps it (IoU >= ``MIN_FOLLOW_IOU``), or whose centre is within one face
   side of it at a similar size; the best match first. A face that matches no track starts one.
3. Each frame between two key frames starts, for each track, from the box interpolated
   between the track's boxes at the key frames around it (the nearer one's box when only one
   has it or the two do not overlap), refined at full resolution by MTCNN's later stages only
   (O-net, optionally R-net first), all (frame, track) pairs of the window in one batch.
4. A face whose refinement is lost (score under ``min_prob``, or the box moved off its start)
   falls back to full detection of that frame, and takes the detected face that matches its
   start box, if any; a key frame whose refinement fails keeps its detection.

Small faces: the fast scan finds faces down to ``min_face_size / scale`` source pixels (1/8 of
the long side at the defaults). When ``min_face`` asks for smaller ones (a fraction of the
long side when < 1, else source pixels), key frames are also scanned on a larger copy whose
pyramid starts at that size (the *min_face scan*, which finds every face down to it, large
ones included): the first key frame, every ``full_scan_every``-th key frame after it, a key
frame where the fast scan finds nothing and no track is known, and one where a track it does
not see cannot be followed either. A track the fast scan misses at a key frame (a small face
beside a large one, or alone) is followed there from its last box by the O-net, like the
frames between key frames. So a small face is found on the first key frame and then followed
cheaply, and a clip with one large face pays for one larger scan every ``full_scan_every``
key frames.

Memory: the window holds at most ``batch_mb`` MiB of RGB frames (and never more than
``batch_size + 1`` frames), so a 7680 x 4320 clip (99 MB a frame) is held to the same bound as
a 1280 x 720 one: when fewer than ``key_interval + 1`` frames fit, the key interval shrinks to
what fits (down to every frame), which costs speed, not memory. A frame too large for two to
fit (8K at the defaults) is handled one at a time, converted straight from the decoder's frame
to RGB on a *working copy* of at most ``batch_mb / 16`` MiB (8K: 0.29 of its size; never so
small that a face of ``min_face`` would be cut from fewer than ``crop_size`` pixels): the
faces are followed and cut there, and reported in source pixels (``FrameFaces.scale``).

``key_interval`` 1 with ``detect_max_side`` 0 detects every frame at full size.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from time import perf_counter

import av
import numpy as np

from ..extras import needs
from ..media.video import to_rgb, upright_size
from .boxes import iou
from .mtcnn import FaceBatch, FaceDetector, FaceList

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
    min_face: float = 0.0  # smallest face to find: < 1 fraction of the long side, else pixels
    full_scan_every: int = 30  # key frames between min_face scans (0: first key frame only)
    batch_mb: float = 0.0  # MiB of RGB frames a window may hold; 0 = batch_size frames


@dataclass
class Face:
    """One track's face in one frame (source pixels of the upright frame)."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    prob: float
    points: np.ndarray  # (5, 2)
    how: str  # "key", "followed", "redetected"


@dataclass
class FrameFaces:
    """The faces of one frame, by track id (source pixels). ``rgb`` is the frame, ``scale``
    times the source's size (1 but for frames too large for the memory bound, see above); it
    is reused for a later frame once the consumer asks for the next item, so use it before
    that."""

    index: int
    time: float
    rgb: np.ndarray
    faces: dict[int, Face]
    scale: float = 1.0


@dataclass
class _Item:
    index: int
    time: float
    rgb: np.ndarray
    small: np.ndarray | None


def face_size(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], box[3] - box[1]))


def match_quality(a: np.ndarray, b: np.ndarray) -> float:
    """How well box ``b`` continues box ``a`` as the same face; -1 when it cannot: no overlap
    of ``MIN_FOLLOW_IOU`` and not (centres within one face side, sizes within 2x)."""
    o = float(iou(a, b))
    sa, sb = face_size(a), face_size(b)
    side = (sa + sb) / 2
    d = math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
    near = d <= side and 0.5 <= sb / max(sa, 1e-9) <= 2.0
    if o < MIN_FOLLOW_IOU and not near:
        return -1.0
    return o + 0.5 * max(0.0, 1.0 - d / max(side, 1e-9))


def assign(previous: dict[int, np.ndarray], boxes: np.ndarray) -> list[int | None]:
    """For each of ``boxes``, the key of ``previous`` it continues (best matches first, each
    key at most once), or None."""
    pairs = []
    for k, a in previous.items():
        for d, b in enumerate(boxes):
            q = match_quality(a, b)
            if q >= 0:
                pairs.append((q, k, d))
    out: list[int | None] = [None] * len(boxes)
    used: set[int] = set()
    for _, k, d in sorted(pairs, key=lambda x: (-x[0], x[1], x[2])):
        if k not in used and out[d] is None:
            out[d] = k
            used.add(k)
    return out


class FaceTracker:
    """Turns a stream of ``(time, av.VideoFrame)`` into a stream of :class:`FrameFaces`."""

    def __init__(
        self, detector: FaceDetector, settings: TrackSettings, buffer: np.ndarray | None = None
    ) -> None:
        """``buffer``: a frame buffer of an earlier tracker (``frames_buffer``) to reuse when
        its frame size fits, which saves allocating and touching it again for every clip."""
        self.detector = detector
        self.s = settings
        self._spare = buffer
        self.frame_size: tuple[int, int] | None = None  # (width, height), upright
        # the frames as held: the source size, or smaller when a frame exceeds the memory
        # bound (boxes inside the tracker are in its pixels)
        self.work_size: tuple[int, int] | None = None
        self.detect_size: tuple[int, int] | None = None
        # The small-face scan: (copy size, MTCNN min face in its pixels), or None when the
        # fast scan already reaches min_face.
        self.small_scan: tuple[tuple[int, int], int] | None = None
        self.smallest_face = 0.0  # source pixels: the smallest face the scans look for
        self.key_interval = max(1, settings.key_interval)  # as used (see the memory bound)
        self.window_frames = 0  # frames a window holds
        self.stats = {
            "key": 0,
            "followed": 0,
            "redetected": 0,
            "detect_calls": 0,
            "small_face_scans": 0,
        }
        # Seconds spent per step (for benchmarks; not stored with the features).
        self.seconds = {"convert": 0.0, "detect": 0.0, "refine": 0.0, "crop": 0.0}
        self._frames = np.empty((0, 0, 0, 3), np.uint8)
        self._next_id = 0
        self._last_box: dict[int, np.ndarray] = {}  # each track's box at its last key frame
        self._alive: dict[int, np.ndarray] = {}  # tracks present at the last key frame: box
        self._key_count = 0  # key frames handled so far (the min_face scan's schedule)
        # each track's anchor at the last key frame of the previous window (None: absent)
        self._prev_anchor: dict[int, tuple[int, np.ndarray | None]] = {}

    @property
    def frames_buffer(self) -> np.ndarray | None:
        """The reusable frame buffer (None before the first frame)."""
        return self._frames if len(self._frames) else None

    @property
    def n_tracks(self) -> int:
        return self._next_id

    @property
    def work_scale(self) -> float:
        """Working copy / source (1: frames are held at full size)."""
        if not self.frame_size or not self.work_size:
            return 1.0
        return self.work_size[0] / self.frame_size[0]

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
        mfs = self.detector.min_face_size
        fast_smallest = mfs * max(w, h) / max(self.detect_size)
        want = self.s.min_face * max(w, h) if self.s.min_face < 1 else self.s.min_face
        self.smallest_face = fast_smallest
        if want > 0 and want < fast_smallest - 1e-6:
            s2 = min(1.0, mfs / want)
            size2 = (max(1, round(w * s2)), max(1, round(h * s2)))
            if size2 != self.detect_size or mfs > 12:
                self.small_scan = (size2, max(12, math.floor(want * s2)))
                self.smallest_face = max(want, 12.0 / s2)
        # frames a window may hold: batch_size + 1, fewer when batch_mb says so (at least 2)
        k = max(1, self.s.key_interval)
        fit = max(1, self.s.batch_size // k) * k + 1
        if self.s.batch_mb > 0:
            fit = min(fit, max(2, int(self.s.batch_mb * 2**20 // (w * h * 3))))
        self.key_interval = min(k, fit - 1)
        self.window_frames = fit
        self.work_size = (w, h)
        budget = self.s.batch_mb * 2**20 / 16
        if fit <= 2 and self.s.batch_mb > 0 and w * h * 3 > budget:
            sw = math.sqrt(budget / (w * h * 3))
            if want > 0:  # crops of the smallest face are never cut from fewer than S pixels
                sw = max(sw, min(1.0, self.s.crop_size / ((1 + self.s.margin) * want)))
            self.work_size = (max(1, round(w * sw)), max(1, round(h * sw)))

    def _small(self, frame: av.VideoFrame, rgb: np.ndarray) -> np.ndarray:
        if self.detect_size == self.work_size:
            return rgb
        return to_rgb(frame, size=self.detect_size)

    def run(self, frames: Iterable[tuple[float, av.VideoFrame]]) -> Iterator[FrameFaces]:
        window: list[_Item] = []
        n_keys = 0
        k = keys_per_window = 1
        pending: tuple[float, av.VideoFrame] | None = None
        index = 0
        for item in frames:
            if self.frame_size is None:
                self._sizes(item[1])
                k = self.key_interval
                keys_per_window = max(1, (self.window_frames - 1) // k)
            # Hold one frame back so the last frame of the stream is known to be the last.
            if pending is not None:
                it = pending if isinstance(pending, _Item) else None
                window.append(it or self._item(len(window), index, *pending, key=index % k == 0))
                n_keys += index % k == 0
                index += 1
                if n_keys >= keys_per_window and (index - 1) % k == 0:
                    yield from self._window(window)
                    window, n_keys = [], 0
            # Frames of one-at-a-time size are converted at once: the decoder's frame (its
            # YUV pixels) is not held back beside the next one; the frame before is let go
            # first, and its memory handed back (see release_memory).
            if self.window_frames <= 2:
                it = pending = None
                release_memory()
                pending = self._item(0, index, *item, key=True)
            else:
                pending = item
        if pending is not None:
            last = pending if isinstance(pending, _Item) else None
            window.append(last or self._item(len(window), index, *pending, key=True))
        if window:
            yield from self._window(window)

    def _item(self, slot: int, index: int, time: float, frame: av.VideoFrame, key: bool) -> _Item:
        if self.window_frames <= 2:
            # Frames so large that the budget holds two: no buffer; each frame's RGB is the
            # converted frame itself (no copy), dropped when the next window starts.
            if upright_size(frame) != self.frame_size:
                raise ValueError(f"frame size changed mid-stream at {time:.3f} s")
            t0 = perf_counter()
            scaled = self.work_size != self.frame_size
            rgb = to_rgb(frame, size=self.work_size if scaled else None, copy=False)
            item = _Item(index, time, rgb, self._small(frame, rgb) if key else None)
            self.seconds["convert"] += perf_counter() - t0
            return item
        if not len(self._frames):
            w, h = self.work_size
            # One window of RGB frames, allocated once and reused (see to_rgb).
            cap = self.window_frames
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

    def _detect(self, items: list[_Item]) -> list[FaceList]:
        """Every face of each frame (source pixels) that the fast scan finds."""
        smalls = [it.small if it.small is not None else self._resized(it, self.detect_size)
                  for it in items]  # fmt: skip
        t0 = perf_counter()
        res = self.detector.detect_all(np.stack(smalls))
        self.stats["detect_calls"] += 1
        w, h = self.work_size
        sx, sy = w / self.detect_size[0], h / self.detect_size[1]
        self.seconds["detect"] += perf_counter() - t0
        return [r.scaled(sx, sy) for r in res]

    def _scan(self, items: list[_Item]) -> list[FaceList]:
        """Every face of each frame down to ``min_face`` (the min_face scan; only when
        ``small_scan`` is set)."""
        assert self.small_scan is not None
        size, min_face = self.small_scan
        t0 = perf_counter()
        imgs = np.stack([self._resized(it, size) for it in items])
        res = self.detector.detect_all(imgs, min_face_size=min_face)
        self.stats["small_face_scans"] += len(items)
        self.seconds["detect"] += perf_counter() - t0
        w, h = self.work_size
        return [r.scaled(w / size[0], h / size[1]) for r in res]

    def _scan_due(self, count: int) -> bool:
        """The min_face scan is due on the ``count``-th key frame of the clip (0-based)."""
        every = self.s.full_scan_every
        return count == 0 or (every > 0 and count % every == 0)

    def _resized(self, item: _Item, size: tuple[int, int]) -> np.ndarray:
        with needs("faces", "extract"):
            import cv2

            from ..kernels import opencv_baseline

        if size == self.work_size:
            return item.rgb
        with opencv_baseline():  # the same pixels on every CPU (pipeline/kernels.py)
            return cv2.resize(item.rgb, size, interpolation=cv2.INTER_AREA)

    def _refine(self, items: list[_Item], start: np.ndarray) -> tuple[FaceBatch, np.ndarray]:
        """Refine ``start`` boxes; also returns which refinements kept the face."""
        t0 = perf_counter()
        res = self.detector.refine([it.rgb for it in items], start, rnet=self.s.refine_rnet)
        self.seconds["refine"] += perf_counter() - t0
        ok = (res.probs >= self.s.min_prob) & (iou(res.boxes, start) >= MIN_FOLLOW_IOU)
        ok &= np.isfinite(res.boxes).all(axis=1)
        return res, ok

    def _link(self, found: FaceList, taken: Iterable[int] = ()) -> list[int]:
        """Track ids for the faces of one key frame (new tracks for the unmatched); tracks
        in ``taken`` already have their face in this frame."""
        skip = set(taken)
        ids = assign({k: b for k, b in self._last_box.items() if k not in skip}, found.boxes)
        out = []
        for d, tid in enumerate(ids):
            if tid is None:
                tid = self._next_id
                self._next_id += 1
            self._last_box[tid] = found.boxes[d]
            out.append(tid)
        return out

    def _key_faces(self, item: _Item, found: FaceList, scanned: bool) -> dict[int, Face]:
        """The faces of one key frame by track: those found (linked to tracks), then every
        track present at the previous key frame that was not found, followed from its box
        there by the O-net; when one cannot be followed and this frame had no min_face scan
        yet, that scan looks for it (and for faces not seen so far)."""
        faces = {
            tid: Face(found.boxes[d], float(found.probs[d]), found.points[d], "key")
            for d, tid in enumerate(self._link(found))
        }
        missing = [t for t in self._alive if t not in faces]
        lost: list[int] = []
        if missing:
            start = np.array([self._alive[t] for t in missing])
            ref, ok = self._refine([item] * len(missing), start)
            for r, tid in enumerate(missing):
                if ok[r] and not _overlaps(ref.boxes[r], faces):
                    faces[tid] = Face(ref.boxes[r], float(ref.probs[r]), ref.points[r], "followed")
                    self._last_box[tid] = ref.boxes[r]
                else:
                    lost.append(tid)
        if lost and not scanned and self.small_scan is not None:
            again = self._scan([item])[0]
            new = [d for d in range(len(again)) if not _overlaps(again.boxes[d], faces)]
            more = FaceList(again.boxes[new], again.probs[new], again.points[new])
            for d, tid in enumerate(self._link(more, taken=faces)):
                faces[tid] = Face(more.boxes[d], float(more.probs[d]), more.points[d], "key")
        self._alive = {tid: f.box for tid, f in faces.items()}
        return faces

    def _window(self, window: list[_Item]) -> Iterator[FrameFaces]:
        n = len(window)
        faces: list[dict[int, Face]] = [{} for _ in range(n)]
        key_pos = [j for j, it in enumerate(window) if it.small is not None]
        # 1. key frames: detect on the small copies (the min_face scan where it is due or the
        # fast scan found nothing), link to tracks, follow the tracks not found, refine the
        # detected faces at full resolution.
        keys = [window[j] for j in key_pos]
        dets = self._detect(keys)
        due = set()
        if self.small_scan is not None:
            # (a frame where the fast scan finds nothing while tracks are known is scanned
            # only if they cannot be followed there, see _key_faces)
            due = {
                i
                for i, r in enumerate(dets)
                if (not len(r) and not self._alive) or self._scan_due(self._key_count + i)
            }
            if due:
                order = sorted(due)
                for i, r in zip(order, self._scan([keys[i] for i in order]), strict=True):
                    dets[i] = r
        self._key_count += len(keys)
        for i, j in enumerate(key_pos):
            faces[j] = self._key_faces(window[j], dets[i], scanned=i in due)
        pairs = [(j, tid) for j in key_pos for tid in faces[j] if faces[j][tid].how == "key"]
        if pairs:
            start = np.array([faces[j][tid].box for j, tid in pairs])
            ref, ok = self._refine([window[j] for j, _ in pairs], start)
            for r, (j, tid) in enumerate(pairs):
                if ok[r]:
                    faces[j][tid] = Face(ref.boxes[r], float(ref.probs[r]), ref.points[r], "key")
        # 2. frames between key frames: each track starts from its interpolated box, refined.
        tids = sorted(set(self._prev_anchor) | {t for j in key_pos for t in faces[j]})
        anchors = {
            tid: ([self._prev_anchor[tid]] if tid in self._prev_anchor else [])
            + [(window[j].index, faces[j][tid].box if tid in faces[j] else None) for j in key_pos]
            for tid in tids
        }
        pairs, starts = [], []
        for j in range(n):
            if window[j].small is not None:
                continue
            for tid in tids:
                b = _start_box(window[j].index, anchors[tid])
                if np.isfinite(b).all():
                    pairs.append((j, tid))
                    starts.append(b)
        lost: list[tuple[int, int, np.ndarray]] = []
        if pairs:
            ref, ok = self._refine([window[j] for j, _ in pairs], np.array(starts))
            for r, (j, tid) in enumerate(pairs):
                if ok[r]:
                    faces[j][tid] = Face(
                        ref.boxes[r], float(ref.probs[r]), ref.points[r], "followed"
                    )
                else:
                    lost.append((j, tid, starts[r]))
        # 3. faces lost there: full detection of the frame (the fast scan, then the min_face
        # scan for faces it does not see); take the face that matches.
        if lost:
            frames = sorted({j for j, _, _ in lost})
            for scan in (self._detect, self._scan):
                todo = [
                    j for j in frames if any(jj == j and t not in faces[j] for jj, t, _ in lost)
                ]
                if not todo or (scan == self._scan and self.small_scan is None):
                    break
                for j, found in zip(todo, scan([window[jj] for jj in todo]), strict=True):
                    mine = {tid: b for jj, tid, b in lost if jj == j and tid not in faces[j]}
                    for d, tid in enumerate(assign(mine, found.boxes)):
                        if tid is not None and not _overlaps(found.boxes[d], faces[j]):
                            faces[j][tid] = Face(
                                found.boxes[d], float(found.probs[d]), found.points[d],
                                "redetected",
                            )  # fmt: skip
        last = window[key_pos[-1]].index
        # (a track absent at the last key frame needs no anchor: None and none are alike)
        self._prev_anchor = {tid: (last, f.box) for tid, f in faces[key_pos[-1]].items()}
        for j in range(n):
            for f in faces[j].values():
                self.stats[f.how] += 1
        k = self.work_scale
        for j, it in enumerate(window):
            mine = faces[j] if k == 1 else {t: _in_source(f, k) for t, f in faces[j].items()}
            yield FrameFaces(it.index, it.time, it.rgb, mine, k)


def release_memory() -> None:
    """Hand freed heap memory back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    Frames of one-at-a-time size are converted by FFmpeg into buffers of several MB that
    glibc serves from its heap once a first one has been freed; the small allocations made
    between two frames then fragment it, and without a trim each frame's buffer took new
    memory (8K: resident memory grew by a working frame, 17 MB, every frame)."""
    global _TRIM
    if _TRIM is None:
        try:
            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None


def _in_source(face: Face, scale: float) -> Face:
    """``face`` (pixels of the working copy) in source pixels."""
    return Face(face.box / scale, face.prob, face.points / scale, face.how)


def _overlaps(box: np.ndarray, faces: dict[int, Face]) -> bool:
    """``box`` is (mostly) the face of one of ``faces`` already."""
    return any(float(iou(box, f.box)) >= MIN_FOLLOW_IOU for f in faces.values())


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
