"""A clip's sound from a separate file (``audio_path``: CREMA-D's WAV beside its FLV, a CSV's
``audio_path`` column): the WAV is what the audio stages read, its bytes are in the cache key
and checked where it is read, the cut applies to it, and a length unlike the video's is said.

Real media throughout: the sample clips, and WAVs written from another sample clip's sound,
so a WAV's mel differs from the mel of the FLV's own track."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from pipeline.cli import main as mer
from pipeline.clip_warnings import read_warnings
from pipeline.features import make_extractor
from pipeline.features.base import ClipSource, restrict_source, source_key_inputs
from pipeline.hashing import file_sha256
from pipeline.manifest import read_failures, read_manifest
from pipeline.media import probe
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from pipeline.verify import verify_features
from pipeline.workflow import run_facts_path
from tests.media import write_wav

A, B = "1001_DFA_ANG_XX", "1002_TIE_NEU_XX"


def mel_of(path: Path, **cut) -> np.ndarray:
    """The mel of one file alone, computed as the runner's workers compute it."""
    with threadpool_limits(limits=1):
        return make_extractor("mel").extract(ClipSource(clip_id="x", path=path, **cut)).arrays[
            "mel"]


def _crema(tmp_path: Path, clips: list[Path]) -> Path:
    root = tmp_path / "CREMA-D"
    for name, video, sound in ((A, clips[0], clips[5]), (B, clips[1], clips[1])):
        (root / "VideoFlash").mkdir(parents=True, exist_ok=True)
        shutil.copy2(video, root / "VideoFlash" / f"{name}.flv")
        write_wav(sound, root / "AudioWAV" / f"{name}.wav", probe(video).duration, rate=16000)
    return root


def _run(proj: Path, corpus: Path, adapter: str, *stages: str, extra: tuple = ()) -> int:
    return mer(["extract", *stages, "--corpus", str(corpus), "--adapter", adapter, "--name",
                "c", "--root", str(proj), "--set", "runner.n_jobs=1",
                "--set", f"runner.cache_dir={proj / 'cache'}", "-q", *extra])


def _mel(proj: Path, cid: str):
    with FeatureReader(Layout("c", proj).features_dir("mel")) as r:
        return r.read(cid)


def _fails(proj: Path, stage: str) -> dict[str, str]:
    return {f.clip_id: f.reason for f in read_failures(Layout("c", proj).failures_csv(stage))}


def test_crema_d_audio_comes_from_the_wav(tmp_path, sample_clips):
    corpus, proj = _crema(tmp_path, sample_clips), tmp_path / "p"
    wav = corpus / "AudioWAV" / f"{A}.wav"
    assert _run(proj, corpus, "crema-d", "mel") == 0
    entry = {e.clip_id: e for e in read_manifest(Layout("c", proj).clips_csv)}[A]
    assert entry.audio_path == f"AudioWAV/{A}.wav" and entry.audio_sha256 == file_sha256(wav)
    got = _mel(proj, A)
    np.testing.assert_array_equal(got.arrays["mel"], mel_of(wav))  # the WAV alone
    own = mel_of(corpus / "VideoFlash" / f"{A}.flv")  # the FLV's own track: another sound
    assert not np.allclose(got.arrays["mel"][got.valid], own[got.valid], atol=1e-3)
    assert got.attrs["audio_file"] == f"AudioWAV/{A}.wav"
    assert got.attrs["audio_sha256"] == file_sha256(wav)
    assert read_warnings(Layout("c", proj).warnings_csv("mel")) == []  # same lengths
    lay = Layout("c", proj)
    assert verify_features([lay.features_dir("mel")], lay.clips_csv) == []

    # A new WAV, ingested again: its clip is extracted again from the new sound, the other
    # clip comes from the cache.
    write_wav(sample_clips[7], wav, probe(corpus / "VideoFlash" / f"{A}.flv").duration,
              rate=16000)
    assert _run(proj, corpus, "crema-d", "mel", extra=("--ingest",)) == 0
    facts = json.loads(run_facts_path(Layout("c", proj).metrics_json("mel")).read_text())
    assert facts["extracted"] == 1 and facts["reused_from_cache"] == 1
    np.testing.assert_array_equal(_mel(proj, A).arrays["mel"], mel_of(wav))
    # ingested to read the FLVs' own tracks, mel not rerun: verify says mel is stale
    assert mer(["ingest", "--corpus", str(corpus), "--adapter", "crema-d", "--name", "c",
                "--root", str(proj), "-q", "--set", 'corpus.options={"audio": "media"}']) == 0
    problems = verify_features([lay.features_dir("mel")], lay.clips_csv)
    assert len(problems) == 2 and all("the media's own audio track" in p for p in problems)
    assert all("was made from an audio file" in p and "rerun mel" in p for p in problems)


