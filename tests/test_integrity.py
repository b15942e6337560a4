"""What is stored is never silently wrong, stale, or read from where it should not be.

Each test reproduces one way the pipeline could store or reuse wrong data on real tiny media
(the sample clips, their real extraction), and checks what happens now instead."""

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.cli import main as mer
from pipeline.clip_warnings import read_warnings
from pipeline.config import ConfigError, params_from_dict
from pipeline.interop.csd import import_csd
from pipeline.manifest import ManifestEntry, read_failures, read_manifest, write_manifest
from pipeline.media import probe
from pipeline.paths import Layout
from pipeline.store import FeatureReader, ShardError
from pipeline.store.writer import recover_interrupted_swap
from pipeline.verify import verify
from pipeline.workflow import run_facts_path

NAME = "vids"


def _folder(tmp_path: Path, clips: list[Path], texts: list[str]) -> Path:
    root = tmp_path / "videos"
    root.mkdir()
    for i, (clip, text) in enumerate(zip(clips, texts, strict=True)):
        shutil.copy2(clip, root / f"c{i}.mp4")
        if text is not None:
            (root / f"c{i}.txt").write_text(text)
    return root


def _extract(root: Path, videos: Path, *stages: str, extra: tuple[str, ...] = ()) -> int:
    return mer(["extract", *stages, "--corpus", str(videos), "--adapter", "folder", "--name",
                NAME, "--root", str(root), "--set", "runner.n_jobs=1",
                "--set", f"runner.cache_dir={root / 'cache'}", "-q", *extra])


def _lay(root: Path) -> Layout:
    return Layout(NAME, root)


def _tokens(root: Path, cid: str) -> list[str]:
    with FeatureReader(_lay(root).features_dir("words")) as r:
        return [t.decode() for t in r.read(cid).arrays["tokens"]]


def test_words_follow_the_transcript_not_only_the_media(tmp_path, sample_clips):
    """Defect 1: an edited transcript was served its old vectors from the cache; two clips of
    the same bytes with different transcripts shared one clip's vectors."""
    videos = _folder(tmp_path, [sample_clips[0], sample_clips[0]],
                     ["kids are talking", "dogs are sitting"])
    root = tmp_path / "p"
    assert _extract(root, videos, "words") == 0
    assert _tokens(root, "c0") == ["kids", "are", "talking"]
    assert _tokens(root, "c1") == ["dogs", "are", "sitting"]  # same media bytes
    (videos / "c0.txt").write_text("the door is open")
    assert _extract(root, videos, "words", extra=("--ingest",)) == 0
    assert _tokens(root, "c0") == ["the", "door", "is", "open"]
    metrics = json.loads(run_facts_path(_lay(root).metrics_json("words")).read_text())
    assert metrics["extracted"] == 1 and metrics["reused_from_cache"] == 1


def test_timing_says_even_for_clips_without_word_times(tmp_path, sample_clips):
    videos = _folder(tmp_path, sample_clips[:2], ["kids are talking", None])
    (videos / "c1.srt").write_text("1\n00:00:00,100 --> 00:00:01,000\ndogs are sitting\n")
    root = tmp_path / "p"
    assert _extract(root, videos, "words") == 0
    with FeatureReader(_lay(root).features_dir("words")) as r:
        assert r.read("c0").attrs["timing"] == "even"
        assert r.read("c1").attrs["timing"] == "aligned"


