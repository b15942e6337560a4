"""The RAVDESS adapter on a miniature copy of the real folder layout."""

from pathlib import Path

import pytest

from pipeline.corpora import get_adapter
from pipeline.corpora.ravdess import parse_name


def test_parse_name_decodes_all_seven_fields():
    info = parse_name("01-01-05-02-02-01-12.mp4")
    assert info.modality == "full-AV"
    assert info.vocal_channel == "speech"
    assert info.emotion == "angry"
    assert info.intensity == "strong"
    assert info.statement == "Dogs are sitting by the door"
    assert info.repetition == 1
    assert info.actor == 12 and info.gender == "female"
    assert parse_name("03-02-08-01-01-02-07.wav").emotion == "surprised"


@pytest.mark.parametrize(
    "bad, why",
    [
        ("01-01-09-01-01-01-01.mp4", "emotion code 09"),
        ("01-01-01-01-01-01.mp4", "not a RAVDESS name"),
        ("04-01-01-01-01-01-01.mp4", "modality code 04"),
        ("01-01-01-01-03-01-01.mp4", "statement code 03"),
        ("01-01-01-01-01-03-01.mp4", "repetition code 03"),
    ],
)
def test_parse_name_rejects_bad_codes_naming_the_field(bad, why):
    with pytest.raises(ValueError, match=why):
        parse_name(bad)


