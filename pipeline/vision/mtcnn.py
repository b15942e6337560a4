"""MTCNN (facenet-pytorch) as the faces stage uses it: batched detection of one face per frame,
and refinement of a given box with MTCNN's later stages only (tracking between key frames).

facenet-pytorch ships the P-, R- and O-net weights in its wheel, so nothing is downloaded.
Boxes and points follow facenet-pytorch's pixel convention (the one ``MTCNN.detect`` returns).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..devices import exact_fp32
from ..extras import needs
from ..kernels import cpu_exact, pin_torch
from .boxes import cut

Select = Literal["confidence", "largest"]


@dataclass
class FaceBatch:
    """One face (or none) per frame of a batch: NaN boxes/points and prob 0 where none."""

    boxes: np.ndarray  # (N, 4) float64 x1, y1, x2, y2
    probs: np.ndarray  # (N,) float64
    points: np.ndarray  # (N, 5, 2) float64: left eye, right eye, nose, mouth left, mouth right

    @classmethod
    def empty(cls, n: int) -> FaceBatch:
        return cls(np.full((n, 4), np.nan), np.zeros(n), np.full((n, 5, 2), np.nan))

    def copy_from(self, j: int, other: FaceBatch, i: int) -> None:
        """Set row ``j`` to row ``i`` of ``other``."""
        self.boxes[j], self.probs[j], self.points[j] = (
            other.boxes[i],
            other.probs[i],
            other.points[i],
        )

    @property
    def found(self) -> np.ndarray:
        return np.isfinite(self.boxes).all(axis=1)


@dataclass
class FaceList:
    """Every face found in one frame: (K, 4) boxes, (K,) probs, (K, 5, 2) points."""

    boxes: np.ndarray
    probs: np.ndarray
    points: np.ndarray

    @classmethod
    def empty(cls) -> FaceList:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))

    def __len__(self) -> int:
        return len(self.probs)

    def scaled(self, sx: float, sy: float) -> FaceList:
        return FaceList(
            self.boxes * np.array([sx, sy, sx, sy]), self.probs, self.points * np.array([sx, sy])
        )


def _rerec(boxes: np.ndarray) -> np.ndarray:
    """MTCNN's squaring of boxes (side = longer side, same centre)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _bbreg(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.copy()
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


