"""What is decoded is what was hashed: a clip's media is opened once, hashed as it is read,
and refused when it is not the ingested file or changed while it was read.

Real media throughout (the sample clips); files are replaced by atomic rename, rewritten in
place with their mtime set back (``touch -r``), and turned into FIFOs, as a sync tool, an
editor or a mistake would."""

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from pipeline.cli import main as mer
from pipeline.features import EXTRACTORS, make_extractor
from pipeline.features.base import ClipSource
from pipeline.features.mel import MelExtractor
from pipeline.hashing import file_sha256
from pipeline.manifest import read_failures, read_manifest
from pipeline.media.audio import decode_audio
from pipeline.media.source_file import (
    ClipFiles,
    MediaChangedError,
    SourceFile,
    SourceFileError,
    hash_file,
)
from pipeline.media.video import frame_times
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from pipeline.verify import verify

NAME = "vids"


def _folder(tmp_path: Path, clips: list[Path]) -> Path:
    root = tmp_path / "videos"
    root.mkdir()
    for i, clip in enumerate(clips):
        shutil.copy2(clip, root / f"c{i}.mp4")
        (root / f"c{i}.txt").write_text("kids are talking by the door")
    return root


def _args(root: Path, videos: Path, *stages: str, jobs: int = 1, extra=()) -> list[str]:
    return ["extract", *stages, "--corpus", str(videos), "--adapter", "folder", "--name",
            NAME, "--root", str(root), "--set", f"runner.n_jobs={jobs}",
            "--set", f"runner.cache_dir={root / 'cache'}", "-q", *extra]


def _extract(root: Path, videos: Path, *stages: str, jobs: int = 1) -> int:
    return mer(_args(root, videos, *stages, jobs=jobs))


def _fails(root: Path, stage: str) -> dict[str, str]:
    return {f.clip_id: f.reason for f in read_failures(Layout(NAME, root).failures_csv(stage))}


def _mel(root: Path) -> dict[str, np.ndarray]:
    with FeatureReader(Layout(NAME, root).features_dir("mel")) as r:
        return {c: r.read(c).arrays["mel"] for c in r.clip_ids}


def _cached_mels(root: Path) -> dict[str, np.ndarray]:
    """Every mel cache entry of a project, by cache key."""
    out = {}
    for f in sorted((root / "cache" / NAME / "mel").glob("*/*.h5")):
        with h5py.File(f, "r") as h:
            out[f.stem] = h["clip/mel"][()]
    return out


def _mel_alone(path: Path) -> np.ndarray:
    with threadpool_limits(limits=1):
        return make_extractor("mel").extract(ClipSource("x", path)).arrays["mel"]


# -- the owner alone --------------------------------------------------------------------------


def test_readers_hash_what_they_hand_the_decoder(sample_clips):
    """Decoding through the one open file gives the samples and frame times a decode of the
    path gives, and the file's sha256 whatever order the decoder read it in."""
    clip = sample_clips[0]
    with SourceFile(clip) as f:
        audio = decode_audio(f.reader(), 16000)
        times = frame_times(f.reader())
        assert f.finish() == file_sha256(clip)
    np.testing.assert_array_equal(audio, decode_audio(clip, 16000))
    np.testing.assert_array_equal(times, frame_times(clip))
    with SourceFile(clip) as f:  # read back to front: the gaps are hashed from the same file
        r = f.reader()
        size = f.size
        for pos in range(size - 4096, -4096, -4096):
            r.seek(max(pos, 0))
            r.read(4096)
        assert f.finish() == file_sha256(clip)
    assert hash_file(clip)[0] == file_sha256(clip)


