"""A plain folder of videos: sidecar transcripts, a labels CSV, a broken file, one command."""

import json
import shutil

import pytest

from pipeline.cli import main as mer
from pipeline.corpora import get_adapter
from pipeline.manifest import read_failures, read_manifest
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from pipeline.text.alignment import parse_word_times
from pipeline.text.subtitles import parse_cues

SRT = """1
00:00:00,200 --> 00:00:01,000
Kids are <i>talking</i>

2
00:00:01,100 --> 00:00:02,000
by the door.
"""
VTT = """WEBVTT
Kind: captions

NOTE a comment block

00:00.300 --> 00:01.800 align:start position:10%
{\\an8}Dogs aren't sitting
"""


@pytest.fixture
def videos(tmp_path, sample_clips):
    root = tmp_path / "my videos"
    (root / "alice").mkdir(parents=True)
    (root / "bob").mkdir()
    (root / ".thumbnails").mkdir()
    shutil.copy2(sample_clips[0], root / "alice" / "take 1.mp4")
    (root / "alice" / "take 1.txt").write_text("Kids are talking by the door.\n")
    shutil.copy2(sample_clips[1], root / "alice" / "take2.mp4")
    (root / "alice" / "take2.srt").write_text(SRT)
    shutil.copy2(sample_clips[2], root / "bob" / "b1.mp4")
    (root / "bob" / "b1.vtt").write_text(VTT)
    shutil.copy2(sample_clips[3], root / "bob" / "b2.mp4")  # no transcript
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 9)
    shutil.copy2(sample_clips[4], root / ".thumbnails" / "hidden.mp4")
    (root / "notes.txt").write_text("not media")
    (root / "labels.csv").write_text("path,label\nalice/take 1.mp4,happy\nbob/b1.mp4,sad\n"
                                     "bob/b2.mp4,bored\n")  # fmt: skip
    return root


def test_subtitle_cues_are_stripped():
    cues = parse_cues(SRT)
    assert [(c.start, c.end, c.text) for c in cues] == [
        (0.2, 1.0, "Kids are talking"), (1.1, 2.0, "by the door.")
    ]  # fmt: skip
    assert [c.text for c in parse_cues(VTT)] == ["Dogs aren't sitting"]


def test_folder_adapter_reads_media_sidecars_and_labels(videos):
    clips = {c.clip_id: c for c in get_adapter("folder", videos).clips()}
    assert sorted(clips) == ["alice_take2", "alice_take_1", "bob_b1", "bob_b2", "broken"]
    assert clips["alice_take_1"].transcript == "Kids are talking by the door."
    assert (
        clips["alice_take_1"].path == "alice/take 1.mp4" and clips["alice_take_1"].label == "happy"
    )
    assert clips["alice_take2"].transcript == "Kids are talking by the door."
    words = parse_word_times(clips["alice_take2"].meta["word_times"])
    assert words[0] == ("Kids", 0.2, pytest.approx(0.4667, abs=1e-4)) and words[3][1] == 1.1
    assert clips["bob_b1"].transcript == "Dogs aren't sitting" and clips["bob_b1"].speaker == "bob"
    assert clips["bob_b2"].transcript == "" and clips["bob_b2"].label == "bored"
    assert clips["broken"].speaker == ""
    strict = get_adapter("folder", videos, {"allowed_labels": ["happy", "sad"]})
    assert sorted(c.clip_id for c in strict.clips()) == [
        "alice_take2", "alice_take_1", "bob_b1", "broken"
    ]  # fmt: skip
    assert strict.skipped == [("bob/b2.mp4", "clip bob_b2: label 'bored' is not one of happy, sad")]


def test_folder_from_a_csv_list(videos):
    (videos / "list.csv").write_text("path,clip_id,label,transcript\n"
                                     "bob/b2.mp4,second,angry,Hello there\n"
                                     "/etc/passwd,evil,,\n")  # fmt: skip
    adapter = get_adapter("folder", videos, {"csv": "list.csv"})
    clips = list(adapter.clips())
    assert [(c.clip_id, c.label, c.transcript) for c in clips] == [
        ("second", "angry", "Hello there")
    ]
    assert "outside the corpus root" in adapter.skipped[0][1]
    with pytest.raises(FileNotFoundError, match="corpus.options.csv"):
        list(get_adapter("folder", videos / "list.csv").clips())


def test_one_mer_command_runs_every_stage_on_the_folder(videos, tmp_path):
    root = tmp_path / "project"
    args = ["extract", "words", "spectrogram", "--corpus", str(videos), "--adapter", "folder",
            "--name", "myvids", "--root", str(root), "--set", "runner.n_jobs=1", "-q",
            "--set", "corpus.options={allowed_labels: [happy, sad]}"]  # fmt: skip
    assert mer(args) == 0
    lay = Layout("myvids", root)
    entries = {e.clip_id: e for e in read_manifest(lay.clips_csv)}
    assert sorted(entries) == ["alice_take2", "alice_take_1", "bob_b1"]
    ingest_fail = {f.clip_id: f.reason for f in read_failures(lay.failures_csv("ingest"))}
    assert "not a readable media file" in ingest_fail["broken"]
    assert "label 'bored'" in ingest_fail["bob_b2"]  # the id its clip would have
    assert read_failures(lay.failures_csv("words")) == []
    with FeatureReader(lay.features_dir("words")) as r:
        assert sorted(r.clip_ids) == sorted(entries)
        assert r.read("alice_take2").attrs["timing"] == "aligned"
    with FeatureReader(lay.features_dir("spectrogram")) as r:
        assert sorted(r.clip_ids) == sorted(entries)
    # without the label filter the unlabelled-transcript clip is ingested, and the words stage
    # records it as a failure while every other clip goes through
    assert mer(args[:-2] + ["--ingest"]) == 0
    fails = read_failures(lay.failures_csv("words"))
    assert [(f.clip_id, f.reason) for f in fails] == [("bob_b2", "bob_b2: empty transcript")]
    metrics = json.loads(lay.metrics_json("words").read_text())
    assert metrics["failed"] == 1 and metrics["clips"] == 4 and metrics["oov_rate"] == 0.0
    assert mer(args[:-2] + ["--strict"]) == 1  # strict: a failed clip fails the command
