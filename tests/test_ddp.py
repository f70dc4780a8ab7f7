"""Samplers and losses under real torch.distributed: two CPU processes with the gloo backend."""

from __future__ import annotations

import gc
import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import longtail as lt

WORLD = 2
TARGETS = [0] * 40 + [1] * 12 + [2] * 5 + [3] * 2  # long-tailed, 59 examples (odd: needs padding)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), lt.NormedLinear(8, 4))


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(16, 6, generator=g), torch.randint(0, 4, (16,), generator=g)


def _worker(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        cb = lt.ClassBalancedSampler(TARGETS, seed=3)  # replicas and rank from torch.distributed
        cb.set_epoch(2)
        drs = lt.DeferredResampler(TARGETS, start_epoch=1, seed=5)
        drs.set_epoch(1)
        # one DDP step of an LDAM-DRW model on this rank's half of a global batch
        model = torch.nn.parallel.DistributedDataParallel(_model())
        crit = lt.create_loss("ldam", class_counts=[40, 12, 5, 2])
        crit.set_weight(lt.DeferredReweighting([40, 12, 5, 2], start_epoch=0).weights(0))
        x, y = _batch()
        half = slice(rank * 8, (rank + 1) * 8)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        crit(model(x[half]), y[half]).backward()
        opt.step()
        params = [p.detach().flatten().tolist() for p in model.module.parameters()]
        result = {"cb": list(cb), "cb_len": len(cb), "drs": list(drs), "params": params}
        with open(f"{out}.{rank}", "w") as f:
            json.dump(result, f)
        # a DDP Reducer alive at group destruction or interpreter exit aborts the process now
        # and then (seen with OMP_NUM_THREADS=1 in about 1 run of 5): free it first
        del model
        gc.collect()
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_samplers_and_a_loss_step_under_two_gloo_processes(tmp_path):
    store, out = str(tmp_path / "store"), str(tmp_path / "out")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.start_processes(_worker, args=(store, out), nprocs=WORLD, start_method="spawn")
    ranks = [json.loads((tmp_path / f"out.{r}").read_text()) for r in range(WORLD)]

    single = lt.ClassBalancedSampler(TARGETS, seed=3, num_replicas=1, rank=0)
    single.set_epoch(2)
    seq = single.global_indices().tolist()
    padded = seq + seq[: (-len(seq)) % WORLD]
    assert ranks[0]["cb_len"] == ranks[1]["cb_len"] == len(padded) // WORLD
    assert ranks[0]["cb"] == padded[0::WORLD] and ranks[1]["cb"] == padded[1::WORLD]
    drs = lt.DeferredResampler(TARGETS, start_epoch=1, seed=5, num_replicas=WORLD, rank=1)
    drs.set_epoch(1)
    assert ranks[1]["drs"] == list(drs)

    # the same step in one process on the whole global batch gives the same parameters
    model = _model()
    crit = lt.create_loss("ldam", class_counts=[40, 12, 5, 2])
    crit.set_weight(lt.DeferredReweighting([40, 12, 5, 2], start_epoch=0).weights(0))
    x, y = _batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    # DDP averages the ranks' gradients: the mean of the two halves' weighted means
    halves = [crit(model(x[i * 8 : (i + 1) * 8]), y[i * 8 : (i + 1) * 8]) for i in range(WORLD)]
    (sum(halves) / WORLD).backward()
    opt.step()
    want = [p.detach().flatten().tolist() for p in model.parameters()]
    for r in range(WORLD):
        for got_p, want_p in zip(ranks[r]["params"], want, strict=True):
            torch.testing.assert_close(torch.tensor(got_p), torch.tensor(want_p))