def test_decoders_read_the_opened_file_not_the_path(tmp_path, sample_clips, one_torch_thread):
    """Every extractor decodes through the file the runner opened: with another recording
    renamed over the path after the open, mel, spectrogram and faces still give the opened
    recording's features, and the files refuse to finish ("replaced")."""
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    shutil.copy2(sample_clips[0], a)
    shutil.copy2(sample_clips[5], b)
    clean = tmp_path / "clean.mp4"
    shutil.copy2(a, clean)
    for name in ("mel", "spectrogram", "faces"):
        ex = make_extractor(name)
        with threadpool_limits(limits=1):
            want = ex.extract(ClipSource("x", clean, sha256=file_sha256(clean)))
            other = ex.extract(ClipSource("x", b))
        with ClipFiles(ClipSource("x", a, sha256=file_sha256(a))) as files:
            spare = tmp_path / "spare.mp4"
            shutil.copy2(b, spare)
            os.replace(spare, a)  # the path names the other recording now
            with threadpool_limits(limits=1):
                got = ex.extract(files.source)
            with pytest.raises(MediaChangedError, match="replaced by another file while it"):
                files.finish()
        shutil.copy2(clean, a)
        primary = ex.primary
        np.testing.assert_array_equal(got.arrays[primary], want.arrays[primary])
        assert not np.array_equal(other.arrays[primary], want.arrays[primary])


def test_a_rewrite_in_place_is_seen_even_with_its_mtime_set_back(tmp_path, sample_clips):
    clip = tmp_path / "c.mp4"
    shutil.copy2(sample_clips[0], clip)
    st = os.stat(clip)
    with SourceFile(clip, expected=file_sha256(clip)) as f:
        f.reader().read()
        time.sleep(0.05)  # a later moment: the kernel's clock moves the ctime
        with open(clip, "r+b") as w:  # the same inode and size, other bytes
            w.seek(st.st_size // 2)
            w.write(bytes(64))
        os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))  # touch -r
        assert os.stat(clip).st_mtime_ns == st.st_mtime_ns
        with pytest.raises(MediaChangedError, match="changed while it was read.*ctime moved"):
            f.finish()
    with SourceFile(clip, expected=file_sha256(sample_clips[0])) as f:
        with pytest.raises(MediaChangedError, match="changed since ingest.*rerun ingest"):
            f.finish()


def test_a_file_cut_short_while_it_is_read_is_refused(tmp_path, sample_clips):
    clip = tmp_path / "c.mp4"
    shutil.copy2(sample_clips[0], clip)
    with SourceFile(clip) as f:
        f.reader().read(1000)
        os.truncate(clip, 2000)
        with pytest.raises(MediaChangedError, match="shrank while it was read"):
            f.finish()


def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "c.mp4"
    os.mkfifo(fifo)
    result: list[BaseException] = []

    def go() -> None:
        try:
            SourceFile(fifo)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            result.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "opening a FIFO blocked"
    assert isinstance(result[0], SourceFileError)
    assert str(result[0]) == "c.mp4 is a FIFO (named pipe), not a regular file: refusing to read it"
    with pytest.raises(SourceFileError, match="is a directory"):
        SourceFile(tmp_path)


# -- the runner ---------------------------------------------------------------------------------


class _SwapDuringRead(MelExtractor):
    """The real mel extractor, while another recording is renamed over the clip's path once
    the runner has opened it: what a sync tool does to a file in the middle of a run."""

    swaps: list[tuple[Path, Path]] = []

    def extract_into(self, source, sink):
        while self.swaps:
            spare, target = self.swaps.pop()
            os.replace(spare, target)
        return super().extract_into(source, sink)


