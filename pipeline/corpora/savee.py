"""SAVEE: the Surrey Audio-Visual Expressed Emotion database (Haq & Jackson 2009).

Four male speakers (DC, JE, JK, KL), 7 emotions, 120 utterances each (480 in all): 15 per
emotion and 30 neutral. File names are letter-coded: the emotion letter(s) and a two-digit
sentence number, ``a`` anger, ``d`` disgust, ``f`` fear, ``h`` happiness, ``n`` neutral,
``sa`` sadness, ``su`` surprise (``sa03`` = the third sadness sentence).

Layout (the release's folders)::

    AudioVisualClip/<speaker>/<code><nn>.avi   audio-visual clips (media='video', default)
    AudioData/<speaker>/<code><nn>.wav         audio (media='audio')

The audio-only copy that circulates as one folder, ``ALL/<speaker>_<code><nn>.wav``, is read
too with ``media='audio'`` when ``AudioData/`` is absent. The release holds no transcript file
this adapter reads (the sentences are TIMIT sentences listed in the corpus's documentation, not
per file), so clips carry no transcript. The speaker is the folder (or name prefix); the
standard protocol is leave-one-speaker-out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..config import FoldScheme
from .base import Clip, CorpusAdapter, check_options

EMOTIONS = {
    "a": "angry",
    "d": "disgust",
    "f": "fearful",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprised",
}
SPEAKERS = ("DC", "JE", "JK", "KL")
PER_EMOTION = {"n": 30}  # the others: 15 each
_NAME = re.compile(r"^(?:(?P<spk>[A-Za-z]{2})_)?(?P<code>sa|su|[adfhn])(?P<num>\d{2})$")


def parse_name(name: str) -> tuple[str, str, int]:
    """(speaker prefix or "", emotion code, sentence number) of a SAVEE file name."""
    m = _NAME.match(Path(name).stem)
    if not m:
        raise ValueError(
            f"{name!r} is not a SAVEE name (expected <code><nn> with code a, d, f, h, n, sa "
            f"or su, like sa03.avi; or <speaker>_<code><nn>.wav in ALL/)"
        )
    num = int(m["num"])
    limit = PER_EMOTION.get(m["code"], 15)
    if not 1 <= num <= limit:
        raise ValueError(f"{name!r}: sentence number {num} outside 1..{limit} for {m['code']!r}")
    return (m["spk"] or "").upper(), m["code"], num


class Savee(CorpusAdapter):
    """SAVEE clips (see the module docstring)."""

    name = "savee"
    title = "SAVEE"
    labels = tuple(EMOTIONS.values())
    layout = """AudioVisualClip/<speaker>/<code><nn>.avi   speaker DC JE JK KL; code a d f h n sa su
AudioData/<speaker>/<code><nn>.wav         media: audio (or ALL/<speaker>_<code><nn>.wav)"""
    fold_schemes = (
        FoldScheme("loso", "group_kfold", n_folds=4, group_by="speaker"),
    )
    disjoint = {"loso": "speaker"}

    def __init__(self, root: str | Path, media: str = "video") -> None:
        super().__init__(root)
        check_options("savee", (("media", media, ("video", "audio")),))
        self.media = media

    def _files(self) -> list[tuple[Path, str]]:
        """(file, speaker from its folder or "" for the flat ALL/ layout)."""
        video = self.media == "video"
        folder, suffix = ("AudioVisualClip", ".avi") if video else ("AudioData", ".wav")
        base = self.root / folder
        if base.is_dir():
            return [
                (p, p.parent.name.upper())
                for p in sorted(base.glob(f"*/*{suffix}"))
                if not p.name.startswith(".")
            ]
        flat = self.root / "ALL"
        if self.media == "audio" and flat.is_dir():
            return [(p, "") for p in sorted(flat.glob("*.wav")) if not p.name.startswith(".")]
        raise self.layout_error(f"no {folder}/ folder (media: {self.media})")

    def clips(self) -> Iterator[Clip]:
        self.check_root()
        self.skipped = []
        files = self._files()
        if not files:
            raise self.layout_error("no media file in the speakers' folders")
        for path, folder_speaker in files:
            rel = path.relative_to(self.root).as_posix()
            try:
                prefix, code, num = parse_name(path.name)
            except ValueError as e:
                self.skip(rel, str(e))
                continue
            speaker = folder_speaker or prefix
            if not speaker:
                self.skip(rel, "no speaker: the file is in no speaker folder and has no prefix")
                continue
            if prefix and folder_speaker and prefix != folder_speaker:
                self.skip(rel, f"speaker {prefix} in the folder of speaker {folder_speaker}")
                continue
            yield Clip(
                clip_id=f"{speaker}_{code}{num:02d}",
                path=rel,
                speaker=speaker,
                label=EMOTIONS[code],
                meta={"emotion_code": code, "sentence": f"{num:02d}"},
            )
