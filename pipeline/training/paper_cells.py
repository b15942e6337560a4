"""Which cell of a paper's table a run is, so that ours is only ever set beside the number
the paper got for the same thing.

A preset's ``paper`` section (``params/<preset>.yaml``)::

    paper:
      source: MPUC Table I          # where the numbers are printed
      method: probe                 # the paper's own method: its cell is the headline
      metric: accuracy              # the table's headline metric (evaluate.json's name)
      cells:
        - label: "Ours: acoustics + facial landmarks, actor split ✓"
          modalities: [mel, landmarks]   # what the result was trained on (any order)
          actor_split: true              # optional: test actors unseen in training
          results: {probe: {accuracy: 77.10}}

How a result finds its cell:

1. The result's modalities come from ``evaluate.json`` (``methods.<result>.modalities``):
   every modality of ``train.modalities`` for probe, late fusion and attention, one for
   ``unimodal_<m>``, the audio and text of Qian & Han.
2. The split is read from the fold manifest: actors are held out when the scheme is a group
   kind over the speaker column.
3. A cell matches when it lists the result, its modalities are the same set, and its
   ``actor_split`` (when given) is the run's. No match: no paper number, and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config import ConfigError

CELL_KEYS = {"label", "modalities", "actor_split", "results"}
PAPER_KEYS = {"source", "method", "metric", "cells"}


def check_paper(paper: Any, where: str) -> None:
    """Refuse a ``paper`` section that is not in the format above, naming what is wrong."""
    if not isinstance(paper, Mapping) or "cells" not in paper:
        raise ConfigError(
            f"{where}: paper: expected {{source, method, metric, cells: [{{label, modalities, "
            f"actor_split, results}}]}} (each published number keyed by what was trained)"
        )
    unknown = sorted(set(paper) - PAPER_KEYS)
    if unknown:
        raise ConfigError(f"{where}: paper: unknown key {unknown[0]!r}")
    seen: dict[tuple, str] = {}
    for i, cell in enumerate(paper["cells"]):
        at = f"{where}: paper.cells[{i}]"
        if not isinstance(cell, Mapping) or set(cell) - CELL_KEYS:
            raise ConfigError(f"{at}: keys are {', '.join(sorted(CELL_KEYS))}")
        for key in ("label", "modalities", "results"):
            if not cell.get(key):
                raise ConfigError(f"{at}: {key} is required")
        for result in cell["results"]:
            key = (result, frozenset(cell["modalities"]), cell.get("actor_split"))
            if key in seen:
                raise ConfigError(f"{at}: {result} on these modalities is also in {seen[key]!r}")
            seen[key] = cell["label"]


def split_facts(folds_manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What the fold manifest says about the split: its scheme and kind, whether the test
    actors are unseen in training, whether it is leaky on purpose."""
    kind = folds_manifest.get("kind", "")
    return {
        "scheme": folds_manifest.get("scheme", ""),
        "kind": kind,
        "actor_split": kind.startswith("group") and folds_manifest.get("group_by") == "speaker",
        "leaky": bool(folds_manifest.get("leaky", False)),
    }


def _mods(mods: Sequence[str]) -> str:
    return " + ".join(mods)


def match_cells(
    paper: Mapping[str, Any] | None,
    result_modalities: Mapping[str, Sequence[str]],
    actor_split: bool | None,
) -> dict[str, tuple[dict | None, str]]:
    """result -> (matching cell or None, the reason when None)."""
    out: dict[str, tuple[dict | None, str]] = {}
    cells = (paper or {}).get("cells") or []
    by_split = any(c.get("actor_split") is not None for c in cells)
    split = f", actor split {'✓' if actor_split else '✗'}" if by_split else ""
    for result, mods in result_modalities.items():
        if not mods:
            out[result] = (None, "evaluate.json does not say which modalities it used")
            continue
        listed = [c for c in cells if result in c["results"]]
        found = [
            c for c in listed
            if set(c["modalities"]) == set(mods)
            and c.get("actor_split") in (None, actor_split)
        ]  # fmt: skip
        if found:
            out[result] = (dict(found[0]), "")
        elif not listed:
            out[result] = (None, f"{(paper or {}).get('source', 'the paper')} has no {result}")
        else:
            have = "; ".join(
                _mods(c["modalities"]) + ("" if c.get("actor_split") is None else
                                          f" (actor split {'✓' if c['actor_split'] else '✗'})")
                for c in listed
            )  # fmt: skip
            out[result] = (
                None,
                f"{paper.get('source', 'the paper')} has no {result} on {_mods(mods)}{split} "
                f"(its cells: {have})",
            )
    return out


def headline_cell(
    paper: Mapping[str, Any] | None, matches: Mapping[str, tuple[dict | None, str]]
) -> tuple[dict | None, str]:
    """``evaluate.json``'s ``paper``: the cell of the paper's own method, or None and why."""
    if not paper:
        return None, "the run is not a paper preset (mer reproduce compares one with its paper)"
    method = paper.get("method", "")
    if method not in matches:
        return None, f"the run has no {method} result, the method {paper['source']} reports"
    cell, why = matches[method]
    if cell is None:
        return None, why
    metric = paper.get("metric") or next(iter(cell["results"][method]))
    value = cell["results"][method].get(metric)
    if value is None:
        return None, f"{cell['label']} gives no {metric}"
    return {
        "cell": cell["label"],
        "result": method,
        "metric": metric,
        "value": float(value),
        "source": paper["source"],
        "modalities": list(cell["modalities"]),
        **({} if cell.get("actor_split") is None else {"actor_split": cell["actor_split"]}),
        "values": {r: dict(m) for r, m in cell["results"].items()},
    }, ""
