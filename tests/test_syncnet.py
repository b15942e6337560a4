"""``faces.select: speaker`` with ``speaker.backend: syncnet``: the network takes the authors'
state dict unchanged, its inputs are prepared as theirs, its scores go through the same
verdicts, and the stage runs it on the real test clips (``tests/data/speaker/``).

No SyncNet weights are available offline, so the stage runs a seeded, untrained network
saved as the authors' file is (their parameter names, no BatchNorm step counters): these
tests check the plumbing (loading, checks, attributes, warnings, cache key, errors), not how
well SyncNet chooses."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, make_project

from pipeline.config import load_params, to_dict
from pipeline.features import ClipSource, make_extractor
from pipeline.manifest import read_manifest
from pipeline.media.audio import decode_audio
from pipeline.runner import cache_key
from pipeline.store import FeatureReader
from pipeline.vision.face_track import Face, FrameFaces
from pipeline.vision.speaker import SpeakerConfig, decide
from pipeline.vision.sync_speaker import STEP_S, SyncNetScorer, sync_scores
from pipeline.vision.syncnet import WEIGHTS_URL, SyncNetModelError, syncnet_token
from pipeline.vision.syncnet_inputs import (
    PAD_VALUE,
    binned_mel_filters,
    face_crop,
    syncnet_mfcc,
)
from pipeline.vision.syncnet_net import SyncNet
from pipeline.workflow import layout, run_facts_path, run_feature, run_ingest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DATA = REPO / "tests/data/speaker"
SYNC = {"backend": "syncnet"}


def save_weights(path: Path, seed: int, counters: bool = False) -> Path:
    """An untrained SyncNet's state dict, saved as the released file is: a plain dict of
    tensors under the authors' names, in torch's old (pre-zip) format, without BatchNorm
    step counters (which the 2017 file predates); ``counters``: as torch saves it now."""
    torch.manual_seed(seed)
    state = SyncNet().state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    if counters:
        torch.save(state, path)
    else:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return save_weights(tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model", seed=0)


def _faces(**speaker) -> dict:
    base = to_dict(load_params(REPO / "params.yaml").section("faces"))
    return {**base, "select": "speaker", "speaker": {**base["speaker"], **speaker}}


# --- the network and its inputs -----------------------------------------------------------


def test_the_network_has_the_released_models_names_and_shapes():
    """Names and shapes of syncnet_python's SyncNetModel.S (the keys of syncnet_v2.model)."""
    state = SyncNet().state_dict()
    assert len(state) == 102  # 88 parameters and running statistics + 14 step counters
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["netcnnaud.0.weight"] == (64, 1, 3, 3)
    assert shapes["netcnnaud.4.weight"] == (192, 64, 3, 3)
    assert shapes["netcnnaud.18.weight"] == (512, 256, 5, 4)
    assert shapes["netcnnaud.19.running_var"] == (512,)
    assert shapes["netcnnlip.0.weight"] == (96, 3, 5, 7, 7)
    assert shapes["netcnnlip.4.weight"] == (256, 96, 1, 5, 5)
    assert shapes["netcnnlip.18.weight"] == (512, 256, 1, 6, 6)
    assert shapes["netfcaud.3.weight"] == shapes["netfclip.3.weight"] == (1024, 512)
    assert shapes["netfclip.1.running_mean"] == (512,)
    net = SyncNet().eval()
    assert sum(p.numel() for p in net.parameters()) == 13_631_616
    with torch.inference_mode():  # 5 x 224 x 224 and 13 x 20 are the only sizes that fit
        assert net.embed_lips(torch.zeros(2, 3, 5, 224, 224)).shape == (2, 1024)
        assert net.embed_sound(torch.zeros(2, 1, 13, 20)).shape == (2, 1024)


