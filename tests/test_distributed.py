"""torch.distributed on CPU: two gloo processes train as one process with the global batch,
take rank 0's decisions, draw their own dropout and count each validation clip once."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from training_helpers import pretrain_task, synthetic_project, tiny_params

from pipeline.models.factory import build_encoder
from pipeline.paths import Layout
from pipeline.training.config import OptimConfig
from pipeline.training.data import CorpusData
from pipeline.training.dataset import fit_standardizer
from pipeline.training.distributed import DistContext, distributed, rank_seed
from pipeline.training.loops.fit import epoch_seed, fit
from pipeline.training.loops.pretrain import validation_batches

MODALITIES = ("mel", "spectrogram")  # no batch norm: per-rank batches give the same result
OVERRIDES = {"pretrain": {"optim": {"batch_size": 8, "max_epochs": 2}}}


def _train(root: Path, ctx: DistContext) -> dict[str, torch.Tensor]:
    task, optim = pretrain_task(root, MODALITIES, ctx, **OVERRIDES)
    result = fit(task, optim, tiny_params(root, MODALITIES, **OVERRIDES).section("train").seed)
    state = {k: v.detach().clone() for k, v in task.model.state_dict().items()}
    for row in result.history:  # the curve, as tensors (torch.load weights_only)
        for k in ("train_loss", "val_loss"):
            state[f"history/{row['epoch']}/{k}"] = torch.tensor(row[k], dtype=torch.float64)
    return state


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
    assert "history/1/val_loss" in single
    for name, value in single.items():
        if name.startswith("history/"):
            # the validation clips, each once, in the same batches as one process; the
            # training loss is the mean over both ranks' batches
            assert torch.allclose(ranks[0][name], value, atol=1e-5), name
            assert torch.equal(ranks[0][name], ranks[1][name]), name  # rank 0's values
            continue
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # gradients were averaged
        # each rank saw half of every batch; the loss gathered the other half's projections
        assert torch.allclose(ranks[0][name], value, atol=1e-5), name
    initial = _initial(root)
    assert any(not torch.equal(v, single[k]) for k, v in initial.items())  # it did train


class _DivergingTask:
    """Rank 1's validation loss rises, rank 0's falls: on its own, rank 1 would stop after
    ``patience`` epochs while rank 0 trains on. Each training step draws from torch's global
    generator, as dropout does."""

    def __init__(self, rank: int) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Linear(2, 1)
        self.rank = rank
        self.draws: list[torch.Tensor] = []

    def batches(self, epoch: int):
        return [epoch]

    def loss(self, batch):
        self.draws.append(torch.rand(4))
        return self.model(torch.ones(1, 2)).sum() * 0.0

    def validate(self):
        epoch = len(self.draws)
        return {"loss": float(epoch if self.rank else -epoch), "score": 0.0}


def _diverging_worker(rank: int, out: str, port: int) -> None:
    from datetime import timedelta

    import torch.distributed as dist

    # a short timeout: ranks that fall out of step fail the test instead of hanging it
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=timedelta(seconds=60),
    )
    try:
        task = _DivergingTask(rank)
        result = fit(task, OptimConfig(max_epochs=6, patience=2, step_epochs=0), seed=3)
        torch.save(
            {
                "epochs": torch.tensor(result.epochs),
                "stopped": torch.tensor(result.stopped_early),
                "val": torch.tensor([r["val_loss"] for r in result.history]),
                "draws": torch.stack(task.draws),
            },
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_ranks_follow_rank_0s_early_stopping_and_draw_their_own_dropout(tmp_path):
    mp.spawn(_diverging_worker, args=(str(tmp_path), _free_port()), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    # rank 0 never stops early; rank 1 follows it instead of stopping at epoch 2 alone
    assert int(r0["epochs"]) == int(r1["epochs"]) == 6
    assert not bool(r0["stopped"]) and not bool(r1["stopped"])
    assert torch.equal(r0["val"], r1["val"])  # rank 0's validation values on both ranks
    assert torch.equal(r0["val"], -torch.arange(1.0, 7.0))
    # per-rank randomness: the ranks' dropout draws differ; rank 0 draws what one process does
    assert not torch.equal(r0["draws"], r1["draws"])
    single = _DivergingTask(0)
    fit(single, OptimConfig(max_epochs=6, patience=2, step_epochs=0), seed=3)
    assert torch.equal(r0["draws"], torch.stack(single.draws))


def test_rank_seeds_differ_and_rank_0_keeps_the_seed():
    seeds = {rank_seed(epoch_seed(11, 4), r) for r in range(8)}
    assert len(seeds) == 8
    assert rank_seed(epoch_seed(11, 4), 0) == epoch_seed(11, 4)


def test_validation_batches_cover_each_clip_once_for_any_world_size():
    one = validation_batches(23, 8, DistContext())
    for world in (1, 2, 3, 5):
        shares = [validation_batches(23, 8, DistContext(r, world)) for r in range(world)]
        batches = sorted(b for share in shares for b in share)
        assert batches == sorted(one)  # the same whole batches, none padded or repeated
        keys = [k for b in batches for k in b]
        assert sorted(i for _, i in keys) == list(range(23))


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
