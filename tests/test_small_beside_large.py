"""A small face beside a large one is found too: the scan at ``min_face`` runs on the first
key frame, every ``full_scan_every`` key frames and where a followed face is lost, not only
where the fast scan finds nothing; found faces are followed cheaply in between."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from visual_helpers import encode_frames, people_frames

from pipeline.config import load_params, to_dict
from pipeline.features import ClipSource, make_extractor

pytestmark = pytest.mark.usefixtures("one_torch_thread")

W, H = 1280, 720


def _base() -> dict:
    return to_dict(load_params(REPO / "params.yaml").section("faces"))


def _big_and_small(path: Path, n: int = 40) -> Path:
    """A large face (box about 270 px) on the left and one of 1/20 of the long side (64 px)
    on the right: the fast 320-px scan sees only the large one."""
    small = W / 20 / 0.45  # the face box is about 0.45 of the patch
    return encode_frames(path, list(people_frames(n, W, H, sides=(600, small))))


def _per_frame_sides(ex, path: Path) -> tuple[list[tuple[bool, bool]], object]:
    """For each frame: (a face in the left half, a face in the right half), over all tracks."""
    tracker = ex.tracker()
    src = ClipSource(clip_id=path.stem, path=path.resolve())
    out = []
    for ff in tracker.run(ex._frames(src)):
        cx = [(f.box[0] + f.box[2]) / 2 for f in ff.faces.values()]
        out.append((any(c < W / 2 for c in cx), any(c >= W / 2 for c in cx)))
    return out, tracker


def test_a_small_face_beside_a_large_one_is_found_and_followed(tmp_path):
    clip = _big_and_small(tmp_path / "big_small_720p.mp4")
    ex = make_extractor("faces", _base())
    ex.ensure_setup()
    sides, tracker = _per_frame_sides(ex, clip)
    n = len(sides)
    left = np.array([s[0] for s in sides])
    right = np.array([s[1] for s in sides])
    assert left.mean() >= 0.95, left.mean()
    assert right.mean() >= 0.95, (right.mean(), tracker.stats)
    assert tracker.n_tracks == 2, tracker.stats
    # the min_face scan ran on a few key frames only, not on every one
    keys = -(-n // tracker.key_interval)
    assert 0 < tracker.stats["small_face_scans"] < keys, tracker.stats
    # the small face's boxes are about its size
    # (the extractor keeps the large face: the rows are one person)
    feats = ex.extract(ClipSource(clip_id=clip.stem, path=clip.resolve()))
    assert feats.attrs["n_tracks"] == 2
    b = feats.arrays["boxes"][feats.valid]
    assert ((b[:, 0] + b[:, 2]) / 2 < W / 2).all()


def test_full_scan_every_zero_scans_only_the_first_key_frame_and_losses(tmp_path):
    """A large face alone: the min_face scan runs once (the first key frame) at
    ``full_scan_every: 0``; the default adds one every ``full_scan_every`` key frames."""
    clip = encode_frames(tmp_path / "one.mp4", list(people_frames(60, W, H, sides=(600, 0))))
    for every, want in ((0, 1), (3, 3)):
        ex = make_extractor("faces", {**_base(), "full_scan_every": every})
        ex.ensure_setup()
        sides, tracker = _per_frame_sides(ex, clip)
        assert np.mean([s[0] for s in sides]) >= 0.95
        assert tracker.stats["small_face_scans"] == want, (every, tracker.stats)
