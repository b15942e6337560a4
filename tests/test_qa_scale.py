"""The QA page stays readable on a 1,000-clip corpus: tables of clips and speakers are
summarised (the first rows shown, the rest counted and located), clip figures are sampled or
summarised, each saying which; the page stays small, parses strictly and loads in Chromium.
The corpus is generated: a 1,000-clip manifest, real shards of small arrays written by the
store, and the training outputs in their formats."""

from __future__ import annotations

import json
import re

import numpy as np

from pipeline.clip_warnings import ClipWarning, write_warnings
from pipeline.manifest import Failure, ManifestEntry, write_failures, write_manifest
from pipeline.paths import Layout
from pipeline.qa.page import plt
from pipeline.qa.report import _audio_image, build_report
from pipeline.store import ClipFeatures, ShardWriter
from tests.qa_helpers import browse, chart_labels, strict_html

N, SPEAKERS = 1000, 100
CLASSES = ["angry", "happy", "neutral", "sad"]


def _corpus(root, n: int = N) -> Layout:
    lay = Layout("big", root=root)
    rng = np.random.default_rng(0)
    entries = [
        ManifestEntry(f"c{i:04d}", f"s{i % SPEAKERS:03d}/c{i:04d}.mp4",
                      speaker=f"s{i % SPEAKERS:03d}", label=CLASSES[i % 4],
                      transcript=f"clip number {i}",
                      duration=float(rng.uniform(1, 6)), fps=30.0, sample_rate=48000,
                      has_audio=True, has_video=True)
        for i in range(n)
    ]
    write_manifest(lay.clips_csv, entries)
    write_failures(lay.failures_csv("mel"), [
        Failure(f"c{i:04d}", "mel", f"clip c{i:04d}: no audio track", "ExtractionError")
        for i in range(0, min(n, 600), 5)])  # 120
    write_warnings(lay.warnings_csv("faces"), [
        ClipWarning(f"c{i:04d}", "faces", f"a face in {i % 50}% of the frames")
        for i in range(1, min(n, 800), 10)])  # 80
    lay.metrics_json("faces").parent.mkdir(parents=True, exist_ok=True)
    lay.metrics_json("faces").write_text(json.dumps({"clips": n, "face_rate": 0.93}))
    with ShardWriter(lay.features_dir("faces"), "faces", {"feature": "faces"}, {},
                     "crops") as w:  # fmt: skip
        for i, e in enumerate(entries):
            rate = float(rng.uniform(0.2, 1.0))
            w.add(e.clip_id, ClipFeatures(
                {"crops": rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8)},
                np.arange(3) / 30, np.array([True, True, i % 3 > 0]),
                {"face_rate": round(rate, 6), "n_frames": 90, "n_detected": round(90 * rate)}),
                "0" * 64)  # fmt: skip
    params = {"feature": "mel", "params": {"sample_rate": 22050, "scaling": "dctts"}}
    with ShardWriter(lay.features_dir("mel"), "mel", params, {}, "mel") as w:
        for e in entries:
            valid = np.arange(20) < 12  # 8 rows of padding
            w.add(e.clip_id, ClipFeatures({"mel": rng.random((20, 80), np.float32)},
                                          np.arange(20) * 0.2, valid), "0" * 64)
    reports = root / "data" / "reports" / "big"
    (reports / "confusion").mkdir(parents=True)
    methods = {}
    preds = ["method,run,fold,seed,clip_id,actual,predicted"]
    for m in ("probe", "late_fusion"):
        folds = {str(k): {"accuracy": float(rng.uniform(.3, .7)), "ua": .5, "f1_weighted": .5}
                 for k in range(10)}
        methods[m] = {"mean": {"accuracy": .5, "ua": .5, "f1_weighted": .5},
                      "std": {"accuracy": .1, "ua": .1, "f1_weighted": .1}, "folds": folds}
        rows = ["actual,predicted"]
        for i, e in enumerate(entries):
            guess = CLASSES[int(rng.integers(4))]
            rows.append(f"{e.label},{guess}")
            preds.append(f"{m},{i % 10},{i % 10},0,{e.clip_id},{e.label},{guess}")
        (reports / "confusion" / f"{m}.csv").write_text("\n".join(rows) + "\n")
    (reports / "predictions.csv").write_text("\n".join(preds) + "\n")
    (reports / "evaluate.json").write_text(json.dumps({
        "corpus": "big", "scheme": "actor_kfold", "task": "single_label", "classes": CLASSES,
        "headline": "accuracy", "chance": .25, "majority": .25, "seeds": [], "methods": methods,
        "comparisons": [], "paper": None}))
    (reports / "pretrain_curves").mkdir()
    for k in range(10):
        (reports / "pretrain_curves" / f"fold-{k}.csv").write_text(
            "epoch,train_loss,val_loss,lr\n" + "".join(
                f"{e},{3 - e / 50},{3.1 - e / 60},0.001\n" for e in range(100)))
    (reports / "pretrain.json").write_text(json.dumps({"folds": {
        str(k): {"epochs": 100, "best_epoch": 90, "val_loss": 1.5, "top1_mean": .2,
                 "top1_chance": .01} for k in range(10)}}))
    return lay


