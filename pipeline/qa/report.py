"""The QA report: one HTML page per corpus with PNG figures, so a person can see at a glance
whether the extraction and the training went right, and show the results.

Written to ``data/qa/<corpus>/index.html`` (beside, not inside, the trainer's
``data/reports/<corpus>/``, which it reads). Warnings come first, in words; then sections
that appear when their inputs exist: corpus summary and per-stage metrics, failures and
warnings (summarised per stage and reason, the first rows listed), audio durations, mel and
spectrogram images of three sampled clips (padding cut, seconds and colour bars), the face
rate (one definition, said on the page), face montages, the words stage, and the results
(:mod:`.results`: headline, statistics, per fold, per speaker, confusion, training curves,
misclassified clips). At any corpus size the page stays readable: tables of clips and
speakers are summarised with the first rows shown and the rest counted, and figures of clips
are sampled or summarised, each saying which.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np

from ..config import Params
from ..extras import MissingExtraError, needs
from ..manifest import read_manifest
from ..paths import Layout
from ..store import FeatureReader, ShardError
from . import results
from .page import Page, plt

log = logging.getLogger(__name__)

Report = Page  # the page object each section writes to
ROWS = 50  # rows of a failures or warnings table shown before "the first N of M"


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _section_corpus(rep: Report, lay: Layout) -> list:
    entries = read_manifest(lay.clips_csv)
    rep.h2("Corpus")
    labels = Counter(e.label or "(none)" for e in entries)
    rep.table([{
        "clips": len(entries),
        "speakers": len({e.speaker for e in entries}),
        "hours": round(sum(e.duration for e in entries) / 3600, 3),
        "with audio": sum(e.has_audio or bool(e.audio_path) for e in entries),
        "with video": sum(e.has_video for e in entries),
        "labels": ", ".join(f"{k}: {v}" for k, v in sorted(labels.items())),
    }])
    return entries


def _section_stages(rep: Report, lay: Layout, entries: list) -> None:
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
        rep.table([{"stage": r["stage"], **{k: r.get(k, "") for k in keys}} for r in rows])
        if any("face_rate" in r for r in rows):
            rep.p(f"face_rate: {FACE_RATE}", note=True)
    fig, ax = plt().subplots(figsize=(6, 2.6))
    ax.hist([e.duration for e in entries], bins=30, color="#4a7ab5")
    ax.set_title("clip durations")
    ax.set_xlabel("clip duration (s)")
    ax.set_ylabel("clips")
    rep.h2("Audio durations")
    rep.figure(fig, "durations", f"All {len(entries)} clips of the manifest.")


def _stage_rows(folder: Path) -> list[dict[str, str]]:
    rows = []
    for f in sorted(folder.glob("*.csv")) if folder.exists() else []:
        rows += _read_csv(f)
    return rows


def _section_failures(rep: Report, lay: Layout) -> None:
    rep.h2("Failures")
    fdir = lay.manifest_dir / "failures"
    rows = _stage_rows(fdir)
    if not rows:
        rep.p("No clip failed in any stage.")
        return
    by = Counter((r["stage"], r.get("exception_type", "")) for r in rows)
    for stage, n in sorted(Counter(r["stage"] for r in rows).items()):
        rep.warn(f"{n} clip(s) failed in {stage}: they are not in its features (see "
                 f"manifests/{lay.corpus}/failures/{stage}.csv).")
    rep.p("Failed clips per stage and kind of error:")
    rep.table([{"stage": st, "error": ex or "?", "clips": n} for (st, ex), n in sorted(by.items())])
    rep.table(rows, limit=ROWS, more=f"every row is in {fdir}")


def _section_warnings(rep: Report, lay: Layout) -> None:
    """Clips each stage kept but doubted (``warnings/<stage>.csv``), by name, in words."""
    rep.h2("Warnings")
    wdir = lay.manifest_dir / "warnings"
    rows = _stage_rows(wdir)
    if not rows:
        rep.p("No stage raised a warning on any clip.")
        return
    by_stage = Counter(r["stage"] for r in rows)
    text = ("Extracted, but doubtful: "
            + "; ".join(f"{n} clip(s) in {stage}" for stage, n in sorted(by_stage.items()))
            + ". Each is kept in the features; read the reason before training on it.")
    rep.warn(text)
    rep.p(text)
    rep.table(rows, limit=ROWS, more=f"every row is in {wdir}")


def _pick(ids: list[str], n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(ids, size=min(n, len(ids)), replace=False).tolist())


def _audio_image(ax, feature: str, feats, params: dict) -> object:
    """Draw one clip's rows that hold data (padding cut) over their times in seconds."""
    keep = np.nonzero(feats.valid)[0]
    last = int(keep[-1]) + 1 if len(keep) else 0
    x = feats.arrays[feature][:last]
    t = feats.timestamps[:last]
    if x.ndim == 3:  # spectrogram segments of segment_frames STFT frames each
        frames = x.shape[1]
        real = feats.arrays.get("real_frames")
        hop = params.get("hop_length", 128) / params.get("sample_rate", 16000)
        cols = [x[i, : int(real[i]) if real is not None else frames] for i in range(len(x))]
        times = np.concatenate([t[i] + hop * np.arange(len(c)) for i, c in enumerate(cols)])
        x = np.concatenate(cols) if cols else np.zeros((0, x.shape[2]))
        top = params.get("sample_rate", 16000) / 2
        ylabel = "frequency (Hz)"
        step = hop
    else:
        times, top, ylabel = t, x.shape[1], "mel band"
        step = float(np.median(np.diff(t))) if len(t) > 1 else 0.1
    if not len(x):
        ax.set_title("no rows with data")
        return None
    return ax.imshow(x.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                     extent=[times[0], times[-1] + step, 0, top]), ylabel