def test_media_replaced_after_ingest_is_a_failure_not_mislabelled(tmp_path, sample_clips):
    """Defect 2: a file replaced after ingest was extracted from its new bytes under the old
    hash, poisoning the cache entry of the old content."""
    videos = _folder(tmp_path, sample_clips[:2], ["a", "b"])
    root = tmp_path / "p"
    assert mer(["ingest", "--corpus", str(videos), "--adapter", "folder", "--name", NAME,
                "--root", str(root), "-q"]) == 0
    original = (videos / "c0.mp4").read_bytes()
    shutil.copy2(sample_clips[5], videos / "c0.mp4")  # replaced, no re-ingest
    assert _extract(root, videos, "mel") == 0
    fails = {f.clip_id: f.reason for f in read_failures(_lay(root).failures_csv("mel"))}
    assert "changed since ingest" in fails["c0"] and "rerun ingest" in fails["c0"]
    with FeatureReader(_lay(root).features_dir("mel")) as r:
        assert r.clip_ids == ["c1"]
    # restored: extracted now from the ingested bytes, equal to a clean run's
    (videos / "c0.mp4").write_bytes(original)
    assert _extract(root, videos, "mel") == 0
    clean = tmp_path / "clean"
    assert _extract(clean, videos, "mel") == 0
    with FeatureReader(_lay(root).features_dir("mel")) as a, \
            FeatureReader(_lay(clean).features_dir("mel")) as b:
        np.testing.assert_array_equal(a.read("c0").arrays["mel"], b.read("c0").arrays["mel"])
    # replaced again after extraction: the cached features are not served for the new bytes
    shutil.copy2(sample_clips[5], videos / "c0.mp4")
    assert _extract(root, videos, "mel") == 0
    fails = {f.clip_id: f.reason for f in read_failures(_lay(root).failures_csv("mel"))}
    assert "changed since ingest" in fails["c0"]


def test_long_transcripts_round_trip_through_the_manifest(tmp_path):
    """Defect 3: a field over 131,072 characters made clips.csv unreadable. (Beside a short
    clip such a transcript is refused at ingest: tests/test_hostile_inputs.py; here the
    clip is long enough to hold it.)"""
    long_text = ("kids are talking by the door " * 9000).strip()  # ~260,000 characters
    entry = ManifestEntry("c0", "c0.mp4", transcript=long_text, duration=3 * 3600.0,
                          meta={"word_times": long_text})
    write_manifest(tmp_path / "clips.csv", [entry])
    [back] = read_manifest(tmp_path / "clips.csv")
    assert back.transcript == long_text and len(long_text) > 131_072
    assert back.meta["word_times"] == long_text


@pytest.mark.parametrize("bad", ["../evil", "/etc/x", ".hidden", "a/b", ""])
def test_names_from_files_are_checked_where_they_are_read(tmp_path, bad, capsys):
    """Defect 4: clip ids from clips.csv or index.json, and corpus names, became paths."""
    csv_path = tmp_path / "clips.csv"
    csv_path.write_text(f"clip_id,path\n{bad},x.mp4\n")
    with pytest.raises(ValueError, match="not a safe name"):
        read_manifest(csv_path)
    fdir = tmp_path / "f"
    fdir.mkdir()
    (fdir / "index.json").write_text(json.dumps({
        "schema_version": 2, "feature": "mel", "clips": {bad: "shard-00000.h5"}, "shards": {}}))
    with pytest.raises(ShardError, match="not a safe name"):
        FeatureReader(fdir)
    with pytest.raises(ConfigError, match="not a safe corpus name"):
        params_from_dict({"corpus": {"name": bad or "."}})
    capsys.readouterr()
    assert mer(["show", "faces", bad or "..", "--root", str(tmp_path), "-q"]) == 2
    assert "is not a safe name" in capsys.readouterr().err


def _one_clip_dir(tmp_path: Path, sample_clips) -> Path:
    videos = _folder(tmp_path, sample_clips[:1], ["kids"])
    root = tmp_path / "p"
    assert _extract(root, videos, "mel") == 0
    return _lay(root).features_dir("mel")


def _shard(fdir: Path) -> Path:
    return fdir / "shard-00000.h5"


