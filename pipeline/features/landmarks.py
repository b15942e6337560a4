"""68-point 2D face landmarks (iBUG 300-W layout) inside the faces stage's boxes.

MPUC §III-A feeds facial landmarks "detected by the method in [64]" (2D-FAN) to an ST-GCN; the
authors' code dropped the 17 jaw points (51 nodes). All 68 are stored here; the model picks.
No second face detector runs: the boxes, frame times and sampling come from the faces shards
of the same clip (``faces_dir``), and the frames are decoded again from the video.

Backends (``backend``; both give the same layout, see :mod:`pipeline.vision.landmarkers`):
``dlib`` (default; dlib's shape predictor with the weights of the face-recognition-models
package on PyPI, so a fresh machine runs offline) and ``fan`` (face-alignment's 2D-FAN-4, the
paper's detector, from a local weights file named by ``fan_weights``).

Arrays (T = the faces shard's frames; pixels of the upright source frame, x right, y down):

- ``landmarks``      float32 (T, 68, 2) points in source pixels; NaN where there is no face.
- ``landmarks_crop`` float32 (T, 68, 2) the same points in the face crop's frame, normalised
  to [0, 1] (``(p - crop_xy1) / crop_side`` with the faces shard's ``crop_boxes``; points
  outside the crop fall outside [0, 1]); multiply by the crop size for crop pixels.
- ``confidence``     float32 (T, 68) per point: the FAN heatmap's peak (about 0..1); NaN for
  dlib, which gives no confidence, and where there is no face.
- ``boxes``          float32 (T, 4) the face boxes the points were computed in (from faces).
- ``filled``         bool (T,) the face box was filled from a neighbouring frame by the faces
  stage (``faces.fill_gaps``), not detected in this frame.

``timestamps`` and ``valid`` are those of the faces shard (same time base as the audio
features: seconds from the clip's start). Faces shards of ``faces.select: all`` (a row per
face, with a ``track`` id) give a row per face too, each with its ``track``: the landmarks of
every person.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..config import ConfigError, Params
from ..hashing import params_hash
from ..media.video import VideoDecodeError, iter_decoded, to_rgb
from ..paths import Layout
from ..store import ClipSink, FeatureReader
from ..store.reader import ShardError
from . import register
from .base import ClipSource, ExtractionError, StreamingExtractor
from .faces import resolve_device, torch_threads

# A decoded frame belongs to a faces row when their times differ by less than this (s).
TIME_TOLERANCE = 1e-3


@dataclass(frozen=True)
class LandmarksConfig:
    backend: Literal["dlib", "fan"] = "dlib"
    # Faces shards to take boxes from; "" = data/features/<corpus.name>/faces (the stage
    # fills it in from params; a path relative to the project root, or absolute).
    faces_dir: str = ""
    dlib_model: str = ""  # "" = shape_predictor_68_face_landmarks.dat of face-recognition-models
    fan_weights: str = "models/2DFAN4-11f355bf06.pth.tar"  # the 2D-FAN-4 state dict (local file)
    fan_sha256: str = ""  # the weights file's sha256, checked before loading when set
    fan_flip: bool = True  # average with the mirrored face, as face-alignment does by default
    fan_batch_size: int = 8  # faces per FAN forward pass
    device: Literal["auto", "cpu", "cuda"] = "auto"  # fan only; auto: cuda when available
    decode_threads: int = 0  # decoder threads; 0 = FFmpeg's default
    torch_threads: int = 1  # fan: torch CPU threads while extracting; 0 = leave torch's setting

    def validate(self, key: str) -> None:
        if self.fan_batch_size < 1:
            raise ConfigError(f"{key}.fan_batch_size: must be >= 1")
        for name in ("decode_threads", "torch_threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{key}.{name}: must be >= 0")


def with_faces_dir(params: Params, root: str | Path = ".") -> Params:
    """``params`` with ``landmarks.faces_dir`` set to the corpus's faces directory when empty."""
    cfg: LandmarksConfig = params.section("landmarks")
    if cfg.faces_dir:
        return params
    # Absolute, so workers on a cluster find it from any working directory.
    faces = Layout(params.corpus.name, root=Path(root).absolute()).features_dir("faces")
    extra = dict(params.extra)
    extra["landmarks"] = dataclasses.replace(cfg, faces_dir=str(faces))
    return dataclasses.replace(params, extra=extra)


# Open faces readers, per worker process, keyed by directory and index file state.
_READERS: dict[str, tuple[tuple[int, int], FeatureReader]] = {}


def faces_reader(faces_dir: str | Path) -> FeatureReader:
    path = Path(faces_dir)
    index = path / "index.json"
    try:
        st = index.stat()
    except FileNotFoundError:
        raise ExtractionError(
            f"no faces shards in {path} (index.json missing): run the faces stage first"
        ) from None
    state = (st.st_size, st.st_mtime_ns)
    key = str(path.resolve())
    cached = _READERS.get(key)
    if cached is None or cached[0] != state:
        if cached is not None:
            cached[1].close()
        reader = FeatureReader(path)
        if reader.feature != "faces":
            raise ExtractionError(f"{path} holds {reader.feature!r} features, not faces")
        _READERS[key] = (state, reader)
    return _READERS[key][1]