def _scale_label(feature: str, params: dict) -> str:
    if feature == "mel":
        return ("DCTTS-scaled level (0 to 1)" if params.get("scaling") == "dctts"
                else "dB (re the clip's maximum)")
    return "log magnitude" if params.get("log", True) else "magnitude"


def _section_audio_images(rep: Report, lay: Layout) -> None:
    for feature in ("mel", "spectrogram"):
        d = lay.features_dir(feature)
        if not (d / "index.json").exists():
            continue
        with FeatureReader(d) as r:
            params = r.params.get("params", {})
            ids = _pick(r.clip_ids, 3)
            fig, axes = plt().subplots(1, len(ids), figsize=(4.6 * len(ids), 3.1), squeeze=False,
                                       layout="constrained")
            for ax, cid in zip(axes[0], ids, strict=True):
                drawn = _audio_image(ax, feature, r.read(cid), params)
                if drawn is None:
                    ax.set_xlabel("time (s)")
                    ax.set_ylabel("-")
                    continue
                im, ylabel = drawn
                ax.set_title(cid, fontsize=8)
                ax.set_xlabel("time (s)")
                ax.set_ylabel(ylabel)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label(
                    _scale_label(feature, params), fontsize=8)
            rep.h2(f"{feature} of sample clips")
            rep.figure(
                fig, f"{feature}_examples",
                f"{feature} of {len(ids)} clips sampled at random (seed 0) from "
                f"{len(r.clip_ids)}: frequency (up) over time in seconds (right), only the rows "
                f"that hold the clip (the padding of a fixed-length feature is cut).",
            )


FACE_RATE = ("the share of a clip's frames in which a face was detected (frames filled "
             "in across short gaps not counted): each clip's stored face_rate; for the "
             "corpus, all clips' frames together (faces.json's face_rate).")
