"""The numbers in README.md and docs/training.md are generated from the pipeline's outputs
(scripts/docs_tables.py), and the committed ones from the evaluate.json dvc.lock records."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil

from pipeline.manifest import dump_json
from pipeline.training.data import LabelSpace
from pipeline.training.report import evaluation_summary
from pipeline.training.workflow import write_timing
from tests.conftest import REPO


def _script():
    spec = importlib.util.spec_from_file_location("docs_tables", REPO / "scripts/docs_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_committed_results_come_from_the_evaluate_json_that_dvc_lock_records():
    """After a new dvc.lock, run scripts/docs_tables.py (after dvc repro) and commit."""
    mod = _script()
    training = (REPO / "docs/training.md").read_text()
    block = mod.block_text(training, "sample-results")
    assert block and "| probe |" in block and "| method − baseline |" in block
    stamp = re.search(r"md5 `([0-9a-f]{32})`", block)
    assert stamp, "the results block names no md5"
    assert stamp.group(1) == mod.locked_md5(REPO), (
        "docs/training.md's sample results were written from another evaluate.json than the "
        "one dvc.lock records: run `dvc repro` then `.venv/bin/python scripts/docs_tables.py`"
    )
    times = mod.block_text(training, "sample-times")
    assert times and times == mod.block_text((REPO / "README.md").read_text(), "sample-times")
    assert "logical CPUs" in times and " min in all" in times


def _run_outputs(root):
    """What dvc repro leaves: evaluate.json from the evaluate stage's summary, the stages'
    timings."""
    runs = {
        "probe": {f"{k}-seed-{s}": {"accuracy": 0.7 + 0.05 * k + 0.01 * s, "ua": 0.6}
                  for k in range(4) for s in range(2)},
        "probe_untrained": {f"{k}-seed-{s}": {"accuracy": 0.5 + 0.03 * k, "ua": 0.5}
                            for k in range(4) for s in range(2)},
    }  # fmt: skip
    labels = LabelSpace(("a", "b", "c", "d"), False)
    mods = {"probe": ("mel",), "probe_untrained": ("mel",)}
    doc = evaluation_summary("sample", "actor_kfold", labels, runs, {0: 0.25}, (0, 1), mods)
    rep = root / "data/reports/sample"
    dump_json(rep / "evaluate.json", doc)
    write_timing(rep / "timing-evaluate.json", {"probe": {"seconds": 90.0, "epochs": 9, "runs": 8}})
    write_timing(rep / "timing-pretrain.json", {"pretrain": {"seconds": 30.0, "epochs": 3,
                                                             "runs": 8}})  # fmt: skip
    dump_json(root / "data/metrics/sample/mel.run.json", {"seconds": 60.0, "extracted": 64})
    return doc


def test_the_script_writes_what_the_outputs_say_and_check_finds_stale_blocks(tmp_path, capsys):
    mod = _script()
    root, docs = tmp_path / "run", tmp_path / "docs"
    doc = _run_outputs(root)
    for rel in ("README.md", "docs/training.md"):
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, docs / rel)
    stale = mod.update(root, docs, check=True)
    assert stale == ["docs/training.md: sample-results"]
    assert sorted(mod.update(root, docs)) == [
        "README.md: sample-times", "docs/training.md: sample-results",
        "docs/training.md: sample-times"]  # fmt: skip
    assert mod.update(root, docs, check=True) == []
    text = (docs / "docs/training.md").read_text()
    block = mod.block_text(text, "sample-results")
    digest = hashlib.md5((root / "data/reports/sample/evaluate.json").read_bytes()).hexdigest()
    assert f"md5 `{digest}`" in block and "over 8 runs (2 seeds x 4 folds)" in block
    assert "| probe | 78.0 ± 5.6 | 60.0 |" in block and "| probe_untrained | 54.5 ± 3.4 |" in block
    (acc,) = [c for c in doc["comparisons"] if c["metric"] == "accuracy"]
    assert f"| probe − probe_untrained | accuracy | 4 (8) | {acc['mean_diff']:+.2f} |" in block
    assert acc["verdict"] in block and acc["verdict"].startswith("probe higher")
    times = mod.block_text(text, "sample-times")
    assert "(mel 60.0 s, pretrain 30.0 s, evaluate 1.5 min; 3 min in all" in times
    assert "from the per-clip cache" not in times  # mel extracted its 64 clips
    assert times == mod.block_text((docs / "README.md").read_text(), "sample-times")
    # everything outside the blocks is untouched
    def outside(t: str) -> str:
        for name in ("sample-results", "sample-times"):
            t = mod._pattern(name).sub("", t)
        return t

    assert outside(text) == outside((REPO / "docs/training.md").read_text())
    # the command: --check against the repository's docs, which hold other numbers
    assert mod.main(["--check", "--root", str(root)]) == 1
    assert "stale generated blocks: docs/training.md: sample-results" in capsys.readouterr().err
    assert mod.main(["--check", "--root", str(tmp_path / "nothing")]) == 2
    # an evaluate.json of an older version (no comparisons): the same statistics computed
    old = dict(doc)
    old.pop("comparisons")
    (root / "data/reports/sample/evaluate.json").write_text(json.dumps(old))
    assert mod.render_results(old, "x").split("\n")[6:] == mod.render_results(doc, "x").split(
        "\n")[6:]  # fmt: skip


def test_times_say_when_a_stage_read_its_clips_from_the_cache(tmp_path):
    """A warm rerun's seconds are not the extraction's: the line says so, per stage."""
    mod = _script()
    root = tmp_path / "run"
    _run_outputs(root)
    dump_json(root / "data/metrics/sample/mel.run.json",
              {"seconds": 1.5, "extracted": 4, "reused_from_cache": 60})
    times = mod.render_times(root)
    assert "(mel 1.5 s, " in times
    assert "read from the per-clip cache, not extracted, in that run: mel 60 of 64;" in times
