"""The landmarks stage: the real dlib backend on the sample corpus (anatomy, agreement with dlib
called directly), the FAN backend's loading path and its agreement with face-alignment, and
the QA montage."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, make_project

from pipeline.config import load_params
from pipeline.features import ClipSource, ExtractionError, make_extractor
from pipeline.features.landmarks import with_faces_dir
from pipeline.media.synthetic import encode_video
from pipeline.media.video import iter_frames
from pipeline.qa.montage import montage
from pipeline.store import FeatureReader
from pipeline.vision.landmarkers import (
    FAN_WEIGHTS_FILE,
    FanLandmarker,
    LandmarkModelError,
    default_dlib_model,
)
from pipeline.workflow import run_feature, run_ingest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def project(sample_clips, tmp_path_factory):
    """Three sample clips (actors 1, 2 and 4; neutral, happy/sad, angry) through ingest, faces
    and landmarks with the repository's params."""
    picks = [sample_clips[i] for i in (0, 22, 63)]
    root = make_project(tmp_path_factory.mktemp("lm"), picks, {"runner": {"n_jobs": 1}})
    params = load_params(root / "params.yaml")
    assert run_ingest(params, root) == 0
    assert run_feature(params, "faces", root, progress=False) == 0
    assert run_feature(with_faces_dir(params, root), "landmarks", root, progress=False) == 0
    return root


def _readers(root: Path) -> tuple[FeatureReader, FeatureReader]:
    base = root / "data/features/sample"
    return FeatureReader(base / "faces"), FeatureReader(base / "landmarks")


def test_layout_and_time_base_follow_the_faces_shards(project):
    faces, lms = _readers(project)
    assert sorted(lms.clip_ids) == sorted(faces.clip_ids) and len(lms) == 3
    assert lms.primary == "landmarks"
    for cid in lms.clip_ids:
        f, lm = faces.read(cid), lms.read(cid, verify=True)
        n = f.n_steps
        a = lm.arrays
        assert a["landmarks"].shape == (n, 68, 2) and a["landmarks"].dtype == np.float32
        assert a["landmarks_crop"].shape == (n, 68, 2) and a["confidence"].shape == (n, 68)
        np.testing.assert_array_equal(lm.timestamps, f.timestamps)
        np.testing.assert_array_equal(lm.valid, f.valid)
        np.testing.assert_array_equal(a["boxes"], f.arrays["boxes"])
        assert np.isnan(a["confidence"]).all()  # dlib gives none
        assert lm.attrs["backend"] == "dlib" and not lm.attrs["has_confidence"]
        # crop-normalised points map back onto the source points through crop_boxes
        cb = f.arrays["crop_boxes"].astype(np.float64)
        back = a["landmarks_crop"] * (cb[:, 2:3] - cb[:, 0:1])[:, None] + cb[:, None, :2]
        v = lm.valid
        np.testing.assert_allclose(back[v], a["landmarks"][v], atol=1e-3)
        assert ((a["landmarks_crop"][v] > -0.02) & (a["landmarks_crop"][v] < 1.02)).all()


def test_dlib_landmarks_are_anatomically_right(project):
    faces, lms = _readers(project)
    for cid in lms.clip_ids:
        lm = lms.read(cid)
        v = lm.valid
        assert v.mean() >= 0.95
        p = lm.arrays["landmarks"][v].astype(np.float64)
        box = lm.arrays["boxes"][v].astype(np.float64)
        eyes_y = p[:, 36:48, 1].mean(1)
        brows_y = p[:, 17:27, 1].mean(1)
        nose_tip_y = p[:, 30, 1]
        mouth_y = p[:, 48:68, 1].mean(1)
        chin_y = p[:, 8, 1]
        assert (brows_y < eyes_y).all() and (eyes_y < nose_tip_y).all()
        assert (nose_tip_y < mouth_y).all() and (mouth_y < chin_y).all()
        # left/right order in the image: 36 (outer corner of the image-left eye) left of 45,
        # jaw 0 left of 16, mouth corner 48 left of 54
        for a, b in ((36, 45), (39, 42), (0, 16), (48, 54), (31, 35), (17, 26)):
            assert (p[:, a, 0] < p[:, b, 0]).all(), (cid, a, b)
        # brows, eyes, nose and mouth inside the face box; the jaw line (0-16) may reach a
        # little past MTCNN's box, which ends about at the chin
        rel = (p - box[:, None, :2]) / (box[:, None, 2:] - box[:, None, :2])
        assert ((rel[:, 17:] > -0.02) & (rel[:, 17:] < 1.02)).all(), cid
        assert ((rel[:, :17] > -0.15) & (rel[:, :17] < 1.15)).all(), cid


