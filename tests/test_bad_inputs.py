"""Bad inputs on the audio and text path: each is a clear per-clip record, the rest go on."""

import csv
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.config import load_params
from pipeline.manifest import read_manifest
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from pipeline.text.vectors import VectorsConfig, VectorsError, load_vectors
from pipeline.workflow import run_feature, run_ingest


def _encode_audio(dst: Path, wav: np.ndarray, rate: int = 48000) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(dst), "w") as c:
        s = c.add_stream("aac", rate=rate, layout="mono")
        for i in range(0, len(wav), 1024):
            fr = av.AudioFrame.from_ndarray(wav[None, i : i + 1024].astype(np.float32),
                                            format="fltp", layout="mono")
            fr.sample_rate = rate
            for pkt in s.encode(fr):
                c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)
    return dst


def test_folder_corpus_with_odd_names_and_tiny_and_broken_files(
    project_factory, sample_clips, tmp_path
):
    root = project_factory([], corpus={"adapter": "folder", "name": "mine"},
                           runner={"n_jobs": 1})
    corpus = root / "corpus"
    (corpus / "Zoë Saldaña").mkdir(parents=True)
    (corpus / "Zoë Saldaña" / "take 1 (final).mp4").write_bytes(sample_clips[0].read_bytes())
    (corpus / "日本語.mp4").write_bytes(sample_clips[1].read_bytes())
    # 50 ms of sound: shorter than one mel window (2048 samples at 22.05 kHz is 93 ms)
    rng = np.random.default_rng(0)
    _encode_audio(corpus / "blip.m4a", 0.1 * rng.standard_normal(2400))
    (corpus / "notes.mp4").write_text("this is not a video")
    (corpus / "empty.wav").write_bytes(b"")

    params = load_params(root / "params.yaml")
    assert run_ingest(params, root) == 0
    lay = Layout("mine", root=root)
    entries = {e.clip_id: e for e in read_manifest(lay.clips_csv)}
    assert len(entries) == 3  # the two videos and the blip; the broken files are failures
    assert "Zoe_Saldana_take_1_final" in entries and "blip" in entries
    assert entries["Zoe_Saldana_take_1_final"].path == "Zoë Saldaña/take 1 (final).mp4"
    assert any(c.startswith("clip_") for c in entries)  # 日本語.mp4: an id from its hash
    with open(lay.failures_csv("ingest")) as f:
        ingest_fail = {r["clip_id"]: r["reason"] for r in csv.DictReader(f)}
    assert "not a readable media file" in ingest_fail["notes"]
    assert "empty" in ingest_fail["empty"]

    for feature in ("mel", "spectrogram"):
        assert run_feature(params, feature, root, progress=False) == 0
        with FeatureReader(lay.features_dir(feature)) as r:
            assert set(r.clip_ids) == set(entries)
            blip = r.read("blip")
            assert blip.valid.sum() >= 1  # a short clip still gives one real frame/segment
            for cid in r.clip_ids:
                assert np.isfinite(next(iter(r.read(cid).arrays.values()))).all()


def test_vectors_file_in_the_wrong_format_is_a_clear_error(tmp_path):
    bad = tmp_path / "vectors.bin"
    bad.write_bytes(b"\x00\x01garbage that is not word2vec\n" * 10)
    with pytest.raises(VectorsError, match="cannot read word2vec vectors"):
        load_vectors(VectorsConfig(format="word2vec", path=str(bad)))
    text = tmp_path / "glove.txt"
    text.write_text("the 0.1 0.2\ncat 0.3\n")  # ragged rows
    with pytest.raises(VectorsError, match="cannot read glove vectors"):
        load_vectors(VectorsConfig(format="glove", path=str(text)))
