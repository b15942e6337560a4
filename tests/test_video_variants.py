"""Awkward real-world videos through the visual stages (faces, landmarks) and the audio stages
(mel, spectrogram): a variable frame rate, a phone's display rotation, two faces, odd and tiny
sizes, an audio-only file and a ten-minute clip. Each clip gives correct features or a clear
per-clip failure record; no stage crashes and every shard reads back verified.

One folder corpus holds all the variants; a module fixture runs ingest and the four stages on
it through the real stage path (``run_feature``), and each test checks its clips."""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import make_project
from visual_helpers import encode_audio_only, encode_frames, two_faces_frames

from pipeline.config import load_params, to_dict
from pipeline.features import ClipSource, make_extractor
from pipeline.manifest import read_manifest
from pipeline.media.probe import probe
from pipeline.media.synthetic import talking_head_frames
from pipeline.media.video import iter_frames
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from pipeline.vision.boxes import cut, iou
from pipeline.workflow import run_feature, run_ingest

STAGES = ("faces", "landmarks", "mel", "spectrogram")
SR = 16000  # audio of the test clips (the stages resample it)

# Variable frame rate: a camera that drops to 10 fps now and then (gaps of 33 and 100 ms).
VFR_GAPS_MS = [33, 33, 100, 33, 100, 100, 33, 33, 33, 100] * 4
VFR_TIMES = np.concatenate([[0], np.cumsum(VFR_GAPS_MS)]) / 1000.0

LONG_SECONDS, LONG_FPS = 600, 2

PORTRAIT = (180, 320)  # (width, height) of the phone clips as displayed
ODD_SIZES = {  # clip id: (width, height, pixel format, a face big enough for MTCNN)
    "odd_161x97": (161, 97, "yuv444p", True),  # yuv420p needs even sizes: libx264 refuses
    "even_162x98": (162, 98, "yuv420p", True),
    "portrait_360x640": (360, 640, "yuv420p", True),
    "tiny_48x32": (48, 32, "yuv420p", False),  # smaller than MTCNN's smallest face (40 px)
}


@dataclass
class Corpus:
    root: Path
    lay: Layout
    upright: dict[str, list[np.ndarray]]  # frames as displayed, per clip id

    def failures(self, stage: str) -> dict[str, dict[str, str]]:
        with open(self.lay.failures_csv(stage)) as f:
            return {r["clip_id"]: r for r in csv.DictReader(f)}

    def reader(self, feature: str) -> FeatureReader:
        return FeatureReader(self.lay.features_dir(feature))

    def path(self, clip_id: str) -> Path:
        return next((self.root / "corpus").glob(f"{clip_id}.*"))

    def source(self, clip_id: str) -> ClipSource:
        e = next(e for e in read_manifest(self.lay.clips_csv) if e.clip_id == clip_id)
        return ClipSource(
            clip_id=clip_id, path=self.path(clip_id), fps=e.fps, duration=e.duration,
            has_audio=e.has_audio, has_video=e.has_video,
        )  # fmt: skip


def _tone(seconds: float, seed: int = 0) -> np.ndarray:
    """A 300 Hz tone with a little noise, at :data:`SR`."""
    t = np.arange(int(round(seconds * SR))) / SR
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.2 * np.sin(2 * np.pi * 300 * t) + 0.01 * noise).astype(np.float32)