def test_dlib_backend_agrees_with_dlib_called_directly(project, sample_clips):
    import dlib

    predictor = dlib.shape_predictor(str(default_dlib_model()))
    detector = dlib.get_frontal_face_detector()
    faces, lms = _readers(project)
    errors = []
    for cid in lms.clip_ids:
        lm = lms.read(cid)
        clip = next(c for c in sample_clips if c.stem == cid)
        for i, (_, rgb) in enumerate(iter_frames(clip)):
            if i % 7 or not lm.valid[i]:
                continue
            # the same box: the same points, exactly
            rect = dlib.rectangle(*(int(round(v)) for v in lm.arrays["boxes"][i]))
            same = np.array([(q.x, q.y) for q in predictor(rgb, rect).parts()], np.float32)
            np.testing.assert_array_equal(lm.arrays["landmarks"][i], same)
            # dlib's own face detector and predictor: close, by inter-ocular distance
            dets = detector(rgb, 1)
            if not len(dets):
                continue
            own = predictor(rgb, max(dets, key=lambda d: d.area()))
            ref = np.array([(q.x, q.y) for q in own.parts()], np.float64)
            iod = np.linalg.norm(ref[36:42].mean(0) - ref[42:48].mean(0))
            errors.append(np.linalg.norm(lm.arrays["landmarks"][i] - ref, axis=1).mean() / iod)
    assert len(errors) >= 10
    assert np.mean(errors) < 0.06 and np.max(errors) < 0.15, errors


def test_montage_draws_crops_and_landmarks(project, tmp_path):
    import cv2

    faces, lms = _readers(project)
    cid = faces.clip_ids[0]
    out = montage(faces.dir, cid, tmp_path / "qa.png", landmarks_dir=lms.dir, n_tiles=8)
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 112 * 2 and img.shape[1] >= 8 * 112 * 2
    plain = cv2.imread(str(montage(faces.dir, cid, tmp_path / "plain.png", n_tiles=8)))
    assert plain.shape == img.shape
    # the landmark drawing changed pixels inside the tiles (colours no crop has: pure green)
    diff = np.abs(img.astype(int) - plain.astype(int)).sum(axis=2) > 60
    assert diff.mean() > 0.01
    with pytest.raises(KeyError):
        montage(faces.dir, "no-such-clip", tmp_path / "x.png")


def test_clip_without_faces_shard_is_a_clear_failure(project, tmp_path):
    params = with_faces_dir(load_params(project / "params.yaml"), project)
    ex = make_extractor("landmarks", params.section("landmarks"))
    with pytest.raises(ExtractionError, match="not in the faces shards"):
        ex.extract(ClipSource(clip_id="missing-clip", path=tmp_path / "x.mp4"))
    ex = make_extractor("landmarks", {"faces_dir": str(tmp_path / "nowhere")})
    with pytest.raises(ExtractionError, match="run the faces stage first"):
        ex.extract(ClipSource(clip_id="x", path=tmp_path / "x.mp4"))


