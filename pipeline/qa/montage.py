"""QA picture of one clip's visual features: a grid of face crops with the landmarks drawn.

Each tile is one frame (evenly spaced over the clip): the stored face crop, the 68 landmarks
when a landmarks directory is given (jaw, brows, nose, eyes and mouth in different colours,
contours joined), MTCNN's five points as small white crosses, and the frame's time and face
probability. Frames without a face are grey tiles marked "no face"; filled frames say "filled".
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..store import FeatureReader, atomic_write_bytes

# iBUG 300-W contours: (first, last, closed, colour RGB)
CONTOURS = (
    (0, 16, False, (255, 200, 0)),  # jaw
    (17, 21, False, (255, 120, 0)),  # brow (image left)
    (22, 26, False, (255, 120, 0)),  # brow (image right)
    (27, 30, False, (0, 220, 255)),  # nose bridge
    (31, 35, False, (0, 220, 255)),  # nostrils
    (36, 41, True, (0, 255, 0)),  # eye (image left)
    (42, 47, True, (0, 255, 0)),  # eye (image right)
    (48, 59, True, (255, 0, 80)),  # outer lip
    (60, 67, True, (255, 0, 160)),  # inner lip
)


def _tile(
    crop: np.ndarray,
    scale: int,
    label: str,
    valid: bool,
    lm: np.ndarray | None,
    points: np.ndarray | None,
) -> np.ndarray:
    s = crop.shape[0] * scale
    if not valid:
        tile = np.full((s, s, 3), 90, np.uint8)
        cv2.putText(tile, "no face", (6, s // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230,) * 3, 1)
    else:
        tile = cv2.resize(crop, (s, s), interpolation=cv2.INTER_NEAREST)
        if lm is not None and np.isfinite(lm).all():
            px = lm * s
            for a, b, closed, colour in CONTOURS:
                pts = np.round(px[a : b + 1]).astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(tile, [pts], closed, colour, 1, cv2.LINE_AA)
                for x, y in pts[:, 0]:
                    cv2.circle(tile, (int(x), int(y)), 2, colour, -1, cv2.LINE_AA)
        if points is not None and np.isfinite(points).all():
            for x, y in np.round(points * s).astype(int):
                cv2.drawMarker(tile, (int(x), int(y)), (255, 255, 255), cv2.MARKER_CROSS, 6, 1)
    cv2.rectangle(tile, (0, 0), (s, 14), (0, 0, 0), -1)
    cv2.putText(tile, label, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1)
    return tile


def montage(
    features_dir_faces: str | Path,
    clip_id: str,
    out_png: str | Path,
    landmarks_dir: str | Path | None = None,
    n_tiles: int = 16,
    columns: int = 8,
    scale: int = 2,
) -> Path:
    """Write a PNG grid of ``n_tiles`` frames of ``clip_id``; returns its path.

    ``features_dir_faces`` is a faces feature directory (data/features/<corpus>/faces);
    ``landmarks_dir`` a landmarks one (optional). Crops are enlarged ``scale`` times.
    """
    with FeatureReader(features_dir_faces) as faces_reader:
        faces = faces_reader.read(clip_id)
    lms = None
    if landmarks_dir is not None:
        with FeatureReader(landmarks_dir) as lm_reader:
            lms = lm_reader.read(clip_id)
        if len(lms.timestamps) != len(faces.timestamps):
            raise ValueError(
                f"{clip_id}: landmarks and faces have different frames "
                f"({len(lms.timestamps)} vs {len(faces.timestamps)}); rerun the landmarks stage"
            )
    crops = faces.arrays["crops"]
    regions = faces.arrays["crop_boxes"].astype(np.float64)
    n = len(crops)
    rows = np.unique(np.linspace(0, n - 1, min(n_tiles, n)).round().astype(int))
    filled = faces.arrays.get("filled", np.zeros(n, bool))
    tiles = []
    for i in rows:
        side = regions[i, 2] - regions[i, 0]
        pts5 = (faces.arrays["points"][i] - regions[i, :2]) / side if faces.valid[i] else None
        label = f"{faces.timestamps[i]:.2f}s p={faces.arrays['probs'][i]:.2f}"
        if filled[i]:
            label = f"{faces.timestamps[i]:.2f}s filled"
        if "track" in faces.arrays:  # faces.select: all: a row per face, say whose
            label += f" #{faces.arrays['track'][i]}"
        lm = lms.arrays["landmarks_crop"][i] if lms is not None else None
        tiles.append(_tile(crops[i], scale, label, bool(faces.valid[i]), lm, pts5))
    s = crops.shape[1] * scale
    columns = max(1, min(columns, len(tiles)))
    n_rows = -(-len(tiles) // columns)
    sheet = np.full((n_rows * (s + 2) + 22, columns * (s + 2), 3), 30, np.uint8)
    title = f"{clip_id}  ({n} frames, {int(faces.valid.sum())} with a face)"
    if "track" in faces.arrays:
        title = f"{clip_id}  ({n} rows: every face, {len(np.unique(faces.timestamps))} frames)"
    cv2.putText(sheet, title, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        y, x = 22 + r * (s + 2), c * (s + 2)
        sheet[y : y + s, x : x + s] = tile
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(out.suffix or ".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {out.name} as {out.suffix or '.png'}")
    atomic_write_bytes(out, encoded.tobytes())  # whole, and never through a planted link
    return out
