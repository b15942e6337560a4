"""The QA report opens in a real headless browser with every image decoded."""

import re
import shutil
import subprocess

import pytest

from pipeline.config import load_params
from pipeline.paths import Layout
from pipeline.qa.report import build_report
from pipeline.workflow import run_feature, run_ingest
from tests.media import strip_audio


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("a Chromium browser is needed for the report test: install Debian's "
                "`chromium` package (apt-get install chromium), which `make test` does as root")


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
    n_imgs = len(re.findall(r"<img ", text))
    assert n_imgs >= 3

    proc = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    dom = proc.stdout
    assert "QA report: sample" in dom, proc.stderr[-2000:]
    total = re.search(r'data-images="(\d+)"', dom)
    ok = re.search(r'data-images-ok="(\d+)"', dom)
    assert total and ok, "the page's load script did not run"
    assert int(total.group(1)) == n_imgs and int(ok.group(1)) == n_imgs
