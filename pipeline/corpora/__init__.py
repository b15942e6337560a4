"""Corpus adapters and their registry.

Adding a corpus: write one module with a :class:`CorpusAdapter` subclass, add one line to
``ADAPTERS`` and one miniature of its layout to ``tests/miniatures.py`` (the common contract
test then checks it like every other adapter).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from .base import Clip, CorpusAdapter, LayoutError, safe_clip_id
from .crema_d import CremaD
from .enterface import Enterface
from .folder import Folder
from .iemocap import Iemocap
from .meld import Meld
from .mosei import Mosei
from .mosi import Mosi
from .ravdess import Ravdess
from .savee import Savee

# name -> factory(root). `sample` is the RAVDESS-format corpus shipped in data/sample/.
ADAPTERS: dict[str, Callable[..., CorpusAdapter]] = {
    "ravdess": Ravdess,
    "sample": Ravdess,
    "iemocap": Iemocap,
    "mosei": Mosei,
    "folder": Folder,
    "crema-d": CremaD,
    "savee": Savee,
    "enterface": Enterface,
    "meld": Meld,
    "mosi": Mosi,
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


__all__ = ["ADAPTERS", "Clip", "CorpusAdapter", "LayoutError", "get_adapter", "safe_clip_id"]
