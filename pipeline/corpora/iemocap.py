"""IEMOCAP: the Interactive Emotional Dyadic Motion Capture database (USC SAIL).

Layout (release ``IEMOCAP_full_release``)::

    Session1..5/dialog/EmoEvaluation/<dialog>.txt         labels (one block per utterance)
    Session1..5/dialog/transcriptions/<dialog>.txt        "<utt> [start-end]: text"
    Session1..5/dialog/avi/DivX/<dialog>.avi              the dialog video (both actors)
    Session1..5/sentences/wav/<dialog>/<utt>.wav          one wav per utterance
    Session1..5/sentences/ForcedAlignment/<dialog>/<utt>.wdseg   word alignment (optional)

Names, from the release's README: ``Ses01F_impro01`` is session 1, the **F**\\ emale actor
wears the motion-capture markers, improvisation 1; ``Ses01F_impro01_M000`` is that dialog's
first utterance of the **M**\\ ale actor. So the utterance's last letter names the speaker
and the dialog's letter names the actor with markers.

Which half of the frame shows the speaker: the dialog video shows the two actors side by side.
The README says which actor wears the markers but not where each actor appears; the rule
used here is the one public IEMOCAP preprocessing code applies: the actor wearing the markers
is on the **left**, the other on the **right**. Every clip carries the result in
``meta['face_side']`` (``left``/``right``) for the faces stage; ``mocap_side='right'`` flips
the rule if a release shows otherwise.

Labels: ``classes='4'`` (default) is the 4-class setting of Qian & Han (and most IEMOCAP
work): neutral, happy (= happiness + excitement), sad, angry; other utterances are left
out. On the full corpus this gives 5,531 utterances (1,708 neutral, 1,636 happy+excited,
1,084 sad, 1,103 angry). ``classes='all'`` keeps every utterance with its own class
(including frustrated, fearful, surprised, disgusted, other and ``no_agreement`` for
``xxx``). Valence/activation/dominance go to ``meta`` either way.

Media: ``media='dialog_video'`` (default) points each clip at the dialog's avi with the
utterance's start/end (the extractors cut it); ``media='sentence_wav'`` uses the per-utterance
wav (audio-only stages).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..config import FoldScheme
from ..files import read_text
from ..text.alignment import WORD_TIMES_KEY, dump_word_times
from .base import Clip, CorpusAdapter, check_options

CODES = {
    "neu": "neutral",
    "hap": "happy",
    "exc": "excited",
    "sad": "sad",
    "ang": "angry",
    "fru": "frustrated",
    "fea": "fearful",
    "sur": "surprised",
    "dis": "disgusted",
    "oth": "other",
    "xxx": "no_agreement",
}
FOUR_CLASS = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}
FULL_CORPUS_4CLASS = {"neutral": 1708, "happy": 1636, "sad": 1084, "angry": 1103}  # 5,531

_EVAL = re.compile(
    r"^\[\s*(?P<start>\d+(?:\.\d+)?)\s*-\s*(?P<end>\d+(?:\.\d+)?)\s*\]\s+(?P<utt>\S+)\s+"
    r"(?P<code>\S+)\s+\[(?P<vad>[^\]]*)\]"
)
_TRANS = re.compile(r"^(?P<utt>Ses\S+)\s+\[[^\]]*\]:\s?(?P<text>.*)$")
_UTT = re.compile(
    r"^Ses(?P<session>\d\d)(?P<mocap>[FM])_(?P<kind>impro|script)\S*_(?P<speaker>[FM])\w*\d+$"
)
_WDSEG = re.compile(r"^\s*(?P<sf>\d+)\s+(?P<ef>\d+)\s+-?\d+\s+(?P<word>\S+)\s*$")
FRAME_SECONDS = 0.01  # Sphinx alignment frames


def dialog_of(utt: str) -> str:
    """``Ses01F_script01_1_F000`` -> ``Ses01F_script01_1``."""
    return utt.rsplit("_", 1)[0]


def parse_utterance_id(utt: str) -> dict[str, str]:
    """Session number, the actor with markers, improvised/scripted, and the speaker's gender."""
    m = _UTT.match(utt)
    if not m:
        raise ValueError(f"{utt!r} is not an IEMOCAP utterance id (like Ses01F_impro01_F000)")
    return m.groupdict()


def face_side(utt: str, mocap_side: str = "left") -> str:
    """Half of the dialog frame that shows the speaker of ``utt`` (see the module docstring)."""
    info = parse_utterance_id(utt)
    other = "right" if mocap_side == "left" else "left"
    return mocap_side if info["speaker"] == info["mocap"] else other


def read_evaluation(path: Path) -> list[dict[str, str]]:
    """The utterance lines of an EmoEvaluation file: start, end, utt, code, vad."""
    out = []
    for line in read_text(path, errors="replace").splitlines():
        m = _EVAL.match(line.strip())
        if m:
            out.append(m.groupdict())
    return out