def test_a_wav_replaced_or_removed_after_ingest_is_a_failure(tmp_path, sample_clips):
    corpus, proj = _crema(tmp_path, sample_clips), tmp_path / "p"
    wav = corpus / "AudioWAV" / f"{A}.wav"
    assert _run(proj, corpus, "crema-d", "mel") == 0
    write_wav(sample_clips[9], wav, 2.0)  # replaced, not ingested again
    # mel: its cache entry (of the ingested WAV) is not served for the new bytes
    assert _run(proj, corpus, "crema-d", "mel") == 0
    # spectrogram: never extracted, so the worker finds the change where it reads the file
    assert _run(proj, corpus, "crema-d", "spectrogram") == 0
    for stage in ("mel", "spectrogram"):
        why = _fails(proj, stage)[A]
        assert f"{A}.wav changed since ingest" in why and "rerun ingest" in why, why
        assert B not in _fails(proj, stage)
    os.unlink(wav)
    assert _run(proj, corpus, "crema-d", "mel") == 0
    why = _fails(proj, "mel")[A]
    assert f"AudioWAV/{A}.wav is missing" in why and "rerun ingest" in why, why
    # ingested again without the WAV: left out, saying which file and the option
    assert _run(proj, corpus, "crema-d", "mel", extra=("--ingest",)) == 0
    why = _fails(proj, "ingest")[A]
    assert f"AudioWAV/{A}.wav not found" in why and "audio: media" in why, why
    assert [e.clip_id for e in read_manifest(Layout("c", proj).clips_csv)] == [B]
    # audio: media reads each FLV's own track, for every clip alike
    other = tmp_path / "q"
    assert _run(other, corpus, "crema-d", "mel",
                extra=("--set", 'corpus.options={"audio": "media"}')) == 0
    entries = read_manifest(Layout("c", other).clips_csv)
    assert sorted(e.clip_id for e in entries) == [A, B] and not any(e.audio_path for e in entries)
    got = _mel(other, A)
    np.testing.assert_array_equal(got.arrays["mel"], mel_of(corpus / "VideoFlash" / f"{A}.flv"))
    assert "audio_file" not in got.attrs


def test_the_cut_applies_to_the_audio_file_and_a_length_mismatch_is_said(tmp_path,
                                                                         sample_clips):
    root = tmp_path / "vids"
    root.mkdir()
    shutil.copy2(sample_clips[1], root / "v.mp4")
    video_s = probe(root / "v.mp4").duration
    write_wav(sample_clips[3], root / "same.wav", video_s, rate=48000)
    write_wav(sample_clips[3], root / "short.wav", video_s - 0.8, rate=48000)
    (root / "clips.csv").write_text(
        "clip_id,path,audio_path,start,end\n"
        "cut,v.mp4,same.wav,0.3,1.2\n"
        "whole,v.mp4,short.wav,,\n"
        "own,v.mp4,,0.3,1.2\n"
    )
    proj = tmp_path / "p"
    opts = ("--set", 'corpus.options={"csv": "clips.csv"}')
    assert _run(proj, root, "folder", "mel", extra=opts) == 0
    assert _fails(proj, "mel") == {}
    np.testing.assert_array_equal(_mel(proj, "cut").arrays["mel"],
                                  mel_of(root / "same.wav", start=0.3, end=1.2))
    np.testing.assert_array_equal(_mel(proj, "own").arrays["mel"],
                                  mel_of(root / "v.mp4", start=0.3, end=1.2))
    warnings = {w.clip_id: w.warning for w in read_warnings(Layout("c", proj).warnings_csv("mel"))}
    assert set(warnings) == {"whole"}, warnings
    assert "short.wav gives" in warnings["whole"] and "another take" in warnings["whole"]


