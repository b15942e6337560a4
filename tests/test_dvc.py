"""`dvc repro` on a copy of the project: no-op rerun, param change reruns one stage,
a new clip is the only one extracted."""

import shutil

from tests.dvc_project import dvc, make_dvc_project


def test_dvc_repro_is_incremental(tmp_path, sample_clips):
    def two_folds(params: dict) -> None:
        params["folds"]["schemes"] = params["folds"]["schemes"][1:2]
        params["folds"]["schemes"][0]["n_folds"] = 2

    clips = [c for c in sample_clips if c.parent.name == "Actor_01"][:3]
    root = make_dvc_project(tmp_path / "proj", clips[:2], two_folds)

    out = dvc(root, "repro", "mel", "spectrogram")
    assert "Running stage 'mel'" in out and "extracting 2, reusing 0" in out
    assert (root / "data/features/sample/mel/index.json").exists()

    out = dvc(root, "repro", "mel", "spectrogram")
    assert "Running stage" not in out, out

    text = (root / "params.yaml").read_text().replace("segment_hop_frames: 128",
                                                      "segment_hop_frames: 64")
    (root / "params.yaml").write_text(text)
    out = dvc(root, "repro", "mel", "spectrogram")
    assert "Running stage 'spectrogram'" in out
    assert "Running stage 'mel'" not in out and "Running stage 'ingest'" not in out

    c = clips[2]
    shutil.copy2(c, root / "data" / "sample" / c.parent.name / c.name)
    out = dvc(root, "repro", "mel", "spectrogram")
    assert "Running stage 'ingest'" in out and "Running stage 'mel'" in out
    assert "mel: 3 clips, extracting 1, reusing 2" in out
