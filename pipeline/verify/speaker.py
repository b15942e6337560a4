"""The face choice a faces clip records (``track``, ``n_tracks``, ``speaker_*`` attributes):
values a reader acts on, so ``mer verify`` checks they are ones the faces stage can write.

The attribute checksum already finds damaged bytes; these checks find values that are well
formed bytes but impossible (an edited file, a writer bug): a status outside sure / unsure /
no_match / no_sound, a turn that ends before it starts, a track id the clip does not have.
"""

from __future__ import annotations

import json
import math
from typing import Any, get_args

import numpy as np

from ..vision.speaker import Backend, Status

STATUSES = frozenset(get_args(Status))
BACKENDS = frozenset(get_args(Backend))


def _plain(value: Any) -> Any:
    """An attribute as Python reads it (h5py gives numpy scalars)."""
    return value.item() if isinstance(value, np.generic) else value


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _track_id_problem(track: Any, n_tracks: int | None, what: str) -> str | None:
    if isinstance(track, bool) or not isinstance(track, int) or track < -1:
        return f"{what} {track!r}: a track id is an integer >= 0, or -1 for none"
    if n_tracks is not None and track >= n_tracks:
        return f"{what} {track}, but the clip has {n_tracks} track(s)"
    return None


def speaker_problems(attrs: Any) -> list[str]:
    """What is impossible in a faces clip's face-choice attributes (empty: nothing)."""
    keys = [k for k in attrs if k in ("track", "n_tracks") or k.startswith("speaker_")]
    attrs = {k: _plain(attrs[k]) for k in keys}
    out: list[str] = []
    n_tracks = attrs.get("n_tracks")
    n_tracks = int(n_tracks) if isinstance(n_tracks, int | float) and n_tracks >= 0 else None
    if "track" in attrs and (why := _track_id_problem(attrs["track"], n_tracks, "kept track")):
        out.append(why)
    if "speaker_status" in attrs and _text(attrs["speaker_status"]) not in STATUSES:
        out.append(f"speaker_status {_text(attrs['speaker_status'])!r}: expected one of "
                   f"{', '.join(sorted(STATUSES))}")  # fmt: skip
    if "speaker_backend" in attrs and _text(attrs["speaker_backend"]) not in BACKENDS:
        out.append(f"speaker_backend {_text(attrs['speaker_backend'])!r}: expected one of "
                   f"{', '.join(sorted(BACKENDS))}")  # fmt: skip
    if "speaker_lag_s" in attrs:
        lag = attrs["speaker_lag_s"]
        if not isinstance(lag, int | float) or math.isinf(lag):
            out.append(f"speaker_lag_s {lag!r}: expected seconds (NaN: no score)")
    if "speaker_turns" in attrs:
        out.extend(_turn_problems(_text(attrs["speaker_turns"]), n_tracks))
    return out


def _turn_problems(text: str, n_tracks: int | None) -> list[str]:
    """``speaker_turns``: a JSON list of [start s, end s, track, status], in time order."""
    try:
        turns = json.loads(text)
    except ValueError:
        return ["speaker_turns is not JSON"]
    if not isinstance(turns, list):
        return ["speaker_turns is not a list of [start, end, track, status]"]
    out: list[str] = []
    last_start = -math.inf
    for i, turn in enumerate(turns):
        what = f"speaker turn {i}"
        if (not isinstance(turn, list) or len(turn) != 4
                or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           for v in turn[:2])):  # fmt: skip
            out.append(f"{what} {turn!r}: expected [start, end, track, status]")
            continue
        start, end, track, status = turn
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start <= end):
            out.append(f"{what}: from {start} s to {end} s (expected 0 <= start <= end)")
        elif start < last_start:
            out.append(f"{what} starts at {start} s, before the turn ahead of it")
        else:
            last_start = start
        if why := _track_id_problem(track, n_tracks, f"{what}: track"):
            out.append(why)
        if status not in STATUSES:
            out.append(f"{what}: status {status!r}")
    return out
