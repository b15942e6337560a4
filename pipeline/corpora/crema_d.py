"""CREMA-D: the Crowd-sourced Emotional Multimodal Actors Dataset (Cao et al. 2014).

Layout (the release repository, CheyneyComputerScience/CREMA-D, cloned with git-lfs)::

    VideoFlash/<name>.flv                   7,442 audio-visual clips (FLV: video + audio)
    AudioWAV/<name>.wav                     the same utterances as 16 kHz WAV
    VideoDemographics.csv                   ActorID, Age, Sex, Race, Ethnicity (optional)
    processedResults/summaryTable.csv       crowd votes per clip (label_source voice/face/...)

Names are ``ActorID_Sentence_Emotion_Level`` (``1001_DFA_ANG_XX``): actor 1001..1091, one of
12 sentence codes (the code gives the transcript), emotion ANG/DIS/FEA/HAP/NEU/SAD, level
LO/MD/HI/XX (low, medium, high, unspecified).

Labels: ``label_source='intended'`` (default) is the emotion the actor was asked to show (the
name's code). ``voice`` / ``face`` / ``multimodal`` take the crowd's majority vote from
summaryTable.csv (``VoiceVote``, ``FaceVote``, ``MultiModalVote``: one of A D F H N S, or
several joined by ``:`` on a tie); a tie, or a clip missing from the table, is skipped with the
reason. The intended code is always kept in ``meta['intended']``, the votes and their mean
levels in ``meta`` when the table is there.

Media: ``media='video'`` (default) gives the FLV. Its sound: ``audio='wav'`` (default) reads
the WAV of the same utterance (the clip's ``audio_path``: the audio stages read it, its hash
is in their cache keys and checked before it is read); a clip whose WAV is missing is
skipped with that reason rather than quietly given the FLV's own track (another codec,
sample rate and band limit than its neighbours: a difference a model can learn).
``audio='media'`` reads every FLV's own audio track instead (a copy without AudioWAV/).
``media='audio'`` gives the WAV as the clip's only file (audio-only stages). A zip download
of the repository holds Git LFS pointer files instead of media: each is skipped with that
reason.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path

from ..config import FoldScheme
from ..files import open_regular, text_file
from .base import Clip, CorpusAdapter, check_codes, check_options

log = logging.getLogger(__name__)

EMOTIONS = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
VOTES = {"A": "angry", "D": "disgust", "F": "fearful", "H": "happy", "N": "neutral", "S": "sad"}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
VOTE_COLUMNS = {"voice": "VoiceVote", "face": "FaceVote", "multimodal": "MultiModalVote"}
SUMMARY = "processedResults/summaryTable.csv"
DEMOGRAPHICS = "VideoDemographics.csv"
N_CLIPS, N_ACTORS = 7442, 91
LFS_POINTER = b"version https://git-lfs"


def parse_name(name: str) -> dict[str, str]:
    """Actor, sentence, emotion and level of a CREMA-D name; ValueError naming what is off."""
    stem = Path(name).stem
    parts = stem.split("_")
    if len(parts) != 4 or not (parts[0].isdigit() and len(parts[0]) == 4):
        raise ValueError(
            f"{name!r} is not a CREMA-D name (expected ActorID_Sentence_Emotion_Level, "
            f"like 1001_DFA_ANG_XX)"
        )
    actor, sentence, emotion, level = parts
    check_codes(name, (
        (sentence, SENTENCES, "sentence"),
        (emotion, EMOTIONS, "emotion"),
        (level, LEVELS, "level"),
    ))  # fmt: skip
    return {"actor": actor, "sentence": sentence, "emotion": emotion, "level": level}


def is_lfs_pointer(path: Path) -> bool:
    """A Git LFS pointer (a few hundred bytes of text) where a media file should be."""
    try:
        if path.stat().st_size > 1024:
            return False
        with open_regular(path) as f:  # a FIFO is not waited on (probe then refuses it)
            return f.read(len(LFS_POINTER)) == LFS_POINTER
    except OSError:
        return False


class CremaD(CorpusAdapter):
    """CREMA-D clips (see the module docstring for options and rules)."""

    name = "crema-d"
    title = "CREMA-D"
    labels = tuple(EMOTIONS.values())
    has_transcripts = True
    layout = """VideoFlash/<ActorID>_<Sentence>_<Emotion>_<Level>.flv   e.g. 1001_DFA_ANG_XX.flv
