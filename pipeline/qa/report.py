"""The QA report: one HTML page per corpus with PNG figures, so a person can see at a glance
whether the extraction and the training went right.

Written to ``data/qa/<corpus>/index.html`` (beside, not inside, the trainer's
``data/reports/<corpus>/``, which it reads). Sections appear when their inputs exist:
summary and per-stage metrics, failures, warnings, audio durations, mel and spectrogram images of
sample clips, face detection rate per clip, a montage of face crops with landmarks, the OOV
rate of the words stage, and, after evaluation, per-fold metrics and confusion matrices.
"""

from __future__ import annotations

import csv
import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Params
from ..extras import MissingExtraError, needs
from ..manifest import read_manifest
from ..paths import Layout
from ..store import FeatureReader, ShardError

log = logging.getLogger(__name__)

# After load, the page records how many of its images decoded (checked by the browser test).
_IMG_CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.images = imgs.length;
  document.body.dataset.imagesOk = ok;
});
</script>"""

_CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;
font-size:13px;text-align:left}img{max-width:100%;border:1px solid #eee}
h2{border-bottom:2px solid #ddd;padding-bottom:3px}.note{color:#666;font-size:13px}"""


def _plt():
    with needs("the QA report", "pipeline"):
        import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _table(rows: list[dict[str, Any]], limit: int = 200) -> str:
    if not rows:
        return "<p class='note'>none</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>"
        for r in rows[:limit]
    )
    more = (
        f"<p class='note'>{len(rows) - limit} more rows not shown</p>" if len(rows) > limit else ""
    )
    return f"<table><tr>{head}</tr>{body}</table>{more}"


class Report:
    def __init__(self, out_dir: Path, title: str) -> None:
        self.out = out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.parts: list[str] = []
        self.figures: list[str] = []

    def h2(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def p(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def raw(self, fragment: str) -> None:
        self.parts.append(fragment)

    def figure(self, fig, name: str, caption: str = "") -> None:
        path = self.out / f"{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        _plt().close(fig)
        self.figures.append(path.name)
        cap = f"<figcaption class='note'>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(
            f"<figure><img src='{path.name}' alt='{html.escape(name)}'>{cap}</figure>"
        )

    def image(self, path: Path, caption: str = "") -> None:
        self.figures.append(path.name)
        cap = f"<figcaption class='note'>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f"<figure><img src='{path.name}' alt='{path.stem}'>{cap}</figure>")

    def write(self) -> Path:
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>"
            f"{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{''.join(self.parts)}{_IMG_CHECK}</body></html>"
        )
        path = self.out / "index.html"
        path.write_text(page, encoding="utf-8")
        return path


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _section_summary(rep: Report, lay: Layout) -> list:
    entries = read_manifest(lay.clips_csv)
    rep.h2("Corpus")
    labels: dict[str, int] = {}
    for e in entries:
        labels[e.label or "(none)"] = labels.get(e.label or "(none)", 0) + 1
    rep.raw(
        _table(
            [
                {
                    "clips": len(entries),
                    "speakers": len({e.speaker for e in entries}),
                    "hours": round(sum(e.duration for e in entries) / 3600, 3),
                    "with audio": sum(e.has_audio or bool(e.audio_path) for e in entries),
                    "with video": sum(e.has_video for e in entries),
                    "labels": ", ".join(f"{k}: {v}" for k, v in sorted(labels.items())),
                }
            ]
        )
    )
    metrics_dir = lay.root / "data" / "metrics" / lay.corpus
    rows = []
    for m in sorted(metrics_dir.glob("*.json")) if metrics_dir.exists() else []:
        if m.name.endswith(".run.json"):  # times of one run: not a fact about the data
            continue
        data = json.loads(m.read_text())
        rows.append(
            {"stage": m.stem, **{k: v for k, v in data.items() if not isinstance(v, (dict, list))}}
        )
    if rows:
        rep.h2("Stage metrics")
        keys = sorted({k for r in rows for k in r} - {"stage"})
        rep.raw(_table([{"stage": r["stage"], **{k: r.get(k, "") for k in keys}} for r in rows]))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.hist([e.duration for e in entries], bins=30, color="#4a7ab5")
    ax.set_xlabel("clip duration (s)")
    ax.set_ylabel("clips")
    rep.h2("Audio durations")
    rep.figure(fig, "durations")
    return entries