@pytest.mark.parametrize("how", ["external_link", "soft_link", "external_storage", "virtual"])
def test_shards_cannot_serve_another_files_bytes(tmp_path, sample_clips, how):
    """Defect 5: external links, external raw storage and virtual datasets were followed."""
    fdir = _one_clip_dir(tmp_path, sample_clips)
    secret = tmp_path / "secret.bin"
    other = tmp_path / "other.h5"
    with h5py.File(_shard(fdir), "r") as f:
        mel = f["clips/c0/mel"][()]
    rng = np.random.default_rng(0).random(mel.shape).astype(mel.dtype)
    rng.tofile(secret)
    with h5py.File(other, "w") as o:
        o["mel"] = rng
    with h5py.File(_shard(fdir), "r+") as f:
        g = f["clips/c0"]
        attrs = dict(g["mel"].attrs)
        del g["mel"]
        if how == "external_link":
            g["mel"] = h5py.ExternalLink(str(other), "mel")
        elif how == "soft_link":
            f["elsewhere"] = rng
            g["mel"] = h5py.SoftLink("/elsewhere")
        elif how == "external_storage":
            g.create_dataset("mel", shape=mel.shape, dtype=mel.dtype,
                             external=[(str(secret), 0, rng.nbytes)])
        else:
            layout = h5py.VirtualLayout(shape=mel.shape, dtype=mel.dtype)
            layout[:] = h5py.VirtualSource(str(other), "mel", shape=mel.shape)
            g.create_virtual_dataset("mel", layout)
        if how != "soft_link":
            for k, v in attrs.items():
                g["mel"].attrs[k] = v
    with FeatureReader(fdir) as r, pytest.raises(ShardError, match="c0"):
        r.read("c0")
    problems = verify(fdir)
    assert any("'mel'" in p and ("link" in p or "external" in p or "virtual" in p)
               for p in problems), problems
    with pytest.raises(ShardError):
        from pipeline.interop.csd import export_csd
        export_csd(fdir, tmp_path / "out.csd")


def test_index_cannot_point_outside_its_directory(tmp_path, sample_clips):
    fdir = _one_clip_dir(tmp_path, sample_clips)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy2(_shard(fdir), elsewhere / "shard-00000.h5")
    index = json.loads((fdir / "index.json").read_text())
    index["clips"]["c0"] = "../elsewhere/shard-00000.h5"
    (fdir / "index.json").write_text(json.dumps(index))
    with pytest.raises(ShardError, match="not a shard file name"):
        FeatureReader(fdir)
    index["clips"]["c0"] = "shard-00000.h5"
    (fdir / "index.json").write_text(json.dumps(index))
    _shard(fdir).unlink()
    _shard(fdir).symlink_to(elsewhere / "shard-00000.h5")
    with FeatureReader(fdir) as r, pytest.raises(ShardError, match="outside"):
        r.read("c0")
    assert any("outside" in p for p in verify(fdir))


def test_verify_reports_what_it_cannot_read_and_never_crashes(tmp_path, sample_clips):
    """Defect 7: unreadable headers were skipped, damage crashed verify, a crafted shape ran
    it without bound."""
    fdir = _one_clip_dir(tmp_path, sample_clips)
    with h5py.File(_shard(fdir), "r+") as f:
        g = f["clips/c0"]
        # a 4 TB array declared in a few hundred bytes
        ds = g.create_dataset("huge", shape=(10**12,), dtype="f4", chunks=(1024,))
        ds.attrs["sha256"] = "0" * 64
    problems = verify(fdir)
    assert any("'huge'" in p and "refusing to read it" in p for p in problems), problems
    # every byte region of the file damaged in turn: verify reports, never raises
    data = bytearray(_shard(fdir).read_bytes())
    good = bytes(data)
    for frac in (0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95):
        i = int(len(data) * frac)
        data[i : i + 64] = bytes(64 * [0xA5])
        _shard(fdir).write_bytes(bytes(data))
        assert verify(fdir), f"damage at {i} went unnoticed"
        data[:] = good


