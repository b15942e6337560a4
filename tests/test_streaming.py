"""Long clips in bounded memory: audio decoded as a stream, spectra framed block by block, and
clip outputs that spill to disk past ``runner.spill_mb``, all giving what one pass over the
whole clip gives."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import soxr
from threadpoolctl import threadpool_limits
from visual_helpers import face_gap_clip

from pipeline.config import load_params
from pipeline.features import make_extractor
from pipeline.features.base import ClipSource
from pipeline.features.framing import FrameStream
from pipeline.media import probe
from pipeline.media.audio import AudioDecodeError, iter_audio
from pipeline.media.synthetic import encode_video, talking_head_frames
from pipeline.paths import Layout
from pipeline.store import ClipSink, FeatureReader, read_clip_group
from pipeline.store.format import array_checksum
from pipeline.workflow import run_feature, run_ingest


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """25 s of a gliding tone with noise (48 kHz AAC) under a small talking-head video."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    sr = 48000
    t = np.arange(int(25.3 * sr)) / sr
    rng = np.random.default_rng(1)
    audio = 0.3 * np.sin(2 * np.pi * (200 + 50 * np.sin(t)) * t)
    audio = (audio + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    frames = talking_head_frames(int(25.3 * 5), width=96, height=96, fps=5)
    return encode_video(path, frames, fps=5, audio=audio, sample_rate=sr)


def _frames_of(signal: np.ndarray, n_fft: int, hop: int, pad: int, min_length: int):
    y = np.concatenate([signal, np.zeros(max(0, min_length - len(signal)))])
    y = np.pad(y, pad)
    n = 1 + (len(y) - n_fft) // hop
    return np.stack([y[k * hop : k * hop + n_fft] for k in range(n)])


@pytest.mark.parametrize("n_fft,hop,pad", [(256, 128, 0), (2048, 276, 1024), (64, 200, 32)])
def test_frame_stream_gives_the_frames_of_the_whole_signal(n_fft, hop, pad):
    rng = np.random.default_rng(0)
    for length in (10, n_fft, 5000):
        signal = rng.standard_normal(length).astype(np.float32)
        cuts = np.sort(rng.integers(0, length, size=7))
        fs = FrameStream(n_fft, hop, pad=pad, min_length=n_fft)
        got = []
        for block in np.split(signal, cuts):
            if (stretch := fs.push(block)) is not None:
                got.append(_frames_of(stretch, n_fft, hop, 0, 0))
        if (stretch := fs.finish()) is not None:
            got.append(_frames_of(stretch, n_fft, hop, 0, 0))
        want = _frames_of(signal, n_fft, hop, pad, n_fft)
        np.testing.assert_array_equal(np.concatenate(got), want)
        assert fs.n_frames == len(want) and fs.n_samples == length


def test_streamed_resampling_equals_one_pass_over_the_whole_file(long_clip):
    native = list(iter_audio(long_clip, 48000, block_seconds=4.0))
    whole = np.concatenate(native)
    one_pass = soxr.resample(whole, 48000, 16000)
    blocks = list(iter_audio(long_clip, 16000, block_seconds=4.0))
    assert len(blocks) >= 6
    assert max(len(b) for b in blocks) <= 4.0 * 16000 + 2048  # a block, not the file
    np.testing.assert_array_equal(np.concatenate(blocks), one_pass)
    # A cut holds the same samples as the same stretch of the whole file, at the native rate.
    cut = np.concatenate(list(iter_audio(long_clip, 48000, start=7.5, end=19.25)))
    np.testing.assert_array_equal(cut, whole[int(7.5 * 48000) : int(19.25 * 48000)])
    with pytest.raises(AudioDecodeError, match="no audio between"):
        list(iter_audio(long_clip, 16000, start=40.0, end=41.0))


def _sink_blocks(rng):
    for n in (3, 0, 50, 7, 1):
        yield (
            {"x": rng.standard_normal((n, 4, 4)).astype(np.float32),
             "k": rng.integers(0, 9, n).astype(np.int32)},
            np.arange(n, dtype=float),
            rng.random(n) > 0.5,
        )


@pytest.mark.parametrize("spill_bytes", [10**9, 600])
def test_clip_sink_writes_what_one_whole_write_would(tmp_path, spill_bytes):
    rng = np.random.default_rng(3)
    blocks = list(_sink_blocks(rng))
    with h5py.File(tmp_path / "c.h5", "w") as f:
        sink = ClipSink(f.create_group("clip"), spill_bytes=spill_bytes, compression="gzip")
        for arrays, times, valid in blocks:
            sink.append(arrays, times, valid)
        assert sink.spilled == (spill_bytes == 600)
        # Rows can be read and rewritten after the fact (the faces stage's gap filling).
        all_k = np.concatenate([b[0]["k"] for b in blocks])
        np.testing.assert_array_equal(sink.take("k", [55, 0, 0]), all_k[[55, 0, 0]])
        sink.put("k", np.array([5, 1]), np.array([-2, -1], np.int32))
        sink.put("valid", np.array([2]), np.array([True]))
        sink.close({"note": "hi"}, source_sha256="abc", cache_key="key")
    want_x = np.concatenate([b[0]["x"] for b in blocks])
    want_k = np.concatenate([b[0]["k"] for b in blocks])
    want_k[[1, 5]] = [-1, -2]
    want_valid = np.concatenate([b[2] for b in blocks])
    want_valid[2] = True
    with h5py.File(tmp_path / "c.h5", "r") as f:
        g = f["clip"]
        feats = read_clip_group(g, verify=True)  # checksums match the arrays
        assert g.attrs["n_steps"] == len(want_x) and g.attrs["source_sha256"] == "abc"
        assert g["valid"].dtype == np.uint8
        x_sha = g["x"].attrs["sha256"]
        if spill_bytes == 600:
            assert g["x"].maxshape == (None, 4, 4) and g["x"].compression == "gzip"
    np.testing.assert_array_equal(feats.arrays["x"], want_x)
    np.testing.assert_array_equal(feats.arrays["k"], want_k)
    np.testing.assert_array_equal(feats.valid, want_valid)
    assert feats.attrs["note"] == "hi"
    assert x_sha == array_checksum(want_x)


def test_clip_sink_refuses_ragged_or_renamed_blocks():
    sink = ClipSink()
    sink.append({"x": np.zeros((2, 3))}, np.zeros(2), np.ones(2, bool))
    with pytest.raises(ValueError, match="expected 4 rows"):
        sink.append({"x": np.zeros((3, 3))}, np.zeros(4), np.ones(4, bool))
    with pytest.raises(ValueError, match="differ from the first block"):
        sink.append({"y": np.zeros((1, 3))}, np.zeros(1), np.ones(1, bool))
    with pytest.raises(ValueError, match="object dtype"):
        ClipSink().append({"x": np.array([None])}, np.zeros(1), np.ones(1, bool))
    with pytest.raises(ValueError, match="reserved"):
        ClipSink().append({"valid": np.zeros(1)}, np.zeros(1), np.ones(1, bool))


def test_long_clip_spills_to_disk_and_gives_the_in_memory_result(
    project_factory, long_clip, tmp_path
):
    """A 25 s clip and a face clip with a gap, through the real stages with spill_mb so small
    that every clip streams to disk: the shards hold exactly what extract() returns in
    memory, the gap-filled rows included."""
    root = project_factory(
        [],
        corpus={"adapter": "folder", "name": "long"},
        runner={"n_jobs": 1, "spill_mb": 0.05},
        faces={"fill_gaps": 20, "batch_size": 8},
    )
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "long.mp4").write_bytes(long_clip.read_bytes())
    face_gap_clip(corpus / "gap.mp4", seconds=1.5, gap=(0.5, 0.8), size=192)
    params = load_params(root / "params.yaml")
    assert run_ingest(params, root) == 0
    lay = Layout("long", root=root)
    for feature, clips in (("spectrogram", ("long", "gap")), ("mel", ("long",)),
                           ("faces", ("gap",))):
        assert run_feature(params, feature, root, progress=False) == 0
        ex = make_extractor(feature, params.section(feature))
        with FeatureReader(lay.features_dir(feature)) as r:
            for cid in clips:
                path = corpus / f"{cid}.mp4"
                info = probe(path)
                src = ClipSource(cid, path, fps=info.fps, duration=info.duration)
                with threadpool_limits(limits=1):  # as the runner extracts
                    want = ex.extract(src)
                got = r.read(cid, verify=True)
                assert got.arrays.keys() == want.arrays.keys()
                for k in want.arrays:
                    np.testing.assert_array_equal(got.arrays[k], want.arrays[k], err_msg=k)
                np.testing.assert_array_equal(got.timestamps, want.timestamps)
                np.testing.assert_array_equal(got.valid, want.valid)
                if feature == "spectrogram" and cid == "long":
                    assert len(got.timestamps) == 25  # 25.3 s in 1.024 s segments, tail kept
                if feature == "faces":
                    assert got.attrs["n_filled"] > 0 and got.arrays["filled"].any()
                    filled = np.nonzero(got.arrays["filled"])[0]
                    assert got.arrays["crops"][filled].any()  # copied from a neighbour
        # The streaming stages' outputs spilled: their datasets are the resizable kind. (mel
        # holds its small output in memory; its audio is still read as a stream.)
        shard = next(lay.features_dir(feature).glob("shard-*.h5"))
        with h5py.File(shard, "r") as f:
            primary = f.attrs["primary"]
            spilled = f["clips"][clips[0]][primary].maxshape[0] is None
            assert spilled == (feature != "mel")