@register
class LandmarksExtractor(StreamingExtractor):
    name = "landmarks"
    config_class = LandmarksConfig
    primary = "landmarks"
    row_unit = "frames"
    # 2: OpenCV, MKL and oneDNN pinned (pipeline/kernels.py): the same bytes on every CPU
    version = "2"
    libraries = ("numpy", "dlib-bin", "face-recognition-models", "face-alignment", "torch", "av")
    summed_attrs = ("n_frames", "n_faces")

    @classmethod
    def corpus_metrics(cls, sums: dict[str, float]) -> dict[str, Any]:
        return {
            "frames": int(sums.get("n_frames", 0)),
            "frames_with_landmarks": int(sums.get("n_faces", 0)),
        }

    @property
    def device(self) -> str:
        """The device: "cpu" or "cuda" (``device: auto`` resolved; dlib runs on the CPU)."""
        if getattr(self, "_device", None) is None:
            dev = self.config.device if self.config.backend == "fan" else "cpu"
            self._device = dev if dev in ("cpu", "cuda") else resolve_device(dev, "landmarks")
        return self._device

    def setup(self) -> None:
        from ..vision.landmarkers import LandmarkModelError, make_landmarker

        cfg: LandmarksConfig = self.config
        device = resolve_device(self.device, "landmarks")  # cuda without CUDA: the reason
        try:
            self.landmarker = make_landmarker(
                cfg.backend,
                dlib_model=cfg.dlib_model,
                fan_weights=cfg.fan_weights,
                device=device,
                fan_flip=cfg.fan_flip,
                fan_batch_size=cfg.fan_batch_size,
                fan_sha256=cfg.fan_sha256,
            )
        except LandmarkModelError as e:
            raise ExtractionError(str(e)) from e

    def model_token(self) -> str:
        """The weights and the faces shards' parameters (boxes from other face params give
        other landmarks). Raises LandmarkModelError, naming the file, when weights are missing.
        """
        if not hasattr(self, "_token"):
            from ..vision.landmarkers import weights_token

            cfg: LandmarksConfig = self.config
            faces = ""
            if cfg.faces_dir:
                index = Path(cfg.faces_dir) / "index.json"
                if index.exists():
                    faces = params_hash(json.loads(index.read_text()).get("params", {}))
            weights = weights_token(
                cfg.backend, cfg.dlib_model, cfg.fan_weights, cfg.fan_flip, cfg.fan_sha256
            )
            self._token = f"{weights}|faces:{faces}"
        return self._token

    def check_inputs(self) -> None:
        from ..exits import MissingInputError

        faces = self.config.faces_dir
        if faces and not (Path(faces) / "index.json").is_file():
            raise MissingInputError(
                f"landmarks reads the faces features, and {faces} holds none (no index.json): "
                f"run the faces stage first (mer extract faces landmarks)"
            )

    def clip_inputs(self, source: ClipSource) -> dict[str, Any]:
        """The faces rows of the clip, by their cache key (it covers the faces' own inputs):
        new faces for a clip mean new landmarks."""
        cfg: LandmarksConfig = self.config
        try:
            attrs = faces_reader(cfg.faces_dir).clip_attrs(source.clip_id)
        except (ExtractionError, KeyError, ShardError):
            return {"faces": None}
        return {"faces": attrs.get("cache_key", "")}

    def extract_into(self, source: ClipSource, sink: ClipSink) -> dict[str, Any]:
        cfg: LandmarksConfig = self.config
        if not cfg.faces_dir:
            raise ExtractionError(
                "landmarks.faces_dir is not set: name the faces shards to take boxes from"
            )
        self.ensure_setup()
        fan_on_cpu = cfg.backend == "fan" and self.landmarker.device.type == "cpu"
        with torch_threads(cfg.torch_threads if fan_on_cpu else 0):
            return self._extract(source, sink)

    def _extract(self, source: ClipSource, sink: ClipSink) -> dict[str, Any]:
        cfg: LandmarksConfig = self.config
        reader = faces_reader(cfg.faces_dir)
        if source.clip_id not in reader:
            raise ExtractionError(
                f"{source.clip_id}: not in the faces shards {cfg.faces_dir} (the faces stage "
                f"failed on it or did not run on it; see its failures file)"
            )
        try:
            # Not the crops: they can be large, and the frames are decoded again here.
            every = reader.clip_attrs(source.clip_id).get("select_used") == "all"
            wanted = ("boxes", "crop_boxes", "filled") + (("track",) if every else ())
            faces = reader.read(source.clip_id, arrays=wanted)
        except ShardError as e:
            raise ExtractionError(str(e)) from e
        sha = faces.attrs.get("source_sha256", "")
        if sha and source.sha256 and sha != source.sha256:
            raise ExtractionError(
                f"{source.clip_id}: the faces shards were made from another version of the "
                f"media file: rerun the faces stage"
            )
        fps = float(reader.params.get("params", {}).get("fps", 0.0))
        times = faces.timestamps
        valid = faces.valid
        boxes = faces.arrays["boxes"].astype(np.float64)
        regions = faces.arrays["crop_boxes"].astype(np.float64)
        n = len(times)
        filled = faces.arrays["filled"].astype(bool)
        todo = {int(i) for i in np.nonzero(valid)[0]}
        out = _RowsOut(times, valid, boxes, regions, filled, sink, faces.arrays.get("track"))
        frames = iter_decoded(
            source.media_input(), fps=fps, start=source.start, end=source.end,
            threads=cfg.decode_threads,
        )
        batch_rows: list[int] = []
        batch_frames: list[np.ndarray] = []
        batch_size = getattr(self.landmarker, "batch_size", 1)
        try:
            for t, frame in frames:
                row = int(np.searchsorted(times, t - source.start - TIME_TOLERANCE))
                rgb = None
                # one row per frame; several (one per face) in select: all shards
                while row < n and abs(times[row] - (t - source.start)) <= TIME_TOLERANCE:
                    if row in todo:
                        rgb = to_rgb(frame) if rgb is None else rgb
                        batch_rows.append(row)
                        batch_frames.append(rgb)
                    row += 1
                if batch_rows and len(batch_rows) >= batch_size:
                    out.put(batch_rows, *self.landmarker.predict(batch_frames, boxes[batch_rows]))
                    todo.difference_update(batch_rows)
                    batch_rows, batch_frames = [], []
        except VideoDecodeError as e:
            raise ExtractionError(f"{source.clip_id}: {e}") from e
        if batch_rows:
            out.put(batch_rows, *self.landmarker.predict(batch_frames, boxes[batch_rows]))
            todo.difference_update(batch_rows)
        if todo:
            raise ExtractionError(
                f"{source.clip_id}: {len(todo)} frame(s) of the faces shards were not found "
                f"when decoding the video again (first at {times[min(todo)]:.3f} s)"
            )
        out.put([], np.zeros((0, 68, 2)), np.zeros((0, 68)), upto=n)
        return {
            "backend": self.landmarker.name,
            "has_confidence": bool(self.landmarker.has_confidence),
            "n_frames": n,
            "n_faces": int(valid.sum()),
            "frame_width": int(faces.attrs.get("frame_width", 0)),
            "frame_height": int(faces.attrs.get("frame_height", 0)),
        }

    def params(self) -> dict[str, Any]:
        from ..config import to_dict

        out = to_dict(self.config)
        # Where the faces shards lie does not define the output (what they hold does, through
        # model_token), so the cache survives moving the project.
        out.pop("faces_dir")
        # Only the active backend's settings define the output.
        if self.config.backend == "dlib":
            for k in (
                "decode_threads",
                "fan_weights",
                "fan_sha256",
                "fan_flip",
                "fan_batch_size",
                "device",
                "torch_threads",
            ):
                out.pop(k)
        else:
            out.pop("dlib_model")
            out.pop("decode_threads")
            out.pop("torch_threads")
            out["device"] = self.device  # resolved: CPU and GPU outputs never share a cache
        return out

    def provenance(self) -> dict[str, Any]:
        from ..devices import device_provenance

        return {**super().provenance(), "device": device_provenance(self.device)}


