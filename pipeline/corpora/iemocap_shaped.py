"""An IEMOCAP-shaped release plan, for dry runs and tests without the corpus.

The plan has the release's shape: five sessions with their utterance counts (1,819 / 1,811 /
2,136 / 2,103 / 2,170 = 10,039), two actors per session (F and M), improvised and scripted
dialogs each recorded twice (once with the female, once with the male actor wearing the
markers: ``Ses01F_impro01``, ``Ses01M_impro01``), and the release's label counts: the
majority codes of ``EmoEvaluation`` (neutral 1,708, excited 1,041, happy 595, sad 1,084,
angry 1,103, frustrated 1,849, surprised 107, fearful 40, disgusted 2, other 3, no agreement
``xxx`` 2,507). The 4-class setting (excitement merged into happiness) is then 1,708 neutral,
1,636 happy, 1,084 sad and 1,103 angry = 5,531, the counts the IEMOCAP adapter documents.

Approximations, said here so nobody takes them for the release: 15 dialog names per actor and
session (``impro01..08``, ``script01_1..03_2``: 150 dialogs, the release has 151); labels
are spread over sessions and dialogs at random (seeded), not as the actors performed them;
speakers alternate at random within a dialog. ``scale`` shrinks every count for a miniature.

:func:`write_annotations` writes ``EmoEvaluation`` and ``transcriptions`` as the release
does; the media (speech, the dialog video) are made by ``scripts/make_shaped_corpus.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .iemocap import FOUR_CLASS

# majority EmoEvaluation codes of the release (10,039 utterances)
RELEASE_CODES = {
    "neu": 1708, "exc": 1041, "hap": 595, "sad": 1084, "ang": 1103, "fru": 1849,
    "sur": 107, "fea": 40, "dis": 2, "oth": 3, "xxx": 2507,
}  # fmt: skip
RELEASE_SESSIONS = (1819, 1811, 2136, 2103, 2170)
DIALOG_NAMES = (
    "impro01", "script01_1", "impro02", "script01_2", "impro03", "script01_3", "impro04",
    "script02_1", "impro05", "script02_2", "impro06", "script03_1", "impro07", "script03_2",
    "impro08",
)  # fmt: skip
# valence, activation, dominance (1..5) drawn around these per code
VAD = {
    "neu": (3.0, 2.5, 2.5), "exc": (4.0, 3.8, 3.3), "hap": (4.0, 3.0, 3.0),
    "sad": (2.0, 2.2, 2.3), "ang": (1.8, 3.8, 3.8), "fru": (2.0, 3.2, 3.2),
    "sur": (3.5, 3.8, 2.8), "fea": (2.0, 3.5, 2.0), "dis": (1.8, 3.0, 3.0),
    "oth": (3.0, 3.0, 3.0), "xxx": (2.8, 2.8, 2.8),
}  # fmt: skip


@dataclass
class Utterance:
    utt: str
    code: str
    speaker: str  # F or M
    start: float = 0.0
    end: float = 0.0
    text: str = ""


@dataclass
class Dialog:
    name: str  # Ses01F_impro01
    session: int
    utterances: list[Utterance] = field(default_factory=list)


def scaled_counts(scale: float) -> dict[str, int]:
    """The release's code counts times ``scale`` (rounded); each 4-class code keeps >= 1."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    out = {c: int(round(n * scale)) for c, n in RELEASE_CODES.items()}
    for c in FOUR_CLASS:
        out[c] = max(out[c], 1)
    return out


def four_class_counts(codes: dict[str, int]) -> dict[str, int]:
    """The 4-class labels (excitement merged into happiness) of code counts."""
    out = {"neutral": 0, "happy": 0, "sad": 0, "angry": 0}
    for c, n in codes.items():
        if c in FOUR_CLASS:
            out[FOUR_CLASS[c]] += n
    return out


