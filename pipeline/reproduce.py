"""Run a paper table's preset on a corpus and put our numbers beside the paper's.

A preset (``params/<name>.yaml``) holds:

- ``description``, ``table``: what it reproduces;
- ``extends``: another preset this one starts from (its ``params`` and ``smoke`` merged
  under this one's; ``stages`` and ``paper`` taken from it unless given here);
- ``stages``: the feature stages to extract (ingest and folds always run first);
- ``params``: parameters merged over the base ``params.yaml`` (section by section, key by key);
- ``smoke``: merged over those with ``--smoke`` (fewer epochs and folds: checks that
  everything runs end to end and measures time per epoch);
- ``paper``: the published numbers as the table's cells, each keyed by the modalities (and
  split) it was obtained with (:mod:`pipeline.training.paper_cells`), with the result and
  metric names of ``evaluate.json`` (``probe``, ``unimodal_faces``, ``w_acc_happy``...);
- ``differences``: what the run does differently from what it reproduces (the paper's text,
  or the authors' code for a ``-code`` preset), one sentence each; printed in its report.
  Not inherited through ``extends``: each preset states its own.

``reproduce`` resolves the parameters (written to ``data/reports/<corpus>/reproduce/``), runs
ingest, folds, the feature stages, pretraining (when the probe is evaluated) and evaluation
as the DVC stages do, then writes ``reproduce.md`` / ``reproduce.json``: per result and
metric, ours (mean ± std over seeds and folds) beside the paper's number for the same
modalities and split (or none, with the reason), the difference, each method against its
baseline (:mod:`pipeline.training.stats`), the differences and notes, and the time each step
took.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, Params, params_from_dict, read_yaml
from .ids import check_name
from .manifest import dump_json
from .store.writer import atomic_write_text
from .training.paper_cells import check_paper, match_cells
from .training.report import comparison_lines, paper_lines

log = logging.getLogger(__name__)

PRESET_KEYS = {
    "description", "table", "extends", "stages", "params", "smoke", "paper", "differences",
}
FEATURES = ("faces", "landmarks", "mel", "spectrogram", "words")
SHIPPED = Path(__file__).resolve().parents[1] / "params"


def preset_path(name: str, root: str | Path = ".") -> Path:
    """A preset file: a path, or a name in ``<root>/params/`` or the shipped ``params/``."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    for folder in (Path(root) / "params", SHIPPED):
        cand = folder / f"{name}.yaml"
        if cand.exists():
            return cand
    known = sorted(q.stem for q in SHIPPED.glob("*.yaml")) if SHIPPED.is_dir() else []
    raise FileNotFoundError(f"no preset {name!r}; shipped presets: {', '.join(known) or 'none'}")


