"""The faces stage: MTCNN crops on the sample corpus, the fast path against full per-frame
detection, gap filling, failures, and the time base shared with the audio features."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, make_project
from visual_helpers import face_gap_clip, no_face_clip, truncated_clip

from pipeline.config import ConfigError, build, load_params, to_dict
from pipeline.features import ClipSource, ExtractionError, make_extractor
from pipeline.features.faces import FacesConfig, fill_gaps
from pipeline.media.synthetic import encode_video, talking_head_frames
from pipeline.media.video import iter_decoded, iter_frames
from pipeline.store import FeatureReader
from pipeline.vision.boxes import cut, iou
from pipeline.workflow import run_feature, run_ingest


def _config() -> FacesConfig:
    """The faces section of the repository's params.yaml (the defaults `dvc repro` uses)."""
    return load_params(REPO / "params.yaml").section("faces")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def faces():
    ex = make_extractor("faces", _config())
    ex.ensure_setup()
    return ex


def _source(path: Path, **kw) -> ClipSource:
    return ClipSource(clip_id=path.stem, path=Path(path).resolve(), **kw)


def _spread(clips: list[Path], n: int) -> list[Path]:
    """``n`` clips spread over actors and emotions."""
    return [clips[i] for i in np.linspace(0, len(clips) - 1, n).round().astype(int)]


def test_config_round_trip_and_errors():
    cfg = _config()
    assert build(FacesConfig, to_dict(cfg), "faces") == cfg
    for bad, key in (
        ({"thresholds": [0.6, 0.7]}, "faces.thresholds"),
        ({"key_interval": 0}, "faces.key_interval"),
        ({"select": "biggest"}, "faces.select"),
        ({"min_face_rate": 1.5}, "faces.min_face_rate"),
        ({"batch_mb": -1}, "faces.batch_mb"),
        ({"min_prob": 1.5}, "faces.min_prob"),
        ({"no_such_key": 1}, "no_such_key"),
    ):
        with pytest.raises(ConfigError, match=key):
            build(FacesConfig, bad, "faces")


