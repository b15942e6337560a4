"""``faces.select: all``: every track kept, a row per face with its track id; the landmarks
stage gives a row per face too, ``mer verify`` checks the layout, the trainer refuses it."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from conftest import REPO, make_project
from visual_helpers import encode_frames, people_frames

from pipeline.config import ConfigError, load_params, to_dict
from pipeline.features import ClipSource, make_extractor
from pipeline.paths import Layout
from pipeline.qa.montage import montage
from pipeline.store import FeatureReader
from pipeline.training.config import InputConfig
from pipeline.training.windowset import DataError, WindowSet
from pipeline.verify import track_problems, verify_features
from pipeline.workflow import run_feature, run_ingest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = 48000
WIDTH = 400
CLIP = "01-01-01-01-01-01-05"


def _base() -> dict:
    return to_dict(load_params(REPO / "params.yaml").section("faces"))


def _two_faces(path: Path, n: int = 45) -> Path:
    """A large face on the left, a smaller one on the right; the right one leaves for the
    last 10 frames."""
    both = list(people_frames(n - 10, WIDTH, 200, sides=(190, 150)))
    one = list(people_frames(10, WIDTH, 200, sides=(190, 0)))
    quiet = np.zeros(int(SR * n / 30), np.float32)
    return encode_frames(path, both + one, audio=quiet, sample_rate=SR)


def _check_rows(times, valid, track, boxes, n_frames: int) -> None:
    assert len(np.unique(times)) == n_frames  # every frame has a row
    assert (np.diff(times) >= 0).all()
    assert set(np.unique(track)) <= {-1, 0, 1}
    assert ((track >= 0) == valid).all()
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    for tid in (0, 1):
        mine = cx[track == tid]
        assert (mine < WIDTH / 2).all() or (mine >= WIDTH / 2).all(), tid  # one person each
    per_frame = {t: (track[times == t] >= 0).sum() for t in np.unique(times)}
    counts = np.array([per_frame[t] for t in sorted(per_frame)])
    assert (counts[: n_frames - 12] == 2).mean() >= 0.95, counts
    assert (counts[-8:] == 1).all(), counts  # the right person left


def test_every_track_is_kept_with_its_id(tmp_path):
    clip = _two_faces(tmp_path / "two.mp4")
    feats = make_extractor("faces", {**_base(), "select": "all"}).extract(
        ClipSource(clip_id="two", path=clip.resolve())
    )
    a = feats.attrs
    assert a["select_used"] == "all" and a["n_tracks"] == 2 and a["n_frames"] == 45
    assert a["face_rate"] == pytest.approx(1.0)
    track = feats.arrays["track"]
    assert track.dtype == np.int32 and len(track) == feats.n_steps
    _check_rows(feats.timestamps, feats.valid, track, feats.arrays["boxes"], 45)
    assert feats.arrays["crops"][feats.valid].reshape(int(feats.valid.sum()), -1).any(1).all()
    with pytest.raises(ConfigError, match="fill_gaps"):
        make_extractor("faces", {**_base(), "select": "all", "fill_gaps": 3})


def test_stage_landmarks_verify_and_trainer_with_every_track(sample_clips, tmp_path):
    root = make_project(tmp_path, sample_clips[:1], {"runner": {"n_jobs": 1}})
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["faces"]["select"] = "all"
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    actor = tmp_path / "corpus" / "Actor_05"
    actor.mkdir()
    _two_faces(actor / f"{CLIP}.mp4")
    params = load_params(root / "params.yaml")
    assert run_ingest(params, root) == 0
    assert run_feature(params, "faces", root, progress=False) == 0
    assert run_feature(params, "landmarks", root, progress=False) == 0
    lay = Layout("sample", root=root)
    with FeatureReader(lay.features_dir("faces")) as r:
        faces = r.read(CLIP)
    with FeatureReader(lay.features_dir("landmarks")) as r:
        lm = r.read(CLIP)
        one = r.read(sample_clips[0].stem)
    _check_rows(faces.timestamps, faces.valid, faces.arrays["track"], faces.arrays["boxes"], 45)
    # landmarks: the same rows, each with its track's points inside that track's box
    np.testing.assert_array_equal(lm.timestamps, faces.timestamps)
    np.testing.assert_array_equal(lm.valid, faces.valid)
    np.testing.assert_array_equal(lm.arrays["track"], faces.arrays["track"])
    pts = lm.arrays["landmarks"][lm.valid]
    box = faces.arrays["boxes"][faces.valid]
    assert np.isfinite(pts).all()
    inside = (pts[..., 0] > box[:, None, 0] - 10) & (pts[..., 0] < box[:, None, 2] + 10)
    assert inside.mean() > 0.95
    assert "track" in one.arrays and (one.arrays["track"][one.valid] == 0).all()
    png = montage(lay.features_dir("faces"), CLIP, tmp_path / "m.png",
                  landmarks_dir=lay.features_dir("landmarks"))  # fmt: skip
    assert png.stat().st_size > 0
    problems = verify_features(
        [lay.features_dir("faces"), lay.features_dir("landmarks")], lay.clips_csv
    )
    assert problems == []
    # the trainer takes one person per clip: it says so
    ws = WindowSet(
        {"faces": lay.features_dir("faces")}, {"faces": InputConfig(steps=8)}, [CLIP]
    )
    with pytest.raises(DataError, match="select: all"):
        ws.clip("faces", CLIP)


def test_verify_names_a_broken_track_layout(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        g = f.create_group("c")
        g["track"] = np.array([0, 1, 1, -1, 0], np.int32)
        times = np.array([0.0, 0.0, 0.0, 0.033, 0.066])
        valid = np.array([True, True, True, True, False])
        found = track_problems(g, times, valid)
    assert any("order" in p for p in found)  # track 1 twice at time 0
    assert any("track -1" in p for p in found)
    assert any("without a face" in p for p in found)
    with h5py.File(tmp_path / "y.h5", "w") as f:
        g = f.create_group("c")
        g["track"] = np.array([0, 1, -1], np.int32)
        assert track_problems(g, np.array([0.0, 0.0, 0.033]), np.array([1, 1, 0], bool)) == []
