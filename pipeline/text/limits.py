"""How much text can belong to a clip: the bound ingest and the words stage put on transcripts.

People speak two to four words a second; the fastest speakers (auctioneers, sports
commentators) reach about seven. A transcript with more than :data:`MAX_WORDS_PER_SECOND`
words per second of its clip, beyond :data:`WORD_ALLOWANCE` words any clip may carry (a
title, a cue that overhangs), or with more bytes than such a transcript could have, is not
this clip's: a wrong sidecar file, a whole book, a binary file named ``.txt``. Ingest refuses
such a clip (a failure row with the reason), and the words stage refuses such a transcript
before tokenising it, so the words stage's memory is bounded by the clip's length, never by
a file's: at most :func:`max_bytes` of text and :func:`max_words` rows per clip.
"""

from __future__ import annotations

import re

MAX_WORDS_PER_SECOND = 12.0
WORD_ALLOWANCE = 50
BYTES_PER_WORD = 40  # a long word of a long-word language, with its spaces and punctuation
# Largest sidecar file ingest reads before the clip's duration is known: a three-hour
# film's subtitles are about 200 KB.
MAX_SIDECAR_BYTES = 16 * 2**20
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # all but tab and line breaks
_WORD = re.compile(r"\S+")


def max_words(seconds: float) -> int:
    """The most words a clip of ``seconds`` can hold."""
    return int(MAX_WORDS_PER_SECOND * max(seconds, 0.0)) + WORD_ALLOWANCE


def max_bytes(seconds: float) -> int:
    """The most UTF-8 bytes a transcript of a clip of ``seconds`` can have."""
    return max_words(seconds) * BYTES_PER_WORD


def binary_problem(text: str) -> str:
    """Why ``text`` is not text ("" when it is): control characters other than tab and line
    breaks (NUL bytes of a binary file)."""
    if m := _CONTROL.search(text):
        return (f"holds binary bytes (control character 0x{ord(m.group()):02x} at character "
                f"{m.start()}): not a transcript")
    return ""


def transcript_problem(text: str, seconds: float) -> str:
    """Why ``text`` cannot be the transcript of a clip of ``seconds`` ("" when it can; no
    length check when the duration is unknown)."""
    if why := binary_problem(text):
        return why
    if seconds <= 0:
        return ""
    n_words = sum(1 for _ in _WORD.finditer(text))  # counted, not split: no list of words
    if n_words > max_words(seconds):
        return (f"transcript of {n_words} words for a clip of {seconds:.2f} s (at most "
                f"{max_words(seconds)}: {MAX_WORDS_PER_SECOND:g} words a second and "
                f"{WORD_ALLOWANCE} more): it cannot belong to this clip")
    n_bytes = len(text.encode("utf-8", "surrogatepass"))
    if n_bytes > max_bytes(seconds):
        return (f"transcript of {n_bytes} bytes for a clip of {seconds:.2f} s (at most "
                f"{max_bytes(seconds)}): it cannot belong to this clip")
    return ""
