"""The words extractor on the sample corpus's transcripts, and the words stage's OOV metric."""

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import load_params
from pipeline.corpora import get_adapter
from pipeline.features import ExtractionError, make_extractor
from pipeline.features.base import ClipSource
from pipeline.manifest import read_failures, read_manifest
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from pipeline.text.alignment import dump_word_times
from pipeline.text.tokenize import tokenize
from pipeline.text.vectors import VectorsConfig, from_arrays, load_vectors
from pipeline.workflow import run_feature, run_ingest


def _src(text, duration=2.0, **meta):
    return ClipSource("c", path=Path("/none"), duration=duration, transcript=text, meta=meta)


@pytest.fixture(scope="module")
def words():
    ex = make_extractor("words")
    ex.ensure_setup()
    return ex


def test_sample_transcripts_embed_with_glove(words, sample_dir):
    kv = load_vectors(VectorsConfig())
    clip = next(iter(get_adapter("sample", sample_dir).clips()))
    feats = words.extract(_src(clip.transcript, duration=2.4))
    toks = [t.decode() for t in feats.arrays["tokens"]]
    assert toks == tokenize(clip.transcript) and len(toks) == 6
    vecs = feats.arrays["vectors"]
    assert vecs.shape == (6, 50) and vecs.dtype == np.float32
    assert feats.arrays["tokens"].dtype.kind == "S" and feats.arrays["oov"].dtype == bool
    for i, t in enumerate(toks):
        np.testing.assert_array_equal(vecs[i], kv[t])
    assert not feats.arrays["oov"].any() and feats.valid.all()
    # no alignment: words spread evenly over the clip
    np.testing.assert_allclose(feats.timestamps, np.arange(6) * 0.4)
    np.testing.assert_allclose(feats.arrays["word_end"], np.arange(1, 7) * 0.4)
    assert feats.attrs["timing"] == "even" and feats.attrs["n_tokens"] == 6


def test_oov_words_get_zero_vectors(words):
    feats = words.extract(_src("the blorptastic door didn't zzqxwv"))
    toks = [t.decode() for t in feats.arrays["tokens"]]
    assert toks == ["the", "blorptastic", "door", "did", "n't", "zzqxwv"]
    oov = feats.arrays["oov"]
    assert oov.tolist() == [False, True, False, False, False, True]
    assert (
        not feats.arrays["vectors"][oov].any() and feats.arrays["vectors"][~oov].any(axis=1).all()
    )
    assert feats.attrs["n_oov"] == 2


def test_qian_han_setting_pads_and_cuts_to_30():
    ex = make_extractor("words", {"max_words": 30, "pad": True})
    short = ex.extract(_src("Kids are talking by the door", duration=2.0))
    assert short.arrays["vectors"].shape == (30, 50) and short.n_steps == 30
    assert short.valid.sum() == 6 and not short.valid[6:].any()
    assert not short.arrays["vectors"][6:].any() and set(short.arrays["tokens"][6:]) == {b""}
    assert not short.arrays["oov"][6:].any()
    assert (short.timestamps[6:] >= short.timestamps[5]).all()
    long_text = " ".join(["door"] * 41)
    cut = ex.extract(_src(long_text))
    assert cut.n_steps == 30 and cut.valid.all() and cut.attrs["n_words_cut"] == 11
    assert cut.attrs["n_tokens"] == 41


def test_word_alignment_gives_the_times(words):
    align = dump_word_times([("Don't", 0.5, 0.9), ("sp", 0.9, 1.2), ("go", 1.2, 1.5)])
    feats = words.extract(_src("ignored when aligned", word_times=align))
    assert [t.decode() for t in feats.arrays["tokens"]] == ["do", "n't", "go"]
    np.testing.assert_allclose(feats.timestamps, [0.5, 0.7, 1.2])
    np.testing.assert_allclose(feats.arrays["word_end"], [0.7, 0.9, 1.5])
    assert feats.attrs["timing"] == "aligned"


def test_empty_or_wordless_transcript_is_a_clip_error(words):
    with pytest.raises(ExtractionError, match="empty transcript"):
        words.extract(_src("   "))
    with pytest.raises(ExtractionError, match="empty transcript"):
        words.extract(_src("[LAUGHTER] (sighs) ..."))
    with pytest.raises(ExtractionError, match="bad word alignment"):
        words.extract(_src("hi", word_times="{not json"))


def test_stage_reports_corpus_oov_rate(project_factory, sample_clips, tmp_path):
    # a tiny GloVe text file: only some of the sample's words have vectors
    vocab = ["kids", "are", "the", "door", "dogs"]
    rng = np.random.default_rng(0)
    glove = tmp_path / "tiny_glove.txt"
    from_arrays(rng.standard_normal((5, 4)).astype(np.float32), vocab).save_word2vec_format(
        str(glove), binary=False, write_header=False
    )
    clips = [c for c in sample_clips if c.parent.name in ("Actor_01", "Actor_02")][::8]
    root = project_factory(
        clips, runner={"n_jobs": 1}, words={"vectors": {"format": "glove", "path": str(glove)}}
    )
    params = load_params(root / "params.yaml")
    assert run_ingest(params, root) == 0
    assert run_feature(params, "words", root, progress=False) == 0
    lay = Layout("sample", root)
    entries = read_manifest(lay.clips_csv)
    tokens = [t for e in entries for t in tokenize(e.transcript)]
    n_oov = sum(t not in vocab for t in tokens)
    metrics = json.loads(lay.metrics_json("words").read_text())
    assert metrics["tokens"] == len(tokens) and metrics["oov_tokens"] == n_oov > 0
    assert metrics["oov_rate"] == round(n_oov / len(tokens), 4)
    assert read_failures(lay.failures_csv("words")) == []
    with FeatureReader(lay.features_dir("words")) as r:
        assert sorted(r.clip_ids) == sorted(e.clip_id for e in entries)
        f = r.read(entries[0].clip_id, verify=True)
        assert f.arrays["vectors"].shape[1] == 4 and f.arrays["tokens"].dtype.kind == "S"
    # a rerun reuses every clip from the cache and reports the same corpus numbers
    assert run_feature(params, "words", root, progress=False) == 0
    again = json.loads(lay.metrics_json("words").read_text())
    run = json.loads(lay.metrics_json("words").with_suffix(".run.json").read_text())
    assert run["reused_from_cache"] == len(entries) and again == metrics


def test_missing_vectors_stop_the_stage_before_any_clip(project_factory, sample_clips, tmp_path):
    missing = tmp_path / "glove.840B.300d.txt"
    root = project_factory(
        sample_clips[:1],
        runner={"n_jobs": 1},
        words={"vectors": {"format": "glove", "path": str(missing)}},
    )
    params = load_params(root / "params.yaml")
    assert run_ingest(params, root) == 0
    with pytest.raises(FileNotFoundError, match="glove.840B.300d.txt.*nlp.stanford.edu"):
        run_feature(params, "words", root, progress=False)
    assert not Layout("sample", root).features_dir("words").exists()