def _touch(root: Path, rel: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")


def test_adapter_reads_real_layout_and_selects_full_av_speech(tmp_path):
    # The real corpus ships Video_Speech_Actor_XX.zip / Audio_Speech_Actors_01-24.zip that
    # unpack into Actor_XX/ folders mixing modalities.
    for rel in [
        "Actor_01/01-01-01-01-01-01-01.mp4",  # full-AV speech, neutral
        "Actor_01/02-01-01-01-01-01-01.mp4",  # video-only: not used by default
        "Actor_01/03-01-03-01-02-02-01.wav",  # audio-only
        "Actor_02/01-01-04-02-02-02-02.mp4",  # full-AV speech, sad strong
        "Actor_02/01-02-03-01-01-01-02.mp4",  # song
        "Actor_02/notes.txt",
        "Actor_02/01-01-04-02-02-02-03.mp4",  # actor 3 inside Actor_02: refused
        "Actor_02/bad-name.mp4",
    ]:
        _touch(tmp_path, rel)
    adapter = get_adapter("ravdess", tmp_path)
    clips = list(adapter.clips())
    assert [c.clip_id for c in clips] == ["01-01-01-01-01-01-01", "01-01-04-02-02-02-02"]
    c = clips[1]
    assert c.path == "Actor_02/01-01-04-02-02-02-02.mp4"
    assert c.speaker == "Actor_02" and c.label == "sad"
    assert c.transcript == "Dogs are sitting by the door"
    assert c.meta["intensity"] == "strong" and c.meta["repetition"] == "2"
    skipped = dict(adapter.skipped)
    assert "Actor_02/bad-name.mp4" in skipped
    assert "actor 3" in skipped["Actor_02/01-01-04-02-02-02-03.mp4"]


def test_missing_root_says_what_to_set(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus.root"):
        list(get_adapter("ravdess", tmp_path / "nope").clips())


def test_unknown_adapter_lists_known():
    with pytest.raises(ValueError, match="known: .*ravdess"):
        get_adapter("ravdes", ".")


def test_sample_corpus_through_adapter(sample_dir):
    clips = list(get_adapter("sample", sample_dir).clips())
    assert len(clips) >= 32
    assert len({c.speaker for c in clips}) >= 4
    assert len({c.label for c in clips}) >= 4
    assert {c.meta["statement"] for c in clips} == {"01", "02"}
    assert all(c.meta["modality"] == "full-AV" for c in clips)


# -- recordings: paired (the MPUC paper's 2,880 recordings) -----------------------------------
def test_recordings_option_is_checked():
    with pytest.raises(ValueError, match="allowed: av, paired"):
        get_adapter("ravdess", ".", {"recordings": "all"})
    with pytest.raises(ValueError, match="leave out the modalities option"):
        get_adapter("ravdess", ".", {"recordings": "paired", "modalities": ["full-AV"]})


def _paired_entries(actors: int = 24, recordings: tuple[str, ...] = ("01", "02")):
    """Manifest rows of a full-size RAVDESS in the paired layout (no media needed)."""
    from pipeline.manifest import ManifestEntry

    rows = []
    for actor in range(1, actors + 1):
        for em in range(1, 9):
            for it in ("01", "02") if em > 1 else ("01",):
                for st in ("01", "02"):
                    for rep in ("01", "02"):
                        take = f"01-{em:02d}-{it}-{st}-{rep}-{actor:02d}"
                        rows += [ManifestEntry(f"{m}-{take}", f"Actor_{actor:02d}/{m}-{take}.mp4",
                                               speaker=f"Actor_{actor:02d}", label=f"e{em}",
                                               meta={"performance": take})
                                 for m in recordings]  # fmt: skip
    return rows


def _split_takes(manifest) -> int:
    """Takes whose clips lie in two parts of one fold."""
    n = 0
    for fold in manifest["folds"]:
        part = {cid: p for p in ("train", "val", "test") for cid in fold[p]}
        takes: dict[str, set] = {}
        for cid, p in part.items():
            takes.setdefault(cid[3:], set()).add(p)
        n += sum(len(ps) > 1 for ps in takes.values())
    return n


def test_random_kfold_keeps_a_performances_two_recordings_together():
    """2,880 clips: a take's full-AV and video-only clips carry the same face and sound; the
    random 10-fold scheme must never put one in training and the other in test."""
    from pipeline.config import FoldScheme
    from pipeline.folds import FoldError, fold_manifest

    entries = _paired_entries()
    assert len(entries) == 2880
    plain = FoldScheme("random_kfold", "stratified_kfold", n_folds=10, val_fraction=0.1)
    grouped = FoldScheme("random_kfold", "stratified_kfold", n_folds=10, val_fraction=0.1,
                         together="performance")
    assert _split_takes(fold_manifest(entries, plain, 42)) > 1000  # the leak without it
    manifest = fold_manifest(entries, grouped, 42)
    assert _split_takes(manifest) == 0 and manifest["together"] == "performance"
    for fold in manifest["folds"]:
        assert len(fold["test"]) % 2 == 0 and 270 <= len(fold["test"]) <= 306  # ~144 takes
        assert len(fold["train"]) + len(fold["val"]) + len(fold["test"]) == 2880
    # kfold_811 deals the same units
    assert _split_takes(fold_manifest(entries, FoldScheme("k", "kfold_811", n_folds=10,
                                                          together="performance"), 0)) == 0
    # full-AV only (recordings: av): each take one clip, and the folds those of no grouping
    av = _paired_entries(recordings=("01",))
    a, b = fold_manifest(av, plain, 42), fold_manifest(av, grouped, 42)
    assert a["folds"] == b["folds"]
    # clips of one take with different labels cannot be one unit: said, not guessed
    entries[1].label = "e9"
    with pytest.raises(FoldError, match="different labels"):
        fold_manifest(entries, grouped, 42)


def test_paired_recordings_read_the_audio_only_wav(tmp_path, sample_clips):
    """The video-only file has no sound; paired, both recordings of a take read the
    audio-only WAV, and the folds stage keeps the take together in any scheme."""
    import json

    import numpy as np
    from threadpoolctl import threadpool_limits

    from pipeline.cli import main as mer
    from pipeline.clip_warnings import read_warnings
    from pipeline.features import make_extractor
    from pipeline.features.base import ClipSource
    from pipeline.manifest import read_manifest
    from pipeline.paths import Layout
    from pipeline.store import FeatureReader
    from tests.miniatures import ravdess_paired

    corpus, proj = tmp_path / "RAVDESS", tmp_path / "p"
    mini = ravdess_paired(corpus, sample_clips)
    common = ["--corpus", str(corpus), "--adapter", "ravdess", "--name", "rav", "--root",
              str(proj), "-q", "--set", 'corpus.options={"recordings": "paired"}']
    assert mer(["extract", "mel", *common, "--set", "runner.n_jobs=1",
                "--set", f"runner.cache_dir={tmp_path / 'cache'}"]) == 0
    lay = Layout("rav", proj)
    entries = read_manifest(lay.clips_csv)
    assert len(entries) == mini.n_clips and mini.n_clips == 2 * len(
        {e.meta["performance"] for e in entries})  # fmt: skip
    assert read_warnings(lay.warnings_csv("mel")) == []  # each WAV as long as its video
    take = entries[0].meta["performance"]
    av, video_only = f"01-{take}", f"02-{take}"
    by_id = {e.clip_id: e for e in entries}
    assert by_id[av].has_audio and not by_id[video_only].has_audio
    wav = corpus / by_id[av].audio_path
    assert by_id[video_only].audio_path == by_id[av].audio_path == f"Actor_01/03-{take}.wav"
    with threadpool_limits(limits=1):
        want = make_extractor("mel").extract(ClipSource("x", wav)).arrays["mel"]
    with FeatureReader(lay.features_dir("mel")) as r:
        assert sorted(r.clip_ids) == sorted(by_id)  # the silent video-only clips too
        for cid in (av, video_only):
            np.testing.assert_array_equal(r.read(cid).arrays["mel"], want)
            assert r.read(cid).attrs["audio_file"] == f"Actor_01/03-{take}.wav"
    schemes = 'folds.schemes=[{"name": "r", "kind": "stratified_kfold", "n_folds": 3}]'
    assert mer(["folds", *common, "--set", schemes]) == 0
    manifest = json.loads((lay.folds_dir / "r.json").read_text())
    assert manifest["together"] == "performance" and _split_takes(manifest) == 0


def test_shaped_generator_writes_the_paired_renderings(tmp_path, sample_clips):
    """make_shaped_corpus.py ravdess --paired: each take's video-only MP4 (the same video,
    no sound) and audio-only WAV (its sound), which recordings: paired reads."""
    import importlib.util
    import shutil
    import sys

    import av
    import numpy as np

    from pipeline.media import decode_audio

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_shaped_corpus.py"
    spec = importlib.util.spec_from_file_location("make_shaped_corpus", script)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_shaped_corpus"] = mod
    spec.loader.exec_module(mod)
    full_av = tmp_path / "Actor_01" / sample_clips[0].name
    full_av.parent.mkdir()
    shutil.copy(sample_clips[0], full_av)
    mod.write_paired(full_av)
    take = full_av.stem[3:]
    video_only, wav = full_av.with_name(f"02-{take}.mp4"), full_av.with_name(f"03-{take}.wav")
    with av.open(str(video_only)) as c, av.open(str(full_av)) as d:
        assert not c.streams.audio and c.streams.video[0].frames == d.streams.video[0].frames
    np.testing.assert_allclose(decode_audio(wav, 48000), decode_audio(full_av, 48000), atol=1e-4)
    clips = list(get_adapter("ravdess", tmp_path, {"recordings": "paired"}).clips())
    assert sorted(c.clip_id[:2] for c in clips) == ["01", "02"]
    assert {c.audio_path for c in clips} == {f"Actor_01/03-{take}.wav"}
