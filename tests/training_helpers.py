"""Tiny trainer configurations and synthetic projects shared by the trainer tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pipeline.config import FoldScheme, Params, params_from_dict
from pipeline.training.synthetic import SyntheticSpec, write_synthetic_corpus

SCHEME = FoldScheme(name="actor_kfold", kind="group_kfold", n_folds=4, val_fraction=0.3)
FAST = {"lr": 0.01, "max_epochs": 3, "patience": 0, "batch_size": 8}


def tiny_spec(**kw: Any) -> SyntheticSpec:
    base = dict(n_classes=2, n_speakers=4, clips_per_class_speaker=3, seed=0)
    base.update(kw)
    return SyntheticSpec(**base)


def synthetic_project(
    root: Path, modalities: tuple[str, ...] = ("mel", "landmarks"), **spec: Any
) -> Path:
    write_synthetic_corpus(root, tiny_spec(**spec), modalities=modalities, schemes=[SCHEME])
    return root


def tiny_params(root: Path, modalities: tuple[str, ...] = ("mel", "landmarks"), **over) -> Params:
    """Small models and few epochs, so that a fold trains in about a second on a CPU."""
    raw: dict[str, Any] = {
        "corpus": {"name": "synth"},
        "train": {
            "modalities": list(modalities),
            "threads": 1,
            "cache_clips": True,
            "checkpoint_dir": str(root / "checkpoints"),
            "checkpoint_seconds": 0,
            "window": {"seconds": 1.0, "views": 2},
            "feature_dim": 16,
            "projection_hidden": 16,
            "inputs": {
                "mel": {"array": "mel", "steps": 8, "mode": "time", "backbone": "tcn"},
                "landmarks": {"array": "landmarks_crop", "steps": 6, "backbone": "stgcn"},
                "spectrogram": {
                    "array": "spectrogram",
                    "steps": 1,
                    "mode": "sequence",
                    "backbone": "spec_cnn",
                },
                "words": {
                    "array": "vectors",
                    "steps": 5,
                    "mode": "sequence",
                    "backbone": "transformer",
                    "standardize": False,
                },
            },
            "tcn": {"bn_chan": 8, "hid_chan": 8, "n_blocks": 2, "n_repeats": 1, "dropout": 0.0},
            "stgcn": {"channels": 4, "spatial_channels": 2, "dropout": 0.0},
            "transformer": {"d_model": 8, "heads": 2, "layers": 1, "ff_dim": 16, "dropout": 0.0},
            "lstm": {"hidden": 8, "layers": 1},
            "spec_cnn": {"channels": 2, "layers": 2},
        },
        "pretrain": {"reduction": "mean", "optim": dict(FAST)},
        "evaluate": {
            "methods": ["probe", "probe_untrained"],
            "probe": {"hidden": 8, "optim": dict(FAST)},
            "unimodal": dict(FAST),
            "late_fusion": dict(FAST),
            "attention": {"heads": 2, "optim": dict(FAST)},
            "qian_han": {
                "audio": "spectrogram",
                "text": "mel",
                "discriminator_hidden": 8,
                "optim": {**FAST, "name": "adam"},
            },
        },
    }
    for section, values in over.items():
        _merge(raw.setdefault(section, {}), values)
    return params_from_dict(raw)


def _merge(into: dict, values: dict) -> None:
    for k, v in values.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = copy.deepcopy(v)


def pretrain_task(root: Path, modalities: tuple[str, ...] = ("mel", "landmarks"), ctx=None,
                  **over):
    """A PretrainTask on fold 0 of the synthetic corpus at ``root`` (two views, seeded)."""
    import torch

    from pipeline.models.factory import build_encoder
    from pipeline.paths import Layout
    from pipeline.training.data import CorpusData
    from pipeline.training.dataset import fit_standardizer
    from pipeline.training.distributed import DistContext
    from pipeline.training.loops.pretrain import PretrainTask

    params = tiny_params(root, modalities, **over)
    tc, pc = params.section("train"), params.section("pretrain")
    data = CorpusData(Layout("synth", root=root), tc)
    fold = data.folds()[0]
    train = data.dataset(fold.train, tc.modalities, views=2, random_windows=True)
    val = data.dataset(fold.val, tc.modalities, views=2, random_windows=True, seed=1)
    torch.manual_seed(tc.seed)
    enc = build_encoder(
        tc.modalities, train.input_shapes(), tc, fit_standardizer(train, tc.modalities)
    )
    return PretrainTask(enc, train, val, tc, pc, ctx or DistContext()), pc.optim


def mosei_project(
    tmp: Path,
    sample_clip: Path,
    shape: Any,
    corpus_name: str = "synth",
    modalities: tuple[str, ...] = ("mel", "spectrogram"),
) -> Path:
    """A project whose clips.csv is what ingest writes from the MOSEI adapter on MOSEI-shaped
    .csd files (a sample mp4 stands in for each video), with synthetic feature shards."""
    import shutil

    from pipeline.corpora import get_adapter
    from pipeline.corpora.mosei_shaped import dominant_class, write_mosei_shaped
    from pipeline.folds import fold_manifest
    from pipeline.ingest import ingest
    from pipeline.manifest import dump_json, read_manifest, write_manifest
    from pipeline.paths import Layout
    from pipeline.training.synthetic import write_synthetic_features

    corpus, root = tmp / "CMU_MOSEI", tmp / "proj"
    counts = write_mosei_shaped(corpus, shape)
    assert counts["no_emotion"] > 0
    adapter = get_adapter("mosei", corpus)
    for vid in {c.clip_id.rsplit("_", 1)[0] for c in adapter.clips()}:
        video = corpus / adapter.video_path(vid, 0)
        video.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(sample_clip, video)
    result = ingest(adapter)
    assert not result.failures
    lay = Layout(corpus_name, root=root)
    write_manifest(lay.clips_csv, result.entries)
    entries = read_manifest(lay.clips_csv)
    write_synthetic_features(
        root,
        entries,
        [dominant_class(e.scores) for e in entries],
        SyntheticSpec(corpus=corpus_name, n_classes=7, spec_size=16, face_size=16),
        modalities,
    )
    scheme = FoldScheme("sdk_standard", "predefined", split_by="split")
    dump_json(lay.folds_dir / "sdk_standard.json", fold_manifest(entries, scheme, 0))
    return root
