"""The QA page shows results as a researcher would: on the sample, after real features, real
pretraining and a real evaluation (a few epochs), the page has the headline table (with the
evaluation's statistics and the paper's number when evaluate.json carries them), per-fold and
per-speaker tables, confusion matrices in %, training curves and misclassified clips with a
face crop and the transcript; its HTML parses strictly, every figure has a title and axis
labels, and Chromium loads it, decodes every image and takes a screenshot."""

from __future__ import annotations

import json
import re

from pipeline.config import load_params
from pipeline.paths import Layout
from pipeline.qa.report import build_report
from pipeline.training.workflow import run_evaluate, run_pretrain
from pipeline.workflow import run_feature, run_folds, run_ingest
from tests.qa_helpers import browse, chart_labels, strict_html

FAST = {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.001, "step_epochs": 0,
        "gamma": 0.9, "batch_size": 32, "max_epochs": 3, "patience": 0, "min_delta": 0.0,
        "monitor": "loss"}
COMPARISONS = [  # what the evaluation writes beside its methods (evaluate.json)
    {"method": "qian_han", "baseline": "probe", "metric": "accuracy", "n_folds": 2,
     "n_runs": 2, "mean_diff": 0.125, "ci_low": -0.25, "ci_high": 0.5, "p": 0.5,
     "test": "paired t over folds", "verdict": "no difference shown at 2 folds"},
]
PAPER = {"cell": "Table I, audio + landmarks, actor split", "metric": "accuracy",
         "value": 77.10, "source": "MPUC Table I"}


def test_the_sample_results_page(sample_clips, project_factory, tmp_path, one_torch_thread):
    clips = [c for c in sample_clips if c.stem.split("-")[2] in ("01", "05")]
    clips = [c for c in clips if c.stem.split("-")[4:6] == ["01", "01"]]
    root = project_factory(
        clips, runner={"n_jobs": 1, "backend": "sequential"},
        folds={"schemes": [{"name": "actor_kfold", "kind": "group_kfold", "n_folds": 4,
                            "group_by": "speaker", "val_fraction": 0.1}]},
        train={"folds": [0, 1], "seeds": [], "threads": 1, "feature_dim": 32,
               "projection_hidden": 32,
               "tcn": {"bn_chan": 8, "hid_chan": 8, "kernel": 3, "n_blocks": 2,
                       "n_repeats": 1, "dropout": 0.1}},
        pretrain={"loss": "paper", "reduction": "mean", "optim": FAST},
        evaluate={"methods": ["probe", "qian_han"], "probe": {"hidden": 16, "optim": FAST},
                  "qian_han": {"audio": "spectrogram", "text": "mel", "optim": FAST}},
    )
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    run_folds(params, root)
    for feature in ("mel", "spectrogram", "faces"):
        assert run_feature(params, feature, root, progress=False) == 0
    assert run_pretrain(params, root) == 0
    assert run_evaluate(params, root) == 0
    lay = Layout("sample", root=root)
    reports = root / "data" / "reports" / "sample"
    preds = (reports / "predictions.csv").read_text().splitlines()
    assert preds[0] == "method,run,fold,seed,clip_id,actual,predicted"
    assert len(preds) == 1 + 2 * 4  # 2 methods x (2 folds x 2 test clips)

    page = build_report(lay)
    text = page.read_text()
    strict_html(page)
    labels = chart_labels(text)
    titles = [t for t, _, _ in labels]
    assert "MPUC: probe on the pretrained encoders" in titles  # a confusion matrix per method
    assert "Qian &amp; Han: contrastive regularization" in titles
    assert any("training contrastive loss" in t for t in titles)
    assert "cross-modal retrieval top-1 on the validation clips" in titles
    for section in ("Results", "Per fold", "Per speaker", "Confusion matrices",
                    "Training curves", "Misclassified clips"):
        assert f">{section}</h2>" in text, section
    headline = text[text.index(">Results</h2>"): text.index(">Per fold</h2>")]
    assert re.search(r"\d+\.\d\d ± \d+\.\d\d", headline)
    # no preset ran: the evaluation says so (paper null, paper_reason) and compared nothing
    assert "No paper number beside these: the run is not a paper preset" in headline
    assert "The evaluation reports no comparison between methods." in headline
    assert "Statistics the evaluation" not in headline
    assert "in % of its test clips" in text
    examples = text[text.index(">Misclassified clips</h2>"):]
    assert re.search(r"<img src='face_[^']+\.png'", examples)
    assert "Kids are talking by the door" in examples or "Dogs are sitting" in examples

    # what the evaluation adds for the statistics and the paper: shown as written
    doc = json.loads((reports / "evaluate.json").read_text())
    doc.update(comparisons=COMPARISONS, paper=PAPER)
    (reports / "evaluate.json").write_text(json.dumps(doc))
    page = build_report(lay)
    text = page.read_text()
    strict_html(page)
    headline = text[text.index(">Results</h2>"): text.index(">Per fold</h2>")]
    assert "Statistics the evaluation reports" in headline
    assert "no difference shown at 2 folds" in headline and "paired t over folds" in headline
    assert "+12.50" in headline and "[-25.00, +50.00]" in headline
    assert "77.10 (paper)" in headline and "MPUC Table I" in headline
    dom = browse(page, tmp_path / "profile", tmp_path / "results.png", height=7000)
    assert "Misclassified clips" in dom and "77.10 (paper)" in dom

    doc.update(paper=None, paper_reason="no preset ran")
    (reports / "evaluate.json").write_text(json.dumps(doc))
    assert "No paper number beside these: no preset ran." in build_report(lay).read_text()
