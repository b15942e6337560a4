"""Corpus adapters and their registry.

Adding a corpus: write one module with a :class:`CorpusAdapter` subclass and add one line to
``ADAPTERS``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from .base import Clip, CorpusAdapter, safe_clip_id
from .folder import Folder
from .iemocap import Iemocap
from .mosei import Mosei
from .ravdess import Ravdess

# name -> factory(root). `sample` is the RAVDESS-format corpus shipped in data/sample/.
ADAPTERS: dict[str, Callable[..., CorpusAdapter]] = {
    "ravdess": Ravdess,
    "sample": Ravdess,
    "iemocap": Iemocap,
    "mosei": Mosei,
    "folder": Folder,
}


def get_adapter(name: str, root: str | Path, options: dict | None = None) -> CorpusAdapter:
    """The adapter called ``name`` over the corpus at ``root``, with its ``options``
    (``corpus.options`` in params.yaml)."""
    try:
        factory = ADAPTERS[name]
    except KeyError:
        raise ValueError(
            f"unknown corpus adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}"
        ) from None
    options = dict(options or {})
    allowed = [p for p in inspect.signature(factory).parameters if p != "root"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option corpus.options.{unknown[0]} for adapter {name!r}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    return factory(Path(root), **options)


__all__ = ["ADAPTERS", "Clip", "CorpusAdapter", "get_adapter", "safe_clip_id"]