def read_transcriptions(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``({utterance: text}, {utterance: why})``: the second names each utterance given two
    different texts (with the lines), which has no transcript it can be trusted with."""
    out: dict[str, str] = {}
    lines: dict[str, int] = {}
    twice: dict[str, str] = {}
    if not path.exists():
        return out, twice
    for n, line in enumerate(read_text(path, errors="replace").splitlines(), start=1):
        m = _TRANS.match(line.strip())
        if not m:
            continue
        utt, text = m["utt"], m["text"].strip()
        if utt in out and out[utt] != text:
            twice[utt] = (f"{path.name} gives utterance {utt} two transcripts (lines "
                          f"{lines[utt]} and {n}); fix the file")
        out.setdefault(utt, text)
        lines.setdefault(utt, n)
    return out, twice


def read_wdseg(path: Path) -> list[tuple[str, float, float]]:
    """Words of a Sphinx ``.wdseg`` alignment with times in seconds from the utterance start
    (silences, ``<s>``, noise markers and pronunciation variants ``WORD(2)`` cleaned)."""
    words = []
    for line in read_text(path, errors="replace").splitlines():
        m = _WDSEG.match(line)
        if not m:
            continue
        word = re.sub(r"\(\d+\)$", "", m["word"])
        if word.startswith(("<", "++", "[")) or not word:
            continue
        start = int(m["sf"]) * FRAME_SECONDS
        end = (int(m["ef"]) + 1) * FRAME_SECONDS
        words.append((word.lower(), round(start, 4), round(end, 4)))
    return words


class Iemocap(CorpusAdapter):
    """Utterances of IEMOCAP (see the module docstring for options and rules)."""

    name = "iemocap"
    title = "IEMOCAP"
    labels = ("neutral", "happy", "sad", "angry")
    has_transcripts = True
    layout = """Session1..5/dialog/EmoEvaluation/<dialog>.txt        labels
Session1..5/dialog/transcriptions/<dialog>.txt
Session1..5/dialog/avi/DivX/<dialog>.avi
Session1..5/sentences/wav/<dialog>/<utterance>.wav"""
    fold_schemes = (
        FoldScheme("kfold_811", "stratified_kfold", n_folds=10, val_fraction=0.1111),
        FoldScheme("loso", "group_kfold", n_folds=5, group_by="session"),
    )
    # each session has its own two actors, so leaving a session out is speaker-disjoint too
    disjoint = {"loso": "speaker"}

    def __init__(
        self,
        root: str | Path,
        classes: str = "4",
        media: str = "dialog_video",
        sessions: list[int] | tuple[int, ...] = (1, 2, 3, 4, 5),
        dialogs: str = "all",
        mocap_side: str = "left",
        word_alignment: bool = True,
    ) -> None:
        super().__init__(root)
        check_options("iemocap", (
            ("classes", str(classes), ("4", "all")),
            ("media", media, ("dialog_video", "sentence_wav")),
            ("dialogs", dialogs, ("all", "impro", "script")),
            ("mocap_side", mocap_side, ("left", "right")),
        ))  # fmt: skip
        self.classes = str(classes)
        self.media = media
        self.sessions = tuple(int(s) for s in sessions)
        self.dialogs = dialogs
        self.mocap_side = mocap_side
        self.word_alignment = word_alignment
        if self.classes == "all":
            self.labels = tuple(dict.fromkeys(CODES.values()))

    def _label(self, code: str) -> str | None:
        table = FOUR_CLASS if self.classes == "4" else CODES
        return table.get(code)

    def clips(self) -> Iterator[Clip]:
        self.check_root()
        self.skipped = []
        found = False
        for n in self.sessions:
            session = self.root / f"Session{n}"
            evals = session / "dialog" / "EmoEvaluation"
            if not evals.is_dir():
                continue
            found = True
            for path in sorted(evals.glob("*.txt")):
                if path.name.startswith("."):
                    continue  # ._Ses01F... resource forks of archives made on a Mac
                yield from self._dialog_clips(session, path)
        if not found:
            raise self.layout_error(
                f"no Session<N>/dialog/EmoEvaluation/ folder for sessions "
                f"{list(self.sessions)}; set corpus.root to the IEMOCAP_full_release folder"
            )

    def _dialog_clips(self, session: Path, eval_path: Path) -> Iterator[Clip]:
        dialog = eval_path.stem
        texts, twice = read_transcriptions(
            session / "dialog" / "transcriptions" / f"{dialog}.txt")
        for row in read_evaluation(eval_path):
            utt = row["utt"]
            label = self._label(row["code"])
            if label is None:
                continue  # a class outside the chosen setting (e.g. frustrated in 4-class)
            if utt in twice:
                self.skip(f"{session.name}/dialog/transcriptions/{dialog}.txt", twice[utt],
                          clip_id=utt)
                continue
            try:
                info = parse_utterance_id(utt)
            except ValueError as e:
                self.skipped.append((f"{session.name}/{utt}", str(e)))
                continue
            if self.dialogs != "all" and info["kind"] != self.dialogs:
                continue
            wav = f"{session.name}/sentences/wav/{dialog_of(utt)}/{utt}.wav"
            if self.media == "dialog_video":
                path = f"{session.name}/dialog/avi/DivX/{dialog_of(utt)}.avi"
                start, end = float(row["start"]), float(row["end"])
            else:
                path, start, end = wav, 0.0, 0.0
            meta = {
                "emotion_code": row["code"],
                "dialog": dialog_of(utt),
                "improvised": str(info["kind"] == "impro"),
                "gender": "female" if info["speaker"] == "F" else "male",
                "mocap_actor": "female" if info["mocap"] == "F" else "male",
                "face_side": face_side(utt, self.mocap_side),
                "sentence_wav": wav,
                "utterance_start": row["start"],
                "utterance_end": row["end"],
            }
            vad = [v.strip() for v in row["vad"].split(",")]
            if len(vad) == 3:
                meta.update(valence=vad[0], activation=vad[1], dominance=vad[2])
            if self.word_alignment:
                seg = session / "sentences" / "ForcedAlignment" / dialog_of(utt) / f"{utt}.wdseg"
                if seg.is_file():
                    words = read_wdseg(seg)
                    if words:
                        meta[WORD_TIMES_KEY] = dump_word_times(words)
            yield Clip(
                clip_id=utt,
                path=path,
                speaker=f"Ses{info['session']}_{info['speaker']}",
                session=f"Session{int(info['session'])}",
                label=label,
                transcript=texts.get(utt, ""),
                start=start,
                end=end,
                meta=meta,
            )
