"""Inputs a hostile or careless user leaves behind, on real files: names that would become
paths outside the project, FIFOs where media were, bad rows of labels.csv, transcripts that
cannot belong to their clip, separate audio files of another length, and the smaller doors.
Each is a failure or warning row naming the file (and line), or one clear line, never a
hang, a crash or silently wrong output."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.cli import main as mer
from pipeline.clip_warnings import read_warnings
from pipeline.config import ConfigError, params_from_dict
from pipeline.manifest import read_failures, read_manifest
from pipeline.paths import Layout
from pipeline.store import ClipFeatures, FeatureReader, ShardWriter
from pipeline.verify import verify
from tests.media import write_wav
from tests.miniatures import iemocap

BIN = Path(sys.executable).parent
NAME = "v"


def _folder(tmp_path: Path, files: dict[str, Path | bytes | str]) -> Path:
    """A corpus folder: each relative path gets a copy of a file, or the bytes/text given."""
    root = tmp_path / "videos"
    for rel, what in files.items():
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(what, Path):
            shutil.copy2(what, dst)
        elif isinstance(what, bytes):
            dst.write_bytes(what)
        else:
            dst.write_text(what)
    return root


def _args(root: Path, videos: Path, *more: str) -> list[str]:
    return ["--corpus", str(videos), "--adapter", "folder", "--name", NAME, "--root",
            str(root), "--set", "runner.n_jobs=1", "--set", f"runner.cache_dir={root / 'cache'}",
            "-q", *more]


def _ingest(root: Path, videos: Path, *more: str) -> int:
    return mer(["ingest", *_args(root, videos, *more)])


def _fails(root: Path, stage: str = "ingest") -> dict[str, str]:
    return {f.clip_id: f.reason for f in read_failures(Layout(NAME, root).failures_csv(stage))}


def _run_bounded(cwd: Path, args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """``mer ARGS`` in its own process group, killed whole if it runs past ``timeout`` (a
    hang is a test failure, not a stuck suite)."""
    p = subprocess.Popen([str(BIN / "mer"), *args], cwd=cwd, text=True, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail(f"mer {' '.join(args)} still ran after {timeout} s (it hangs)")
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


# -- 5: names from parameters never reach a path unchecked ------------------------------------
def test_fold_scheme_names_cannot_point_outside(tmp_path, sample_clips):
    videos = _folder(tmp_path, {f"p{i}/c{i}.mp4": c for i, c in enumerate(sample_clips[:4])})
    root = tmp_path / "p"
    assert _ingest(root, videos) == 0
    scheme = '{name: "../../../../escaped", kind: stratified_kfold, n_folds: 2}'
    assert mer(["folds", *_args(root, videos, "--set", f"folds.schemes=[{scheme}]")]) == 2
    assert not list(tmp_path.rglob("escaped.json"))
    with pytest.raises(ConfigError, match="folds.schemes\\[0\\].name"):
        params_from_dict({"folds": {"schemes": [{"name": "a/b", "kind": "kfold_811"}]}})
    with pytest.raises(ConfigError, match="train.scheme"):
        params_from_dict({"train": {"scheme": "../../models"}})


# -- 6: a FIFO where a file was never blocks -------------------------------------------------
def test_fifo_where_media_was_is_a_failure_row_not_a_hang(tmp_path, sample_clips):
    videos = _folder(tmp_path, {"c0.mp4": sample_clips[0], "c1.mp4": sample_clips[1]})
    root = tmp_path / "p"
    assert _ingest(root, videos) == 0
    (videos / "c1.mp4").unlink()
    os.mkfifo(videos / "c1.mp4")  # no writer: a plain open() would wait forever
    p = _run_bounded(root, ["extract", "spectrogram", *_args(root, videos)[:-1]])
    assert p.returncode == 0, p.stderr
    fails = _fails(root, "spectrogram")
    assert list(fails) == ["c1"] and "FIFO" in fails["c1"], fails
    with FeatureReader(Layout(NAME, root).features_dir("spectrogram")) as r:
        assert r.clip_ids == ["c0"]


def test_fifo_media_audio_and_transcript_at_ingest(tmp_path, sample_clips):
    videos = _folder(tmp_path, {"a.mp4": sample_clips[0], "b.mp4": sample_clips[1],
                                "c.mp4": sample_clips[2]})
    os.mkfifo(videos / "fifo.mp4")  # media
    os.mkfifo(videos / "b.txt")  # b's transcript
    os.mkfifo(videos / "c.wav")  # c's separate audio file
    (videos / "list.csv").write_text("path,audio_path\na.mp4,\nb.mp4,\nc.mp4,c.wav\n"
                                     "fifo.mp4,\n")
    root = tmp_path / "p"
    assert _ingest(root, videos, "--set", "corpus.options={csv: list.csv}") == 0
    fails = _fails(root)
    assert sorted(fails) == ["b", "c", "fifo"], fails
    assert "fifo.mp4 is a FIFO" in fails["fifo"]
    assert "b.txt is a FIFO" in fails["b"]
    assert "its audio file c.wav is a FIFO" in fails["c"]
    assert [e.clip_id for e in read_manifest(Layout(NAME, root).clips_csv)] == ["a"]
    # without a clip list the folder's FIFO is reported too, not left out in silence
    (videos / "list.csv").unlink()
    assert _ingest(root, videos) == 0
    assert "fifo.mp4 is a FIFO" in _fails(root)["fifo"]


def test_fifo_shard_never_blocks_a_reader(tmp_path):
    fdir = tmp_path / "feats" / "mel"
    feats = ClipFeatures({"mel": np.ones((3, 2), np.float32)}, np.arange(3) * 0.1,
                         np.ones(3, bool))
    with ShardWriter(fdir, feature="mel", params={}, provenance={}, primary="mel") as w:
        w.add("c0", feats, "ab" * 32)
    (fdir / "shard-00000.h5").unlink()
    os.mkfifo(fdir / "shard-00000.h5")
    p = _run_bounded(tmp_path, ["verify", str(fdir)], timeout=120)
    assert p.returncode == 1 and "FIFO" in p.stdout, (p.stdout, p.stderr)
    p = _run_bounded(tmp_path, ["inspect", str(fdir)], timeout=120)
    assert p.returncode in (3, 4) and "FIFO" in p.stderr and p.stderr.count("\n") == 1
    (fdir / "index.json").unlink()
    os.mkfifo(fdir / "index.json")
    p = _run_bounded(tmp_path, ["verify", str(fdir)], timeout=120)
    assert p.returncode == 1 and "FIFO" in p.stdout


# -- 7: labels.csv rows that cannot be used ---------------------------------------------------
def test_bad_labels_rows_are_failure_rows_and_the_rest_ingest(tmp_path, sample_clips):
    videos = _folder(tmp_path, {"alice/take1.mp4": sample_clips[0],
                                "bob/take1.mp4": sample_clips[1],
                                "carol/x.mp4": sample_clips[2]})
    (videos / "labels.csv").write_bytes(
        b"path,label\n"
        b"alice/take1.mp4,happy\n"       # line 2: fine
        b",sad\n"                        # line 3: empty path
        b".,sad\n"                       # line 4: names no file
        b"dave/none.mp4,angry\n"         # line 5: no such clip
        b"bob/take1.mp4,h\xe4ppy\n"      # line 6: Latin-1, not UTF-8
        b"carol/x.mp4,calm\n"            # line 7: fine
    )
    root = tmp_path / "p"
    assert _ingest(root, videos) == 0
    labels = {e.clip_id: e.label for e in read_manifest(Layout(NAME, root).clips_csv)}
    assert labels == {"alice_take1": "happy", "bob_take1": "", "carol_x": "calm"}
    reasons = list(_fails(root).values())
    for line, what in ((3, "empty path"), (4, "'.'"), (5, "dave_none"), (6, "not UTF-8")):
        said = [r for r in reasons if f"labels.csv: line {line}:" in r]
        assert len(said) == 1 and what in said[0], (line, reasons)
    assert len(reasons) == 4
    # a header that is not UTF-8: one line naming the file
    (videos / "labels.csv").write_bytes(b"p\xe4th,label\nalice/take1.mp4,happy\n")
    assert _ingest(root, videos) == 2


# -- 8: transcripts that cannot belong to their clip ------------------------------------------
def test_transcripts_that_cannot_belong_to_the_clip(tmp_path, sample_clips):
    words = "kids are talking by the door "
    huge = (words * (25 * 2**20 // len(words))).encode()  # a 25 MB .txt beside a 2.4 s clip
    videos = _folder(tmp_path, {f"c{i}.mp4": c for i, c in enumerate(sample_clips[:4])})
    (videos / "c0.txt").write_bytes(huge)
    (videos / "c1.txt").write_text(words * 2000)  # 60 kB, 12,000 words
    (videos / "c2.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00 binary")
    (videos / "c3.txt").write_text("Kids are talking by the door.")
    root = tmp_path / "p"
    # words memory: the peak of the whole run (ingest and the words stage, one process),
    # which may not map more than 3 GB (the unbounded words stage wanted 4 GB here)
    run = ("import resource, subprocess, sys; "
           "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
           "subprocess.run(sys.argv[1:]); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    p = subprocess.run([sys.executable, "-c", run, str(BIN / "mer"), "extract", "words",
                        *_args(root, videos)], capture_output=True, text=True, timeout=900)
    peak_mb = int(p.stdout.split()[-1]) / 1024
    assert peak_mb < 1024, f"{peak_mb:.0f} MB"
    fails = _fails(root)
    assert sorted(fails) == ["c0", "c1", "c2"], fails
    assert "c0.txt is 25.0 MB" in fails["c0"]
    assert "c1.txt" in fails["c1"] and "12000 words" in fails["c1"]
    assert "cannot belong to this clip" in fails["c1"]
    assert "c2.txt holds binary bytes" in fails["c2"]
    with FeatureReader(Layout(NAME, root).features_dir("words")) as r:
        assert r.clip_ids == ["c3"] and r.read("c3").n_steps == 6


def test_words_stage_refuses_what_a_hand_edited_manifest_gives_it():
    """clips.csv can be edited: the words stage checks the bound too, before tokenising."""
    from pipeline.features import ExtractionError, make_extractor
    from pipeline.features.base import ClipSource

    text = "kids are talking by the door " * 70_000  # 2 MB, 420,000 words
    source = ClipSource("c", path=Path("/none"), duration=2.4, transcript=text)
    with pytest.raises(ExtractionError, match="cannot belong to this clip"):
        make_extractor("words").extract(source)


# -- 11: a separate audio file of another length, named as the manifest names it -------------
def test_separate_audio_of_another_length_warns_at_ingest(tmp_path, sample_clips):
    from pipeline.media import probe

    videos = _folder(tmp_path, {"v0.mp4": sample_clips[0], "v1.mp4": sample_clips[1],
                                "v2.mp4": sample_clips[2], "v3.mp4": sample_clips[3],
                                "real/garbage.wav": b"RIFF not a wav at all" * 4})
    seconds = probe(videos / "v0.mp4").duration
    write_wav(sample_clips[4], videos / "a" / "long.wav", seconds + 3.0)
    write_wav(sample_clips[5], videos / "real" / "target.wav", seconds - 1.5)
    write_wav(sample_clips[6], videos / "a" / "same.wav", probe(videos / "v3.mp4").duration)
    (videos / "links").mkdir()
    (videos / "links" / "short.wav").symlink_to(videos / "real" / "target.wav")
    (videos / "links" / "broken.wav").symlink_to(videos / "real" / "garbage.wav")
    (videos / "list.csv").write_text("path,audio_path\nv0.mp4,a/long.wav\n"
                                     "v1.mp4,links/short.wav\nv2.mp4,links/broken.wav\n"
                                     "v3.mp4,a/same.wav\n")
    root = tmp_path / "p"
    assert _ingest(root, videos, "--set", "corpus.options={csv: list.csv}") == 0
    warned = {w.clip_id: w.warning for w in read_warnings(Layout(NAME, root).warnings_csv(
        "ingest"))}
    assert sorted(warned) == ["v0", "v1"], warned
    assert "a/long.wav lasts" in warned["v0"] and "v0.mp4" in warned["v0"]
    assert "links/short.wav lasts" in warned["v1"] and "target" not in warned["v1"]
    fails = _fails(root)
    assert list(fails) == ["v2"] and "links/broken.wav" in fails["v2"]
    assert "garbage" not in fails["v2"] and str(tmp_path) not in fails["v2"], fails["v2"]
    assert sorted(e.clip_id for e in read_manifest(Layout(NAME, root).clips_csv)) == [
        "v0", "v1", "v3"]


# -- 12: the smaller doors ---------------------------------------------------------------------
def test_second_iemocap_transcript_line_is_reported(tmp_path, sample_clips):
    corpus = tmp_path / "IEMOCAP"
    iemocap(corpus, sample_clips)
    trans = corpus / "Session1/dialog/transcriptions/Ses01F_impro01.txt"
    trans.write_text(trans.read_text() + "Ses01F_impro01_F000 [000.1000-000.8000]: Pardon?\n")
    root = tmp_path / "p"
    assert mer(["ingest", "--corpus", str(corpus), "--adapter", "iemocap", "--name", NAME,
                "--root", str(root), "-q"]) == 0
    fails = _fails(root)
    assert "two transcripts (lines 1 and 3)" in fails["Ses01F_impro01_F000"], fails
    ids = {e.clip_id for e in read_manifest(Layout(NAME, root).clips_csv)}
    assert "Ses01F_impro01_F000" not in ids and "Ses01F_impro01_M000" in ids


def test_failures_are_written_when_every_clip_fails(tmp_path, capsys):
    videos = _folder(tmp_path, {"broken.mp4": b"\x00\x00\x00\x18ftypmp42 not a video" * 9})
    root = tmp_path / "p"
    capsys.readouterr()
    assert _ingest(root, videos) == 3
    err = capsys.readouterr().err
    assert err.startswith("mer: ingest: none of the 1 clip(s)") and err.count("\n") == 1
    assert "not a readable media file" in _fails(root)["broken"]
    assert not Layout(NAME, root).clips_csv.exists()


def test_skipped_files_get_the_id_their_clip_would_have(tmp_path, sample_clips):
    videos = _folder(tmp_path, {"alice/take1.mp4": sample_clips[0],
                                "bob/take1.mp4": sample_clips[1],
                                "carol/take1.mp4": sample_clips[2],
                                "labels.csv": "path,label\nalice/take1.mp4,bored\n"
                                              "bob/take1.mp4,bored\ncarol/take1.mp4,happy\n"})
    root = tmp_path / "p"
    assert _ingest(root, videos, "--set", "corpus.options={allowed_labels: [happy]}") == 0
    fails = _fails(root)
    assert sorted(fails) == ["alice_take1", "bob_take1"], fails


def test_out_in_the_cache_is_refused(tmp_path, sample_clips):
    videos = _folder(tmp_path, {"c0.mp4": sample_clips[0]})
    root = tmp_path / "p"
    assert mer(["extract", "spectrogram", *_args(root, videos)]) == 0
    cached = sorted((root / "cache").rglob("*.h5"))
    assert cached
    for out in (root / "cache" / NAME, root / "cache", videos):
        assert mer(["extract", "spectrogram", *_args(root, videos, "--out", str(out))]) == 2
    assert sorted((root / "cache").rglob("*.h5")) == cached
    assert sorted(p.name for p in videos.iterdir()) == ["c0.mp4"]


def test_verify_checks_track_ids(tmp_path):
    """``faces.select: all`` rows: a track id is 0 or more, -1 only on a row without a face."""
    fdir = tmp_path / "faces"
    track = np.array([0, 1, -5, 0], np.int64)
    valid = np.array([True, True, False, True])
    feats = ClipFeatures({"boxes": np.ones((4, 4), np.float32), "track": track},
                         np.array([0.0, 0.0, 0.04, 0.08]), valid,
                         attrs={"select_used": "all", "n_tracks": 2})
    with ShardWriter(fdir, feature="faces", params={}, provenance={}, primary="boxes") as w:
        w.add("c0", feats, "ab" * 32)
    problems = verify(fdir)
    assert any("track ids below -1" in p for p in problems), problems


@pytest.mark.parametrize("index", ["[" * 100_000 + "]" * 100_000, "[]", '"text"',
                                   '{"schema_version": 2, "feature": "mel", "clips": "c0"}',
                                   '{"schema_version": 2, "feature": 5, "clips": {}}'])
def test_malformed_index_is_one_line(tmp_path, index):
    fdir = tmp_path / "mel"
    fdir.mkdir()
    (fdir / "index.json").write_text(index)
    p = subprocess.run([str(BIN / "mer"), "inspect", str(fdir)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 4 and p.stderr.count("\n") == 1, p.stderr
    assert "index.json" in p.stderr
    for raw in ("RecursionError", "TypeError", "AttributeError", "Traceback"):
        assert raw not in p.stderr, p.stderr
    problems = verify(fdir)
    assert len(problems) == 1 and "index.json" in problems[0]


def _csd(path: Path, entries: dict[str, dict[str, np.ndarray] | str]) -> Path:
    with h5py.File(path, "w") as f:
        data = f.create_group("feat/data")
        for name, arrays in entries.items():
            if isinstance(arrays, str):
                data.create_dataset(name, data=np.zeros(3))
                continue
            g = data.create_group(name)
            for key, value in arrays.items():
                g.create_dataset(key, data=value)
        f.create_group("feat/metadata")
    return path


def _entry(x: np.ndarray) -> dict[str, np.ndarray]:
    iv = np.stack([np.arange(len(x)), np.arange(len(x)) + 1.0], axis=1)
    return {"features": x, "intervals": iv}


def test_csd_entries_that_cannot_be_imported_are_failure_rows(tmp_path, capsys):
    good = np.arange(12, dtype=np.float32).reshape(4, 3)
    csd = _csd(tmp_path / "x.csd", {
        "a b": _entry(good),
        "a_b": _entry(good + 1),  # the same clip id as "a b" once made safe
        "complex": _entry(good.astype(np.complex64) * 1j),
        "strings": _entry(np.array([b"x", b"y", b"z", b"w"])),
        "no_intervals": {"features": good},
        "flat": "a dataset, not an entry",
        "ok": _entry(good * 2),
    })
    out = tmp_path / "imported"
    capsys.readouterr()
    assert mer(["import-csd", str(csd), str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["failed"] == 5
    fails = {f.clip_id: f.reason for f in read_failures(doc["failures"])}
    assert "complex numbers" in fails["complex"]
    assert "not an array of real numbers" in fails["strings"]
    assert "no 'intervals' array" in fails["no_intervals"]
    assert "not a group" in fails["flat"]
    assert "already the id of entry 'a b'" in fails["a_b"]
    with FeatureReader(out) as r:
        assert sorted(r.clip_ids) == ["a_b", "ok"]
        assert np.array_equal(r.read("a_b").arrays["feat"], good)


@pytest.mark.parametrize("layout", ["empty", "no data", "data is an array"])
def test_malformed_csd_is_one_line(tmp_path, capsys, layout):
    path = tmp_path / "bad.csd"
    with h5py.File(path, "w") as f:
        if layout == "no data":
            f.create_group("feat/metadata")
        elif layout == "data is an array":
            f.create_dataset("feat/data", data=np.zeros(3))
    capsys.readouterr()
    assert mer(["import-csd", str(path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.csd: not a computational sequence" in err
    assert "Error" not in err, err
    assert not (tmp_path / "out").exists()


def test_params_file_is_read_with_a_bound(tmp_path):
    """params.yaml as a FIFO (left by a tool that streams its config): one line, no hang."""
    os.mkfifo(tmp_path / "params.yaml")
    p = _run_bounded(tmp_path, ["ingest"], timeout=120)
    assert p.returncode == 3 and "params.yaml is a FIFO" in p.stderr