def test_corrupt_cache_entry_is_extracted_again(tmp_path, sample_clips, caplog):
    videos = _folder(tmp_path, sample_clips[:1], ["kids"])
    root = tmp_path / "p"
    assert _extract(root, videos, "mel") == 0
    with FeatureReader(_lay(root).features_dir("mel")) as r:
        want = r.read("c0").arrays["mel"]
    [entry] = list((root / "cache" / NAME / "mel").glob("*/*.h5"))
    with h5py.File(entry, "r+") as f:
        ds = f["clip/mel"]
        ds[0, 0] = ds[0, 0] + 1.0
    # runner.verify_cache false trusts complete entries: the damage reaches the shard, where
    # its stored checksum still gives it away to mer verify
    assert _extract(root, videos, "mel", extra=("--set", "runner.verify_cache=false")) == 0
    assert any("checksum mismatch" in p for p in verify(_lay(root).features_dir("mel")))
    caplog.set_level("WARNING")
    assert _extract(root, videos, "mel") == 0
    assert "is damaged" in caplog.text and "extracting it again" in caplog.text
    with FeatureReader(_lay(root).features_dir("mel")) as r:
        np.testing.assert_array_equal(r.read("c0", verify=True).arrays["mel"], want)


def test_missing_feature_directory_is_reported(tmp_path, sample_clips):
    videos = _folder(tmp_path, sample_clips[:1], ["kids"])
    root = tmp_path / "p"
    assert _extract(root, videos, "mel", "words") == 0
    shutil.rmtree(_lay(root).features_dir("words"))
    assert mer(["verify", "--name", NAME, "--root", str(root), "-q"]) == 1


def test_model_that_cannot_load_fails_the_stage_and_keeps_the_output(tmp_path, sample_clips,
                                                                     capsys):
    """Defect 10: every clip became a failure row, exit 0, and the good output was replaced
    by an empty directory."""
    videos = _folder(tmp_path, sample_clips[:2], ["kids are talking", "dogs"])
    root = tmp_path / "p"
    assert _extract(root, videos, "words") == 0
    before = sorted(FeatureReader(_lay(root).features_dir("words")).clip_ids)
    bad = tmp_path / "vectors.npy"
    bad.write_bytes(b"\x93NUMPY this is not an array")
    (tmp_path / "vectors.vocab.txt").write_text("kids\n")
    (videos / "c0.txt").write_text("changed so the clip is extracted")
    code = _extract(root, videos, "words", extra=(
        "--ingest", "--set", "words.vectors.format=npy", "--set", f"words.vectors.path={bad}"))
    err = capsys.readouterr().err
    assert code == 4 and "vectors.npy" in err and "previous output" in err
    assert sorted(FeatureReader(_lay(root).features_dir("words")).clip_ids) == before


def test_out_keeps_failures_and_metrics_beside_the_shards(tmp_path, sample_clips):
    videos = _folder(tmp_path, sample_clips[:1] + [sample_clips[1]], ["kids", ""])
    root = tmp_path / "p"
    out = tmp_path / "elsewhere"
    assert _extract(root, videos, "words", extra=("--out", str(out))) == 0
    assert (out / "words" / "index.json").exists()
    assert [f.clip_id for f in read_failures(tmp_path / "elsewhere" / "words.failures.csv")] \
        == ["c1"]
    assert json.loads((out / "words.metrics.json").read_text())["failed"] == 1
    assert not _lay(root).failures_csv("words").exists()


