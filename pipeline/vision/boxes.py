"""Box geometry shared by the face and landmark stages.

A box is ``(x1, y1, x2, y2)`` in pixels of the frame it refers to (x to the right, y down,
the origin at the top-left corner of the top-left pixel), as float arrays of shape (4,) or
(N, 4). A missing box is a row of NaN.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..kernels import opencv_baseline


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a`` and ``b`` (broadcast; NaN rows give NaN)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area_a + area_b - inter)


def square(boxes: np.ndarray, enlarge: float = 1.0) -> np.ndarray:
    """Squares centred on ``boxes`` with side ``enlarge`` times the longer side."""
    boxes = np.asarray(boxes, np.float64)
    cx = (boxes[..., 0] + boxes[..., 2]) / 2
    cy = (boxes[..., 1] + boxes[..., 3]) / 2
    half = np.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]) * enlarge / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=-1)


def crop_box(box: np.ndarray, margin: float) -> np.ndarray:
    """The integer square region a face crop is cut from: centred on ``box``, side
    ``(1 + margin)`` times the box's longer side (at least 1 pixel)."""
    sq = square(box, 1.0 + margin)
    side = max(1, int(round(sq[2] - sq[0])))
    x1 = int(round((sq[0] + sq[2]) / 2 - side / 2))
    y1 = int(round((sq[1] + sq[3]) / 2 - side / 2))
    return np.array([x1, y1, x1 + side, y1 + side], np.float64)


def cut(image: np.ndarray, region: np.ndarray, size: int) -> np.ndarray:
    """Cut the integer ``region`` out of ``image`` and resize it to ``size`` x ``size``.

    Parts of the region outside the image are black (zero); the aspect ratio is kept.
    """
    x1, y1, x2, y2 = (int(v) for v in region)
    h, w = image.shape[:2]
    out_h, out_w = y2 - y1, x2 - x1
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"empty crop region {region}")
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if sx1 == x1 and sy1 == y1 and sx2 == x2 and sy2 == y2:
        patch = image[y1:y2, x1:x2]
    else:
        patch = np.zeros((out_h, out_w) + image.shape[2:], image.dtype)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
    return resample(patch, size)


def resample(patch: np.ndarray, size: int) -> np.ndarray:
    """Resize ``patch`` to ``size`` x ``size`` by area averaging (anti-aliased).

    OpenCV's area resize is fast only for whole-number ratios, so a large patch is first
    averaged down by a whole factor ``k`` (padded to a multiple of ``k`` by repeating its edge)
    and then mapped exactly onto the output grid by bilinear sampling: the result matches
    ``cv2.INTER_AREA`` in geometry, at about a third of the cost.
    """
    with opencv_baseline():  # the same pixels on every CPU (pipeline/kernels.py)
        return _resample(patch, size)


def _resample(patch: np.ndarray, size: int) -> np.ndarray:
    h, w = patch.shape[:2]
    k = min(h, w) // size
    if k < 2:
        interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
        return cv2.resize(patch, (size, size), interpolation=interp)
    H, W = -(-h // k) * k, -(-w // k) * k
    if (h, w) != (H, W):
        patch = cv2.copyMakeBorder(patch, 0, H - h, 0, W - w, cv2.BORDER_REPLICATE)
    small = cv2.resize(patch, (W // k, H // k), interpolation=cv2.INTER_AREA)
    # Output pixel centre u + 0.5 lies at (u + 0.5) * w / size in the patch, which is
    # (u + 0.5) * sx - 0.5 in pixel indices of the reduced image.
    sx, sy = w / (size * k), h / (size * k)
    m = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])
    return cv2.warpAffine(
        small,
        m,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def interpolate(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """``(1 - w) * a + w * b``, the box a fraction ``w`` of the way from ``a`` to ``b``."""
    return (1.0 - w) * np.asarray(a, np.float64) + w * np.asarray(b, np.float64)