def test_mfcc_is_python_speech_features_definition_on_real_speech():
    audio = decode_audio(DATA / "mixed.mp4", 16000)
    m = syncnet_mfcc(audio)
    assert m.shape == (13, 1 + math.ceil((len(audio) - 400) / 160))
    # the filters: edges at floor(513 f / 16000) of 28 points evenly spaced in HTK mel
    mel = np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 28)
    edges = np.floor(513 * 700 * (10 ** (mel / 2595) - 1) / 16000).astype(int)
    fb = binned_mel_filters()
    for j in range(26):
        assert np.flatnonzero(fb[j]).min() == edges[j] + 1 and fb[j, edges[j + 1]] == 1.0
        assert fb[j, edges[j + 2] :].sum() == 0
    # one frame from the definition (int16 scale, pre-emphasis, 400 samples from 160 k)
    x = np.round(audio.astype(np.float64) * 32768)
    x = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    from scipy.fft import dct

    for k in (40, 150):
        power = np.abs(np.fft.rfft(x[160 * k : 160 * k + 400], 512)) ** 2 / 512
        c = dct(np.log(fb @ power), type=2, norm="ortho")[:13]
        c *= 1 + 11 * np.sin(np.pi * np.arange(13) / 22)
        c[0] = np.log(power.sum())
        np.testing.assert_allclose(m[:, k], c, rtol=1e-6, atol=1e-6)


def test_face_crop_is_the_authors_region_in_bgr_with_grey_outside():
    rgb = np.zeros((300, 300, 3), np.uint8)
    rgb[..., 0] = 200  # red
    box = np.array([100.0, 50.0, 140.0, 100.0])  # s = 25: x 85..155, y 50..120
    crop = face_crop(rgb, box)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    assert (crop[..., 2] == 200).all() and (crop[..., :2] == 0).all()  # BGR: red last
    # near the top-left corner the region leaves the frame: that part is grey (110)
    crop = face_crop(rgb, np.array([0.0, -20.0, 40.0, 20.0]))  # x -15..55, y -20..50
    assert (crop[:40, :40] == PAD_VALUE).all() and (crop[-40:, -40:, 2] == 200).all()
    assert face_crop(rgb, np.array([np.nan, 0, 10, 10])) is None


# --- scores and verdicts ------------------------------------------------------------------


def test_the_track_whose_lips_match_the_sound_scores_at_the_right_lag():
    rng = np.random.default_rng(0)
    sound = rng.standard_normal((80, 1024)).astype(np.float32)
    k = np.arange(5, 70)
    noise = 0.3 * rng.standard_normal((len(k), 1024))
    lips = {
        0: (k, sound[k + 2] + noise),  # the sound 2 steps (80 ms) after the lips
        1: (k, rng.standard_normal((len(k), 1024))),  # a face saying something else
        2: (k, sound[k + 10] + noise),  # in sync only 0.4 s off: not a well-muxed speaker
    }
    cfg = SpeakerConfig(**SYNC)
    scored = sync_scores(lips, sound, cfg)
    assert scored[0][1] == pytest.approx(2 * STEP_S) and scored[0][0] > 10
    assert abs(scored[1][0]) < 1 and abs(scored[2][0]) < 1
    v = decide(scored, cfg, 0.2)
    assert (v.track, v.status, v.describe(cfg, 0.2)) == (0, "sure", "")
    v = decide({t: scored[t] for t in (1, 2)}, cfg, 0.2)  # the speaker is not on screen
    why = v.describe(cfg, 0.2)
    assert v.status == "no_match" and "best conf" in why and "speaker.syncnet_min_conf 3" in why
    v = decide({0: (5.0, 0.0), 1: (4.5, 0.0)}, cfg, 0.2)  # leads by 0.5 < syncnet_margin
    assert v.status == "unsure" and "track 1: conf 4.50" in v.describe(cfg, 0.2)
    short = {0: (k[:9], lips[0][1][:9])}  # under 10 windows: not scored
    assert sync_scores(short, sound, cfg) == {}