def _long_frames(n: int, size: int = 64):
    """Smooth drifting colour gradients: no face anywhere."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(n):
        phase = 2 * np.pi * i / 40
        r = 128 + 100 * np.sin(2 * np.pi * x + phase)
        g = 128 + 100 * np.cos(2 * np.pi * y - phase)
        b = np.full_like(r, 110 + 40 * np.sin(phase))
        yield np.stack([r, g, b], axis=-1).astype(np.uint8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    root = make_project(
        tmp_path_factory.mktemp("variants"), [],
        {"corpus": {"adapter": "folder", "name": "variants"}, "runner": {"n_jobs": 1}},
    )  # fmt: skip
    media = root / "corpus"
    upright: dict[str, list[np.ndarray]] = {}

    def clip(name: str, frames, seconds: float, **kw) -> None:
        upright[name] = list(frames)
        encode_frames(media / f"{name}.mp4", upright[name], audio=_tone(seconds),
                      sample_rate=SR, **kw)  # fmt: skip

    n = len(VFR_TIMES)
    clip("vfr", talking_head_frames(n, 192, 144), VFR_TIMES[-1] + 0.1, times=VFR_TIMES)
    # A phone's portrait recording: stored landscape, displayed turned by the display matrix
    # (-90: an iPhone's, shown as "rotate 90" by older tools; +90: the other way round).
    for name, rotation in (("phone_portrait", -90), ("phone_ccw", 90)):
        clip(name, talking_head_frames(30, *PORTRAIT, seed=1), 1.0, rotation=rotation)
    clip("two_faces", two_faces_frames(60), 2.0)
    clip("two_faces_big_blurred", two_faces_frames(60, blur_big=7.0), 2.0)
    for name, (w, h, fmt, _) in ODD_SIZES.items():
        clip(name, talking_head_frames(20, w, h), 0.7, pix_fmt=fmt)
    encode_audio_only(media / "voice.m4a", _tone(1.5), sample_rate=SR)
    n_long = LONG_SECONDS * LONG_FPS
    encode_frames(media / "long_10min.mp4", _long_frames(n_long), fps=LONG_FPS,
                  audio=_tone(LONG_SECONDS), sample_rate=SR)  # fmt: skip

    params = load_params(root / "params.yaml")
    assert run_ingest(params, root) == 0
    for stage in STAGES:
        assert run_feature(params, stage, root, progress=False) == 0, stage
    return Corpus(root, Layout("variants", root=root), upright)


def test_every_clip_is_a_verified_shard_or_a_failure_record(corpus):
    ids = {e.clip_id for e in read_manifest(corpus.lay.clips_csv)}
    assert len(ids) == 11 and not corpus.failures("ingest")
    for stage in STAGES:
        failed = corpus.failures(stage)
        with corpus.reader(stage) as r:
            assert set(r.clip_ids) | set(failed) == ids, stage
            assert not set(r.clip_ids) & set(failed), stage
            for cid in r.clip_ids:
                feats = r.read(cid, verify=True)  # checksums of every array
                assert feats.n_steps >= 1
                assert np.isfinite(feats.timestamps).all()
        for row in failed.values():
            assert row["reason"], row
    # faces fail the clips with no usable face (tiny, ten minutes of gradients, audio only);
    # landmarks fail exactly those (no faces shard to take boxes from) and work on the rest
    assert set(corpus.failures("faces")) == {"tiny_48x32", "long_10min", "voice"}
    assert set(corpus.failures("landmarks")) == set(corpus.failures("faces"))
    # the audio stages work whatever the picture: every clip, the audio-only one included
    assert not corpus.failures("mel") and not corpus.failures("spectrogram")


def test_variable_frame_rate_keeps_the_true_frame_times(corpus):
    path = corpus.path("vfr")
    times = np.array([t for t, _ in iter_frames(path)])
    np.testing.assert_allclose(times, VFR_TIMES, atol=1e-6)
    info = probe(path)
    # the container's average rate: frames over duration, between the two rates in use
    assert 10.0 <= info.fps <= 30.5 and info.n_frames == len(VFR_TIMES)
    assert info.duration == pytest.approx(VFR_TIMES[-1] + 0.1, abs=0.05)  # the audio's
    entry = next(e for e in read_manifest(corpus.lay.clips_csv) if e.clip_id == "vfr")
    assert entry.fps == pytest.approx(info.fps, abs=1e-3)

    with corpus.reader("faces") as r:
        faces = r.read("vfr")
    assert faces.valid.all()
    np.testing.assert_allclose(faces.timestamps, VFR_TIMES, atol=1e-6)
    # not index / fps: the clip's frames are not evenly spaced (0.12 s off at worst here)
    assert np.abs(faces.timestamps - np.arange(len(VFR_TIMES)) / info.fps).max() > 0.1
    with corpus.reader("landmarks") as r:
        lm = r.read("vfr")
    np.testing.assert_array_equal(lm.timestamps, faces.timestamps)
    assert lm.valid.all() and np.isfinite(lm.arrays["landmarks"]).all()

    # faces.fps samples on a grid: the first frame at or after each k / fps
    base = to_dict(load_params(corpus.root / "params.yaml").section("faces"))
    for fps in (10.0, 4.0):
        grid = np.arange(0, VFR_TIMES[-1] + 1e-9, 1 / fps)
        first_at_or_after = np.searchsorted(VFR_TIMES, grid - 1e-6)
        expected = np.unique(VFR_TIMES[first_at_or_after])
        assert 1 < len(expected) < len(VFR_TIMES)
        sampled = make_extractor("faces", {**base, "fps": fps}).extract(corpus.source("vfr"))
        np.testing.assert_allclose(sampled.timestamps, expected, atol=1e-6)
        assert sampled.valid.all()


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_frames_are_turned_upright_by_the_display_matrix(tmp_path, rotation):
    """A picture with a marked corner, stored turned: decoded upright it is the picture again
    (FFmpeg's own autorotation, ``ffmpeg -i clip.mp4``, gives the same pixels)."""
    shown = np.full((100, 60, 3), 40, np.uint8)
    shown[:30, :20] = (250, 30, 30)  # top-left corner, as displayed
    shown[-20:, -40:] = (30, 30, 250)  # bottom-right
    path = encode_frames(tmp_path / "r.mp4", [shown] * 3, fps=10, rotation=rotation,
                         pix_fmt="yuv444p")  # fmt: skip
    with av.open(str(path)) as c:
        assert (next(c.decode(video=0)).rotation - rotation) % 360 == 0  # 180 reads as -180
    for _, rgb in iter_frames(path):
        assert rgb.shape == shown.shape
        assert np.abs(rgb.astype(int) - shown).max() < 40
    # stored turned the other way (landscape for a quarter turn); probe reports the stored
    # size and the turn that shows it
    _, stored = next(iter_frames(path, upright=False))
    turns = round(rotation / 90) % 4
    assert stored.shape[:2] == (shown.shape[:2] if turns == 2 else shown.shape[1::-1])
    np.testing.assert_array_equal(np.rot90(stored, turns), next(iter_frames(path))[1])
    info = probe(path)
    assert info.rotation == rotation % 360
    assert (info.width, info.height) == (stored.shape[1], stored.shape[0])


@pytest.mark.parametrize("clip_id", ["phone_portrait", "phone_ccw"])
def test_phone_video_faces_are_found_upright(corpus, clip_id):
    from facenet_pytorch import MTCNN

    path = corpus.path(clip_id)
    w, h = PORTRAIT
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        assert frame.rotation != 0 and (frame.width, frame.height) == (h, w)  # stored landscape
    entry = next(e for e in read_manifest(corpus.lay.clips_csv) if e.clip_id == clip_id)
    assert entry.rotation == probe(path).rotation != 0
    frames = [rgb for _, rgb in iter_frames(path, upright=True)]
    assert all(f.shape == (h, w, 3) for f in frames)  # portrait
    shown = np.stack(corpus.upright[clip_id])
    assert np.abs(np.stack(frames).astype(int) - shown).mean() < 4  # the picture as displayed

    with corpus.reader("faces") as r:
        faces = r.read(clip_id)
    assert (faces.attrs["frame_width"], faces.attrs["frame_height"]) == (w, h)
    assert faces.valid.mean() >= 0.95
    b = faces.arrays["boxes"][faces.valid]
    assert (b[:, :2] > -10).all() and (b[:, 2] < w + 10).all() and (b[:, 3] < h + 10).all()
    # the same faces as MTCNN finds on the pictures as displayed (upright pixels)
    mtcnn = MTCNN(keep_all=True, device="cpu")
    rows = list(range(0, len(shown), 5))
    ref, ref_p = mtcnn.detect(shown[rows])
    ref = np.array([r[int(np.argmax(p))] for r, p in zip(ref, ref_p, strict=True)])
    overlap = iou(faces.arrays["boxes"][rows], ref)
    assert overlap.min() >= 0.6 and overlap.mean() >= 0.8, overlap
    # crops are cut from the upright frame
    for i in rows:
        np.testing.assert_array_equal(
            faces.arrays["crops"][i], cut(frames[i], faces.arrays["crop_boxes"][i], 112)
        )

    # landmarks on the upright face: eyes above the nose above the mouth, not mirrored
    with corpus.reader("landmarks") as r:
        lm = r.read(clip_id)
    p = lm.arrays["landmarks"][lm.valid].astype(np.float64)
    assert len(p) >= 0.95 * len(lm.valid)
    eyes_y, nose_y, mouth_y = p[:, 36:48, 1].mean(1), p[:, 30, 1], p[:, 48:68, 1].mean(1)
    assert (eyes_y < nose_y).all() and (nose_y < mouth_y).all()
    assert (p[:, 36, 0] < p[:, 45, 0]).all() and (p[:, 48, 0] < p[:, 54, 0]).all()


def _side(boxes: np.ndarray, width: int) -> np.ndarray:
    """True where the box's centre lies in the left half (the big face's side)."""
    return (boxes[:, 0] + boxes[:, 2]) / 2 < width / 2


def test_two_faces_one_is_kept_per_frame(corpus):
    width = 320  # two_faces_frames' default
    base = to_dict(load_params(corpus.root / "params.yaml").section("faces"))
    with corpus.reader("faces") as r:
        sharp, blurred = r.read("two_faces"), r.read("two_faces_big_blurred")
    for feats in (sharp, blurred):
        assert feats.valid.all() and feats.arrays["boxes"].shape == (feats.n_steps, 4)
    # select: confidence (the default). The big sharp face scores higher than the small one
    # (0.99999 vs 0.9996 here), so it is kept on every key frame, and the O-net follows that
    # face between key frames: the kept face never jumps to the other one.
    left = _side(sharp.arrays["boxes"], width)
    assert left.all()
    # Blurred, the big face scores about 0.975 and the sharp small one 0.9996: the small one
    # is kept on every frame, again without a single jump.
    left = _side(blurred.arrays["boxes"], width)
    assert not left.any()
    small_w = (blurred.arrays["boxes"][:, 2] - blurred.arrays["boxes"][:, 0]).max()

    # select: largest keeps the big face on every frame, blurred or not
    largest = make_extractor("faces", {**base, "select": "largest"})
    for cid in ("two_faces", "two_faces_big_blurred"):
        feats = largest.extract(corpus.source(cid))
        b = feats.arrays["boxes"]
        assert feats.valid.all() and _side(b, width).all(), cid
        assert ((b[:, 2] - b[:, 0]) > small_w + 8).all(), cid


def test_unusual_resolutions(corpus):
    faces = corpus.failures("faces")
    with corpus.reader("faces") as r:
        for cid, (w, h, _, big_enough) in ODD_SIZES.items():
            path = corpus.path(cid)
            info = probe(path)
            assert (info.width, info.height) == (w, h)
            frames = [rgb for _, rgb in iter_frames(path)]
            assert len(frames) == 20 and all(f.shape == (h, w, 3) for f in frames)
            # MTCNN finds the face where it is larger than its smallest face; the tiny clip
            # fails as having none (not with an error from inside MTCNN)
            if big_enough:
                feats = r.read(cid)
                assert (feats.attrs["frame_width"], feats.attrs["frame_height"]) == (w, h)
                assert feats.valid.mean() >= 0.9, cid
                b = feats.arrays["boxes"][feats.valid]
                assert (b[:, :2] > -5).all() and (b[:, 2] < w + 5).all(), cid
                assert (b[:, 3] < h + 5).all(), cid
            else:
                assert cid not in r
                assert "no face found" in faces[cid]["reason"], faces[cid]
                assert faces[cid]["exception_type"] == "ExtractionError"
    # the audio stages do not care about the picture
    for feature in ("mel", "spectrogram"):
        with corpus.reader(feature) as r:
            for cid in ODD_SIZES:
                feats = r.read(cid)
                assert feats.valid.any()
                assert np.isfinite(feats.arrays[r.primary]).all()


def test_audio_only_file_in_the_visual_stages(corpus):
    entry = next(e for e in read_manifest(corpus.lay.clips_csv) if e.clip_id == "voice")
    assert not entry.has_video and entry.has_audio
    faces = corpus.failures("faces")
    assert "no video track" in faces["voice"]["reason"]
    assert faces["voice"]["exception_type"] == "ExtractionError"
    with corpus.reader("faces") as r:
        assert "voice" not in r and "vfr" in r  # the videos were extracted
    lm = corpus.failures("landmarks")
    assert "not in the faces shards" in lm["voice"]["reason"]
    with corpus.reader("mel") as r:
        assert r.read("voice").valid.any()


def test_ten_minute_clip(corpus):
    params = load_params(corpus.root / "params.yaml")
    n_frames = LONG_SECONDS * LONG_FPS
    faces = corpus.failures("faces")
    assert f"no face found in any of the {n_frames} frames" in faces["long_10min"]["reason"]
    assert "not in the faces shards" in corpus.failures("landmarks")["long_10min"]["reason"]

    # spectrogram: 1.02 s segments over the whole clip
    cfg = params.section("spectrogram")
    with corpus.reader("spectrogram") as r:
        spec = r.read("long_10min")
    seconds = spec.attrs["audio_seconds"]
    assert seconds == pytest.approx(LONG_SECONDS, abs=0.05)
    n_stft = 1 + (round(seconds * cfg.sample_rate) - cfg.n_fft) // cfg.hop_length
    L, H = cfg.segment_frames, cfg.segment_hop_frames
    n_full = (n_stft - L) // H + 1
    tail = n_stft - n_full * H
    last_reaches_end = (n_full - 1) * H + L >= n_stft
    n_seg = n_full + (cfg.pad_last and not last_reaches_end and tail >= cfg.min_tail_frames)
    assert n_seg == 586  # 600 s at these settings
    assert spec.n_steps == n_seg and spec.valid.all()
    assert spec.arrays["spectrogram"].shape == (n_seg, L, cfg.n_fft // 2)
    np.testing.assert_allclose(spec.timestamps, np.arange(n_seg) * H * cfg.hop_length / 16000)
    assert spec.timestamps[-1] == pytest.approx(599.04)
    assert spec.arrays["real_frames"][-1] == tail

    # mel, the paper's variant (the stage's default): the time axis is fixed to 128 frames
    paper = params.section("mel").paper
    with corpus.reader("mel") as r:
        mel = r.read("long_10min")
    assert mel.n_steps == paper.fixed_length and mel.valid.all()
    dt = paper.hop_length * paper.frame_step / paper.sample_rate
    np.testing.assert_allclose(mel.timestamps, np.arange(paper.fixed_length) * dt)

    # mel, the authors' code variant: one frame per video frame over the whole ten minutes
    mel_code = dataclasses.replace(params.section("mel"), variant="code")
    code_params = dataclasses.replace(params, extra={**params.extra, "mel": mel_code})
    out = corpus.root / "mel_code"
    assert run_feature(code_params, "mel", corpus.root, progress=False, out_dir=out) == 0
    with FeatureReader(out) as r:
        mel = r.read("long_10min", verify=True)
    s = params.section("mel").code
    hop = round(s.sample_rate / LONG_FPS)  # hop_length 0: sample_rate / the clip's fps
    n_mel = 1 + round(mel.attrs["audio_seconds"] * s.sample_rate) // hop  # centred frames
    assert n_mel == LONG_SECONDS * LONG_FPS + 1
    assert mel.n_steps == n_mel and mel.arrays["mel"].shape == (n_mel, s.n_mels)
    assert mel.attrs["hop_length"] == hop
    assert mel.timestamps[-1] == pytest.approx(LONG_SECONDS)
    assert np.isfinite(mel.arrays["mel"]).all()