def _section_failures(rep: Report, lay: Layout) -> None:
    rep.h2("Failures")
    rows = []
    fdir = lay.manifest_dir / "failures"
    for f in sorted(fdir.glob("*.csv")) if fdir.exists() else []:
        rows += _read_csv(f)
    if not rows:
        rep.p("No clip failed in any stage.")
    rep.raw(_table(rows))


def _section_warnings(rep: Report, lay: Layout) -> None:
    """Clips each stage kept but doubted (``warnings/<stage>.csv``), by name, in words."""
    rep.h2("Warnings")
    wdir = lay.manifest_dir / "warnings"
    rows = []
    for f in sorted(wdir.glob("*.csv")) if wdir.exists() else []:
        rows += _read_csv(f)
    if not rows:
        rep.p("No stage raised a warning on any clip.")
        return
    by_stage: dict[str, int] = {}
    for r in rows:
        by_stage[r["stage"]] = by_stage.get(r["stage"], 0) + 1
    rep.p(
        "Extracted, but doubtful: "
        + "; ".join(f"{n} clip(s) in {stage}" for stage, n in sorted(by_stage.items()))
        + ". Each is kept in the features; read the reason before training on it."
    )
    rep.raw(_table(rows))


def _pick(ids: list[str], n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(ids, size=min(n, len(ids)), replace=False).tolist())


def _section_audio_images(rep: Report, lay: Layout) -> None:
    plt = _plt()
    for feature, array in (("mel", "mel"), ("spectrogram", "spectrogram")):
        d = lay.features_dir(feature)
        if not (d / "index.json").exists():
            continue
        with FeatureReader(d) as r:
            ids = _pick(r.clip_ids, 3)
            fig, axes = plt.subplots(1, len(ids), figsize=(4 * len(ids), 3), squeeze=False)
            for ax, cid in zip(axes[0], ids, strict=True):
                feats = r.read(cid)
                x = feats.arrays[array]
                if x.ndim == 3:  # segments: show them side by side in time
                    x = x.reshape(-1, x.shape[-1])
                ax.imshow(x.T, origin="lower", aspect="auto", cmap="magma")
                ax.set_title(cid, fontsize=8)
                ax.set_xlabel("frame")
            rep.h2(f"{feature} of sample clips")
            rep.figure(
                fig,
                f"{feature}_examples",
                f"{array}: frequency (up) over time (right); rows past the clip's end are padding",
            )


def _face_rate(reader: FeatureReader, clip_id: str) -> float:
    """A clip's face rate: its stored ``face_rate`` attribute (frames with a detected face,
    the number its warning uses), else the share of valid rows; never reads the crops."""
    rate = reader.clip_attrs(clip_id).get("face_rate")
    if rate is not None:
        return float(rate)
    return float(reader.rows(clip_id)[1].mean())


