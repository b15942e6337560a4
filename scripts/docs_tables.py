"""Rewrite the numbers in the docs from the pipeline's own outputs, so they cannot drift.

Two generated blocks, each between ``<!-- BEGIN generated: NAME ... -->`` and
``<!-- END generated: NAME -->``:

- ``sample-results`` (docs/training.md): the sample's test accuracy per method and each
  method against its baseline, from ``data/reports/sample/evaluate.json``. The block names
  the file's md5, which is the one ``dvc.lock`` records for it
  (``tests/test_docs_tables.py`` checks that, so a new ``dvc.lock`` needs a new block).
- ``sample-times`` (README.md and docs/training.md): the seconds each stage of the sample's
  ``dvc repro`` took, as the stages recorded them (``data/metrics/sample/*.run.json``,
  ``data/reports/sample/timing-*.json``), and the machine: run this on the machine that ran
  ``dvc repro``, after it.

How it works:

1. Read the outputs under ``--root`` (default: the repository).
2. Render each block (the statistics are :mod:`pipeline.training.stats`'s, as in
   ``report.md``).
3. Replace the text between each block's markers in README.md and docs/training.md, or with
   ``--check`` exit 1 naming the blocks that differ.

Usage, after ``dvc repro`` (``make repro``)::

    .venv/bin/python scripts/docs_tables.py           # rewrite the blocks
    .venv/bin/python scripts/docs_tables.py --check   # exit 1 if the results are stale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
from pathlib import Path

import yaml

from pipeline.training.config import METHODS
from pipeline.training.report import comparison_lines
from pipeline.training.stats import comparisons

REPO = Path(__file__).resolve().parents[1]
CORPUS = "sample"
EVALUATE = f"data/reports/{CORPUS}/evaluate.json"
FEATURES = ("faces", "landmarks", "mel", "spectrogram", "words")
DOCS = {"sample-results": ("docs/training.md",),
        "sample-times": ("README.md", "docs/training.md")}  # fmt: skip


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def locked_md5(root: Path, path: str = EVALUATE) -> str | None:
    """The md5 ``dvc.lock`` records for an out (None when it records none)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == path:
                return out.get("md5")
    return None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _order(result: str) -> tuple[int, str]:
    """The methods in evaluate.methods' order (unimodal_<m> where unimodal is)."""
    base = "unimodal" if result.startswith("unimodal_") else result
    return (METHODS.index(base) if base in METHODS else len(METHODS), result)