def test_lip_windows_follow_syncnets_25_fps_clock(weights):
    """A 30 fps clip of 1 s: 25 steps, 21 five-step windows for a face in every frame; a face
    missing from frames 12-14 (the frames nearest to steps 10-12) has none across them."""
    cfg = SpeakerConfig(**SYNC, syncnet_model=str(weights))
    lips = SyncNetScorer(cfg).reader(start=0.0)
    rng = np.random.default_rng(0)
    face = Face(np.array([40.0, 30.0, 80.0, 80.0]), 0.99, np.zeros((5, 2)), "key")
    for i in range(30):
        rgb = rng.integers(0, 255, (120, 160, 3), np.uint8)  # every frame another picture
        faces = {0: face} if 12 <= i <= 14 else {0: face, 1: face}
        lips.add(FrameFaces(i, i / 30, rgb, faces))
    windows = lips.windows()
    assert windows[0][0].tolist() == list(range(21))
    assert windows[1][0].tolist() == [*range(6), *range(13, 21)]
    assert windows[0][1].shape == (21, 1024) and windows[0][1].dtype == np.float32
    # the same face in both tracks: the same embeddings where both have a window
    np.testing.assert_allclose(windows[1][1][:6], windows[0][1][:6], rtol=1e-5, atol=1e-4)
    # a sound whose embedding at each step is the face's: in sync at offset 0
    sound = np.zeros((25, 1024), np.float32)
    sound[:21] = windows[0][1]
    scored = lips.score(sound, cfg)
    assert scored[0][1] == 0.0 and scored[0][0] > 0
    assert set(lips.score(sound, cfg, span=(0.0, 0.9))) == {0, 1}  # 19 and 12 windows
    assert set(lips.score(sound, cfg, span=(0.0, 0.6))) == {0}  # 12 and 6 (under 10)
    assert lips.score(sound, cfg, span=(0.0, 0.3)) == {}  # 4 windows: too short to score


# --- the stage ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speakers(tmp_path_factory, weights) -> Path:
    """A project whose corpus is the two real test clips, faces with the syncnet backend."""
    root = make_project(
        tmp_path_factory.mktemp("speakers"), [],
        {"corpus": {"adapter": "folder", "name": "speakers"}, "runner": {"n_jobs": 1},
         "faces": _faces(**SYNC, syncnet_model=str(weights))},
    )  # fmt: skip
    (root / "corpus").mkdir()
    for name in ("mixed", "real_null"):
        (root / "corpus" / f"{name}.mp4").write_bytes((DATA / f"{name}.mp4").read_bytes())
    assert run_ingest(load_params(root / "params.yaml"), root) == 0
    return root


def test_syncnet_backend_runs_the_stage_on_real_clips(speakers, weights, tmp_path):
    params = load_params(speakers / "params.yaml")
    assert run_feature(params, "faces", speakers, progress=False) == 0
    lay = layout(params, speakers)
    with FeatureReader(lay.features_dir("faces")) as r:
        attrs = {cid: r.clip_attrs(cid) for cid in r.clip_ids}
        assert r.params["params"]["speaker"]["backend"] == "syncnet"  # and its weights:
        assert r.params["model"].endswith(syncnet_token(weights))
    assert set(attrs) == {"mixed", "real_null"}
    warned = {}
    for cid, a in attrs.items():
        assert a["speaker_backend"] == "syncnet" and a["n_tracks"] == 2
        assert a["speaker_status"] in ("sure", "unsure", "no_match")
        assert a["select_used"] == ("largest" if a["speaker_status"] == "no_match" else "speaker")
        if a["speaker_status"] != "sure":  # an untrained network: said, never a silent pick
            assert "select 'speaker'" in a["warning"] and "conf" in a["warning"]
            warned[cid] = a["warning"]
    rows = lay.warnings_csv("faces").read_text()
    assert all(cid in rows for cid in warned)
    # the rerun takes every clip from the cache; other weights give other keys
    assert run_feature(params, "faces", speakers, progress=False) == 0
    facts = run_facts_path(lay.metrics_json("faces")).read_text()
    assert '"reused_from_cache": 2' in facts
    entry = read_manifest(lay.clips_csv)[0]
    src = ClipSource(clip_id=entry.clip_id, path=Path(entry.path), sha256=entry.sha256)
    other = save_weights(tmp_path / "other.model", seed=1)
    keys = {
        name: cache_key(make_extractor("faces", cfg), src)
        for name, cfg in {
            "w0": _faces(**SYNC, syncnet_model=str(weights)),
            "w0 moved": _faces(**SYNC, syncnet_model=str(_copy(weights, tmp_path / "m"))),
            "w1": _faces(**SYNC, syncnet_model=str(other)),
            "lips": _faces(),
        }.items()
    }
    assert keys["w0"] == keys["w0 moved"]  # the content is in the key, not the path
    assert len({keys["w0"], keys["w1"], keys["lips"]}) == 3


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    return dst


