"""Checks of a written QA page: strict HTML, labelled figures, and a real headless browser
that loads it, decodes every image and takes a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("a Chromium browser is needed for the report test: install Debian's "
                "`chromium` package (apt-get install chromium), which `make test` does as root")


def strict_html(page: Path) -> None:
    """Parse the page by the WHATWG HTML rules, failing on any parse error."""
    import html5lib

    html5lib.HTMLParser(strict=True).parse(page.read_bytes())


def chart_labels(text: str) -> list[tuple[str, str, str]]:
    """(title, x label, y label) of every chart; each must have all three."""
    charts = re.findall(r"<figure class='chart(?: compact)?' data-title='([^']*)' "
                        r"data-xlabel='([^']*)' data-ylabel='([^']*)'>", text)
    assert charts, "no chart on the page"
    assert text.count("<figure class='chart") == len(charts)
    for c in charts:
        assert all(part.strip() for part in c), c
    return charts


def browse(page: Path, profile: Path, shot: Path, height: int = 6000) -> str:
    """Load ``page`` in headless Chromium: the DOM after load (images decoded, checked), and
    a full-width screenshot in ``shot`` (checked to show something)."""
    n_imgs = len(re.findall(r"<img ", page.read_text()))
    proc = subprocess.run(
        [chromium(), *BROWSER_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=8000",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180,
    )
    dom = proc.stdout
    total = re.search(r'data-images="(\d+)"', dom)
    ok = re.search(r'data-images-ok="(\d+)"', dom)
    assert total and ok, f"the page's load script did not run: {proc.stderr[-1500:]}"
    assert int(total.group(1)) == n_imgs and int(ok.group(1)) == n_imgs, (total, ok, n_imgs)
    proc = subprocess.run(
        [chromium(), *BROWSER_FLAGS, f"--user-data-dir={profile}", "--hide-scrollbars",
         f"--window-size=1200,{height}", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert shot.exists(), proc.stderr[-1500:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[1] == 1200 and float(np.std(pixels)) > 0.05, "a blank screenshot"
    return dom