def _split(total: int, weights: tuple[int, ...] | list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders), summing exactly."""
    w = np.asarray(weights, float)
    raw = total * w / w.sum()
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: total - out.sum()]:
        out[i] += 1
    return out.tolist()


def plan(scale: float = 1.0, seed: int = 0, dialogs_per_session: int | None = None) -> list[Dialog]:
    """The dialogs and utterances of an IEMOCAP-shaped release (see the module docstring).
    ``dialogs_per_session`` defaults to 30 at full size and fewer (>= 2) for a miniature."""
    counts = scaled_counts(scale)
    rng = np.random.default_rng(seed)
    codes = np.array([c for c, n in counts.items() for _ in range(n)])
    rng.shuffle(codes)
    per_session = _split(len(codes), RELEASE_SESSIONS)
    if dialogs_per_session is None:
        dialogs_per_session = max(2, min(30, round(30 * scale)))
    if not 1 <= dialogs_per_session <= 2 * len(DIALOG_NAMES):
        raise ValueError(f"dialogs_per_session must be in 1..{2 * len(DIALOG_NAMES)}")
    out: list[Dialog] = []
    at = 0
    for s, n_utt in enumerate(per_session, start=1):
        names = []
        for j in range(dialogs_per_session):  # kinds and marker actors mixed from the first
            k = j % len(DIALOG_NAMES)
            mocap = "FM"[(k + j // len(DIALOG_NAMES)) % 2]
            names.append(f"Ses{s:02d}{mocap}_{DIALOG_NAMES[k]}")
        for name, n in zip(names, _split(n_utt, [1] * len(names)), strict=True):
            d = Dialog(name, s)
            seen = {"F": 0, "M": 0}
            speaker = "FM"[int(rng.integers(2))]
            for code in codes[at : at + n]:
                d.utterances.append(Utterance(f"{name}_{speaker}{seen[speaker]:03d}", str(code),
                                              speaker))  # fmt: skip
                seen[speaker] += 1
                if rng.random() < 0.8:  # turns mostly alternate
                    speaker = "M" if speaker == "F" else "F"
            at += n
            out.append(d)
    return out


def write_annotations(root: Path, dialogs: list[Dialog], seed: int = 0) -> None:
    """``Session<N>/dialog/EmoEvaluation/<dialog>.txt`` and ``transcriptions/<dialog>.txt``
    in the release's formats (utterance times and texts taken from the plan)."""
    rng = np.random.default_rng(seed + 1)
    for d in dialogs:
        base = root / f"Session{d.session}" / "dialog"
        (base / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
        (base / "transcriptions").mkdir(parents=True, exist_ok=True)
        blocks = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"]
        lines = []
        for u in d.utterances:
            v, a, dom = (float(np.clip(x + rng.normal(0, 0.4), 1, 5)) for x in VAD[u.code])
            blocks.append(
                f"[{u.start:.4f} - {u.end:.4f}]\t{u.utt}\t{u.code}\t[{v:.4f}, {a:.4f}, {dom:.4f}]\n"
                f"C-E1:\t{_word(u.code)};\t()\nC-E2:\t{_word(u.code)};\t()\n"
                f"A-E1:\tval {round(v)}; act {round(a)}; dom  {round(dom)};\t()\n\n"
            )
            lines.append(f"{u.utt} [{u.start:08.4f}-{u.end:08.4f}]: {u.text}")
        (base / "EmoEvaluation" / f"{d.name}.txt").write_text("".join(blocks))
        (base / "transcriptions" / f"{d.name}.txt").write_text("\n".join(lines) + "\n")


def _word(code: str) -> str:
    return {
        "neu": "Neutral", "exc": "Excited", "hap": "Happiness", "sad": "Sadness",
        "ang": "Anger", "fru": "Frustration", "sur": "Surprise", "fea": "Fear",
        "dis": "Disgust", "oth": "Other", "xxx": "Neutral",
    }[code]  # fmt: skip