class _RowsOut:
    """Appends landmark rows to the sink in time order as batches finish: rows before a
    finished batch's last row are final (a face row computed, a no-face row all NaN)."""

    def __init__(self, times, valid, boxes, regions, filled, sink: ClipSink, track=None) -> None:
        self.times, self.valid, self.boxes = times, valid, boxes
        self.regions, self.filled, self.sink = regions, filled, sink
        self.track = track  # the faces rows' track ids (select: all), copied to the rows
        self.next = 0  # first row not yet appended
        self.pending: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def put(
        self, rows: list[int], points: np.ndarray, conf: np.ndarray, upto: int | None = None
    ) -> None:
        for r, p, c in zip(rows, points, conf, strict=True):
            self.pending[r] = (p, c)
        end = upto if upto is not None else (max(rows) + 1 if rows else self.next)
        if end <= self.next:
            return
        span = range(self.next, end)
        pts = np.full((len(span), 68, 2), np.nan)
        cf = np.full((len(span), 68), np.nan)
        for i, r in enumerate(span):
            if r in self.pending:
                pts[i], cf[i] = self.pending.pop(r)
        sl = slice(self.next, end)
        regions = self.regions[sl]
        side = (regions[:, 2] - regions[:, 0])[:, None, None]
        self.sink.append(
            {
                "landmarks": pts.astype(np.float32),
                "landmarks_crop": ((pts - regions[:, None, :2]) / side).astype(np.float32),
                "confidence": cf.astype(np.float32),
                "boxes": self.boxes[sl].astype(np.float32),
                "filled": self.filled[sl],
                **({"track": self.track[sl]} if self.track is not None else {}),
            },
            self.times[sl],
            self.valid[sl],
        )
        self.next = end
