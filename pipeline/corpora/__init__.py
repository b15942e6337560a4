"""Corpus adapters and their registry.

Adding a corpus: write one module with a :class:`CorpusAdapter` subclass and add one line to
``ADAPTERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .base import Clip, CorpusAdapter, safe_clip_id
from .ravdess import Ravdess

# name -> factory(root). `sample` is the RAVDESS-format corpus shipped in data/sample/.
ADAPTERS: dict[str, Callable[[Path], CorpusAdapter]] = {
    "ravdess": Ravdess,
    "sample": Ravdess,
}


def get_adapter(name: str, root: str | Path) -> CorpusAdapter:
    """The adapter called ``name`` over the corpus at ``root``."""
    try:
        factory = ADAPTERS[name]
    except KeyError:
        raise ValueError(
            f"unknown corpus adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}"
        ) from None
    return factory(Path(root))


__all__ = ["ADAPTERS", "Clip", "CorpusAdapter", "get_adapter", "safe_clip_id"]
