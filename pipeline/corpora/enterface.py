"""eNTERFACE'05: the audio-visual emotion database of Martin, Kotsia, Macq & Pitas (2006).

42 subjects (numbered up to 44 in the release) × 6 emotions × 5 sentences, English, read after
a short story that elicits the emotion. Layout of the release (``enterface database/``)::

    subject <N>/<emotion>/sentence <K>/s<N>_<code>_<K>.avi

with ``<emotion>`` one of anger, disgust, fear, happiness, sadness, surprise and ``<code>``
an, di, fe, ha, sa, su. Releases differ in details, so the adapter reads:

- the subject from the ``subject <N>`` folder (the file name's ``s<N>`` must agree);
- the emotion from the emotion folder (the file name's code must agree);
- the sentence from the ``sentence <K>`` folder, or from the name's last number where a
  subject's files lie directly in the emotion folder.

A file that disagrees with its folders, or whose name does not parse, is skipped with the reason.
The transcript is the sentence's text from the corpus's documentation (five per emotion).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..config import FoldScheme
from .base import Clip, CorpusAdapter

FOLDERS = {
    "anger": "an",
    "disgust": "di",
    "fear": "fe",
    "happiness": "ha",
    "sadness": "sa",
    "surprise": "su",
}
EMOTIONS = {
    "an": "angry",
    "di": "disgust",
    "fe": "fearful",
    "ha": "happy",
    "sa": "sad",
    "su": "surprised",
}
SENTENCES = {
    "an": (
        "What??? No, no, no, listen! I need this money!",
        "I don't care about your coffee! Please serve me!",
        "I can have you fired you know!",
        "Is your coffee more important than my money?",
        "You're getting paid to work, not drink coffee!",
    ),
    "di": (
        "That's horrible! I'll never eat noodles again.",
        "Something is moving inside my plate",
        "Aaaaah a cockroach!!!",
        "Eeeek, this is disgusting!!!",
        "That's gross!",
    ),
    "fe": (
        "Oh my god, there is someone in the house!",
        "Someone is climbing up the stairs",
        "Please don't kill me...",
        "I'm not alone! Go away!",
        "I have nothing to give you! Please don't hurt me!",
    ),
    "ha": (
        "That's great, I'm rich now!!!",
        "I won: this is great! I'm so happy!!",
        "Wahoo... This is so great.",
        "I'm so lucky!",
        "I'm so excited!",
    ),
    "sa": (
        "Life won't be the same now",
        "Oh no, tell me this is not true, please!",
        "Everything was so perfect! I just don't understand!",
        "I still loved him (her)",
        "He (she) was my life",
    ),
    "su": (
        "You have never told me that!",
        "I didn't expect that!",
        "Wahoo, I would never have believed this!",
        "I never saw that coming!",
        "Oh my God, that's so weird!",
    ),
}
_SUBJECT = re.compile(r"^subject[ _-]?(\d+)$", re.IGNORECASE)
_SENTENCE = re.compile(r"^sentence[ _-]?(\d+)$", re.IGNORECASE)
_NAME = re.compile(r"^s_?(?P<subject>\d+)_(?P<code>[a-z]{2})_(?P<sentence>\d+)$", re.IGNORECASE)
MEDIA_SUFFIXES = (".avi",)


def parse_name(name: str) -> tuple[int, str, int]:
    """(subject, emotion code, sentence) of an eNTERFACE'05 file name like ``s12_an_3.avi``."""
    m = _NAME.match(Path(name).stem)
    if not m or m["code"].lower() not in EMOTIONS:
        raise ValueError(
            f"{name!r} is not an eNTERFACE'05 name (expected s<subject>_<code>_<sentence>.avi "
            f"with code {', '.join(EMOTIONS)}, like s12_an_3.avi)"
        )
    return int(m["subject"]), m["code"].lower(), int(m["sentence"])


class Enterface(CorpusAdapter):
    """eNTERFACE'05 clips (see the module docstring)."""

    name = "enterface"
    title = "eNTERFACE'05"
    labels = tuple(EMOTIONS.values())
    has_transcripts = True
    layout = """subject <N>/<emotion>/sentence <K>/s<N>_<code>_<K>.avi
  emotion: anger disgust fear happiness sadness surprise; code: an di fe ha sa su; K: 1..5"""
    # Subject-disjoint 5-fold cross-validation (about 8 test subjects a fold).
    fold_schemes = (
        FoldScheme("subject_kfold", "group_kfold", n_folds=5, group_by="speaker"),
    )
    disjoint = {"subject_kfold": "speaker"}

    def clips(self) -> Iterator[Clip]:
        self.check_root()
        self.skipped = []
        subjects = sorted(
            (int(m[1]), p)
            for p in self.root.iterdir()
            if p.is_dir() and (m := _SUBJECT.match(p.name))
        )
        if not subjects:
            raise self.layout_error("no 'subject <N>' folder")
        for number, folder in subjects:
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    clip = self._clip(number, folder, path)
                    if clip is not None:
                        yield clip

    def _clip(self, subject: int, folder: Path, path: Path) -> Clip | None:
        rel = path.relative_to(self.root).as_posix()
        if path.suffix.lower() not in MEDIA_SUFFIXES:
            return None
        inner = path.relative_to(folder).parts[:-1]  # (emotion[, sentence K])
        try:
            n, code, sentence = parse_name(path.name)
        except ValueError as e:
            self.skip(rel, str(e))
            return None
        if not inner or inner[0].lower() not in FOLDERS:
            self.skip(rel, f"not in an emotion folder ({', '.join(FOLDERS)}) of {folder.name}")
            return None
        folder_code = FOLDERS[inner[0].lower()]
        if folder_code != code:
            self.skip(rel, f"emotion code {code!r} in the {inner[0]!r} folder")
            return None
        if n != subject:
            self.skip(rel, f"subject {n} in the folder of subject {subject}")
            return None
        if len(inner) > 1 and (m := _SENTENCE.match(inner[1])) and int(m[1]) != sentence:
            self.skip(rel, f"sentence {sentence} in the folder {inner[1]!r}")
            return None
        if not 1 <= sentence <= len(SENTENCES[code]):
            self.skip(rel, f"sentence number {sentence} outside 1..{len(SENTENCES[code])}")
            return None
        return Clip(
            clip_id=f"s{subject:02d}_{code}_{sentence}",
            path=rel,
            speaker=f"subject_{subject:02d}",
            label=EMOTIONS[code],
            transcript=SENTENCES[code][sentence - 1],
            meta={"emotion_code": code, "sentence": str(sentence)},
        )
