"""torch.distributed on CPU: two gloo processes train as one process with the global batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from training_helpers import pretrain_task, synthetic_project, tiny_params

from pipeline.models.factory import build_encoder
from pipeline.paths import Layout
from pipeline.training.data import CorpusData
from pipeline.training.dataset import fit_standardizer
from pipeline.training.distributed import DistContext, distributed
from pipeline.training.loops.fit import fit

MODALITIES = ("mel", "spectrogram")  # no batch norm: per-rank batches give the same result
OVERRIDES = {"pretrain": {"optim": {"batch_size": 8, "max_epochs": 2}}}


def _train(root: Path, ctx: DistContext) -> dict[str, torch.Tensor]:
    task, optim = pretrain_task(root, MODALITIES, ctx, **OVERRIDES)
    fit(task, optim, tiny_params(root, MODALITIES, **OVERRIDES).section("train").seed)
    return {k: v.detach().clone() for k, v in task.model.state_dict().items()}


def _worker(rank: int, root: str, port: int) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE="2",
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    with distributed("cpu") as ctx:
        assert ctx.world_size == 2 and torch.distributed.get_backend() == "gloo"
        state = _train(Path(root), ctx)
    torch.save(state, Path(root) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_stay_in_sync_and_match_one_process(tmp_path):
    root = synthetic_project(tmp_path, MODALITIES)
    mp.spawn(_worker, args=(str(root), _free_port()), nprocs=2, join=True)
    ranks = [torch.load(root / f"rank{r}.pt", weights_only=True) for r in range(2)]
    single = _train(root, DistContext())
    for name, value in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # gradients were averaged
        # each rank saw half of every batch; the loss gathered the other half's projections
        assert torch.allclose(ranks[0][name], value, atol=1e-5), name
    initial = _initial(root)
    assert any(not torch.equal(v, single[k]) for k, v in initial.items())  # it did train


def _initial(root: Path) -> dict[str, torch.Tensor]:
    params = tiny_params(root, MODALITIES, **OVERRIDES)
    tc = params.section("train")
    data = CorpusData(Layout("synth", root=root), tc)
    train = data.dataset(data.folds()[0].train, tc.modalities, views=2, random_windows=True)
    torch.manual_seed(tc.seed)
    enc = build_encoder(
        tc.modalities, train.input_shapes(), tc, fit_standardizer(train, MODALITIES)
    )
    return enc.state_dict()