class FaceDetector:
    """MTCNN loaded once, on ``device`` ("cuda" or "cpu")."""

    def __init__(
        self,
        device: str = "cpu",
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        select: Select = "confidence",
        min_prob: float = 0.0,
    ) -> None:
        with needs("faces (MTCNN)", "extract"):
            import torch
            from facenet_pytorch import MTCNN

        self.torch = torch
        self.device = torch.device(device)
        # The same boxes on every CPU (pipeline/kernels.py): on the CPU torch's pinned kernels
        # (before its first operation), and oneDNN off around the nets.
        if self.device.type == "cpu":
            pin_torch()
        self.select = select
        self.min_prob = min_prob
        self.min_face_size = min_face_size
        self.mtcnn = MTCNN(
            min_face_size=min_face_size,
            thresholds=list(thresholds),
            factor=factor,
            keep_all=True,
            select_largest=False,
            device=self.device,
        ).eval()
        # Channels-last tensors take PyTorch's fast CPU kernels for the nets' ceil-mode max
        # pooling (about 10x faster here than the default layout); results are unchanged.
        self.mtcnn.to(memory_format=torch.channels_last)

    def detect(self, images: np.ndarray) -> FaceBatch:
        """Full MTCNN detection on a batch of equal-size RGB uint8 frames (N, H, W, 3);
        keeps one face per frame by the ``select`` rule among faces scoring >= ``min_prob``."""
        out = FaceBatch.empty(len(images))
        if len(images) == 0:
            return out
        # facenet-pytorch builds its image pyramid from min(H, W) * 12 / min_face_size >= 12:
        # for frames smaller than the smallest face (a tiny video, or a very wide one scaled
        # down for detection) the pyramid is empty and it fails on torch.cat of an empty list.
        # No face that size fits in such a frame, so none is found.
        if min(images.shape[1:3]) * (12.0 / self.min_face_size) < 12:
            return out
        with exact_fp32(), cpu_exact(self.device.type):
            boxes, probs, points = self.mtcnn.detect(np.ascontiguousarray(images),
                                                     landmarks=True)
        for i in range(len(images)):
            if boxes[i] is None:
                continue
            b = np.asarray(boxes[i], np.float64).reshape(-1, 4)
            p = np.asarray(probs[i], np.float64).reshape(-1)
            keep = p >= self.min_prob
            if not keep.any():
                continue
            b, p, pts = b[keep], p[keep], np.asarray(points[i], np.float64)[keep]
            if self.select == "largest":
                j = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
            else:
                j = int(np.argmax(p))
            out.boxes[i], out.probs[i], out.points[i] = b[j], p[j], pts[j]
        return out

    def detect_all(self, images: np.ndarray, min_face_size: int | None = None) -> list[FaceList]:
        """Full MTCNN detection on a batch of equal-size RGB uint8 frames (N, H, W, 3): every
        face scoring >= ``min_prob`` of each frame, most confident first. ``min_face_size``
        (pixels of these images) overrides the detector's own for this call."""
        size = self.min_face_size if min_face_size is None else max(12, int(min_face_size))
        out = [FaceList.empty() for _ in range(len(images))]
        if len(images) == 0 or min(images.shape[1:3]) * (12.0 / size) < 12:
            return out  # see detect(): no face of that size fits in these frames
        before = self.mtcnn.min_face_size
        self.mtcnn.min_face_size = size
        try:
            with exact_fp32(), cpu_exact(self.device.type):
                boxes, probs, points = self.mtcnn.detect(np.ascontiguousarray(images),
                                                         landmarks=True)
        finally:
            self.mtcnn.min_face_size = before
        for i in range(len(images)):
            if boxes[i] is None:
                continue
            b = np.asarray(boxes[i], np.float64).reshape(-1, 4)
            p = np.asarray(probs[i], np.float64).reshape(-1)
            pts = np.asarray(points[i], np.float64).reshape(-1, 5, 2)
            keep = np.nonzero(p >= self.min_prob)[0]
            keep = keep[np.argsort(-p[keep], kind="stable")]
            out[i] = FaceList(b[keep], p[keep], pts[keep])
        return out

    def refine(self, images: list[np.ndarray], boxes: np.ndarray, rnet: bool = False) -> FaceBatch:
        """Re-score and re-fit a face near each given box with MTCNN's O-net (after its R-net
        when ``rnet``), without the P-net scan: how the faces stage follows a face between
        key frames. ``images`` are the frames (any sizes), ``boxes`` (N, 4) one box per frame.
        """
        n = len(images)
        out = FaceBatch.empty(n)
        if n == 0:
            return out
        boxes = np.asarray(boxes, np.float64).copy()
        if rnet:
            reg, _, prob = self._run(self.mtcnn.rnet, images, _rerec(boxes), 24)
            boxes = _bbreg(_rerec(boxes), reg)
        sq = _rerec(boxes)
        reg, pts, prob = self._run(self.mtcnn.onet, images, sq, 48)
        w = sq[:, 2] - sq[:, 0] + 1
        h = sq[:, 3] - sq[:, 1] + 1
        out.points[:, :, 0] = w[:, None] * pts[:, :5] + sq[:, 0:1] - 1
        out.points[:, :, 1] = h[:, None] * pts[:, 5:10] + sq[:, 1:2] - 1
        out.boxes = _bbreg(sq, reg)
        out.probs = prob
        return out

    def _run(
        self, net, images: list[np.ndarray], sq: np.ndarray, size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Crop each square (MTCNN's 1-based pixel convention), resize, run ``net``."""
        torch = self.torch
        crops = np.empty((len(images), size, size, 3), np.uint8)
        for i, (img, b) in enumerate(zip(images, sq, strict=True)):
            x1, y1, x2, y2 = (int(v) for v in np.trunc(b))
            crops[i] = cut(img, np.array([x1 - 1, y1 - 1, x2, y2]), size)
        # NHWC memory seen as NCHW: already channels-last, as the nets are.
        x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float()
        x = (x - 127.5) * 0.0078125
        # TF32 would move the boxes (CPU vs GPU); pinned kernels: the same on every CPU
        with exact_fp32(), torch.inference_mode(), cpu_exact(self.device.type):
            res = net(x)
        reg = res[0].float().cpu().numpy().astype(np.float64)
        prob = res[-1][:, 1].float().cpu().numpy().astype(np.float64)
        pts = res[1].float().cpu().numpy().astype(np.float64) if len(res) == 3 else None
        return reg, pts, prob