AudioWAV/<ActorID>_<Sentence>_<Emotion>_<Level>.wav
VideoDemographics.csv                                  optional
processedResults/summaryTable.csv                      crowd votes (label_source)"""
    # Actor-disjoint 5-fold cross-validation: the corpus has 91 actors; 5 folds test ~18 each.
    fold_schemes = (
        FoldScheme("actor_kfold", "group_kfold", n_folds=5, group_by="speaker", val_fraction=0.1),
    )
    disjoint = {"actor_kfold": "speaker"}

    def __init__(
        self,
        root: str | Path,
        media: str = "video",
        label_source: str = "intended",
        audio: str = "wav",
    ) -> None:
        super().__init__(root)
        check_options("crema-d", (
            ("media", media, ("video", "audio")),
            ("audio", audio, ("wav", "media")),
            ("label_source", label_source, ("intended", *VOTE_COLUMNS)),
        ))  # fmt: skip
        self.audio = audio
        self.media = media
        self.label_source = label_source

    def _media_files(self) -> list[Path]:
        folder, suffix = ("VideoFlash", ".flv") if self.media == "video" else ("AudioWAV", ".wav")
        media_dir = self.root / folder
        if not media_dir.is_dir():
            raise self.layout_error(f"no {folder}/ folder (media: {self.media})")
        files = sorted(
            p
            for p in media_dir.iterdir()
            if p.suffix.lower() == suffix and not p.name.startswith(".")
        )
        if not files:
            raise self.layout_error(f"no {folder}/*{suffix} file")
        return files

    def _read_table(self, rel: str, key: str, required: tuple[str, ...]) -> dict[str, dict]:
        path = self.root / rel
        with text_file(path, rel) as f:
            reader = csv.DictReader(f)
            missing = [c for c in (key, *required) if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(
                    f"{path}: missing column(s) {', '.join(missing)}; expected the release's "
                    f"{rel} with columns {key}, {', '.join(required)}"
                )
            return {(row[key] or "").strip(): row for row in reader}

    def _votes(self) -> dict[str, dict]:
        path = self.root / SUMMARY
        if not path.is_file():
            if self.label_source != "intended":
                raise FileNotFoundError(
                    f"CREMA-D crowd votes not found: {path} (label_source="
                    f"{self.label_source}); it is processedResults/summaryTable.csv of the "
                    f"release repository. Expected layout:\n{self.layout}"
                )
            return {}
        return self._read_table(SUMMARY, "FileName", tuple(VOTE_COLUMNS.values()))

    def clips(self) -> Iterator[Clip]:
        self.check_root()
        self.skipped = []
        files = self._media_files()
        votes = self._votes()
        people: dict[str, dict] = {}
        if (self.root / DEMOGRAPHICS).is_file():
            people = self._read_table(DEMOGRAPHICS, "ActorID", ("Age", "Sex"))
        else:
            log.warning("CREMA-D %s not found: no age/sex meta", self.root / DEMOGRAPHICS)
        wav_dir = self.root / "AudioWAV"
        for path in files:
            rel = path.relative_to(self.root).as_posix()
            try:
                info = parse_name(path.name)
            except ValueError as e:
                self.skip(rel, str(e))
                continue
            if is_lfs_pointer(path):
                self.skip(rel, "a Git LFS pointer, not media: clone with git-lfs (git lfs pull)")
                continue
            stem = path.stem
            meta = {
                "intended": EMOTIONS[info["emotion"]],
                "level": LEVELS[info["level"]],
                "sentence": info["sentence"],
            }
            audio_path = ""
            if self.media == "video" and self.audio == "wav":
                wav = wav_dir / f"{stem}.wav"
                audio_path = wav.relative_to(self.root).as_posix()
                if not wav.is_file():
                    self.skip(rel, f"{audio_path} not found: with corpus.options.audio: wav "
                                   f"(the default) the audio stages read each clip's WAV; "
                                   f"audio: media reads the FLV's own audio track instead")
                    continue
                if is_lfs_pointer(wav):
                    self.skip(rel, f"{audio_path} is a Git LFS pointer, not media: clone "
                                   f"with git-lfs (git lfs pull)")
                    continue
            person = people.get(str(int(info["actor"])), people.get(info["actor"]))
            if person:
                meta["age"] = (person.get("Age") or "").strip()
                meta["gender"] = (person.get("Sex") or "").strip().lower()
            row = votes.get(stem)
            if row:
                for which, col in VOTE_COLUMNS.items():
                    meta[f"{which}_vote"] = (row.get(col) or "").strip()
                    level = col.replace("Vote", "Level")
                    meta[f"{which}_level"] = (row.get(level) or "").strip()
            label = EMOTIONS[info["emotion"]]
            if self.label_source != "intended":
                if row is None:
                    self.skip(rel, f"{stem} is not in {SUMMARY}: no crowd vote")
                    continue
                vote = (row.get(VOTE_COLUMNS[self.label_source]) or "").strip()
                if ":" in vote:
                    self.skip(rel, f"{stem}: tied crowd vote {vote!r} ({self.label_source})")
                    continue
                if vote not in VOTES:
                    self.skip(rel, f"{stem}: crowd vote {vote!r} is not one of A D F H N S")
                    continue
                label = VOTES[vote]
            yield Clip(
                clip_id=stem,
                path=rel,
                speaker=info["actor"],
                label=label,
                transcript=SENTENCES[info["sentence"]],
                meta=meta,
                audio_path=audio_path,
            )
