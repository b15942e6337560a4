"""The QA report opens in a real headless browser with every image decoded."""

import re

from pipeline.config import load_params
from pipeline.paths import Layout
from pipeline.qa.report import build_report
from pipeline.workflow import run_feature, run_ingest
from tests.media import strip_audio
from tests.qa_helpers import browse


def test_report_loads_in_headless_chromium(project_factory, sample_clips, tmp_path):
    root = project_factory(sample_clips[:4], runner={"n_jobs": 1})
    strip_audio(sample_clips[5], root / "corpus" / "Actor_02" / "01-01-05-01-01-01-02.mp4")
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    for feature in ("mel", "spectrogram"):
        run_feature(params, feature, root, progress=False)
    page = build_report(Layout("sample", root=root))
    text = page.read_text()
    assert "no audio track" in text  # the failures table lists the silent clip
    assert len(re.findall(r"<img ", text)) >= 3
    dom = browse(page, tmp_path / "profile", tmp_path / "report.png")  # every image decoded
    assert "QA report: sample" in dom