def render_results(doc: dict, digest: str) -> str:
    key = doc["headline"]
    second = "f1" if doc.get("task") == "multi_label" else "ua"
    runs = min(len(m["folds"]) for m in doc["methods"].values())
    seeds = len(doc.get("seeds") or [0])
    lines = [
        f"Test {key} from `{EVALUATE}` (md5 `{digest}`), mean ± std over {runs} runs "
        f"({seeds} seeds x {runs // seeds} folds); chance {_pct(doc['chance'])} %:",
        "",
        f"| method | {key} (%) | {second} (%) |",
        "| --- | --- | --- |",
    ]
    for name, m in sorted(doc["methods"].items(), key=lambda kv: _order(kv[0])):
        lines.append(
            f"| {name} | {_pct(m['mean'].get(key))} ± {_pct(m['std'].get(key))} | "
            f"{_pct(m['mean'].get(second))} |"
        )
    rows = doc.get("comparisons")
    if rows is None:  # written before evaluate.json carried them: the same statistics
        rows = comparisons(doc["methods"], [key, second])
    body = comparison_lines([r for r in rows if r["metric"] == key])  # report.md has both
    return "\n".join(lines + body[2:])  # the table without report.md's heading


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = re.findall(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = names[0].strip() if names else cpu
    mem = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = re.search(r"MemTotal:\s*(\d+)", meminfo.read_text())
        mem = f", {int(kb.group(1)) / 2**20:.0f} GiB" if kb else ""
    load = f", load average {os.getloadavg()[2]:.1f} over the 15 min before writing" if hasattr(
        os, "getloadavg") else ""  # fmt: skip
    return f"{cpu}, {os.cpu_count()} logical CPUs{mem}, {platform.system()}, no GPU used{load}"


def render_times(root: Path) -> str:
    metrics = root / "data/metrics" / CORPUS
    reports = root / "data/reports" / CORPUS
    parts: list[tuple[str, float]] = []
    reused: list[str] = []
    for f in FEATURES:
        p = metrics / f"{f}.run.json"
        if p.exists():
            run = json.loads(p.read_text())
            parts.append((f, float(run["seconds"])))
            if run.get("reused_from_cache"):  # a time that is not the extraction's
                reused.append(f"{f} {run['reused_from_cache']} of "
                              f"{run['reused_from_cache'] + run.get('extracted', 0)}")
    for stage in ("pretrain", "evaluate"):
        p = reports / f"timing-{stage}.json"
        if p.exists():
            timing = json.loads(p.read_text())
            parts.append((stage, sum(float(t["seconds"]) for t in timing.values())))
    if not parts:
        raise FileNotFoundError(f"no stage timings under {metrics} or {reports}: run dvc repro")
    total = sum(s for _, s in parts)
    each = ", ".join(f"{name} {s:.1f} s" if s < 90 else f"{name} {s / 60:.1f} min"
                     for name, s in parts)
    cache = (f" Clips read from the per-clip cache, not extracted, in that run: "
             f"{', '.join(reused)}; a cold run takes longer." if reused else "")
    return (
        f"Measured by the stages of the last `dvc repro` on the sample ({each}; "
        f"{total / 60:.0f} min in all, ingest, folds and the QA page not counted) on: "
        f"{_machine()}.{cache}"
    )


def blocks(root: Path, names: tuple[str, ...] = tuple(DOCS)) -> dict[str, str]:
    path = root / EVALUATE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run dvc repro (make repro) first")
    render = {
        "sample-results": lambda: render_results(json.loads(path.read_text()), md5(path)),
        "sample-times": lambda: render_times(root),
    }
    return {name: render[name]() for name in names}


def _pattern(name: str) -> re.Pattern:
    return re.compile(
        rf"(<!-- BEGIN generated: {name} [^\n]*-->\n)(.*?)(<!-- END generated: {name} -->)",
        re.S,
    )


def replace_block(text: str, name: str, body: str) -> str:
    pat = _pattern(name)
    if not pat.search(text):
        raise ValueError(f"no generated block {name!r} (its BEGIN/END markers) in the text")
    return pat.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(3), text)


def block_text(text: str, name: str) -> str | None:
    m = _pattern(name).search(text)
    return m.group(2) if m else None


def update(root: Path, docs_root: Path | None = None, check: bool = False) -> list[str]:
    """Rewrite the blocks, or (``check``) compare the results block (times are measurements:
    a new run always differs); returns ``file: block`` of those (to be) changed."""
    docs_root = docs_root or root
    changed = []
    for name, body in blocks(root, ("sample-results",) if check else tuple(DOCS)).items():
        for rel in DOCS[name]:
            path = docs_root / rel
            text = path.read_text()
            new = replace_block(text, name, body)
            if new != text:
                changed.append(f"{rel}: {name}")
                if not check:
                    path.write_text(new)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=REPO, help="where the outputs are")
    ap.add_argument("--check", action="store_true", help="exit 1 if the results block is stale")
    args = ap.parse_args(argv)
    try:
        changed = update(args.root, REPO, args.check)
    except (FileNotFoundError, ValueError) as e:
        print(f"docs_tables: {e}", file=sys.stderr)
        return 2
    if args.check and changed:
        print("stale generated blocks: " + "; ".join(changed), file=sys.stderr)
        return 1
    print("up to date" if args.check else "rewritten: " + ("; ".join(changed) or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
