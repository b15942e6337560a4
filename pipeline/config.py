"""Typed, validated configuration loaded from ``params.yaml``.

Every section of ``params.yaml`` maps to a frozen dataclass. Loading is strict: an unknown
key, a value of the wrong type or a value outside its allowed set fails at once with a
:class:`ConfigError` that names the key (as a dotted path) and what is allowed. Optional
sections that a stage does not use may be absent; their defaults apply.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin


class ConfigError(ValueError):
    """A parameter is unknown, missing or has a value that is not allowed."""


@dataclass(frozen=True)
class CorpusConfig:
    name: str = "sample"  # used in paths: manifests/<name>/, data/features/<name>/
    adapter: str = "ravdess"  # one of pipeline.corpora.ADAPTERS
    root: str = "data/sample"  # where the corpus lies on disk
    # adapter options (keyword arguments of the adapter; see docs/corpora.md), e.g.
    # iemocap: {classes: all}; folder: {labels_csv: labels.csv, allowed_labels: [...]}
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self, key: str) -> None:
        check_safe_name(self.name, f"{key}.name", "corpus name", "manifests/<name>/")


def check_safe_name(name: str, key: str, what: str, becomes: str) -> None:
    """ConfigError unless ``name`` (a parameter that becomes a file or folder name) follows
    the one rule for such names (:mod:`pipeline.ids`), so no parameter can point a write
    outside its directory."""
    from .ids import is_valid_name

    if not is_valid_name(name):
        raise ConfigError(
            f"{key}: {name!r} is not a safe {what} (it becomes a file or folder name, "
            f"{becomes}: letters, digits, '.', '_' and '-' only, not starting with '.')"
        )


@dataclass(frozen=True)
class IngestConfig:
    # Files whose decode fails while probing are recorded in failures/ingest.csv and kept out
    # of the manifest; strict makes any such failure fail the stage.
    strict: bool = False


@dataclass(frozen=True)
class FoldScheme:
    name: str
    kind: Literal[
        "group_kfold", "stratified_kfold", "kfold_811", "group_holdout", "predefined",
        "strided", "class_holdout",
    ]
    n_folds: int = 10
    # group_holdout: how many groups (actors) go to train / validation / test.
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    group_by: str = "speaker"  # a clips.csv column
    # fraction of the non-test part kept for validation (k-fold kinds); for group kinds it is
    # rounded to whole groups.
    val_fraction: float = 0.1
    # predefined: the clips.csv column naming each clip's part (train / valid|val / test),
    # e.g. CMU-MOSEI's SDK standard folds in meta_split.
    split_by: str = "split"
    # A clips.csv column whose clips always share one part of every fold (RAVDESS paired
    # recordings: a performance's full-AV and video-only files, meta_performance); "" = none.
    together: str = ""
    # strided (the Qian & Han code's split): in corpus order, every test_every-th clip is
    # test, then every val_every-th of the rest validation.
    test_every: int = 5
    val_every: int = 10
    # class_holdout (the MPUC code's random split): each class's share kept for training and
    # validation (the code's perc 0.9); validation is int(val_fraction x that share).
    train_fraction: float = 0.9
    # true: the corpus's takes (``together``, e.g. RAVDESS paired recordings) may fall into
    # different parts, as in the MPUC code's random split. Test clips then have near-copies
    # in training; the folds stage warns and the reports say so. For measuring that leak only.
    leaky: bool = False

    def validate(self, key: str) -> None:
        check_safe_name(self.name, f"{key}.name", "fold scheme name",
                        "manifests/<corpus>/folds/<name>.json")


@dataclass(frozen=True)
class FoldsConfig:
    seed: int = 42
    schemes: tuple[FoldScheme, ...] = ()


@dataclass(frozen=True)
class RunnerConfig:
    n_jobs: int = 2
    backend: Literal["loky", "threading", "sequential", "dask"] = "loky"
    scheduler: str = ""  # dask scheduler address (tcp://host:8786) when backend is dask
    strict: bool = False  # any per-clip failure or warning fails the stage
    shard_max_mb: float = 256.0
    cache_dir: str = "data/cache"
    compression: Literal["gzip", "lzf", "none"] = "gzip"
    batch_clips: int = 4  # clips handed to a worker per task
    # A clip's output beyond this many MB goes to disk as it is made (long clips), so a
    # worker's memory does not grow with clip length.
    spill_mb: float = 64.0
    # Check every checksum of a cache entry before reusing it (a damaged entry is extracted
    # again). Costs one read of the cached data: +3 s for the faces of the 64 sample clips,
    # +4.7 s for a 10-minute clip's (bench/bench_hashing.py). false: trust complete entries.
    verify_cache: bool = True

    def validate(self, key: str) -> None:
        for name in ("n_jobs", "batch_clips"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("shard_max_mb", "spill_mb"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{key}.{name}: must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class Params:
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    folds: FoldsConfig = field(default_factory=FoldsConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    # Sections owned by extractors and the trainer, each validated by its own config class
    # (registered with register_section), keyed by section name.
    extra: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        if hasattr(self, name) and name != "extra":
            return getattr(self, name)
        try:
            return self.extra[name]
        except KeyError:
            raise ConfigError(
                f"no parameter section {name!r}; known: {', '.join(sorted(self.extra))}"
            ) from None


# Sections registered by other modules (features, trainer) so load_params validates them too.
SECTIONS: dict[str, type] = {}


def _register_all() -> None:
    """Import the modules that register parameter sections."""
    import importlib

    for mod in ("pipeline.features", "pipeline.training"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def register_section(name: str, cls: type) -> None:
    SECTIONS[name] = cls


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(
                f"{key}: {value!r} is not allowed; allowed values: "
                + ", ".join(repr(a) for a in allowed)
            )
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for arg in get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: {value!r} is not allowed")
    if origin is tuple:
        (item_tp, _ellipsis) = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if tp is Any:
        return value
    raise ConfigError(f"{key}: unsupported parameter type {_type_name(tp)}")


def build(cls: type, data: Any, key: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and bad values."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{key or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        where = f"{key}." if key else ""
        raise ConfigError(
            f"unknown parameter {where}{unknown[0]}; allowed keys"
            f"{' in ' + key if key else ''}: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, f in known.items():
        sub = f"{key}.{name}" if key else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{sub}: required parameter is missing")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check(key)
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-data form of a config dataclass (round-trips through :func:`build`)."""
    out = dataclasses.asdict(obj)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"parameter file not found: {path}")
    return params_from_dict(read_yaml(path) or {})


