"""Cut a time window out of a clip's feature rows (pure numpy; the Dataset's core).

Every feature of a clip shares one time base (seconds from the clip's start), so a window
``[start, start + length)`` cuts all modalities at the same times. A cut returns the row
index for each output step (``-1`` where there is none) and a mask of steps holding data.
"""

from __future__ import annotations

import numpy as np


def row_spacing(timestamps: np.ndarray) -> float:
    """Typical spacing of the rows (median difference); inf for fewer than two rows."""
    if len(timestamps) < 2:
        return float("inf")
    return float(np.median(np.diff(timestamps)))


def time_rows(
    timestamps: np.ndarray, valid: np.ndarray, start: float, length: float, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resample onto ``steps`` evenly spaced times (step centres) in the window.

    Each step takes the nearest row. A step is masked when that row is invalid or farther
    than 3/4 of the row spacing away (a gap, or a time past the end of the clip).
    """
    times = start + (np.arange(steps) + 0.5) * (length / steps)
    if len(timestamps) == 0:
        return np.full(steps, -1), np.zeros(steps, dtype=bool)
    right = np.clip(np.searchsorted(timestamps, times), 0, len(timestamps) - 1)
    left = np.clip(right - 1, 0, len(timestamps) - 1)
    nearer_left = np.abs(times - timestamps[left]) <= np.abs(times - timestamps[right])
    idx = np.where(nearer_left, left, right)
    tolerance = 0.75 * row_spacing(timestamps)
    mask = valid[idx] & (np.abs(times - timestamps[idx]) <= tolerance)
    return np.where(mask, idx, -1), mask


def sequence_rows(
    timestamps: np.ndarray, valid: np.ndarray, start: float, length: float, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """The valid rows whose timestamps fall in the window, in order, cut or padded to steps.

    When no row starts inside the window, the last valid row starting before it is taken
    (the word being spoken, or the segment under way, at the window's start).
    """
    keep = np.flatnonzero(valid & (timestamps >= start) & (timestamps < start + length))
    if len(keep) == 0:
        before = np.flatnonzero(valid & (timestamps < start))
        keep = before[-1:]
    keep = keep[:steps]
    idx = np.full(steps, -1)
    idx[: len(keep)] = keep
    return idx, idx >= 0


def clip_rows(
    timestamps: np.ndarray, valid: np.ndarray, start: float, length: float, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every row of the clip (the window is ignored), cut or padded to ``steps``; invalid
    rows are masked."""
    idx = np.full(steps, -1)
    n = min(steps, len(timestamps))
    idx[:n] = np.arange(n)
    mask = idx >= 0
    mask[:n] &= valid[:n]
    return np.where(mask, idx, -1), mask


def window_start(
    duration: float, length: float, rng: np.random.Generator | None, at: str = "centre"
) -> float:
    """A random start (``rng`` given), else the centred one (``at`` "centre") or the clip's
    start ("first"); 0 when the clip is not longer."""
    room = max(0.0, duration - length)
    if rng is None:
        return 0.0 if at == "first" else room / 2
    return float(rng.uniform(0.0, room)) if room > 0 else 0.0


def gather(
    block: np.ndarray,
    pos: np.ndarray,
    mask: np.ndarray,
    row_shape: tuple[int, ...],
    dtype: np.dtype,
) -> np.ndarray:
    """Output steps from ``block`` (the rows that were read): step k takes ``block[pos[k]]``
    where ``mask[k]``; masked steps are zero."""
    out = np.zeros((len(mask), *row_shape), dtype=dtype)
    if mask.any():
        out[mask] = block[pos[mask]]
    return out