FACE_BARS = 60  # clips drawn one bar each up to this many; past it a histogram and the lowest


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
    p = plt()
    frames = found = 0
    with FeatureReader(d) as r:
        rates = {}
        for cid in r.clip_ids:
            rates[cid] = _face_rate(r, cid)
            a = r.clip_attrs(cid)
            n = int(a.get("n_frames", 0) or 0)
            frames += n
            found += int(a.get("n_detected", round(rates[cid] * n)) or 0)
    rep.h2("Face detection rate per clip")
    corpus = f"{found / frames:.4f} over {frames} frames" if frames else "n/a"
    rep.p(f"Face rate, here and in the stage metrics: {FACE_RATE} Corpus: {corpus}.")
    order = sorted(rates, key=lambda c: (rates[c], c))
    if len(rates) <= FACE_BARS:
        fig, ax = p.subplots(figsize=(max(6, len(rates) * 0.16), 3.2))
        names = sorted(rates)
        ax.bar(range(len(names)), [rates[c] for c in names], color="#5a9e6f")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        ax.set_ylim(0, 1.02)
        ax.set_title("face rate per clip")
        ax.set_xlabel("clip")
        ax.set_ylabel("face rate")
        caption = f"Every clip ({len(rates)}), by name."
    else:
        fig, (a1, a2) = p.subplots(1, 2, figsize=(12, 3.6))
        a1.hist(list(rates.values()), bins=np.linspace(0, 1, 41), color="#5a9e6f")
        a1.set_title(f"face rate of all {len(rates)} clips")
        a1.set_xlabel("face rate")
        a1.set_ylabel("clips")
        low = order[:30]
        a2.barh(range(len(low)), [rates[c] for c in low], color="#b0603a")
        a2.set_yticks(range(len(low)), low, fontsize=6)
        a2.invert_yaxis()
        a2.set_xlim(0, 1.02)
        a2.set_title("the 30 lowest clips")
        a2.set_xlabel("face rate")
        a2.set_ylabel("clip")
        caption = (f"Summarised: the distribution over all {len(rates)} clips, and the 30 "
                   f"clips with the lowest rate by name.")
    rep.figure(fig, "face_rate", caption)
    lowest = order[:10]
    rep.p("Lowest face rates:")
    rep.table([{"clip": c, "face rate": round(rates[c], 4)} for c in lowest])
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
    rep.table([{k: v for k, v in data.items() if not isinstance(v, (dict, list))}])


def _section_evaluation(rep: Report, lay: Layout, entries: list) -> None:
    reports_dir = lay.root / "data" / "reports" / lay.corpus
    if not reports_dir.exists():
        return
    doc = {}
    ev = reports_dir / "evaluate.json"
    if ev.exists():
        try:
            doc = json.loads(ev.read_text())
        except json.JSONDecodeError as e:
            rep.warn(f"{ev} is not valid JSON ({e}): no results shown.")
    by_id = {e.clip_id: e for e in entries}
    preds = results.read_predictions(reports_dir)
    if doc.get("methods") and not preds:
        rep.warn("evaluate.json has results but there is no predictions.csv beside it: no "
                 "per-speaker table or misclassified clips (rerun the evaluate stage).")
    results.headline_section(rep, doc)
    results.per_fold_section(rep, doc)
    results.per_speaker_section(rep, preds, by_id, doc.get("task") == "multi_label",
                                list(doc.get("methods") or {}))
    results.confusion_section(rep, reports_dir, list(doc.get("classes", [])),
                              list(doc.get("methods") or {}))
    results.curves_section(rep, reports_dir)
    results.examples_section(rep, preds, by_id, lay.features_dir("faces"))


def build_report(lay: Layout, out_dir: Path | None = None) -> Path:
    """Write the QA page for the corpus of ``lay``; returns the HTML path."""
    out = out_dir or lay.root / "data" / "qa" / lay.corpus
    rep = Report(out, f"QA report: {lay.corpus}")
    for old in out.glob("*.png"):  # figures of an earlier build that this one may not draw
        old.unlink()
    entries = _section_corpus(rep, lay)
    _section_evaluation(rep, lay, entries)  # the results first, then how the data look
    _section_stages(rep, lay, entries)
    _section_failures(rep, lay)
    _section_warnings(rep, lay)
    _section_audio_images(rep, lay)
    _section_faces(rep, lay)
    _section_words(rep, lay)
    return rep.write()


def run_report(params: Params, root: str | Path = ".") -> int:
    from ..workflow import layout

    path = build_report(layout(params, root))
    log.info("report: wrote %s", path)
    print(path)
    return 0
