"""RAVDESS: the Ryerson Audio-Visual Database of Emotional Speech and Song.

Layout: ``Actor_01/ .. Actor_24/`` holding files named ``MM-VV-EE-II-SS-RR-AA.ext``, seven
two-digit fields: modality (01 full-AV, 02 video-only, 03 audio-only), vocal channel
(01 speech, 02 song), emotion (01 neutral .. 08 surprised), intensity (01 normal, 02 strong),
statement (01 "Kids are talking by the door", 02 "Dogs are sitting by the door"),
repetition (01, 02) and actor (01..24; odd male, even female). The statement gives the
transcript.

Which recordings (option ``recordings``):

- ``av`` (default): the full-AV speech files (modality 01, vocal channel 01), 1,440 clips,
  each with its own sound. ``modalities`` / ``vocal_channels`` choose other kinds of file.
- ``paired``: the MPUC paper's "2,880 recordings", as its authors' loader builds them: the
  full-AV (01) and the video-only (02) speech files, 1,440 each, every one paired with the
  audio-only (03) WAV of the same performance (same vocal channel, emotion, intensity,
  statement, repetition and actor), from which the audio stages read the sound (the clip's
  ``audio_path``; the WAV's hash is in their cache keys). RAVDESS distributes each
  performance as three renderings of one take (the video-only file is the full-AV video
  without its sound), so a performance's two clips carry the same face and, paired, the same
  sound: nearly one sample twice. ``meta_performance`` names the performance (the name
  without its modality field) and every fold scheme keeps its clips in one part: the folds
  stage applies ``together: performance`` to every scheme of this adapter (the actor
  schemes keep a take together anyway; ``random_kfold`` deals a take as one unit), and the
  folds are checked for it when they are made. A file whose audio-only partner is missing is
  left out with that reason. Unpack the video zips and the audio-only zip into the same
  ``Actor_XX`` folders.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..config import FoldScheme
from .base import Clip, CorpusAdapter, check_codes, check_options

MODALITIES = {"01": "full-AV", "02": "video-only", "03": "audio-only"}
VOCAL_CHANNELS = {"01": "speech", "02": "song"}
EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
MEDIA_SUFFIXES = (".mp4", ".wav")
# option recordings -> the kinds of file that become clips
RECORDINGS = {"av": ("full-AV",), "paired": ("full-AV", "video-only")}


@dataclass(frozen=True)
class RavdessName:
    modality: str
    vocal_channel: str
    emotion: str
    intensity: str
    statement: str
    repetition: int
    actor: int

    @property
    def gender(self) -> str:
        return "male" if self.actor % 2 else "female"

    statement_code: str = "01"


def parse_name(name: str) -> RavdessName:
    """Decode a RAVDESS file name (with or without extension).

    Raises ValueError naming the bad field and its allowed codes.
    """
    stem = Path(name).stem
    parts = stem.split("-")
    if len(parts) != 7 or not all(len(p) == 2 and p.isdigit() for p in parts):
        raise ValueError(f"{name!r} is not a RAVDESS name (expected MM-VV-EE-II-SS-RR-AA)")
    mo, vc, em, it, st, rep, actor = parts
    check_codes(name, (
        (mo, MODALITIES, "modality"),
        (vc, VOCAL_CHANNELS, "vocal channel"),
        (em, EMOTIONS, "emotion"),
        (it, INTENSITIES, "intensity"),
        (st, STATEMENTS, "statement"),
    ))  # fmt: skip
    if rep not in ("01", "02"):
        raise ValueError(f"{name!r}: unknown repetition code {rep}; known: 01, 02")
    if int(actor) < 1:
        raise ValueError(f"{name!r}: actor code must be 01 or more, got {actor}")
    return RavdessName(
        modality=MODALITIES[mo],
        vocal_channel=VOCAL_CHANNELS[vc],
        emotion=EMOTIONS[em],
        intensity=INTENSITIES[it],
        statement=STATEMENTS[st],
        repetition=int(rep),
        actor=int(actor),
        statement_code=st,
    )


class Ravdess(CorpusAdapter):
    """Full-AV speech clips of RAVDESS (or any corpus laid out like it).

    ``recordings`` (``av`` | ``paired``, see the module docstring), or ``modalities`` /
    ``vocal_channels``, select which files count (default: full-AV speech). Files that do
    not parse as RAVDESS names are skipped and reported by
    :meth:`skipped`.
    """

    name = "ravdess"
    title = "RAVDESS"
    labels = tuple(EMOTIONS.values())
    has_transcripts = True
    layout = """Actor_01/ .. Actor_24/
  Actor_XX/MM-VV-EE-II-SS-RR-AA.mp4 (or .wav): modality, vocal channel, emotion, intensity,
                                       statement, repetition, actor (two digits each)"""
    # The papers' schemes on the full corpus (24 actors); params.yaml scales them to the sample.
    fold_schemes = (
        FoldScheme("actor_kfold", "group_kfold", n_folds=10, group_by="speaker"),
        FoldScheme("random_kfold", "stratified_kfold", n_folds=10, together="performance"),
        FoldScheme("actor_holdout", "group_holdout", n_train=18, n_val=3, n_test=3),
    )
    disjoint = {"actor_kfold": "speaker", "actor_holdout": "speaker",
                "random_kfold": "performance"}  # fmt: skip
    together = "performance"  # a take's full-AV and video-only clips share a part

    def __init__(
        self,
        root: str | Path,
        modalities: tuple[str, ...] | None = None,
        vocal_channels: tuple[str, ...] = ("speech",),
        recordings: str = "av",
    ) -> None:
        super().__init__(root)
        check_options("ravdess", (("recordings", recordings, RECORDINGS),))
        if recordings == "paired" and modalities is not None:
            raise ValueError(
                "ravdess option recordings: paired takes the full-AV and video-only files "
                "(each paired with its audio-only WAV); leave out the modalities option"
            )
        self.recordings = recordings
        self.modalities = tuple(modalities or RECORDINGS[recordings])
        self.vocal_channels = vocal_channels

    def clips(self) -> Iterator[Clip]:
        self.check_root()
        self.skipped = []
        if not any(p.is_dir() for p in self.root.glob("Actor_*")):
            raise self.layout_error("no Actor_XX/ folder")
        files = sorted(p for p in self.root.glob("Actor_*/*") if p.suffix.lower() in MEDIA_SUFFIXES)
        for path in files:
            rel = path.relative_to(self.root).as_posix()
            try:
                info = parse_name(path.name)
            except ValueError as e:
                self.skipped.append((rel, str(e)))
                continue
            if info.modality not in self.modalities:
                continue
            if info.vocal_channel not in self.vocal_channels:
                continue
            folder_actor = path.parent.name.removeprefix("Actor_")
            if folder_actor.isdigit() and int(folder_actor) != info.actor:
                self.skipped.append(
                    (rel, f"actor {info.actor} in a folder of actor {folder_actor}")
                )
                continue
            audio_path = ""
            if self.recordings == "paired":
                wav = path.with_name(f"03-{path.stem[3:]}.wav")
                audio_path = wav.relative_to(self.root).as_posix()
                if not wav.is_file():
                    self.skip(rel, f"no audio-only file {audio_path} to pair it with "
                                   f"(recordings: paired reads each clip's sound from it)")
                    continue
            yield Clip(
                clip_id=path.stem,
                path=rel,
                speaker=f"Actor_{info.actor:02d}",
                session="",
                label=info.emotion,
                transcript=info.statement,
                meta={
                    "modality": info.modality,
                    "vocal_channel": info.vocal_channel,
                    "intensity": info.intensity,
                    "statement": info.statement_code,
                    "repetition": str(info.repetition),
                    "gender": info.gender,
                    # the name without its modality: the one take its 01/02/03 files render
                    "performance": path.stem[3:],
                },
                audio_path=audio_path,
            )