def _section_faces(rep: Report, lay: Layout) -> None:
    d = lay.features_dir("faces")
    if not (d / "index.json").exists():
        return
    plt = _plt()
    with FeatureReader(d) as r:
        rates = {cid: _face_rate(r, cid) for cid in r.clip_ids}
    rep.h2("Face detection rate per clip")
    fig, ax = plt.subplots(figsize=(max(6, len(rates) * 0.12), 2.6))
    ax.bar(range(len(rates)), list(rates.values()), color="#5a9e6f")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("frames with a face")
    ax.set_xlabel("clip")
    rep.figure(
        fig,
        "face_rate",
        f"mean {np.mean(list(rates.values())):.3f}, "
        f"lowest {min(rates.values()):.3f} ({min(rates, key=rates.get)})",
    )
    lowest = sorted(rates, key=lambda c: (rates[c], c))[:10]
    rep.p("Lowest face rates:")
    rep.raw(_table([{"clip": c, "frames with a face": round(rates[c], 4)} for c in lowest]))
    try:
        with needs("face montages", "extract"):
            from .montage import montage
    except MissingExtraError as e:  # said on the page and in the log, not left out silently
        log.warning("report: %s", e)
        rep.p(f"No face montages: {e}.")
        return
    marks = lay.features_dir("landmarks")
    worst = lowest[0]
    picks = [worst] + [c for c in _pick(list(rates), 2, seed=1) if c != worst][:2]
    for cid in picks:
        out = rep.out / f"montage_{cid}.png"
        try:
            montage(d, cid, out, landmarks_dir=marks if (marks / "index.json").exists() else None)
        except (ShardError, KeyError, ValueError) as e:
            log.warning("report: no montage for %s: %s", cid, e)
            continue
        what = "the lowest face rate: " if cid == worst else ""
        rep.image(out, f"face crops of {cid} with landmarks ({what}{rates[cid]:.1%} of frames)")


def _section_words(rep: Report, lay: Layout) -> None:
    m = lay.metrics_json("words")
    if not m.exists():
        return
    data = json.loads(m.read_text())
    rep.h2("Words")
    rep.raw(_table([{k: v for k, v in data.items() if not isinstance(v, (dict, list))}]))


def _section_evaluation(rep: Report, reports_dir: Path) -> None:
    if not reports_dir.exists():
        return
    plt = _plt()
    # timing-*.json: how long a run took, not a fact about the data (and never the same twice)
    metric_files = sorted(p for p in reports_dir.rglob("*.json")
                          if not p.name.startswith("timing-"))
    # evaluate writes confusion/<method>.csv (rows of actual, predicted)
    confusions = sorted(set(reports_dir.rglob("*confusion*.csv"))
                        | set(reports_dir.glob("confusion/*.csv")))
    if not metric_files and not confusions:
        return
    rep.h2("Evaluation")
    for mf in metric_files:
        try:
            data = json.loads(mf.read_text())
        except json.JSONDecodeError:
            continue
        flat = _flatten(data)
        if flat:
            rep.p(str(mf.relative_to(reports_dir)))
            rep.raw(_table([{"metric": k, "value": v} for k, v in flat.items()], limit=60))
    for cf in confusions:
        rows = _read_csv(cf)
        if not rows or not {"actual", "predicted"} <= set(rows[0]):
            continue
        labels = sorted({r["actual"] for r in rows} | {r["predicted"] for r in rows})
        idx = {lab: i for i, lab in enumerate(labels)}
        mat = np.zeros((len(labels), len(labels)), dtype=int)
        for r in rows:
            mat[idx[r["actual"]], idx[r["predicted"]]] += 1
        fig, ax = plt.subplots(figsize=(3.8, 3.4))
        ax.imshow(mat, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, str(mat[i, j]), ha="center", va="center", fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        name = "confusion_" + "_".join(cf.relative_to(reports_dir).with_suffix("").parts)
        rep.figure(fig, name, str(cf.relative_to(reports_dir)))


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, (int, float, str, bool)):
        out[prefix.rstrip(".")] = round(obj, 4) if isinstance(obj, float) else obj
    return out


def build_report(lay: Layout, out_dir: Path | None = None) -> Path:
    """Write the QA page for the corpus of ``lay``; returns the HTML path."""
    out = out_dir or lay.root / "data" / "qa" / lay.corpus
    rep = Report(out, f"QA report: {lay.corpus}")
    _section_summary(rep, lay)
    _section_failures(rep, lay)
    _section_warnings(rep, lay)
    _section_audio_images(rep, lay)
    _section_faces(rep, lay)
    _section_words(rep, lay)
    _section_evaluation(rep, lay.root / "data" / "reports" / lay.corpus)
    return rep.write()


def run_report(params: Params, root: str | Path = ".") -> int:
    from ..workflow import layout

    path = build_report(layout(params, root))
    log.info("report: wrote %s", path)
    print(path)
    return 0
