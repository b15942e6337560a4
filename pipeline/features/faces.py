"""Face crops: one face per frame found by MTCNN (facenet-pytorch), cut square and resized.

MPUC §III-A takes facial images "extracted by MTCNN" as the input of its R(2+1)D backbone
(112 x 112 in the authors' code). Frames are decoded as a stream and sampled at ``fps`` (0 =
every frame of the source). Full MTCNN detection runs on key frames, batched, on a copy of the
frame scaled down to ``detect_max_side``; the face is followed between key frames by MTCNN's
O-net at full resolution (see :mod:`pipeline.vision.face_track`). When a frame has several
faces, the most confident (``select: confidence``) or the largest is kept. The crop is a
square centred on the face box, ``1 + margin`` times its longer side, cut from the
full-resolution frame (parts outside the frame are black) and resized to ``crop_size``.
Rows go to the clip's output ``batch_size`` frames at a time (a
:class:`~pipeline.features.base.StreamingExtractor`), so a long video costs no more memory
than a short one.

Arrays (T = sampled frames; coordinates in pixels of the upright source frame, x right, y
down, as facenet-pytorch reports them):

- ``crops``      uint8 (T, S, S, 3) RGB face crops; zeros where there is no face.
- ``boxes``      float32 (T, 4) face box x1, y1, x2, y2; NaN where there is no face.
- ``crop_boxes`` float32 (T, 4) the square region each crop was cut from (integers; the crop
  maps it onto S x S pixels, so a source point p lies at (p - xy1) / side of the crop).
- ``probs``      float32 (T,) MTCNN face probability; 0 where none was detected.
- ``points``     float32 (T, 5, 2) MTCNN's five points (left eye, right eye, nose, left and
  right mouth corner, as seen in the image); NaN where there is no face.
- ``filled``     bool (T,) the frame had no face and took its face from the nearest frame
  that had one (``fill_gaps`` > 0 only; its ``probs`` is 0).

``timestamps``: seconds from the clip's start, on the media's time base (time 0 = first audio
sample; see :mod:`pipeline.media.video`), the same as the audio features'. ``valid``: the frame
has a face (detected or filled). A clip with no face in any frame fails with a reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..config import ConfigError
from ..extras import needs
from ..media.video import VideoDecodeError, iter_decoded
from ..store import ClipSink
from . import register
from .base import ClipSource, ExtractionError, StreamingExtractor

if TYPE_CHECKING:
    from ..vision.face_track import FaceTracker, FrameFace, TrackSettings


@dataclass(frozen=True)
class FacesConfig:
    fps: float = 0.0  # frames sampled per second; 0 = every frame of the source
    crop_size: int = 112  # crops are crop_size x crop_size (R(2+1)D input in the MPUC code)
    margin: float = 0.3  # crop side = (1 + margin) x the face box's longer side
    select: Literal["confidence", "largest"] = "confidence"  # which face when there are several
    min_prob: float = 0.9  # faces MTCNN scores below this are ignored (stray boxes)
    # MTCNN settings; min_face_size is in pixels of the detection copy.
    min_face_size: int = 40
    thresholds: tuple[float, ...] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    detect_max_side: int = 320  # detect on a copy whose longer side is at most this; 0 = full
    key_interval: int = 10  # full detection every n-th frame, the face followed between; 1 = all
    refine_rnet: bool = False  # follow with R-net then O-net (instead of O-net alone)
    batch_size: int = 30  # frames handled together on CPU (holds this many RGB frames)
    cuda_batch_size: int = 120  # the same on a GPU
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when available
    fill_gaps: int = 0  # fill gaps of up to this many frames with no face; 0 = off
    decode_threads: int = 0  # decoder threads; 0 = FFmpeg's default
    # torch CPU threads while extracting; 0 = leave torch's setting. MTCNN's small batches
    # run fastest on one thread per process (parallelism comes from the runner's workers).
    torch_threads: int = 1

    def validate(self, key: str) -> None:
        for name in ("crop_size", "min_face_size", "key_interval", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}: must be >= 1, got {getattr(self, name)}")
        if self.cuda_batch_size < 1:
            raise ConfigError(f"{key}.cuda_batch_size: must be >= 1")
        for name in (
            "fps",
            "margin",
            "detect_max_side",
            "fill_gaps",
            "decode_threads",
            "torch_threads",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{key}.{name}: must be >= 0, got {getattr(self, name)}")
        if len(self.thresholds) != 3 or not all(0 <= t <= 1 for t in self.thresholds):
            raise ConfigError(f"{key}.thresholds: three numbers in [0, 1] (P-, R-, O-net)")
        if not 0 < self.factor < 1:
            raise ConfigError(f"{key}.factor: must be in (0, 1), got {self.factor}")
        if not 0 <= self.min_prob <= 1:
            raise ConfigError(f"{key}.min_prob: must be in [0, 1], got {self.min_prob}")


def resolve_device(device: str, stage: str = "faces") -> str:
    """``"cpu"`` or ``"cuda"`` for a config's ``device`` (auto | cpu | cuda); ``auto`` logs
    its choice and the reason once per stage (:func:`pipeline.devices.choose_device`)."""
    from ..devices import choose_device

    try:
        return choose_device(device, stage)
    except RuntimeError as e:
        raise ExtractionError(str(e)) from e


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (0: unchanged), then restore the setting."""
    with needs("faces", "extract"):
        import torch

    before = torch.get_num_threads()
    if n > 0 and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def fill_gaps(valid: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """For each run of invalid frames of at most ``max_gap`` frames with valid frames on both
    sides, the index of the nearest valid frame to copy from (the earlier one on ties).

    Returns ``(targets, sources)`` as index arrays.
    """
    targets: list[int] = []
    sources: list[int] = []
    n = len(valid)
    i = 0
    while i < n:
        if valid[i]:
            i += 1
            continue
        j = i
        while j < n and not valid[j]:
            j += 1
        if i > 0 and j < n and j - i <= max_gap:
            for t in range(i, j):
                targets.append(t)
                sources.append(i - 1 if t - (i - 1) <= j - t else j)
        i = j
    return np.array(targets, dtype=int), np.array(sources, dtype=int)


@register
class FacesExtractor(StreamingExtractor):
    name = "faces"
    config_class = FacesConfig
    primary = "crops"
    libraries = ("numpy", "torch", "facenet-pytorch", "av", "opencv-python")
    summed_attrs = ("n_frames", "n_detected", "n_filled")

    @classmethod
    def corpus_metrics(cls, sums: dict[str, float]) -> dict[str, Any]:
        n, found = sums.get("n_frames", 0), sums.get("n_detected", 0)
        return {
            "frames": int(n),
            "frames_with_face": int(found),
            "frames_filled": int(sums.get("n_filled", 0)),
            "face_rate": round(found / n, 4) if n else 0.0,
        }

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._buffers: list[np.ndarray] = []
        self._device: str | None = None

    @property
    def device(self) -> str:
        """The device this extractor runs on ("cpu" or "cuda"): ``device: auto`` resolved on
        this machine; ``cuda`` is checked when the models load (:meth:`setup`), so that a
        machine without a GPU can plan a run for GPU workers."""
        if self._device is None:
            dev = self.config.device
            self._device = dev if dev == "cuda" else resolve_device(dev)
        return self._device

    @property
    def batch_in_use(self) -> int:
        """Frames handled together on this extractor's device."""
        cfg: FacesConfig = self.config
        return cfg.cuda_batch_size if self.device == "cuda" else cfg.batch_size

    def setup(self) -> None:
        from ..devices import exact_fp32
        from ..vision.mtcnn import FaceDetector

        cfg: FacesConfig = self.config
        resolve_device(self.device)  # cuda where CUDA cannot run: an error with the reason
        exact_fp32()  # TF32 convolutions would move the boxes (CPU and GPU would differ)
        self.detector = FaceDetector(
            device=self.device,
            min_face_size=cfg.min_face_size,
            thresholds=tuple(cfg.thresholds),
            factor=cfg.factor,
            select=cfg.select,
            min_prob=cfg.min_prob,
        )

    def _take_buffer(self) -> np.ndarray | None:
        """A frame buffer a finished clip left (list.pop is atomic: threads never share one)."""
        try:
            return self._buffers.pop()
        except IndexError:
            return None

    def params(self) -> dict[str, Any]:
        """The parameters that define the output (thread counts only change the speed); the
        device as resolved, so that CPU and GPU outputs never share a cache entry."""
        from ..config import to_dict

        out = to_dict(self.config)
        for k in ("decode_threads", "torch_threads"):
            out.pop(k)
        out["device"] = self.device
        return out

    def provenance(self) -> dict[str, Any]:
        from ..devices import device_provenance

        return {**super().provenance(), "device": device_provenance(self.device)}

    def model_token(self) -> str:
        try:
            import importlib.metadata

            return "facenet-pytorch-" + importlib.metadata.version("facenet-pytorch")
        except importlib.metadata.PackageNotFoundError:
            return "facenet-pytorch"

    def track_settings(self) -> TrackSettings:
        """The tracker's settings on this extractor's device (its window: ``batch_in_use``)."""
        from ..vision.face_track import TrackSettings

        cfg: FacesConfig = self.config
        return TrackSettings(
            crop_size=cfg.crop_size,
            margin=cfg.margin,
            detect_max_side=cfg.detect_max_side,
            key_interval=cfg.key_interval,
            batch_size=self.batch_in_use,
            refine_rnet=cfg.refine_rnet,
            min_prob=cfg.min_prob,
        )

    def tracker(self) -> FaceTracker:
        """A tracker over this extractor's detector and settings, for one clip."""
        from ..vision.face_track import FaceTracker

        self.ensure_setup()
        return FaceTracker(
            self.detector, buffer=self._take_buffer(), settings=self.track_settings()
        )

    def extract_into(self, source: ClipSource, sink: ClipSink) -> dict[str, Any]:
        if not source.has_video:
            raise ExtractionError(f"{source.clip_id}: the media has no video track")
        self.ensure_setup()
        with torch_threads(self.config.torch_threads if self.device == "cpu" else 0):
            return self._extract(source, sink)

    def _extract(self, source: ClipSource, sink: ClipSink) -> dict[str, Any]:
        cfg: FacesConfig = self.config
        tracker = self.tracker()
        self.last_tracker = tracker  # its step timings, for benchmarks
        block = _Block(cfg.batch_size, cfg.crop_size)
        valid: list[bool] = []
        frames = iter_decoded(
            source.path,
            fps=cfg.fps,
            start=source.start,
            end=source.end,
            threads=cfg.decode_threads,
        )
        try:
            for face in tracker.run(frames):
                valid.append(face.box is not None)
                if block.add(face, face.time - source.start):
                    block.flush(sink)
        except VideoDecodeError as e:
            raise ExtractionError(f"{source.clip_id}: {e}") from e
        block.flush(sink)
        if tracker.frames_buffer is not None:  # one window of frames, kept for the next clip
            self._buffers.append(tracker.frames_buffer)
        n = len(valid)
        if n == 0:
            raise ExtractionError(f"{source.clip_id}: the video holds no frames")
        n_detected = int(sum(valid))
        if n_detected == 0:
            raise ExtractionError(f"{source.clip_id}: no face found in any of the {n} frames")
        n_filled = 0
        if cfg.fill_gaps > 0:
            dst, src = fill_gaps(np.array(valid), cfg.fill_gaps)
            n_filled = len(dst)
            for lo in range(0, len(dst), 256):  # a few rows at a time: crops may be on disk
                d, s_ = dst[lo : lo + 256], src[lo : lo + 256]
                for name in ("crops", "boxes", "crop_boxes", "points"):
                    sink.put(name, d, sink.take(name, s_))
                sink.put("filled", d, np.ones(len(d), bool))
                sink.put("valid", d, np.ones(len(d), bool))
        w, h = tracker.frame_size
        return {
            "frame_width": int(w),
            "frame_height": int(h),
            "detect_scale": round(tracker.detect_scale, 6),
            "n_frames": n,
            "n_detected": n_detected,
            "n_filled": n_filled,
            "face_rate": round(n_detected / n, 6),
            "device": self.device,
            **{f"n_{k}": int(v) for k, v in tracker.stats.items()},
        }


class _Block:
    """Up to ``size`` frames' rows, appended to the sink together."""

    def __init__(self, size: int, crop_size: int) -> None:
        self.crops = np.zeros((size, crop_size, crop_size, 3), np.uint8)
        self.rows: list[tuple[float, np.ndarray, np.ndarray, float, np.ndarray]] = []

    def add(self, face: FrameFace, time: float) -> bool:
        """Add one frame; True when the block is full."""
        i = len(self.rows)
        if face.box is None:
            self.crops[i] = 0
            self.rows.append((time, _NAN4, _NAN4, 0.0, _NAN52))
        else:
            self.crops[i] = face.crop
            self.rows.append((time, face.box, face.region, face.prob, face.points))
        return len(self.rows) == len(self.crops)

    def flush(self, sink: ClipSink) -> None:
        n = len(self.rows)
        if not n:
            return
        boxes = np.array([r[1] for r in self.rows], np.float32)
        sink.append(
            {
                "crops": self.crops[:n].copy(),
                "boxes": boxes,
                "crop_boxes": np.array([r[2] for r in self.rows], np.float32),
                "probs": np.array([r[3] for r in self.rows], np.float32),
                "points": np.array([r[4] for r in self.rows], np.float32),
                "filled": np.zeros(n, bool),
            },
            np.array([r[0] for r in self.rows], np.float64),
            np.isfinite(boxes).all(axis=1),
        )
        self.rows.clear()


_NAN4 = np.full(4, np.nan)
_NAN52 = np.full((5, 2), np.nan)
