"""Split a transcript into the tokens that word-vector vocabularies hold.

GloVe 6B (Wikipedia + Gigaword) was built from Stanford-tokenised, lower-cased text, so its
vocabulary holds Penn-Treebank-style pieces: ``don't`` is ``do`` + ``n't``, ``can't`` is
``ca`` + ``n't``, ``won't`` is ``wo`` + ``n't``, ``it's`` is ``it`` + ``'s``, and the clitics
``'m 're 've 'll 'd`` stand alone. Hyphenated words (``well-known``) and decimal numbers
(``3.5``) are single tokens. The same splitting suits word2vec GoogleNews, which is
case-sensitive: tokenise with ``lowercase=False`` there (lookup falls back to other cases).

Corpus annotations are not words: ``[LAUGHTER]``, ``[BREATHING]`` (IEMOCAP), ``(laughs)``,
``<sil>``, ``++GARBAGE++`` and MOSEI's ``sp`` silence token are removed before splitting.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>|\+\+[^+]*\+\+|\{[^}]*\}")
# n't goes with the negation ("ca n't", "do n't"); the other clitics split before the apostrophe.
_NEG = re.compile(r"(?i)(\w)(n't)\b")
_CLITIC = re.compile(r"(?i)(\w)('(?:s|m|re|ve|ll|d))\b")
_TOKEN = re.compile(
    r"(?i)n't|'(?:s|m|re|ve|ll|d)\b"  # clitics split off above
    r"|\d+(?:[.,:]\d+)*"  # numbers: 3.5, 1,000, 10:30
    r"|[^\W_]+(?:['-][^\W_]+)*"  # words, hyphenated words, o'clock
    r"|[^\w\s]"  # one punctuation mark
)
SILENCE_TOKENS = frozenset({"sp", "sil", "<sil>", "<s>", "</s>"})


@dataclass(frozen=True)
class TokenizerSettings:
    lowercase: bool = True  # GloVe vocabularies are lower-case; word2vec GoogleNews is not
    punctuation: bool = False  # keep punctuation marks as tokens
    drop_annotations: bool = True  # remove [LAUGHTER], (laughs), <sil>, ++NOISE++, {..}


def tokenize(text: str, settings: TokenizerSettings | None = None) -> list[str]:
    """Tokens of ``text`` in order (see the module docstring for the rules)."""
    s = settings or TokenizerSettings()
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    if s.drop_annotations:
        text = _ANNOTATION.sub(" ", text)
    if s.lowercase:
        text = text.lower()
    text = _NEG.sub(r"\1 \2", text)
    text = _CLITIC.sub(r"\1 \2", text)
    tokens = _TOKEN.findall(text)
    if not s.punctuation:
        tokens = [t for t in tokens if any(c.isalnum() for c in t)]
    return [t for t in tokens if t.lower() not in SILENCE_TOKENS]


def tokenize_timed(
    words: list[tuple[str, float, float]], settings: TokenizerSettings | None = None
) -> list[tuple[str, float, float]]:
    """Tokenise aligned words ``(word, start, end)``, keeping each word's time span.

    A word that splits into several tokens ("don't" -> "do", "n't") shares its span evenly
    among them; silence and annotation words vanish.
    """
    out: list[tuple[str, float, float]] = []
    for word, start, end in words:
        toks = tokenize(word, settings)
        if not toks:
            continue
        step = (end - start) / len(toks)
        out += [(t, start + i * step, start + (i + 1) * step) for i, t in enumerate(toks)]
    return out
