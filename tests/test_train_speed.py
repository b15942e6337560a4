"""The trainer's speed work: fp32 unchanged, precision switches scoped and recorded, loaders
with workers everywhere, packed batches, the shared decoded cache, no host syncs a step."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate
from training_helpers import synthetic_project, tiny_params

from pipeline.models.common import sync_free_paths
from pipeline.models.factory import build_encoder
from pipeline.models.qian_han import AttentionLSTM, SpecCNN
from pipeline.paths import Layout
from pipeline.training import clipcache
from pipeline.training.batches import collate_packed
from pipeline.training.clipcache import CacheSpaceError, ClipCache
from pipeline.training.config import auto_workers
from pipeline.training.data import CorpusData
from pipeline.training.dataset import WindowDataset, fit_standardizer
from pipeline.training.distributed import DistContext, distributed
from pipeline.training.hostsync import HostSyncs
from pipeline.training.loops.common import EpochSampler, cat_views, split_views, to_device
from pipeline.training.loops.fit import (
    epoch_seed,
    fit,
    make_optimizer,
    seed_torch,
    train_step,
)
from pipeline.training.loops.pretrain import PretrainTask, contrastive_loss
from pipeline.training.precision import Precision, precision_scope, resolve_precision, tf32_state
from pipeline.training.workflow import run_evaluate, run_pretrain

ALL = ("mel", "spectrogram", "faces", "landmarks", "words")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return synthetic_project(tmp_path_factory.mktemp("speed"), ALL)


def _data(root: Path, modalities=("mel", "landmarks"), **train) -> tuple[CorpusData, object]:
    params = tiny_params(root, modalities, train=train)
    tc = params.section("train")
    return CorpusData(Layout("synth", root=root), tc), params


# -- fp32: today's arithmetic, bit for bit ---------------------------------------------------
def test_fp32_training_is_the_plain_loop_bit_for_bit(project):
    """fit() with two workers, packed batches, the shared decoded cache and the loss summed
    on the device gives exactly the weights and losses of the plain loop it replaced: no
    workers, default collation, rows read from the shards, loss.item() every step."""
    runs = {}
    for name, train in (
        ("trainer", {"num_workers": 2, "cache_clips": True}),
        ("plain", {"num_workers": 0, "cache_clips": False}),
    ):
        data, params = _data(project, **train)
        tc, pc = params.section("train"), params.section("pretrain")
        fold = data.folds()[0]
        ds = data.dataset(fold.train, tc.modalities, views=2, random_windows=True)
        no_val = data.dataset([], tc.modalities, views=2, random_windows=True)
        torch.manual_seed(tc.seed)
        enc = build_encoder(
            tc.modalities, ds.input_shapes(), tc, fit_standardizer(ds, tc.modalities)
        )
        task = PretrainTask(enc, ds, no_val, tc, pc, DistContext())
        optim = pc.optim
        if name == "trainer":
            history = [r["train_loss"] for r in fit(task, optim, seed=3).history]
        else:
            history = _plain_loop(task.model, ds, pc, optim, seed=3)
        runs[name] = (task.model.state_dict(), history)
    (weights, losses), (ref_weights, ref_losses) = runs["trainer"], runs["plain"]
    assert losses == ref_losses  # the same float, not approximately
    for key, value in ref_weights.items():
        assert torch.equal(weights[key], value), key


def _plain_loop(model, ds, pc, optim, seed: int) -> list[float]:
    """The training loop as it was: per step loss.item(), summed in Python."""
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], optim)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, optim.step_epochs, optim.gamma)
    sampler = EpochSampler(len(ds), DistContext(), True, ds.seed)
    loader = DataLoader(ds, batch_size=optim.batch_size, sampler=sampler)
    history = []
    for epoch in range(optim.max_epochs):
        seed_torch(epoch_seed(seed, epoch))
        sampler.set_epoch(epoch)
        model.train()
        losses = []
        for batch in loader:
            views = [to_device(v, torch.device("cpu")) for v in batch["views"]]
            _, proj = model(cat_views(views))
            proj = {m: split_views(p, len(views)) for m, p in proj.items()}
            loss = contrastive_loss(proj, batch["target"], pc)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
        history.append(sum(losses) / len(losses))
    return history


# -- precision --------------------------------------------------------------------------------
def test_precision_resolves_per_device_and_refuses_what_cannot_run():
    assert resolve_precision("auto", "cpu").name == "fp32"
    assert resolve_precision("tf32", "cpu").name == "fp32"  # a CPU has no TF32
    bf16 = resolve_precision("bf16", "cpu")
    assert bf16.autocast_dtype == torch.bfloat16 and not bf16.tf32
    assert bf16.describe()["autocast"] == "bfloat16" and bf16.describe()["requested"] == "bf16"
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="allowed: auto, fp32"):
        resolve_precision("half", "cpu")
    assert not Precision("fp16", "cpu").grad_scaler().is_enabled()
    cuda = Precision("bf16", "cuda", "auto")
    assert cuda.tf32 and cuda.cudnn_benchmark and cuda.channels_last
    assert not Precision("fp32", "cuda").tf32  # exact fp32 on a GPU


def test_extraction_leaves_the_switches_and_training_sets_its_own(tmp_path):
    """In-process extraction runs its networks in exact fp32 and restores the switches; the
    training that follows in the same process runs with what train.precision says."""
    from pipeline.features import ClipSource, make_extractor
    from pipeline.media.synthetic import encode_video, talking_head_frames

    clip = tmp_path / "face.mp4"
    encode_video(clip, talking_head_frames(3, 320, 240, 30.0), fps=30)
    seen: list[tuple[bool, bool, bool]] = []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda m, a: seen.append(tf32_state())
    )
    before = tf32_state()
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        faces = make_extractor("faces", {"device": "cpu"})
        faces.extract(ClipSource(clip_id="face", path=clip))
        assert seen and all(s[:2] == (False, False) for s in seen)  # exact fp32 inside
        assert tf32_state()[:2] == (True, True)  # and given back
        seen.clear()
        with distributed("cpu", 0, "fp32") as ctx:  # what a training stage enters
            assert ctx.precision.name == "fp32"
            torch.nn.Linear(2, 2)(torch.zeros(1, 2))
        assert seen == [(False, False, False)]  # fp32: TF32 off, whatever was left on
        assert tf32_state()[:2] == (True, True)
        with precision_scope(Precision("bf16", "cuda", "auto")):  # a GPU run's switches
            assert tf32_state() == (True, True, True)
        with precision_scope(Precision("fp32", "cuda")):
            assert tf32_state() == (False, False, True)
        assert tf32_state()[:2] == (True, True)
    finally:
        hook.remove()
        (
            torch.backends.cudnn.allow_tf32,
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.benchmark,
        ) = before


def test_precision_is_recorded_with_models_and_reports(tmp_path):
    root = synthetic_project(tmp_path, ("mel", "landmarks"))
    params = tiny_params(
        root,
        train={"precision": "bf16", "folds": [0]},
        evaluate={"methods": ["probe", "late_fusion"]},
    )
    assert run_pretrain(params, root) == 0
    assert run_evaluate(params, root) == 0
    rep = root / "data/reports/synth"
    for doc in (json.loads((rep / n).read_text()) for n in ("pretrain.json", "evaluate.json")):
        assert doc["precision"]["precision"] == "bf16"
        assert doc["precision"]["autocast"] == "bfloat16"
    payload = torch.load(
        root / "data/models/synth/pretrain/actor_kfold/fold-0.pt", weights_only=True
    )
    assert payload["precision"]["precision"] == "bf16" and payload["train"]["precision"] == "bf16"


# -- loaders ----------------------------------------------------------------------------------
def test_auto_workers_follow_the_cores_and_the_ranks(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert auto_workers() == 15
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert auto_workers() == 16  # capped
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert auto_workers() == 3  # 16 cores for 4 ranks: 4 each, one for the rank
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert auto_workers() == 0


def test_num_workers_takes_auto_and_refuses_other_words(tmp_path):
    from pipeline.config import ConfigError

    params = tiny_params(tmp_path, train={"num_workers": "auto"})
    assert params.section("train").loader_workers() == auto_workers()
    with pytest.raises(ConfigError, match="num_workers"):
        tiny_params(tmp_path, train={"num_workers": "many"})


def test_every_loader_reads_in_the_configured_workers(tmp_path, monkeypatch):
    """Training, validation, prediction, probe features and retrieval: with
    train.num_workers 1 no window is cut in the training process."""
    root = synthetic_project(tmp_path / "p", ("mel", "spectrogram", "landmarks"))
    log = tmp_path / "pids"
    log.mkdir()
    original = WindowDataset.__getitem__

    def logged(self, key):
        with open(log / str(os.getpid()), "a") as f:
            f.write("x")
        return original(self, key)

    monkeypatch.setattr(WindowDataset, "__getitem__", logged)
    methods = ["probe", "probe_untrained", "unimodal", "late_fusion", "attention", "qian_han"]
    params = tiny_params(
        root,
        train={"num_workers": 1, "folds": [0], "checkpoint_seconds": 3600},
        pretrain={"optim": {"max_epochs": 1}},
        evaluate={"methods": methods},
    )
    assert run_pretrain(params, root) == 0
    assert run_evaluate(params, root) == 0
    readers = {int(p.name) for p in log.iterdir()}
    assert os.getpid() not in readers
    assert len(readers) >= 10  # a worker per loader


def test_packed_batches_are_what_default_collate_makes(project):
    data, params = _data(project, modalities=ALL)
    ds = data.dataset(data.folds()[0].train, ALL, views=2, random_windows=True)
    items = [ds[(1, i)] for i in range(3)]
    packed = collate_packed(items)
    assert packed.buffer.dim() == 1 and packed.buffer.dtype == torch.uint8
    _assert_same(packed.unpack(), default_collate(items))


def _assert_same(a, b) -> None:
    if isinstance(b, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(b, dict):
        assert a.keys() == b.keys()
        for k in b:
            _assert_same(a[k], b[k])
    elif isinstance(b, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b


# -- the shared decoded cache -----------------------------------------------------------------
def test_shared_cache_holds_the_shards_arrays_and_gives_the_same_windows(project, tmp_path):
    mods = ("mel", "faces", "landmarks", "words")
    data, params = _data(project, modalities=mods)
    clips = data.folds()[0].train
    plain = data.dataset(clips, mods, views=2, random_windows=True)
    cached = WindowDataset(
        plain.feature_dirs,
        plain.inputs,
        plain.clip_ids,
        plain.targets,
        plain.durations,
        window_seconds=plain.window_seconds,
        views=2,
        random_windows=True,
        cache=tmp_path,
    )
    for i in range(len(plain)):
        _assert_same(cached[(2, i)], plain[(2, i)])
    files = sorted(p.name for p in tmp_path.glob("*.bin"))
    assert len(files) == len(mods) and any(f.startswith("faces-crops-") for f in files)
    cache = ClipCache(plain.feature_dirs["landmarks"], "landmarks_crop", tmp_path)
    shard = next((plain.feature_dirs["landmarks"]).glob("shard-*.h5"))
    with h5py.File(shard) as f:
        for cid in plain.clip_ids:
            stored = f["clips"][cid]["landmarks_crop"]
            assert np.array_equal(cache.clip(cid), stored[()].astype(np.float32))
            index = json.loads(cache.index_path.read_text())
            assert index["clips"][cid]["sha256"] == stored.attrs["sha256"]
    # a worker gets the cache without its memory map (each process maps the file itself)
    assert len(pickle.dumps(cache)) < 20_000 and cache._map is not None


def test_shared_cache_is_built_once_and_follows_the_extraction(project, tmp_path, monkeypatch):
    feature_dir = project / "data/features/synth/mel"
    builds = []
    original = ClipCache._build
    monkeypatch.setattr(ClipCache, "_build", lambda self: (builds.append(1), original(self)))
    caches = [ClipCache(feature_dir, "mel", tmp_path) for _ in range(3)]
    threads = [threading.Thread(target=c.ensure) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1  # the others waited on the lock and found it built
    first = caches[0].bin_path
    # a re-extraction changes the index: the next run decodes anew, the old file goes
    copy = tmp_path / "mel-copy" / "mel"
    copy.parent.mkdir()
    shutil.copytree(feature_dir, copy)
    index = json.loads((copy / "index.json").read_text())
    index["params"] = {**index.get("params", {}), "re_extracted": True}
    (copy / "index.json").write_text(json.dumps(index))
    newer = ClipCache(copy, "mel", tmp_path).ensure()
    assert newer.bin_path != first and len(builds) == 2
    assert first.exists()  # another directory's cache stays
    index["params"]["re_extracted"] = 2  # the same directory extracted once more
    (copy / "index.json").write_text(json.dumps(index))
    newest = ClipCache(copy, "mel", tmp_path).ensure()
    assert not newer.bin_path.exists() and newest.bin_path.exists() and first.exists()


def test_an_interrupted_cache_build_leaves_nothing_that_looks_finished(project, tmp_path):
    feature_dir = tmp_path / "words"
    shutil.copytree(project / "data/features/synth/words", feature_dir)
    index = json.loads((feature_dir / "index.json").read_text())
    last = list(index["clips"])[-1]
    with h5py.File(feature_dir / index["clips"][last], "a") as f:
        del f["clips"][last]["vectors"]
    cache = ClipCache(feature_dir, "vectors", tmp_path / "cache")
    with pytest.raises(Exception, match=last):
        cache.ensure()
    assert not list((tmp_path / "cache").glob("*.json"))  # no index: nothing to read


def test_cache_that_does_not_fit_names_the_size_and_the_way_out(project, tmp_path, monkeypatch):
    full = shutil._ntuple_diskusage(total=10**9, used=10**9 - 5000, free=5000)
    monkeypatch.setattr(clipcache.shutil, "disk_usage", lambda p: full)
    cache = ClipCache(project / "data/features/synth/faces", "crops", tmp_path)
    with pytest.raises(CacheSpaceError, match="train.cache_clips: false"):
        cache.ensure()


# -- no host syncs in a training step ---------------------------------------------------------
def test_sync_free_backbone_paths_compute_what_the_cpu_paths_compute():
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    cnn = SpecCNN(32, 32)
    x = torch.randn(3, 4, 32, 32, requires_grad=True)
    a, b = cnn.valid_segments(x, mask), cnn.all_segments(x, mask)
    assert torch.allclose(a, b, atol=1e-6)
    ga = torch.autograd.grad(a.sum(), cnn.convs[0].weight)[0]
    gb = torch.autograd.grad(b.sum(), cnn.convs[0].weight)[0]
    assert torch.allclose(ga, gb, atol=1e-5)
    lstm = AttentionLSTM(6)
    seq = torch.randn(3, 4, 6, requires_grad=True)
    a, b = lstm.packed(seq, mask), lstm.padded(seq, mask)
    assert torch.allclose(a, b, atol=1e-6)
    ga = torch.autograd.grad(a.sum(), lstm.lstm.weight_hh_l0)[0]
    gb = torch.autograd.grad(b.sum(), lstm.lstm.weight_hh_l0)[0]
    assert torch.allclose(ga, gb, atol=1e-5)


def test_a_training_step_reads_nothing_on_the_host(project):
    """Every method's step with the backbones' CUDA paths: no .item(), no boolean selection,
    no lengths on the host (HostSyncs records the operators behind them)."""
    from pipeline.training.evaluate import Evaluator

    data, params = _data(project, modalities=("mel", "landmarks", "words"))
    tc, pc, ec = (params.section(s) for s in ("train", "pretrain", "evaluate"))
    ec = replace(ec, qian_han=replace(ec.qian_han, audio="spectrogram", text="words"))
    fold = data.folds()[0]
    ds = data.dataset(fold.train, tc.modalities, views=2, random_windows=True)
    torch.manual_seed(0)
    enc = build_encoder(tc.modalities, ds.input_shapes(), tc, fit_standardizer(ds, tc.modalities))
    tasks = [PretrainTask(enc, ds, ds, tc, pc, DistContext())]
    ev = Evaluator(data, tc, ec, DistContext(), project / "models", project / "ckpt")
    tasks += [ev.supervised_task("late_fusion", tc.modalities, fold)[0]]
    tasks += [ev.supervised_task("qian_han", ("spectrogram", "words"), fold)[0]]
    for task in tasks:
        optimizer = make_optimizer(task.model.parameters(), pc.optim)
        scaler = task.precision.grad_scaler()
        batch = next(iter(task.batches(0)))
        with sync_free_paths(), HostSyncs() as syncs:
            for _ in range(2):
                train_step(task, batch, optimizer, scaler)
        assert syncs.events == [], type(task).__name__
    # the check sees the reads the CPU paths make (the segments' selection in SpecCNN)
    with HostSyncs() as syncs:
        SpecCNN(32, 32)(torch.randn(2, 3, 32, 32), torch.tensor([[1, 0, 0], [1, 1, 0]]).bool())
    assert any(op == "_local_scalar_dense" and "qian_han.py" in at for op, at in syncs.events)