@pytest.mark.parametrize("what", ["media", "audio"])
def test_a_recording_swapped_during_the_read_is_a_failure_row(tmp_path, sample_clips,
                                                              monkeypatch, what):
    """Issue: the worker hashed the file, then opened it again to decode it; a file renamed
    over it in between had the other recording's features stored under the manifest's hash,
    in the shards and the cache, and verify said OK. The same for a clip's separate audio
    file (``audio_path``)."""
    from tests.media import write_wav

    videos = _folder(tmp_path, sample_clips[:2])
    extra: tuple[str, ...] = ()
    target = videos / "c0.mp4"
    other = tmp_path / "other.mp4"
    shutil.copy2(sample_clips[5], other)
    if what == "audio":  # c0's sound from a WAV of another sample clip's speech
        target = write_wav(sample_clips[3], videos / "c0.wav", 2.0)
        other = write_wav(sample_clips[7], tmp_path / "other.wav", 2.0)
        (videos / "list.csv").write_text("path,clip_id,audio_path\nc0.mp4,c0,c0.wav\n"
                                         "c1.mp4,c1,\n")
        extra = ("--set", "corpus.options={csv: list.csv}")
    root = tmp_path / "p"
    assert mer(["ingest", "--corpus", str(videos), "--adapter", "folder", "--name", NAME,
                "--root", str(root), "-q", *extra]) == 0
    ingested = target.read_bytes()
    other_mel = _mel_alone(other)
    import pipeline.runner

    monkeypatch.setattr(pipeline.runner, "_WORKER_EXTRACTORS", {})  # none set up before
    monkeypatch.setitem(EXTRACTORS, "mel", _SwapDuringRead)
    _SwapDuringRead.swaps = [(other, target)]
    assert mer(_args(root, videos, "mel", extra=extra)) == 0
    assert not _SwapDuringRead.swaps  # it happened
    why = _fails(root, "mel")["c0"]
    assert why == (f"{target.name} was replaced by another file while it was read: rerun "
                   f"the stage once it is no longer being replaced")
    with FeatureReader(Layout(NAME, root).features_dir("mel")) as r:
        assert r.clip_ids == ["c1"]
    assert len(_cached_mels(root)) == 1  # c1's entry only
    monkeypatch.setitem(EXTRACTORS, "mel", MelExtractor)
    monkeypatch.setattr(pipeline.runner, "_WORKER_EXTRACTORS", {})
    # the ingested recording back: c0 is extracted from it, as a clean run extracts it
    target.write_bytes(ingested)
    assert mer(_args(root, videos, "mel", extra=extra)) == 0
    assert _fails(root, "mel") == {}
    clean = tmp_path / "clean"
    assert mer(_args(clean, videos, "mel", extra=extra)) == 0
    got, want = _mel(root), _mel(clean)
    np.testing.assert_array_equal(got["c0"], want["c0"])
    assert not np.array_equal(got["c0"], other_mel)
    assert verify(Layout(NAME, root).features_dir("mel")) == []


def test_recordings_swapped_again_and_again_never_store_the_other(tmp_path, sample_clips):
    """Two recordings of one length swapped by atomic renames over and over while two
    workers extract: every clip is a failure row or has its own recording's features, in
    the shards and in every cache entry."""
    videos = _folder(tmp_path, [sample_clips[0], sample_clips[1]] * 4)
    root, clean = tmp_path / "p", tmp_path / "clean"
    assert _extract(clean, videos, "mel", "spectrogram") == 0
    want, want_cache = _mel(clean), _cached_mels(clean)
    assert mer(["ingest", "--corpus", str(videos), "--adapter", "folder", "--name", NAME,
                "--root", str(root), "-q"]) == 0
    stop = threading.Event()
    pairs = [(videos / f"c{i}.mp4", videos / f"c{i + 1}.mp4") for i in range(0, 8, 2)]

    def swap() -> None:
        n = 0
        while not stop.is_set():
            for x, y in pairs:
                spare = x.with_suffix(f".{n}.tmp")
                os.link(x, spare)
                os.replace(y, x)
                os.replace(spare, y)
            n += 1
            time.sleep(0.001)

    t = threading.Thread(target=swap, daemon=True)
    t.start()
    try:
        for _ in range(2):
            assert _extract(root, videos, "mel", "spectrogram", jobs=2) == 0
    finally:
        stop.set()
        t.join()
    got = _mel(root)
    assert got or _fails(root, "mel")
    for cid, mel in got.items():
        np.testing.assert_array_equal(mel, want[cid])
    for key, mel in _cached_mels(root).items():
        np.testing.assert_array_equal(mel, want_cache[key])
    assert verify(Layout(NAME, root).features_dir("mel")) == []


