"""longtail.integrations.lightning under a real Lightning Trainer (CPU).

The DRW callback is checked against the effective-number weights computed here from the counts;
the sharding against two real DDP processes (gloo), launched as two Python processes with
Lightning's environment variables, as torchrun would: each records the indices it trained on.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

pl = pytest.importorskip("lightning.pytorch")

import longtail as lt  # noqa: E402
from longtail.integrations.lightning import (  # noqa: E402
    DeferredReweightingCallback,
    SamplerShardingCheck,
    sharding_kwargs,
    sharding_problems,
    warn_late_resampling,
)

COUNTS = [400, 130, 50, 21]  # 601 examples: odd, so two processes need one padded draw
N, C = sum(COUNTS), len(COUNTS)
Y = torch.cat([torch.full((n,), c) for c, n in enumerate(COUNTS)])
BETA = 0.999  # far enough from 1 that "effective" differs from "inverse" here
SEED = 7


def effective_weights(counts, beta):
    """(1 - β) / (1 - β^n), rescaled to sum to C: Cui et al. (CVPR 2019), written out again."""
    raw = [(1.0 - beta) / (1.0 - beta**n) for n in counts]
    return [w * len(counts) / sum(raw) for w in raw]


class Indexed(Dataset):
    """(x, y, index): the training step records which examples it saw."""

    def __init__(self) -> None:
        self.x = torch.randn(N, 4, generator=torch.Generator().manual_seed(0))
        self.targets = Y

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int):
        return self.x[i], self.targets[i], i


class Net(pl.LightningModule):
    """A linear classifier; ``sampler(trainer)`` builds the training sampler (None: shuffle)."""

    def __init__(self, loss: nn.Module | None = None, attribute: str = "criterion", sampler=None):
        super().__init__()
        self.layer = nn.Linear(4, C)
        self.loss_name = attribute
        setattr(self, attribute, loss if loss is not None else lt.create_loss("ldam", COUNTS))
        self.make_sampler = sampler
        self.seen: dict[int, list[int]] = {}
        self.weights: dict[int, list[float]] = {}

    def training_step(self, batch, batch_idx):
        x, y, idx = batch
        loss_fn = getattr(self, self.loss_name)
        self.seen.setdefault(self.current_epoch, []).extend(idx.tolist())
        if batch_idx == 0 and loss_fn.weight is not None:
            self.weights[self.current_epoch] = loss_fn.weight.detach().cpu().tolist()
            assert loss_fn.weight.device == x.device
        return loss_fn(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        if self.make_sampler is None:
            return DataLoader(Indexed(), batch_size=64, shuffle=True)
        return DataLoader(Indexed(), batch_size=64, sampler=self.make_sampler(self.trainer))


def trainer(**kwargs) -> pl.Trainer:
    kwargs = {"accelerator": "cpu", "devices": 1, "max_epochs": 2, **kwargs}
    return pl.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


# ---- deferred re-weighting --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("loss", "attribute"),
    [(None, "criterion"), (nn.CrossEntropyLoss(), "loss_fn"), (nn.CrossEntropyLoss(), "my_loss")],
    ids=["ldam-criterion", "torch-ce-loss_fn", "torch-ce-named"],
)
def test_callback_sets_the_drw_weights_of_each_epoch(loss, attribute):
    model = Net(loss=loss, attribute=attribute)
    named = {"attribute": attribute} if attribute == "my_loss" else {}
    drw = DeferredReweightingCallback(COUNTS, start_epoch=2, beta=BETA, **named)
    trainer(max_epochs=4, limit_train_batches=2, callbacks=[drw]).fit(model)
    balanced = effective_weights(COUNTS, BETA)
    assert sorted(model.weights) == [0, 1, 2, 3]
    for epoch in (0, 1):
        assert model.weights[epoch] == [1.0] * C
    for epoch in (2, 3):
        assert model.weights[epoch] == pytest.approx(balanced, rel=1e-6)
    assert balanced[-1] > 10 * balanced[0]  # the weights did change, and by a lot


def test_a_resumed_run_loads_and_keeps_the_weights(tmp_path):
    """A torch loss built without weights loads a checkpoint that holds them; epoch 2 is DRW."""
    ckpt = tmp_path / "last.ckpt"
    first = Net(loss=nn.CrossEntropyLoss())
    schedule = lt.DeferredReweighting(COUNTS, start_epoch=2, beta=BETA)  # given ready-made
    t = trainer(
        max_epochs=2, limit_train_batches=1, callbacks=[DeferredReweightingCallback(schedule)]
    )
    t.fit(first)
    t.save_checkpoint(ckpt)
    again = Net(loss=nn.CrossEntropyLoss())
    drw = DeferredReweightingCallback(COUNTS, start_epoch=2, beta=BETA)
    trainer(max_epochs=3, limit_train_batches=1, callbacks=[drw]).fit(again, ckpt_path=ckpt)
    assert sorted(again.weights) == [2]
    assert again.weights[2] == pytest.approx(effective_weights(COUNTS, BETA), rel=1e-6)


def test_callback_errors_name_the_problem():
    with pytest.raises(ValueError) as err:
        DeferredReweightingCallback(COUNTS, start_epoch=0, attribute="critrion").apply(Net(), 0)
    assert str(err.value) == (
        "Expected `attribute` to be the name of the loss attribute of Net, but got 'critrion', "
        "which Net does not have. Did you mean 'criterion'?"
    )
    with pytest.raises(ValueError) as err:
        DeferredReweightingCallback(COUNTS).apply(Net(attribute="other"), 0)
    assert str(err.value) == (
        "Expected the LightningModule to hold its loss as `criterion` or `loss_fn`, but got a "
        "Net with neither (its submodules with a `weight`: `layer`, `other`). Name the loss "
        "attribute with DeferredReweightingCallback(..., attribute=NAME)."
    )
    with pytest.raises(ValueError, match="`start_epoch` to be unset"):
        DeferredReweightingCallback(lt.DeferredReweighting(COUNTS), start_epoch=3)
    with pytest.raises(ValueError) as err:
        DeferredReweightingCallback(COUNTS).apply(Net(loss=nn.MSELoss()), 0)
    assert str(err.value) == (
        "Expected the loss `criterion` to be a loss with per-class weights (a `set_weight` "
        "method or a `weight` buffer), but got a MSELoss."
    )


def test_a_drw_start_after_the_last_epoch_warns_at_fit_start():
    drw = DeferredReweightingCallback(COUNTS, start_epoch=50)
    with pytest.warns(UserWarning) as record:
        trainer(max_epochs=2, limit_train_batches=1, callbacks=[drw]).fit(Net())
    ours = [str(w.message) for w in record if "Deferred re-weighting" in str(w.message)]
    assert ours == [
        "Deferred re-weighting starts at epoch 50 (0-based), but training runs 2 epochs "
        "(Trainer(max_epochs=2)): the loss stays unweighted for the whole run. Lower "
        "start_epoch or raise max_epochs (a run resumed with more epochs does reach it)."
    ]
    with warnings.catch_warnings(record=True) as record:  # it starts in the last epoch
        warnings.simplefilter("always")
        drw = DeferredReweightingCallback(COUNTS, start_epoch=1)
        trainer(max_epochs=2, limit_train_batches=1, callbacks=[drw]).fit(Net())
    assert not [w for w in record if "Deferred re-weighting" in str(w.message)]


# ---- sharding, in one process --------------------------------------------------------------------
def test_sharding_kwargs_follow_use_distributed_sampler():
    assert sharding_kwargs(None) == {"num_replicas": 1, "rank": 0}
    ddp = {"accelerator": "cpu", "devices": 2, "strategy": "ddp"}
    assert sharding_kwargs(trainer(**ddp)) == {"num_replicas": 1, "rank": 0}
    mine = trainer(**ddp, use_distributed_sampler=False)
    assert sharding_kwargs(mine) == {"num_replicas": 2, "rank": 0}


def test_sharding_problems_see_a_double_split_and_a_missing_one():
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    def loader(sampler):
        return DataLoader(Indexed(), batch_size=8, sampler=sampler)

    def cb(**kw):
        return lt.ClassBalancedSampler(Y, seed=SEED, **kw)

    # what Lightning builds on rank 0 of 2 around a sampler that already keeps half the epoch
    twice = DistributedSamplerWrapper(cb(num_replicas=2, rank=0), num_replicas=2, rank=0)
    assert len(list(twice)) == 151  # the failure itself: a quarter of the epoch, not a half
    (problem,) = sharding_problems(loader(twice), world_size=2, rank=0)
    assert "151 examples per epoch instead of 301" in problem
    once = DistributedSamplerWrapper(cb(num_replicas=1, rank=0), num_replicas=2, rank=0)
    assert sharding_problems(loader(once), world_size=2, rank=0) == []
    (problem,) = sharding_problems(loader(cb(num_replicas=1, rank=0)), world_size=2, rank=1)
    assert "601 examples per epoch instead of its own 301" in problem
    assert sharding_problems(loader(cb(num_replicas=2, rank=1)), world_size=2, rank=1) == []
    assert sharding_problems(loader(None), world_size=2, rank=0) == []  # not longtail's: ignored


# ---- two DDP processes ---------------------------------------------------------------------------
def drs_sampler(**fixed):
    """A DRS sampler (uniform epoch 0, balanced from epoch 1), split as ``fixed`` or as told."""

    def make(trainer):
        kwargs = fixed if fixed else sharding_kwargs(trainer)
        return lt.DeferredResampler(Y, start_epoch=1, seed=SEED, **kwargs)

    return make


# name: (use_distributed_sampler, fixed sampler kwargs, callbacks)
SCENARIOS = {
    "lightning-splits": (True, {}, "drw"),
    "sampler-splits": (False, {}, "check"),
    "double-unchecked": (True, {"num_replicas": 2}, ""),  # rank from torch.distributed
    "double-checked": (True, {"num_replicas": 2}, "check"),
}


def _ddp_worker(out: str) -> None:
    """One of the two processes: run every scenario, write what this rank saw."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    rank = int(os.environ["LOCAL_RANK"])
    for name, (use_ds, fixed, callbacks) in SCENARIOS.items():
        if fixed:
            fixed = {**fixed, "rank": rank}
        cbs = {
            "drw": [DeferredReweightingCallback(COUNTS, start_epoch=1, beta=BETA)],
            "check": [SamplerShardingCheck()],
            "": [],
        }[callbacks]
        model = Net(sampler=drs_sampler(**fixed))
        t = trainer(strategy="ddp", devices=2, use_distributed_sampler=use_ds, callbacks=cbs)
        try:
            t.fit(model)
            result = {"seen": model.seen, "weights": model.weights}
        except ValueError as err:
            result = {"error": str(err)}
        Path(out, f"{name}.{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown with a process group and DDP reducers still alive


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_two(out: Path, timeout: float = 240.0) -> None:
    """Start the two ranks as torchrun would; kill both and fail if either hangs or fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PL_", "SLURM_"))}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE="2")
    env.update(NODE_RANK="0", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import test_integration_lightning as t; t._ddp_worker({str(out)!r})"
    )
    procs, logs = [], []
    for rank in range(2):
        logs.append(open(out / f"log.{rank}", "w"))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code],
                env={**env, "LOCAL_RANK": str(rank)},
                stdout=logs[-1],
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        hung = [p for p in procs if p.poll() is None]
        for p in hung:
            p.kill()
            p.wait()
        for f in logs:
            f.close()
    if hung or any(p.returncode != 0 for p in procs):
        tails = "\n".join((out / f"log.{r}").read_text()[-3000:] for r in range(2))
        pytest.fail(f"DDP ranks hung or failed (rc {[p.returncode for p in procs]}):\n{tails}")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_two_ddp_processes_see_their_full_share_of_every_epoch(tmp_path):
    _launch_two(tmp_path)

    def seen(name):
        ranks = [json.loads((tmp_path / f"{name}.{r}.json").read_text()) for r in range(2)]
        return [{int(e): v for e, v in r["seen"].items()} for r in ranks]

    share = math.ceil(N / 2)
    for name in ("lightning-splits", "sampler-splits"):
        ranks = seen(name)
        for epoch in (0, 1):
            drawn = lt.DeferredResampler(Y, start_epoch=1, seed=SEED, num_replicas=1, rank=0)
            drawn.set_epoch(epoch)
            drawn = drawn.global_indices().tolist()
            assert [len(r[epoch]) for r in ranks] == [share, share], name
            both = Counter(ranks[0][epoch] + ranks[1][epoch])
            assert not Counter(drawn) - both, name  # the union covers the whole drawn epoch
            assert sum((both - Counter(drawn)).values()) == 2 * share - N  # plus the padding
            if epoch == 0:  # DRS's uniform phase: a permutation, every example once
                assert set(both) == set(range(N))
            else:  # its balanced phase reached the sampler: class 3 is drawn ~ as often as 0
                y = Y[list(both.elements())]
                assert (y == 3).sum() > (y == 0).sum() / 3
        if name == "sampler-splits":  # the sampler's own split: rank r keeps padded[r::2]
            drawn = lt.DeferredResampler(Y, start_epoch=1, seed=SEED, num_replicas=2, rank=1)
            drawn.set_epoch(1)
            assert ranks[1][1] == list(drawn)
    # the callback under DDP: the same weights on both ranks
    for r in range(2):
        weights = json.loads((tmp_path / f"lightning-splits.{r}.json").read_text())["weights"]
        assert weights["0"] == [1.0] * C
        assert weights["1"] == pytest.approx(effective_weights(COUNTS, BETA), rel=1e-6)

    # the failure the check exists for: each rank sees a quarter of the epoch, not a half
    assert [len(r[e]) for r in seen("double-unchecked") for e in (0, 1)] == [151] * 4
    for r in range(2):
        err = json.loads((tmp_path / f"double-checked.{r}.json").read_text())["error"]
        assert (
            "`sampler` to be split exactly once across the 2 processes" in err
            and "151 examples per epoch instead of 301" in err
        )
        assert "sharding_kwargs" in err


# ---- the user guide ------------------------------------------------------------------------------
def test_the_guide_example_runs():
    """docs/lightning.md's example: once DRW starts, the LDAM loss holds its weights."""
    import re

    guide = Path(__file__).resolve().parents[1] / "docs" / "lightning.md"
    example = re.findall(r"```python\n(.*?)```", guide.read_text(), flags=re.S)[0]
    namespace: dict = {"__name__": "guide"}  # not "__main__": its own main() does not run
    exec(compile(example, str(guide), "exec"), namespace)
    counts = namespace["counts"].tolist()
    assert counts[0] == 600 and counts[-1] == 6
    model = namespace["main"]("drw", max_epochs=2, start_epoch=1)
    assert model.criterion.weight.tolist() == pytest.approx(effective_weights(counts, 0.9999))
    model = namespace["main"]("drs", max_epochs=1, start_epoch=0)  # the sampler's path too
    assert isinstance(model.trainer.train_dataloader.sampler, lt.DeferredResampler)


def test_the_guide_example_trains_rather_than_diverges():
    """Run as printed (8 epochs, DRW from 6), the example lowers its own loss on the training
    set. With a plain nn.Linear head under LDAM's scale 30 it rose from about 60 to 60,000."""
    import re

    guide = Path(__file__).resolve().parents[1] / "docs" / "lightning.md"
    example = re.findall(r"```python\n(.*?)```", guide.read_text(), flags=re.S)[0]
    namespace: dict = {"__name__": "guide"}
    exec(compile(example, str(guide), "exec"), namespace)
    x, y, counts = namespace["x"], namespace["y"], namespace["counts"].tolist()
    unweighted = lt.create_loss("ldam", class_counts=counts)

    def full_loss(model) -> float:
        with torch.no_grad():
            return float(unweighted(model.net(x), y))

    torch.manual_seed(0)
    before = full_loss(namespace["LongTailClassifier"]())
    after = full_loss(namespace["main"]("drw"))
    assert math.isfinite(after) and after < before


def test_a_drs_start_after_the_last_epoch_warns_at_train_start():
    def drs(start):
        return lambda t: lt.DeferredResampler(Y, start_epoch=start, **sharding_kwargs(t))

    with pytest.warns(UserWarning) as record:
        trainer(max_epochs=2, limit_train_batches=1, callbacks=[SamplerShardingCheck()]).fit(
            Net(sampler=drs(50))
        )
    ours = [str(w.message) for w in record if "Deferred re-sampling" in str(w.message)]
    assert ours == [
        "Deferred re-sampling starts at epoch 50 (0-based), but training runs 2 epochs "
        "(Trainer(max_epochs=2)): every epoch is drawn uniformly. Lower start_epoch or raise "
        "max_epochs."
    ]
    with warnings.catch_warnings(record=True) as record:  # it switches in the last epoch
        warnings.simplefilter("always")
        trainer(max_epochs=2, limit_train_batches=1, callbacks=[SamplerShardingCheck()]).fit(
            Net(sampler=drs(1))
        )
    assert not [w for w in record if "Deferred re-sampling" in str(w.message)]


# ---- boundaries a mutant audit found untested -------------------------------------------
def _module_with(loss):
    class M(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.criterion = loss

    return M()


def test_drw_starting_at_max_epochs_warns_it_never_happens():
    cb = DeferredReweightingCallback(COUNTS, start_epoch=2)
    with pytest.warns(UserWarning, match="stays unweighted"):
        cb.on_fit_start(SimpleNamespace(max_epochs=2), None)


def test_a_mid_epoch_resume_gets_the_resumed_epochs_weights():
    # Lightning skips the epoch-start hook when it resumes inside an epoch
    m = _module_with(nn.CrossEntropyLoss())
    cb = DeferredReweightingCallback(COUNTS, start_epoch=2, beta=BETA, check_sampler=False)
    cb.on_train_start(SimpleNamespace(current_epoch=3), m)
    want = effective_weights(COUNTS, BETA)
    assert m.criterion.weight.tolist() == pytest.approx(want, rel=1e-6)


def test_drs_starting_at_max_epochs_warns_it_never_happens():
    y = torch.tensor([0] * 8 + [1] * 2)
    s = lt.DeferredResampler(y, start_epoch=2, num_replicas=1, rank=0)
    dl = DataLoader(torch.utils.data.TensorDataset(y), sampler=s)
    with pytest.warns(UserWarning, match="Deferred re-sampling starts at epoch 2"):
        warn_late_resampling(SimpleNamespace(max_epochs=2, train_dataloader=dl))


def test_drw_keeps_the_loss_weight_dtype():
    m = _module_with(nn.CrossEntropyLoss(weight=torch.ones(len(COUNTS), dtype=torch.float64)))
    DeferredReweightingCallback(COUNTS, start_epoch=0, beta=BETA).apply(m, 0)
    assert m.criterion.weight.dtype == torch.float64