def test_ingest_refuses_impossible_times_and_names_dropped_files(tmp_path, sample_clips):
    videos = _folder(tmp_path, sample_clips[:2], [None, "ok"])
    (videos / "c0.srt").write_text("1\n01:00:00,000 --> 01:00:01,000\nfrom another video\n")
    (videos / "list.csv").write_text("path,clip_id,start,end\nc1.mp4,x,0,1\nc0.mp4,x,0,1\n"
                                     "c1.mp4,y,-1,1\nc1.mp4,z,nan,1\nc1.mp4,w,0,99\n")
    root = tmp_path / "p"
    assert mer(["ingest", "--corpus", str(videos), "--adapter", "folder", "--name", NAME,
                "--root", str(root), "-q"]) == 0
    fails = {f.clip_id: f.reason for f in read_failures(_lay(root).failures_csv("ingest"))}
    assert "past the clip's end" in fails["c0"]
    root2 = tmp_path / "p2"
    assert mer(["ingest", "--corpus", str(videos), "--adapter", "folder", "--name", NAME,
                "--root", str(root2), "-q", "--set", "corpus.options={csv: list.csv}"]) == 0
    fails = {f.clip_id: f.reason for f in read_failures(_lay(root2).failures_csv("ingest"))}
    assert "c0.mp4 was dropped, c1.mp4 keeps the id x" in fails["x"]
    assert "starts before the file" in fails["y"]
    assert "not a pair of numbers" in fails["z"]
    assert "past the file's end" in fails["w"]
    assert [e.clip_id for e in read_manifest(_lay(root2).clips_csv)] == ["x"]


def test_conflicting_labels_are_not_resolved_silently(tmp_path, sample_clips):
    videos = _folder(tmp_path, sample_clips[:2], ["a", "b"])
    (videos / "labels.csv").write_text("path,label\nc0.mp4,happy\nc1.mp4,sad\nc0.mp4,angry\n")
    root = tmp_path / "p"
    assert mer(["ingest", "--corpus", str(videos), "--adapter", "folder", "--name", NAME,
                "--root", str(root), "-q"]) == 0
    fails = {f.clip_id: f.reason for f in read_failures(_lay(root).failures_csv("ingest"))}
    assert "two labels: 'happy' (row 2) and 'angry' (row 4)" in fails["c0"]


def test_csd_rows_with_nan_are_marked_not_valid(tmp_path):
    csd = tmp_path / "x.csd"
    with h5py.File(csd, "w") as f:
        g = f.create_group("covarep/data/vid1")
        feats = np.ones((4, 3), np.float32)
        feats[1, 2] = np.nan
        feats[3, 0] = -np.inf
        g["features"] = feats
        g["intervals"] = np.stack([np.arange(4.0), np.arange(1.0, 5.0)], axis=1)
    out = import_csd(csd, tmp_path / "covarep")
    with FeatureReader(out) as r:
        feats = r.read("vid1")
        assert feats.valid.tolist() == [True, False, True, False]
        assert feats.attrs["n_nonfinite_rows"] == 2
    assert verify(out) == []


def test_kill_between_the_two_renames_is_recovered(tmp_path):
    from pipeline.store import ClipFeatures, ShardWriter

    final = tmp_path / "mel"
    with ShardWriter(final, "mel", {}, {}, "mel") as w:
        w.add("a", ClipFeatures({"mel": np.ones((2, 2))}, [0.0, 1.0], [True, True]), "s")
    # what a kill leaves between moving the old directory aside and the new one in place
    os.replace(final, tmp_path / ".mel.old-999999999")
    done = tmp_path / ".mel.writing-999999999"
    shutil.copytree(tmp_path / ".mel.old-999999999", done)
    with pytest.raises(ShardError, match="moves it into place"):
        FeatureReader(final)
    assert recover_interrupted_swap(final)
    assert FeatureReader(final).clip_ids == ["a"]


def test_manifest_writes_fail_loudly_if_they_do_not_read_back(tmp_path):
    entry = ManifestEntry("a", "a.mp4", transcript="x" * 300_000, meta={"word_times": "[]"})
    write_manifest(tmp_path / "clips.csv", [entry])
    assert read_manifest(tmp_path / "clips.csv")[0].transcript == "x" * 300_000


