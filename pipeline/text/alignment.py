"""Word alignments carried in a clip's ``meta['word_times']``.

An adapter that knows when each word is said (CMU-MOSEI's word sequence, IEMOCAP's forced
alignment, subtitle cues) stores them in the manifest as a JSON list of
``[word, start, end]``, seconds from the clip's start (the time base of every feature). The
words extractor reads them; clips without them get their words spread evenly.
"""

from __future__ import annotations

import json

WORD_TIMES_KEY = "word_times"


def dump_word_times(words: list[tuple[str, float, float]]) -> str:
    """Encode an alignment for ``meta['word_times']`` (times rounded to 0.1 ms)."""
    return json.dumps([[w, round(s, 4), round(e, 4)] for w, s, e in words], separators=(",", ":"))


def parse_word_times(text: str) -> list[tuple[str, float, float]]:
    """Decode ``meta['word_times']``; raises ValueError on a malformed value."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("word_times must be a JSON list of [word, start, end]")
    out = []
    for item in data:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
            raise ValueError(f"word_times entry {item!r} is not [word, start, end]")
        out.append((item[0], float(item[1]), float(item[2])))
    return out
