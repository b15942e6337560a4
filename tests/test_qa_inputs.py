"""The QA page's DVC stage declares every file the page reads, so `dvc repro` never serves a
page built from older metrics, failures or warnings than the ones on disk."""

import json
import sys
from pathlib import Path

import yaml

from pipeline.config import load_params
from pipeline.paths import Layout
from pipeline.qa.report import build_report
from pipeline.workflow import run_feature, run_ingest
from tests.dvc_project import REPO


def _report_deps(corpus: str) -> list[str]:
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["report"]
    return [d.replace("${corpus.name}", corpus) for d in stage["deps"]]


def _covered(rel: str, deps: list[str]) -> bool:
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


def test_the_report_stage_declares_every_file_the_page_reads(project_factory, sample_clips):
    root = project_factory(sample_clips[:2], runner={"n_jobs": 1})
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    for feature in ("mel", "spectrogram"):
        run_feature(params, feature, root, progress=False)
    # what the training stages leave for the page, in their formats
    reports = root / "data" / "reports" / "sample"
    (reports / "confusion").mkdir(parents=True)
    (reports / "evaluate.json").write_text(json.dumps({"headline": "accuracy", "chance": 0.5}))
    (reports / "pretrain.json").write_text(json.dumps({"folds": {"0": {"epochs": 3}}}))
    (reports / "confusion" / "probe.csv").write_text(
        "actual,predicted\nsad,sad\nsad,happy\nhappy,happy\n")
    (reports / "timing-evaluate.json").write_text(json.dumps({"seconds": 1.0}))
    (reports / "predictions.csv").write_text(
        "method,run,fold,seed,clip_id,actual,predicted\n"
        "probe,0,0,0,01-01-01-01-01-01-01,neutral,sad\n")
    (reports / "pretrain_curves").mkdir()
    (reports / "pretrain_curves" / "fold-0.csv").write_text(
        "epoch,train_loss,val_loss,lr\n0,2.0,2.1,0.01\n1,1.5,1.9,0.01\n")

    opened: set[str] = set()
    recording = [True]
    top = root.resolve()

    def hook(event: str, args: tuple) -> None:
        if recording[0] and event == "open" and isinstance(args[0], (str, Path)):
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
            path = Path(args[0]).resolve()
            if "r" in mode and path.is_relative_to(top):
                opened.add(path.relative_to(top).as_posix())

    sys.addaudithook(hook)
    try:
        page = build_report(Layout("sample", root=root))
    finally:
        recording[0] = False  # an audit hook cannot be removed; it goes quiet instead

    read = {p for p in opened if not p.startswith("data/qa/")}
    # the page reads the stage outputs this test made: a vacuous pass is not possible
    assert "data/metrics/sample/ingest.json" in read and "manifests/sample/clips.csv" in read
    assert "data/reports/sample/evaluate.json" in read
    # evaluate's confusion tables are drawn on the page
    assert "data/reports/sample/confusion/probe.csv" in read
    # per-clip predictions (misclassified clips, per speaker) and the loss curves
    assert "data/reports/sample/predictions.csv" in read
    assert "data/reports/sample/pretrain_curves/fold-0.csv" in read
    assert "confusion_probe.png" in page.read_text()
    deps = _report_deps("sample")
    undeclared = sorted(p for p in read if not _covered(p, deps))
    assert not undeclared, f"the QA page reads files its DVC stage does not declare: {undeclared}"