def test_missing_fan_weights_stop_the_stage_with_directions(project, tmp_path):
    missing = tmp_path / "weights" / FAN_WEIGHTS_FILE
    with pytest.raises(LandmarkModelError) as err:
        make_extractor("landmarks", {"backend": "fan", "fan_weights": str(missing)}).model_token()
    msg = str(err.value)
    for part in (str(missing), FAN_WEIGHTS_FILE, "landmarks.fan_weights", "https://", "dlib"):
        assert part in msg
    # a file that is not the one params.yaml records is refused before loading
    other = tmp_path / "other.pth.tar"
    other.write_bytes(b"something else")
    with pytest.raises(LandmarkModelError, match="sha256"):
        FanLandmarker(other, sha256="0" * 64)
    with pytest.raises(LandmarkModelError, match="state dict"):
        FanLandmarker(other)
    # the stage script: exit code 2 and the same directions, no traceback
    text = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(
        text.replace("backend: dlib", "backend: fan").replace(
            "fan_weights: models/", f"fan_weights: {missing.parent}/"
        )
    )
    try:
        res = subprocess.run(
            [sys.executable, str(REPO / "stages/landmarks.py"), "--quiet"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        (project / "params.yaml").write_text(text)
    assert res.returncode == 2, res.stderr
    assert str(missing) in res.stderr and "Traceback" not in res.stderr


def _fan_checkpoint(path: Path) -> Path:
    """A freshly initialised FAN(4) state dict, saved as the real 2D-FAN-4 file is."""
    import torch
    from face_alignment.models import FAN

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(FAN(4).state_dict(), path)
    return path


def test_fan_backend_loads_local_weights_and_matches_face_alignment(
    project, sample_clips, tmp_path, monkeypatch
):
    """Our fan backend against face-alignment's own API, both on a locally built checkpoint:
    face-alignment finds it under $TORCH_HOME/hub/checkpoints (nothing is downloaded)."""
    import face_alignment

    weights = _fan_checkpoint(tmp_path / "torch" / "hub" / "checkpoints" / FAN_WEIGHTS_FILE)
    faces, _ = _readers(project)
    cid = faces.clip_ids[0]
    f = faces.read(cid)
    clip = next(c for c in sample_clips if c.stem == cid)
    t, rgb = next(iter_frames(clip))
    box = f.arrays["boxes"][0].astype(np.float64)
    ours, conf = FanLandmarker(weights, flip=True).predict([rgb], box[None])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fa = face_alignment.FaceAlignment(
        face_alignment.LandmarksType.TWO_D, device="cpu", face_detector="folder", compile=False
    )
    ref, ref_scores, _ = fa.get_landmarks_from_image(
        rgb, detected_faces=[box], return_landmark_score=True
    )
    # face-alignment rounds points down to whole pixels; we keep the fraction
    assert np.abs(ours[0] - ref[0]).max() < 1.0
    # it sums the heatmaps of the image and its mirror; we average them
    np.testing.assert_allclose(conf[0], np.asarray(ref_scores[0]) / 2, rtol=1e-4, atol=1e-5)


def test_fan_stage_end_to_end_on_a_short_clip(sample_clips, tmp_path):
    """The landmarks stage with backend fan on a 3-frame clip: real loading path, layout."""
    frames = [rgb for _, rgb in iter_frames(sample_clips[5])][:3]
    corpus = tmp_path / "corpus" / "Actor_01"
    encode_video(corpus / "01-01-03-01-01-01-01.mp4", frames, fps=30)
    weights = _fan_checkpoint(tmp_path / "w" / FAN_WEIGHTS_FILE)
    root = make_project(
        tmp_path,
        [],
        {
            "runner": {"n_jobs": 1},
            "landmarks": {"backend": "fan", "fan_weights": str(weights), "fan_flip": False},
        },
    )
    params = load_params(root / "params.yaml")
    assert run_ingest(params, root) == 0
    assert run_feature(params, "faces", root, progress=False) == 0
    assert run_feature(with_faces_dir(params, root), "landmarks", root, progress=False) == 0
    with open(root / "manifests/sample/failures/landmarks.csv") as fh:
        assert list(csv.DictReader(fh)) == []
    lm = FeatureReader(root / "data/features/sample/landmarks").read("01-01-03-01-01-01-01")
    assert lm.attrs["backend"] == "fan" and lm.attrs["has_confidence"]
    assert lm.arrays["landmarks"].shape == (3, 68, 2)
    conf = lm.arrays["confidence"][lm.valid]
    assert np.isfinite(conf).all() and np.isfinite(lm.arrays["landmarks"][lm.valid]).all()


def test_dlib_model_comes_from_the_pypi_package():
    path = default_dlib_model()
    spec = importlib.util.find_spec("face_recognition_models")
    assert path.is_file() and str(path).startswith(next(iter(spec.submodule_search_locations)))
    assert path.stat().st_size > 50_000_000