def test_an_audio_path_out_of_the_corpus_is_refused(tmp_path, sample_clips):
    root = tmp_path / "vids"
    root.mkdir()
    shutil.copy2(sample_clips[0], root / "v.mp4")
    outside = write_wav(sample_clips[2], tmp_path / "elsewhere.wav", 2.0)
    (root / "link.wav").symlink_to(outside)
    (root / "clips.csv").write_text(
        "clip_id,path,audio_path\nlinked,v.mp4,link.wav\nup,v.mp4,../elsewhere.wav\n"
        "absent,v.mp4,nothing.wav\nfine,v.mp4,\n")
    proj = tmp_path / "p"
    assert mer(["ingest", "--corpus", str(root), "--adapter", "folder", "--name", "c", "--root",
                str(proj), "-q", "--set", 'corpus.options={"csv": "clips.csv"}']) == 0
    fails = {f.clip_id: f.reason for f in read_failures(Layout("c", proj).failures_csv("ingest"))}
    assert "its audio file 'link.wav' points outside" in fails["linked"], fails
    assert "must be relative to the corpus root" in fails["v"], fails  # "../" refused by Clip
    assert "nothing.wav" in fails["absent"] and "file not found" in fails["absent"], fails
    assert [e.clip_id for e in read_manifest(Layout("c", proj).clips_csv)] == ["fine"]


def test_keys_of_clips_without_an_audio_file_are_unchanged(sample_clips):
    """Declaring ``audio`` adds nothing to the key of a clip that reads its media's own track,
    so caches and stored bytes made before the audio file existed stay valid."""
    src = ClipSource(clip_id="x", path=sample_clips[0], sha256="ab")
    assert source_key_inputs(src, ("audio",)) == source_key_inputs(src, ())
    with_wav = ClipSource(clip_id="x", path=sample_clips[0], sha256="ab",
                          audio_path=Path("/a.wav"), audio_sha256="cd")
    other = ClipSource(clip_id="x", path=sample_clips[0], sha256="ab",
                       audio_path=Path("/a.wav"), audio_sha256="ef")
    assert source_key_inputs(with_wav, ("audio",)) != source_key_inputs(other, ("audio",))
    assert source_key_inputs(with_wav, ("audio",)) != source_key_inputs(src, ("audio",))
    for name in ("mel", "spectrogram"):  # the warning's threshold: only with an audio file
        ex = make_extractor(name)
        assert ex.clip_inputs(src) == {} and ex.clip_inputs(with_wav)


def test_the_faces_speaker_choice_declares_the_sound(sample_clips):
    """``faces.select: speaker`` follows the sound: the separate audio file is an input of its
    output (and key); the other choices do not read sound, so a new WAV is nothing to them."""
    wav = ClipSource(clip_id="x", path=sample_clips[0], audio_path=Path("/a.wav"),
                     audio_name="a.wav", audio_sha256="cd")
    speaker = make_extractor("faces", {"select": "speaker"})
    assert "audio" in speaker.source_fields
    assert restrict_source(wav, speaker.source_fields).sound_path == Path("/a.wav")
    plain = make_extractor("faces")
    assert restrict_source(wav, plain.source_fields).audio_path is None