@pytest.mark.parametrize("how", ["in place", "renamed over"])
def test_warm_and_cold_stages_agree_on_a_rewrite_with_its_mtime_set_back(tmp_path,
                                                                        sample_clips, how):
    """Issue: the media-hash memo trusted size and mtime; a file rewritten with other bytes
    and ``touch -r`` back had warm stages reuse old features while a cold stage said
    "changed since ingest"."""
    videos = _folder(tmp_path, sample_clips[:2])
    root = tmp_path / "p"
    assert _extract(root, videos, "mel", "words") == 0
    clip = videos / "c0.mp4"
    st = os.stat(clip)
    data = bytearray(clip.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # other bytes, the same size
    time.sleep(0.05)
    if how == "in place":
        with open(clip, "r+b") as f:
            f.write(data)
    else:
        spare = videos / "spare"
        spare.write_bytes(data)
        os.replace(spare, clip)
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))  # touch -r
    assert (os.stat(clip).st_size, os.stat(clip).st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert _extract(root, videos, "mel", "words", "spectrogram") == 0  # warm, warm, cold
    reasons = {stage: _fails(root, stage) for stage in ("mel", "words", "spectrogram")}
    for stage, fails in reasons.items():
        assert list(fails) == ["c0"], (stage, fails)
        assert fails["c0"].startswith("c0.mp4 changed since ingest"), (stage, fails)
        assert fails["c0"].endswith("rerun ingest"), (stage, fails)
    assert len({f["c0"] for f in reasons.values()}) == 1  # the same words from every stage


def test_a_fifo_where_the_media_was_is_a_failure_row(tmp_path, sample_clips):
    """A FIFO put where a video was, or where its separate audio file was, is a failure row
    for cold and warm stages alike; nothing waits for a writer."""
    videos = _folder(tmp_path, sample_clips[:2])
    wav = videos / "c1.wav"
    from tests.media import write_wav

    write_wav(sample_clips[3], wav, 2.0)
    (videos / "list.csv").write_text("path,clip_id,audio_path\nc0.mp4,c0,\nc1.mp4,c1,c1.wav\n")
    root = tmp_path / "p"
    options = ("--set", "corpus.options={csv: list.csv}")
    assert mer(_args(root, videos, "mel", extra=options)) == 0  # mel warm, spectrogram cold
    entries = {e.clip_id: e for e in read_manifest(Layout(NAME, root).clips_csv)}
    assert entries["c1"].audio_path == "c1.wav"
    assert _fails(root, "mel") == {}
    for f in (videos / "c0.mp4", wav):
        f.unlink()
        os.mkfifo(f)
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli",
         *_args(root, videos, "mel", "spectrogram", extra=options)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for stage in ("mel", "spectrogram"):
        fails = _fails(root, stage)
        refused = "is a FIFO (named pipe), not a regular file: refusing to read it"
        assert fails["c0"] == f"c0.mp4 {refused}"
        assert fails["c1"] == f"c1.wav {refused}"


def test_the_memo_holds_the_identity_of_what_was_hashed(tmp_path, sample_clips):
    """The memo entry of a clip is the identity of the open file its worker hashed (device,
    inode, size, mtime, ctime), never a later stat of the path."""
    videos = _folder(tmp_path, sample_clips[:1])
    root = tmp_path / "p"
    assert _extract(root, videos, "mel") == 0
    import json

    memo = json.loads((root / "cache" / NAME / "media-sha256.json").read_text())
    st = os.stat(videos / "c0.mp4")
    rec = memo[str((videos / "c0.mp4").absolute())]
    assert rec == [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                   hashlib.sha256((videos / "c0.mp4").read_bytes()).hexdigest()]


def test_copies_of_one_recording_in_one_batch_share_one_cache_file(tmp_path, sample_clips):
    """Clips of the same bytes have the same cache key: the second of a batch waits for the
    first one's file to be in place and reuses it (its own file checked), never writing the
    same temporary file while the first is being synced and renamed."""
    videos = _folder(tmp_path, [sample_clips[0]] * 4 + [sample_clips[1]])
    root = tmp_path / "p"
    assert _extract(root, videos, "mel") == 0
    import json

    from pipeline.workflow import run_facts_path

    facts = json.loads(run_facts_path(Layout(NAME, root).metrics_json("mel")).read_text())
    assert (facts["extracted"], facts["reused_from_cache"], facts["failed"]) == (2, 3, 0)
    mels = _mel(root)
    for cid in ("c1", "c2", "c3"):
        np.testing.assert_array_equal(mels[cid], mels["c0"])
    assert len(_cached_mels(root)) == 2
    assert not list((root / "cache").rglob("*.tmp"))
    assert verify(Layout(NAME, root).features_dir("mel")) == []
