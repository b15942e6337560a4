"""Does contrastive pretraining help? The probe on pretrained vs untrained encoders.

A synthetic corpus (pipeline.training.synthetic) where mel, landmarks and words share a
hidden class signal under a stronger private nuisance per modality; 4 speakers x 4 classes
x 16 clips, 4 actor folds (2 speakers train, 1 validation, 1 test). The MPUC pretraining
(Eq. 1-2, two windows per clip) runs per fold on the training speakers; then the same
classifier is trained on the frozen features of the pretrained encoders (``probe``) and of
untrained ones (``probe_untrained``), once as the paper's fc-ReLU-fc and once strictly
linear. Test accuracy per fold, mean and std; chance is 25 %. Prints and saves JSON to
bench/results/probe.json.

    .venv/bin/python bench/bench_probe.py
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import FoldScheme, params_from_dict  # noqa: E402
from pipeline.training.synthetic import SyntheticSpec, write_synthetic_corpus  # noqa: E402
from pipeline.training.workflow import run_evaluate, run_pretrain  # noqa: E402

MODALITIES = ["mel", "landmarks", "words"]
SPEC = SyntheticSpec(n_classes=4, n_speakers=4, clips_per_class_speaker=16, private=4.0)
SCHEME = FoldScheme(name="actor_kfold", kind="group_kfold", n_folds=4, val_fraction=0.3)


def params(root: Path, hidden: int):
    return params_from_dict(
        {
            "corpus": {"name": SPEC.corpus},
            "train": {
                "modalities": MODALITIES,
                "threads": 1,
                "cache_clips": True,
                "checkpoint_dir": str(root / "checkpoints"),
                "window": {"seconds": 1.0, "views": 2},
                "feature_dim": 64,
                "projection_hidden": 64,
                "inputs": {
                    "mel": {"array": "mel", "steps": 16},
                    "landmarks": {"array": "landmarks_crop", "steps": 16, "backbone": "stgcn"},
                    "words": {
                        "array": "vectors",
                        "steps": 6,
                        "mode": "sequence",
                        "backbone": "transformer",
                        "standardize": False,
                    },
                },
                "tcn": {"bn_chan": 32, "hid_chan": 32, "n_blocks": 3, "n_repeats": 1},
                "stgcn": {"channels": 8, "spatial_channels": 4},
                "transformer": {"d_model": 32, "heads": 4, "layers": 2, "ff_dim": 64},
            },
            "pretrain": {
                "reduction": "mean",
                "optim": {"lr": 0.01, "max_epochs": 100, "patience": 30},
            },
            "evaluate": {"methods": ["probe", "probe_untrained"], "probe": {"hidden": hidden}},
        }
    )


def main() -> None:
    result: dict = {
        "benchmark": "probe",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": 1,
            "python": platform.python_version(),
        },
        "corpus": {
            "modalities": MODALITIES,
            "classes": SPEC.n_classes,
            "speakers": SPEC.n_speakers,
            "clips": SPEC.n_classes * SPEC.n_speakers * SPEC.clips_per_class_speaker,
            "private_to_shared": SPEC.private,
            "folds": SCHEME.n_folds,
        },
        "chance": 1.0 / SPEC.n_classes,
        "probes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic_corpus(root, SPEC, MODALITIES, [SCHEME])
        t0 = time.perf_counter()
        run_pretrain(params(root, 512), root)
        result["pretrain_seconds"] = round(time.perf_counter() - t0, 1)
        rep = root / "data/reports" / SPEC.corpus
        result["pretrain"] = json.loads((rep / "pretrain.json").read_text())["mean"]
        for name, hidden in (("fc_relu_fc", 512), ("linear", 0)):
            run_evaluate(params(root, hidden), root)
            doc = json.loads((rep / "evaluate.json").read_text())
            result["probes"][name] = {
                method: {
                    "accuracy_mean": round(m["mean"]["accuracy"], 4),
                    "accuracy_std": round(m["std"]["accuracy"], 4),
                    "folds": [round(f["accuracy"], 4) for f in m["folds"].values()],
                }
                for method, m in doc["methods"].items()
            }
            print(name, json.dumps(result["probes"][name]))
    out = REPO / "bench/results/probe.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
