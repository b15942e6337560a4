"""Transcript sidecar files: plain ``.txt``, SubRip ``.srt`` and WebVTT ``.vtt``.

Subtitle cues give the text and when it is said; their numbering, timing lines, WebVTT
headers, ``NOTE``/``STYLE`` blocks and markup (``<i>``, ``{\\an8}``) are stripped. The words of
a cue are spread evenly over the cue, which gives a rough word alignment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..files import read_text
from .limits import MAX_SIDECAR_BYTES, binary_problem

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_CUE_TIMES = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_MARKUP = re.compile(r"<[^>]*>|\{[^}]*\}")


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def _seconds(h: str | None, m: str, s: str, ms: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def parse_cues(text: str) -> list[Cue]:
    """The cues of an SRT or WebVTT document, in order."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [ln for ln in block.strip("\n").split("\n") if ln.strip()]
        for i, line in enumerate(lines):
            m = _CUE_TIMES.match(line)
            if m:
                g = m.groups()
                body = " ".join(_MARKUP.sub("", ln).strip() for ln in lines[i + 1 :])
                body = " ".join(body.split())
                if body:
                    cues.append(Cue(_seconds(*g[:4]), _seconds(*g[4:]), body))
                break
    return cues


def cue_words(cues: list[Cue]) -> list[tuple[str, float, float]]:
    """Words of the cues with times spread evenly over each cue."""
    out = []
    for c in cues:
        words = c.text.split()
        step = max(c.end - c.start, 0.0) / len(words)
        out += [(w, c.start + i * step, c.start + (i + 1) * step) for i, w in enumerate(words)]
    return out


@dataclass(frozen=True)
class Sidecar:
    path: Path
    text: str
    words: list[tuple[str, float, float]]  # empty for plain text


SIDECAR_SUFFIXES = (".txt", ".srt", ".vtt")


def read_sidecar(media: Path, root: Path | None = None) -> Sidecar | None:
    """The transcript beside ``media`` (same name, .txt/.srt/.vtt, first found), or None.
    ValueError (naming the file relative to ``root``) for one that cannot be a transcript:
    not UTF-8, binary, larger than :data:`~pipeline.text.limits.MAX_SIDECAR_BYTES`, a FIFO
    or a device (:mod:`pipeline.files`), or a link to nothing."""
    for suffix in SIDECAR_SUFFIXES:
        p = media.with_suffix(suffix)
        if p.is_dir() or not (p.exists() or p.is_symlink()):
            continue
        name = p.relative_to(root) if root is not None and p.is_relative_to(root) else p
        try:
            raw = read_text(p, name, max_bytes=MAX_SIDECAR_BYTES)
        except FileNotFoundError:
            raise ValueError(f"{name} is a link to a file that does not exist") from None
        if why := binary_problem(raw):
            raise ValueError(f"{name} {why}")
        if suffix == ".txt":
            return Sidecar(p, " ".join(raw.split()), [])
        cues = parse_cues(raw)
        return Sidecar(p, " ".join(c.text for c in cues), cue_words(cues))
    return None
