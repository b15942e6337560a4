"""The QA page takes each clip's face rate from the stored ``face_rate`` attribute (the number
its warning uses) and reads no crops for it; shards without the attribute fall back to the
share of valid rows."""

from __future__ import annotations

import numpy as np

from pipeline.qa.report import _face_rate
from pipeline.store import ClipFeatures, FeatureReader, ShardWriter


def test_face_rate_is_the_stored_attribute_else_the_valid_share(tmp_path, monkeypatch):
    crops = np.zeros((4, 8, 8, 3), np.uint8)
    times = np.arange(4) / 30
    with ShardWriter(tmp_path, feature="faces", params={"feature": "faces"}, provenance={},
                     primary="crops") as w:  # fmt: skip
        # filled frames are valid rows but not detected faces: the attribute says 0.5
        w.add("with_attr", ClipFeatures({"crops": crops}, times, np.ones(4, bool),
                                        {"face_rate": 0.5}), "0" * 64)  # fmt: skip
        w.add("older", ClipFeatures({"crops": crops}, times, np.array([1, 1, 1, 0], bool)),
              "0" * 64)  # fmt: skip
    with FeatureReader(tmp_path) as r:

        def no_arrays(*a, **k):
            raise AssertionError("the QA face rate read a clip's arrays")

        monkeypatch.setattr(r, "read", no_arrays)
        assert _face_rate(r, "with_attr") == 0.5
        assert _face_rate(r, "older") == 0.75