def read_yaml(path: str | Path, text: str | None = None) -> Any:
    """The data of a YAML file (or of ``text``, read from ``path``): plain YAML only. A
    syntax error or a tag (``!!python/object``, ``!include``) is a :class:`ConfigError`
    naming the file and line, not a crash."""
    import yaml  # here, not at the top: pipeline.api imports this module and reads no YAML

    from .files import read_text

    if text is None:
        text = read_text(path, errors="replace")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).split("\n", 1)[0]
        raise ConfigError(f"{path}{where}: not plain YAML ({what})") from None


def core_params_from_dict(raw: dict[str, Any]) -> Params:
    """The core sections only (corpus, ingest, folds, runner), validated; the extractors' and
    trainer's sections are left out unread. For commands that run with the core install
    (``mer verify``), where the modules that own those sections may not import."""
    if not isinstance(raw, dict):
        raise ConfigError("params.yaml must hold a mapping of sections")
    core = {f.name for f in fields(Params)} - {"extra"}
    return build(Params, {k: v for k, v in raw.items() if k in core})


def params_from_dict(raw: dict[str, Any]) -> Params:
    if not isinstance(raw, dict):
        raise ConfigError("params.yaml must hold a mapping of sections")
    _register_all()
    core = {f.name for f in fields(Params)} - {"extra"}
    extra: dict[str, Any] = {}
    for name, value in raw.items():
        if name in core:
            continue
        if name not in SECTIONS:
            raise ConfigError(
                f"unknown section {name!r} in params.yaml; allowed sections: "
                + ", ".join(sorted(core | set(SECTIONS)))
            )
        extra[name] = build(SECTIONS[name], value, name)
    data = {k: v for k, v in raw.items() if k in core}
    params = build(Params, data)
    for name, cls in SECTIONS.items():
        extra.setdefault(name, build(cls, {}, name))
    return dataclasses.replace(params, extra=extra)
