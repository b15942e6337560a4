"""RAVDESS: the Ryerson Audio-Visual Database of Emotional Speech and Song.

Layout: ``Actor_01/ .. Actor_24/`` holding files named ``MM-VV-EE-II-SS-RR-AA.ext``, seven
two-digit fields: modality (01 full-AV, 02 video-only, 03 audio-only), vocal channel
(01 speech, 02 song), emotion (01 neutral .. 08 surprised), intensity (01 normal, 02 strong),
statement (01 "Kids are talking by the door", 02 "Dogs are sitting by the door"),
repetition (01, 02) and actor (01..24; odd male, even female). The statement gives the
transcript. Default: the full-AV speech files (modality 01, vocal channel 01), 1,440 clips.
The MPUC paper counts "2,880 recordings": its authors' loader takes the full-AV and the
video-only speech files (1,440 each) and pairs each with the audio-only file of the same
take for the sound. ``modalities=("full-AV", "video-only")`` lists both kinds, but the
video-only files carry no audio and are not paired here, so audio features fail on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..config import FoldScheme
from .base import Clip, CorpusAdapter

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
    for code, table, what in (
        (mo, MODALITIES, "modality"),
        (vc, VOCAL_CHANNELS, "vocal channel"),
        (em, EMOTIONS, "emotion"),
        (it, INTENSITIES, "intensity"),
        (st, STATEMENTS, "statement"),
    ):
        if code not in table:
            raise ValueError(
                f"{name!r}: unknown {what} code {code}; known: {', '.join(sorted(table))}"
            )
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

    ``modalities``/``vocal_channels`` select which files count (default: full-AV speech, as
    in the papers). Files that do not parse as RAVDESS names are skipped and reported by
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
        FoldScheme("random_kfold", "stratified_kfold", n_folds=10),
        FoldScheme("actor_holdout", "group_holdout", n_train=18, n_val=3, n_test=3),
    )
    disjoint = {"actor_kfold": "speaker", "actor_holdout": "speaker"}

    def __init__(
        self,
        root: str | Path,
        modalities: tuple[str, ...] = ("full-AV",),
        vocal_channels: tuple[str, ...] = ("speech",),
    ) -> None:
        super().__init__(root)
        self.modalities = modalities
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
                },
            )
