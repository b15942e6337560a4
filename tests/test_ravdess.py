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