def test_each_backends_settings_and_weights_are_in_its_key_only(weights):
    lips = make_extractor("faces", _faces())
    sync = make_extractor("faces", _faces(**SYNC, syncnet_model=str(weights)))
    assert "syncnet_min_conf" not in lips.params()["speaker"]
    assert "syncnet" not in lips.model_token() and "+dlib-" in lips.model_token()
    assert "band_hz" not in sync.params()["speaker"] and "dlib" not in sync.model_token()
    assert sync.params()["speaker"]["syncnet_sure_conf"] == SpeakerConfig().syncnet_sure_conf
    assert sync.model_token().endswith(syncnet_token(weights))
    looser = make_extractor("faces", _faces(**SYNC, syncnet_model=str(weights),
                                            syncnet_sure_conf=2.0))  # fmt: skip
    assert looser.cache_token() != sync.cache_token()
    conf = make_extractor("faces", {**_faces(**SYNC), "select": "confidence"})
    assert "speaker" not in conf.params() and "syncnet" not in conf.model_token()


# --- bad weights ---------------------------------------------------------------------------


def _stage(root: Path, model: Path) -> subprocess.CompletedProcess:
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["faces"]["speaker"]["syncnet_model"] = str(model)
    (root / "bad.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [sys.executable, str(REPO / "stages/faces.py"), "--quiet", "--params", "bad.yaml"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_missing_or_garbage_weights_stop_the_stage_with_one_line(speakers, tmp_path):
    missing = tmp_path / "models" / "syncnet_v2.model"
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"this is not a state dict")
    for model, why in ((missing, "weights not found"), (garbage, "not a loadable")):
        res = _stage(speakers, model)
        assert res.returncode == 2, res.stderr
        lines = [line for line in res.stderr.splitlines() if line.startswith("faces: ")]
        assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
        for part in (str(model), why, "faces.speaker.syncnet_model", WEIGHTS_URL, "lips"):
            assert part in lines[0], (part, lines[0])


def test_a_state_dict_that_is_not_syncnets_is_refused_by_name(tmp_path):
    def token(path: Path, **kw) -> str:
        cfg = _faces(**SYNC, syncnet_model=str(path), **kw)
        return make_extractor("faces", cfg).model_token()

    state = SyncNet().state_dict()
    renamed = {k.replace("netcnnlip.", "lipnet."): v for k, v in state.items()}
    torch.save(renamed, tmp_path / "renamed.model")
    with pytest.raises(SyncNetModelError, match="not the SyncNet state dict") as err:
        token(tmp_path / "renamed.model")
    assert "missing: netcnnlip.0.bias" in str(err.value) and "unexpected: lipnet." in str(err.value)
    small = SyncNet(embed_dim=512).state_dict()  # another embedding size: wrong shapes
    torch.save(small, tmp_path / "small.model")
    with pytest.raises(SyncNetModelError, match="4 wrong shape: netfcaud.3.bias"):
        token(tmp_path / "small.model")
    right = save_weights(tmp_path / "right.model", seed=0, counters=True)  # newer torch's save
    assert token(right).endswith(syncnet_token(right))
    with pytest.raises(SyncNetModelError, match="sha256"):  # not the file params.yaml pins
        token(right, syncnet_sha256="0" * 64)
