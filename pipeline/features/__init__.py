"""Feature extractors and their registry.

Adding an extractor: a module with an :class:`Extractor` subclass decorated with
``@register``, one import line below, and one test.
"""

from __future__ import annotations

from ..config import build, register_section
from .base import ClipSource, ExtractionError, Extractor

EXTRACTORS: dict[str, type[Extractor]] = {}


def register(cls: type[Extractor]) -> type[Extractor]:
    """Class decorator: make an extractor known by its name and its params section."""
    EXTRACTORS[cls.name] = cls
    register_section(cls.name, cls.config_class)
    return cls


def get_extractor_class(name: str) -> type[Extractor]:
    try:
        return EXTRACTORS[name]
    except KeyError:
        raise ValueError(
            f"unknown feature {name!r}; known: {', '.join(sorted(EXTRACTORS))}"
        ) from None


def make_extractor(name: str, config: object = None) -> Extractor:
    """An extractor from its name and a config (dataclass, mapping, or None for defaults)."""
    cls = get_extractor_class(name)
    if config is None or isinstance(config, dict):
        config = build(cls.config_class, config or {}, name)
    return cls(config)


from . import faces, landmarks, mel, spectrogram, words  # noqa: E402,F401  (registration)

__all__ = [
    "EXTRACTORS",
    "ClipSource",
    "ExtractionError",
    "Extractor",
    "get_extractor_class",
    "make_extractor",
    "register",
]