def test_a_thousand_clips_page_is_summarised_and_says_so(tmp_path):
    lay = _corpus(tmp_path)
    page = build_report(lay)
    text = page.read_text()
    strict_html(page)
    chart_labels(text)
    assert len(text) < 400_000, f"{len(text)} bytes of HTML"
    assert text.count("<tr>") < 400
    assert len(re.findall(r"<img ", text)) < 30
    # the warnings, in words, at the top
    top = text[: text.index("<nav>")]
    assert "120 clip(s) failed in mel" in top and "80 clip(s) in faces" in top
    # tables of clips: the first rows, the rest counted and located
    assert "The first 50 of 120 rows; every row is in" in text
    assert "The first 50 of 80 rows; every row is in" in text
    # speakers and clips in figures: summarised or sampled, on the page
    assert "Summarised: the 20 lowest and 20 highest of 100 speakers." in text
    assert "Summarised: the distribution over all 1000 clips, and the 30 clips" in text
    assert "sampled at random (seed 0) from 1000" in text
    assert text.count("<div class='example'>") <= 2 * 3
    assert "The evaluation reports no comparison between methods." in text
    browse(page, tmp_path / "profile", tmp_path / "big.png")


def test_audio_images_cut_the_padding_and_run_in_seconds():
    """A fixed-length mel of 20 rows, 12 of them the clip: the image holds the 12, over their
    times in seconds."""
    feats = ClipFeatures({"mel": np.arange(20 * 80, dtype=np.float32).reshape(20, 80)},
                         np.arange(20) * 0.2, np.arange(20) < 12)
    fig, ax = plt().subplots()
    im, ylabel = _audio_image(ax, "mel", feats, {})
    assert im.get_array().shape == (80, 12) and ylabel == "mel band"
    assert np.allclose(im.get_extent(), [0.0, 12 * 0.2, 0, 80])
    # spectrogram segments: frames of the last segment past the clip (real_frames) are cut
    seg = ClipFeatures({"spectrogram": np.ones((2, 128, 128), np.float32),
                        "real_frames": np.array([128, 40], np.int32)},
                       np.array([0.0, 1.024]), np.array([True, True]))
    im, ylabel = _audio_image(ax, "spectrogram", seg, {"hop_length": 128, "sample_rate": 16000})
    assert im.get_array().shape == (128, 168) and ylabel == "frequency (Hz)"
    assert np.allclose(im.get_extent(), [0.0, 1.024 + 40 * 0.008, 0, 8000])
    plt().close(fig)


def test_the_page_replaces_planted_links_and_never_writes_through_them(tmp_path):
    """The page and its figures are written whole and by rename: a link planted where one of
    them goes is replaced, and the file it points to is left as it was."""
    lay = _corpus(tmp_path / "project", n=40)
    page = build_report(lay)
    figures = sorted(page.parent.glob("*.png"))
    assert figures, "the page drew no figure"
    victims = []
    for name in (page, figures[0]):
        victim = tmp_path / f"outside-{name.name}"
        victim.write_text("not the pipeline's")
        name.unlink()
        name.symlink_to(victim)
        victims.append(victim)
    again = build_report(lay)
    assert again == page
    for name, victim in zip((page, figures[0]), victims, strict=True):
        assert victim.read_text() == "not the pipeline's"
        assert name.is_file() and not name.is_symlink()
    assert "<html" in page.read_text() and figures[0].read_bytes()[:4] == b"\x89PNG"
    assert not list(page.parent.glob("*.tmp"))