def test_sample_clips_have_faces_in_every_frame(faces, sample_clips):
    for clip in _spread(sample_clips, 8):
        feats = faces.extract(_source(clip))
        a = feats.arrays
        n = feats.n_steps
        assert a["crops"].shape == (n, 112, 112, 3) and a["crops"].dtype == np.uint8
        assert a["boxes"].shape == (n, 4) and a["boxes"].dtype == np.float32
        assert a["crop_boxes"].shape == (n, 4) and a["probs"].shape == (n,)
        assert a["points"].shape == (n, 5, 2) and a["filled"].dtype == bool
        assert feats.valid.mean() >= 0.95, f"{clip.name}: faces in {feats.valid.mean():.0%}"
        times = [t for t, _ in iter_frames(clip)]
        np.testing.assert_allclose(feats.timestamps, times)
        v = feats.valid
        assert (a["probs"][v] >= 0.9).all()
        b = a["boxes"][v]
        assert (b[:, 2] > b[:, 0] + 30).all() and (b[:, 3] > b[:, 1] + 30).all()
        assert (b[:, :2] > -10).all() and (b[:, 2:] < 192 + 10).all()
        # the five points lie in the box, the eyes above the mouth
        pts = a["points"][v]
        assert ((pts[..., 0] >= b[:, None, 0] - 2) & (pts[..., 0] <= b[:, None, 2] + 2)).all()
        assert (pts[:, :2, 1].mean(1) < pts[:, 3:, 1].mean(1)).all()
        # crops are cut from the full frame at crop_boxes (square, around the box)
        cb = a["crop_boxes"][v]
        np.testing.assert_allclose(cb[:, 2] - cb[:, 0], cb[:, 3] - cb[:, 1])
        frames = dict(iter_frames(clip))
        for i in np.nonzero(v)[0][:: max(1, n // 5)]:
            rgb = frames[feats.timestamps[i]]
            np.testing.assert_array_equal(a["crops"][i], cut(rgb, a["crop_boxes"][i], 112))


def _full_detection(path: Path, every: int) -> tuple[list[int], np.ndarray]:
    """facenet-pytorch's MTCNN called directly on every ``every``-th full-size frame; the most
    confident face of each."""
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, device="cpu")
    rows, boxes = [], []
    for i, (_, rgb) in enumerate(iter_frames(path)):
        if i % every:
            continue
        b, p = mtcnn.detect(rgb)
        rows.append(i)
        best = np.asarray(b[int(np.argmax(p))], np.float64) if b is not None else np.nan
        boxes.append(np.broadcast_to(best, (4,)))
    return rows, np.array(boxes, np.float64)


def _assert_same_faces(feats, rows, ref, name):
    ours = feats.arrays["boxes"][rows]
    assert np.array_equal(np.isfinite(ours).all(1), np.isfinite(ref).all(1)), name
    found = np.isfinite(ref).all(1)
    overlap = iou(ours[found], ref[found])
    assert overlap.mean() >= 0.85, f"{name}: mean IoU {overlap.mean():.3f}"
    assert overlap.min() >= 0.6, f"{name}: min IoU {overlap.min():.3f}"


def test_fast_path_finds_the_faces_full_detection_finds(faces, sample_clips, tmp_path):
    """Key frames on a 320-pixel copy + O-net following vs MTCNN on every full-size frame."""
    for clip in _spread(sample_clips, 3):  # neutral, sad/happy, angry (fast head shake)
        feats = faces.extract(_source(clip))
        rows, ref = _full_detection(clip, every=3)
        _assert_same_faces(feats, rows, ref, clip.name)
    hd = encode_video(tmp_path / "hd.mp4", talking_head_frames(36, 1280, 720), fps=30)
    feats = faces.extract(_source(hd))
    assert feats.attrs["detect_scale"] == pytest.approx(0.25)
    assert feats.attrs["n_followed"] > feats.attrs["n_key"]  # the fast path ran
    rows, ref = _full_detection(hd, every=4)
    _assert_same_faces(feats, rows, ref, "1280x720")


def _window_bound(settings) -> int:
    """Frames the tracker may pull before its first face comes out: one window (the batch
    size in use on the extractor's device), the key-frame look-ahead and one more."""
    return settings.batch_size + settings.key_interval + 1


def test_decoding_streams_through_a_bounded_window(faces, tmp_path):
    settings = faces.track_settings()
    assert settings.batch_size == faces.batch_in_use  # cuda_batch_size on a GPU
    n = _window_bound(settings) + 30  # a clip longer than one window on any device
    clip = encode_video(tmp_path / "long.mp4", talking_head_frames(n, 192, 192), fps=30)
    pulled = 0

    def counting():
        nonlocal pulled
        for item in iter_decoded(clip):
            pulled += 1
            yield item

    tracker = faces.tracker()
    assert tracker.s.batch_size == settings.batch_size
    out = tracker.run(counting())
    first = next(out)
    assert len(first.faces) == 1
    # the first face comes out after one window, not after the whole clip
    assert pulled <= _window_bound(tracker.s) < n
    rest = list(out)
    assert 1 + len(rest) == pulled == n
    assert len(tracker._frames) <= tracker.s.batch_size + 1  # one reusable window of frames
    assert tracker.n_tracks == 1


def test_the_window_on_a_gpu_is_cuda_batch_size(monkeypatch):
    """With CUDA reported usable (faked only at the availability check), ``device: auto``
    takes the GPU's batch size, which the bound above then uses."""
    from pipeline import devices

    usable = devices.CudaStatus(True, "1 CUDA device(s): test", 1, "13.0", "580.65.06")
    monkeypatch.setattr(devices, "cuda_status", lambda: usable)
    gpu = make_extractor("faces", _config())
    assert gpu.device == "cuda"
    assert gpu.track_settings().batch_size == _config().cuda_batch_size == 120
    assert _window_bound(gpu.track_settings()) == 131  # > the 71 frames of a sample clip


def test_gap_fill_is_off_by_default_and_recorded(tmp_path):
    clip = face_gap_clip(tmp_path / "gap.mp4", seconds=1.5, gap=(1.0, 1.1))
    base = to_dict(_config())
    plain = make_extractor("faces", base).extract(_source(clip))
    gap = np.nonzero(~plain.valid)[0]
    np.testing.assert_array_equal(gap, [30, 31, 32])
    assert not plain.arrays["filled"].any()
    filled = make_extractor("faces", {**base, "fill_gaps": 3}).extract(_source(clip))
    assert filled.valid.all()
    np.testing.assert_array_equal(np.nonzero(filled.arrays["filled"])[0], gap)
    assert (filled.arrays["probs"][gap] == 0).all()
    # each filled frame copies its nearest frame with a face (the earlier one on ties)
    for t, s in ((30, 29), (31, 29), (32, 33)):
        np.testing.assert_array_equal(filled.arrays["crops"][t], filled.arrays["crops"][s])
    short = make_extractor("faces", {**base, "fill_gaps": 2}).extract(_source(clip))
    assert not short.arrays["filled"].any()  # a 3-frame gap is longer than 2


def test_fill_gaps_only_fills_short_inner_gaps():
    valid = np.array([0, 1, 0, 0, 1, 0, 0, 0, 1, 0], bool)
    dst, src = fill_gaps(valid, 2)
    np.testing.assert_array_equal(dst, [2, 3])
    np.testing.assert_array_equal(src, [1, 4])


def test_timestamps_share_the_audio_features_time_base(faces, tmp_path):
    """A face leaves the frame while a tone plays (1.0-1.5 s): in faces and in mel (the MPUC
    code variant, one mel frame per video frame) the event sits at the same timestamps, for the
    whole file and for an utterance cut out of it."""
    clip = face_gap_clip(tmp_path / "sync.mp4", seconds=2.0, gap=(1.0, 1.5))
    mel = make_extractor("mel", {"variant": "code"})
    for start, end in ((0.0, 0.0), (0.5, 2.0)):
        src = _source(clip, start=start, end=end, fps=30.0)
        f = faces.extract(src)
        m = mel.extract(src)
        n = min(f.n_steps, m.n_steps)
        assert abs(f.n_steps - m.n_steps) <= 1
        np.testing.assert_allclose(f.timestamps[:n], m.timestamps[:n], atol=1e-6)
        t = f.timestamps[:n] + start  # back to file time
        energy = m.arrays["mel"][:n].max(axis=1)  # dB of the loudest band
        inside = (t >= 1.1) & (t < 1.4)
        outside = (t < 0.85) | (t >= 1.65)
        assert not f.valid[:n][inside].any() and f.valid[:n][outside].all()
        assert energy[inside].min() > energy[outside].max() + 20  # dB
        assert f.timestamps[0] == 0.0


def test_stage_records_no_face_and_corrupt_clips(sample_clips, tmp_path):
    root = make_project(tmp_path, sample_clips[:2], {"runner": {"n_jobs": 1}})
    actor = tmp_path / "corpus" / "Actor_05"
    actor.mkdir()
    no_face_clip(actor / "01-01-01-01-01-01-05.mp4")
    truncated_clip(sample_clips[0], actor / "01-01-01-01-01-02-05.mp4", keep=0.5)
    params = load_params(root / "params.yaml")
    assert run_ingest(params, root) == 0
    assert run_feature(params, "faces", root, progress=False) == 0
    with open(root / "manifests/sample/failures/faces.csv") as f:
        failures = {r["clip_id"]: r for r in csv.DictReader(f)}
    assert set(failures) == {"01-01-01-01-01-01-05", "01-01-01-01-01-02-05"}
    assert "no face found" in failures["01-01-01-01-01-01-05"]["reason"]
    assert failures["01-01-01-01-01-01-05"]["exception_type"] == "ExtractionError"
    assert "truncated" in failures["01-01-01-01-01-02-05"]["reason"]
    reader = FeatureReader(root / "data/features/sample/faces")
    assert sorted(reader.clip_ids) == sorted(c.stem for c in sample_clips[:2])
    assert reader.primary == "crops"
    feats = reader.read(reader.clip_ids[0], verify=True)
    assert feats.arrays["crops"].shape[1:] == (112, 112, 3)
    metrics = json.loads((root / "data/metrics/sample/faces.json").read_text())
    run = json.loads((root / "data/metrics/sample/faces.run.json").read_text())
    assert metrics["failed"] == 2 and run["extracted"] == 2


def test_extractor_errors_are_per_clip(faces, tmp_path, sample_clips):
    with pytest.raises(ExtractionError, match="no face found"):
        faces.extract(_source(no_face_clip(tmp_path / "noise.mp4")))
    with pytest.raises(ExtractionError, match="truncated|decode failed"):
        faces.extract(_source(truncated_clip(sample_clips[0], tmp_path / "cut.mp4", keep=0.3)))
    with pytest.raises(ExtractionError, match="no video track"):
        faces.extract(_source(sample_clips[0], has_video=False))


def test_cpu_and_gpu_agree(sample_clips):
    """Extraction runs in exact fp32 on the GPU (TF32 off), so CPU and GPU find the same
    faces: same frames, boxes within IoU 0.95, probabilities within 1e-3 (docs/gpu.md)."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: the CPU/GPU comparison needs one (scripts/gpu_check.sh)")
    base = to_dict(_config())
    cpu_ex = make_extractor("faces", {**base, "device": "cpu"})
    gpu_ex = make_extractor("faces", {**base, "device": "cuda"})
    for clip in _spread(sample_clips, 16):
        cpu = cpu_ex.extract(_source(clip))
        gpu = gpu_ex.extract(_source(clip))
        assert gpu.attrs["device"] == "cuda"
        np.testing.assert_array_equal(cpu.valid, gpu.valid, err_msg=clip.name)
        assert iou(cpu.arrays["boxes"], gpu.arrays["boxes"])[cpu.valid].min() > 0.95, clip.name
        np.testing.assert_allclose(
            cpu.arrays["probs"], gpu.arrays["probs"], atol=1e-3, err_msg=clip.name
        )
