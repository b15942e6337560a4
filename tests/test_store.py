"""Sharded HDF5 store: round trip, shard bounds, atomicity, and a reader written from the doc."""

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.store import ClipFeatures, FeatureReader, ShardError, ShardWriter

REPO = Path(__file__).resolve().parents[1]


def _feats(rng, t: int, d: int = 8) -> ClipFeatures:
    return ClipFeatures(
        arrays={"x": rng.standard_normal((t, d)).astype(np.float32),
                "n": np.arange(t, dtype=np.int32)},
        timestamps=np.arange(t) * 0.1,
        valid=np.arange(t) % 3 != 0,
        attrs={"sample_rate": 16000},
    )


def _write(out: Path, clips: dict[str, ClipFeatures], max_bytes: int = 2**30) -> None:
    with ShardWriter(out, "toy", {"a": 1}, {"libraries": {}}, "x", max_bytes=max_bytes) as w:
        for cid, f in clips.items():
            w.add(cid, f, source_sha256="ab" * 32)


def test_round_trip_bounded_shards_and_checksums(tmp_path):
    rng = np.random.default_rng(0)
    clips = {f"c{i}": _feats(rng, 10 + i) for i in range(7)}
    _write(tmp_path, clips, max_bytes=1500)
    shards = sorted(p.name for p in tmp_path.glob("shard-*.h5"))
    assert len(shards) > 1, "shard size bound not applied"
    for s in shards:
        with h5py.File(tmp_path / s) as f:
            data = sum(ds.nbytes for g in f["clips"].values() for k, ds in g.items()
                       if k not in ("timestamps", "valid"))
            assert f.attrs["complete"] and (data <= 1500 or f.attrs["n_clips"] == 1)
    with FeatureReader(tmp_path) as r:
        assert r.clip_ids == list(clips)
        for cid, want in clips.items():
            got = r.read(cid, verify=True)
            np.testing.assert_array_equal(got.arrays["x"], want.arrays["x"])
            np.testing.assert_array_equal(got.timestamps, want.timestamps)
            np.testing.assert_array_equal(got.valid, want.valid)
            assert got.attrs["sample_rate"] == 16000 and got.attrs["source_sha256"] == "ab" * 32
        assert r.shard_attrs()["params"] == {"a": 1}


def test_interrupted_write_leaves_no_complete_looking_output(tmp_path):
    rng = np.random.default_rng(1)
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(tmp_path, "toy", {}, {}, "x", max_bytes=500) as w:
            for i in range(5):
                w.add(f"c{i}", _feats(rng, 20), "00")
            raise RuntimeError("boom")
    assert not (tmp_path / "index.json").exists()
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ShardError, match="not finished"):
        FeatureReader(tmp_path)


def test_rewrite_removes_old_index_first_and_stale_shards(tmp_path):
    rng = np.random.default_rng(2)
    _write(tmp_path, {f"c{i}": _feats(rng, 50) for i in range(6)}, max_bytes=2000)
    assert len(list(tmp_path.glob("shard-*.h5"))) > 1
    _write(tmp_path, {"only": _feats(rng, 5)})
    assert sorted(p.name for p in tmp_path.glob("shard-*.h5")) == ["shard-00000.h5"]
    assert FeatureReader(tmp_path).clip_ids == ["only"]


def test_truncated_shard_and_corrupt_array_are_reported(tmp_path):
    rng = np.random.default_rng(3)
    _write(tmp_path, {"a": _feats(rng, 2000)})
    shard = tmp_path / "shard-00000.h5"
    # flip bytes inside the stored data: the checksum catches it
    with h5py.File(shard, "r+") as f:
        ds = f["clips/a/x"]
        arr = ds[()]
        arr[5, 3] += 1.0
        ds[...] = arr
    with pytest.raises(ShardError, match="checksum mismatch"):
        FeatureReader(tmp_path).read("a", verify=True)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 3])
    with pytest.raises(ShardError, match="cannot"):
        FeatureReader(tmp_path).read("a")


def test_object_arrays_and_misaligned_arrays_are_refused():
    with pytest.raises(ValueError, match="object dtype"):
        ClipFeatures({"s": np.array(["a", None], dtype=object)}, [0, 1], [1, 1])
    with pytest.raises(ValueError, match="time first"):
        ClipFeatures({"x": np.zeros((3, 2))}, [0, 1], [1, 1])


def test_newer_schema_is_refused_with_a_reason(tmp_path):
    _write(tmp_path, {"a": _feats(np.random.default_rng(4), 3)})
    idx = json.loads((tmp_path / "index.json").read_text())
    idx["schema_version"] = 99
    (tmp_path / "index.json").write_text(json.dumps(idx))
    with pytest.raises(ShardError, match="schema version 99 is not readable"):
        FeatureReader(tmp_path)


def test_reader_written_from_the_format_doc_alone(tmp_path):
    """Run the plain-h5py snippet of docs/FORMAT.md (no project import) on a real shard."""
    rng = np.random.default_rng(5)
    clips = {"clip_1": _feats(rng, 12)}
    _write(tmp_path, clips)
    doc = (REPO / "docs" / "FORMAT.md").read_text()
    snippet = re.search(r"## Reading a shard with plain h5py\s+```python\n(.*?)```", doc, re.S)
    assert snippet, "docs/FORMAT.md lost its plain-h5py reading example"
    code = snippet.group(1).replace('"data/features/sample/mel"', repr(str(tmp_path)))
    assert "pipeline" not in code
    scope: dict = {}
    exec(compile(code, "FORMAT.md", "exec"), scope)  # noqa: S102 - the documented example
    np.testing.assert_array_equal(scope["mel"], clips["clip_1"].arrays["x"])
    np.testing.assert_array_equal(scope["t"], clips["clip_1"].timestamps)
    np.testing.assert_array_equal(scope["valid"], clips["clip_1"].valid)