def load_preset(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    doc = read_yaml(path) or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a preset is a mapping")
    unknown = sorted(set(doc) - PRESET_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown preset key {unknown[0]!r}; allowed: {', '.join(sorted(PRESET_KEYS))}"
        )
    parent = doc.pop("extends", None)
    if parent:
        ppath = preset_path(parent, path.parent.parent)
        if ppath.resolve() in _seen:
            raise ConfigError(f"{path}: presets extend each other in a loop")
        base = load_preset(ppath, (*_seen, path.resolve()))
        for key in ("params", "smoke"):
            doc[key] = merge(base.get(key) or {}, doc.get(key) or {})
        for key in ("stages", "paper", "table"):
            doc.setdefault(key, base.get(key))
    if doc.get("paper") is not None:
        check_paper(doc["paper"], str(path))
    if not isinstance(doc.get("differences", []), list):
        raise ConfigError(f"{path}: differences: a list of sentences")
    bad = [s for s in doc.get("stages", []) if s not in FEATURES]
    if bad:
        raise ConfigError(f"{path}: stages: unknown stage {bad[0]!r}; known: {', '.join(FEATURES)}")
    return doc


def merge(into: dict, values: Mapping) -> dict:
    """``into`` with ``values`` merged in, mappings key by key (lists are replaced)."""
    out = copy.deepcopy(into)
    for k, v in values.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve(
    preset: Mapping[str, Any],
    base: Mapping[str, Any],
    corpus: str | None,
    smoke: bool = False,
    overrides: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The raw parameters of a run: base, preset params, smoke, overrides, corpus root."""
    raw = merge(dict(base), preset.get("params") or {})
    if smoke:
        raw = merge(raw, preset.get("smoke") or {})
    for o in overrides:
        raw = merge(raw, o)
    if corpus:
        raw = merge(raw, {"corpus": {"root": str(corpus)}})
    return raw


def reproduce(
    name: str,
    corpus: str | Path | None,
    root: str | Path = ".",
    smoke: bool = False,
    base: str | Path = "params.yaml",
    overrides: Sequence[Mapping[str, Any]] = (),
    extract: bool = True,
) -> dict[str, Any]:
    """Run preset ``name`` on ``corpus``; returns the comparison document (also written).
    ``extract=False`` takes the clip manifest and features already under ``root``."""
    from .training.workflow import reports_dir, run_evaluate, run_pretrain
    from .workflow import run_feature, run_folds, run_ingest

    root = Path(root)
    path = preset_path(name, root)
    preset = load_preset(path)
    base_path = Path(base) if Path(base).is_absolute() else root / base
    base_raw = read_yaml(base_path) if base_path.exists() else {}
    raw = resolve(preset, base_raw or {}, corpus, smoke, overrides)
    params = params_from_dict(raw)
    out = reports_dir(root, params.corpus.name) / "reproduce" / check_name(
        path.stem, "preset name", str(path))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "params.yaml", yaml.safe_dump(raw, sort_keys=False))

    steps: dict[str, float] = {}

    def step(label: str, fn, *args, **kw) -> None:
        t0 = time.perf_counter()
        code = fn(*args, **kw)
        steps[label] = round(time.perf_counter() - t0, 2)
        log.info("reproduce %s: %s done in %.1f s", path.stem, label, steps[label])
        if code not in (0, None):
            raise RuntimeError(f"{label} exited with {code}; see its failures and logs")

    if extract:
        step("ingest", run_ingest, params, root)
    step("folds", run_folds, params, root)
    if extract:
        for feature in preset.get("stages", []):
            step(feature, run_feature, params, feature, root, progress=False)
    ec = params.section("evaluate")
    if "probe" in ec.methods:
        step("pretrain", run_pretrain, params, root)
    step("evaluate", run_evaluate, params, root, preset.get("paper"))

    rep = reports_dir(root, params.corpus.name)
    doc = compare(json.loads((rep / "evaluate.json").read_text()), preset.get("paper"))
    doc.update(
        preset=path.stem,
        table=preset.get("table", ""),
        differences=list(preset.get("differences") or []),
        smoke=smoke,
        corpus=str(params.corpus.root),
        steps_seconds=steps,
        timing=_timing(rep),
        written=str(out),
    )
    dump_json(out / "reproduce.json", doc)
    atomic_write_text(out / "reproduce.md", markdown(doc))
    return doc


def _timing(rep: Path) -> dict[str, Any]:
    out = {}
    for stage in ("pretrain", "evaluate"):
        p = rep / f"timing-{stage}.json"
        if p.exists():
            out.update(json.loads(p.read_text()))
    return out


def compare(evaluation: Mapping[str, Any], paper: Mapping[str, Any] | None):
    """Rows (result, metric, ours mean, ours std, paper, difference) in percent: each result
    of the run beside the numbers of the paper's cell for the same modalities and split (its
    headline metric alone, paper empty, when the table has no such cell: ``cell_reasons``
    says why). A paper cell the run did not train is not shown."""
    methods = evaluation.get("methods", {})
    key = evaluation.get("headline", "accuracy")
    rows = []

    def ours(result: str, metric: str) -> tuple[float | None, float | None]:
        m = methods.get(result)
        if not m or m["mean"].get(metric) is None:
            return None, None
        return 100 * m["mean"][metric], 100 * (m["std"].get(metric) or 0.0)

    mods = {r: m.get("modalities") or [] for r, m in methods.items()}
    actor_split = (evaluation.get("split") or {}).get("actor_split")
    matches = match_cells(paper, mods, actor_split)
    cells, reasons = {}, {}
    for result in methods:
        cell, why = matches[result]
        if cell is None:
            reasons[result] = why
            mean, std = ours(result, key)
            rows.append([result, key, mean, std, None, None])
            continue
        cells[result] = cell["label"]
        for metric, value in cell["results"][result].items():
            mean, std = ours(result, metric)
            diff = None if mean is None else round(mean - float(value), 2)
            rows.append([result, metric, mean, std, float(value), diff])
    return {
        "columns": ["result", "metric", "ours", "ours_std", "paper", "ours_minus_paper"],
        "rows": rows,
        "cells": cells,
        "cell_reasons": reasons,
        "paper": evaluation.get("paper"),
        "paper_reason": evaluation.get("paper_reason", ""),
        "comparisons": evaluation.get("comparisons", []),
        "notes": evaluation.get("notes", []),
        "task": evaluation.get("task"),
        "scheme": evaluation.get("scheme"),
        "seeds": evaluation.get("seeds", []),
        "runs": min((len(m["folds"]) for m in methods.values()), default=0),
    }


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def markdown(doc: Mapping[str, Any]) -> str:
    lines = [
        f"# Reproduction: {doc['preset']}{' (smoke run)' if doc.get('smoke') else ''}",
        "",
        f"{doc.get('table', '')}. Corpus: `{doc.get('corpus')}`; folds `{doc.get('scheme')}`, "
        f"{doc.get('runs')} runs per result (seeds {doc.get('seeds')}); task {doc.get('task')}.",
        "",
        "| result | metric | ours (%) | paper (%) | ours − paper | paper cell |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    cells, reasons = doc.get("cells", {}), doc.get("cell_reasons", {})
    for result, metric, mean, std, paper, diff in doc["rows"]:
        ours = "missing" if mean is None else f"{mean:.2f} ± {std:.2f}"
        d = "—" if diff is None else f"{diff:+.2f}"
        cell = cells.get(result) or f"none: {reasons.get(result, '')}"
        lines.append(f"| {result} | {metric} | {ours} | {_pct(paper)} | {d} | {cell} |")
    lines += paper_lines(doc)
    if doc.get("differences"):
        n = len(doc["differences"])
        lines += ["", f"## What this run does differently from what it reproduces ({n})", ""]
        lines += [f"- {x}" for x in doc["differences"]]
    if doc.get("notes"):
        lines += ["", "## Read with care", ""] + [f"- {n}" for n in doc["notes"]]
    lines += comparison_lines(doc.get("comparisons") or [])
    if doc.get("smoke"):
        lines += [
            "",
            "A smoke run (few epochs and folds): the numbers say nothing about the paper; it "
            "shows that the preset runs end to end, and how long an epoch takes.",
        ]
    lines += ["", "| step | seconds |", "| --- | --- |"]
    lines += [f"| {k} | {v:.1f} |" for k, v in doc.get("steps_seconds", {}).items()]
    timing = doc.get("timing") or {}
    if timing:
        lines += ["", "| training | runs | epochs | seconds | seconds per epoch |",
                  "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for k, t in timing.items():
            spe = t.get("seconds_per_epoch")
            lines.append(
                f"| {k} | {t['runs']} | {t['epochs']} | {t['seconds']:.1f} | "
                f"{'—' if spe is None else f'{spe:.2f}'} |"
            )
    return "\n".join(lines) + "\n"


def preset_params(name: str, root: str | Path = ".", smoke: bool = False) -> Params:
    """The validated parameters of a preset over the root's ``params.yaml`` (for checks)."""
    root = Path(root)
    base = root / "params.yaml"
    raw = resolve(
        load_preset(preset_path(name, root)),
        read_yaml(base) if base.exists() else {},
        None,
        smoke,
    )
    return params_from_dict(raw)