def test_model_tokens_name_content_not_paths_or_times(tmp_path):
    """Defect 9: the words token held the vectors' absolute path and mtime, so two checkouts
    (or two venvs) got different cache keys and shard bytes for the same vectors."""
    from pipeline.text.vectors import VectorsConfig, from_arrays, save_npy, vectors_token

    kv = from_arrays(np.eye(3, dtype=np.float32), ["a", "b", "c"])
    one = save_npy(kv, tmp_path / "one" / "v.npy")
    two = save_npy(kv, tmp_path / "two" / "v.npy")
    os.utime(two, (1, 1))
    tokens = [vectors_token(VectorsConfig(format="npy", path=str(p))) for p in (one, two)]
    assert tokens[0] == tokens[1] and str(tmp_path) not in tokens[0]
    save_npy(from_arrays(np.eye(3, dtype=np.float32) * 2, ["a", "b", "c"]), two)
    assert vectors_token(VectorsConfig(format="npy", path=str(two))) != tokens[0]


def test_csd_import_refuses_links_to_other_files(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["features"] = np.ones((2, 3), np.float32)
    csd = tmp_path / "x.csd"
    with h5py.File(csd, "w") as f:
        g = f.create_group("covarep/data/vid1")
        g["features"] = h5py.ExternalLink(str(other), "features")
        g["intervals"] = np.array([[0.0, 1.0], [1.0, 2.0]])
    with pytest.raises(OSError, match="external link"):
        import_csd(csd, tmp_path / "covarep")


def test_extractors_get_only_the_clip_fields_they_declare():
    """What an extractor reads of a clip is what enters its cache key: the runner hands it
    nothing else (faces with select: side reads the manifest's face_side)."""
    from dataclasses import replace as dc_replace

    from pipeline.features import make_extractor
    from pipeline.features.base import ClipSource, restrict_source, source_key_inputs

    src = ClipSource("c", Path("/x.mp4"), sha256="ab", transcript="hello", speaker="s1",
                     meta={"face_side": "left", "word_times": "[]", "other": "x"})
    words = make_extractor("words")
    got = restrict_source(src, words.source_fields)
    assert got.transcript == "hello" and got.speaker == "" and "other" not in got.meta
    faces = make_extractor("faces")
    assert restrict_source(src, faces.source_fields).meta == {}
    side = make_extractor("faces", dc_replace(faces.config, select="side"))
    assert restrict_source(src, side.source_fields).meta == {"face_side": "left"}
    keys = {source_key_inputs(dc_replace(src, meta={**src.meta, "face_side": s}),
                              side.source_fields)["meta.face_side"] for s in ("left", "right")}
    assert len(keys) == 2


def test_a_cut_slightly_past_the_end_is_kept_with_a_warning(tmp_path, sample_clips):
    videos = _folder(tmp_path, sample_clips[:1], [None])
    seconds = probe(videos / "c0.mp4").duration
    (videos / "list.csv").write_text(
        "path,clip_id,start,end\n"
        f"c0.mp4,inside,0,{seconds - 0.2:.3f}\n"
        f"c0.mp4,edge,0,{seconds + 0.01:.3f}\n"
        f"c0.mp4,over,0.5,{seconds + 0.3:.3f}\n"
    )
    root = tmp_path / "p"
    assert mer(["ingest", "--corpus", str(videos), "--adapter", "folder", "--name", NAME,
                "--root", str(root), "-q", "--set", "corpus.options={csv: list.csv}"]) == 0
    assert sorted(e.clip_id for e in read_manifest(_lay(root).clips_csv)) == [
        "edge", "inside", "over"]
    warned = read_warnings(_lay(root).warnings_csv("ingest"))
    assert [(w.clip_id, w.stage) for w in warned] == [("over", "ingest")]
    assert "passes the file's end" in warned[0].warning and "by 0.300 s" in warned[0].warning
    assert json.loads(_lay(root).metrics_json("ingest").read_text())["warned"] == 1
