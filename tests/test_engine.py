"""The training engine on tiny data the tests write: recipes, resume, atomic results, DDP."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from longtail.cli import main as cli_main
from longtail.engine import METHODS, RunInterrupted, TrainConfig, make_config, train
from longtail.engine.train import prepare_data
from longtail.models import create_model

NUM_CLASSES = 4
COUNTS = [24, 15, 9, 6]  # the toy set's exp profile of ratio 4: floor(24 · 4^(-i/3))


def write_npz(path: Path, per_class: int = 24, size: int = 8, seed: int = 0) -> Path:
    """A learnable toy image set: class c has a bright square at one of four corners."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(NUM_CLASSES), n)
        x = rng.integers(0, 60, size=(len(y), 1, size, size)).astype(np.uint8)
        h = size // 2
        for i, c in enumerate(y):
            r, q = divmod(int(c), 2)
            x[i, 0, r * h : (r + 1) * h, q * h : (q + 1) * h] += 150
        return x, y.astype(np.int64)

    x_train, y_train = make(per_class)
    x_test, y_test = make(6)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    return str(write_npz(tmp_path_factory.mktemp("data") / "toy.npz"))


def tiny(npz: str, **kw) -> TrainConfig:
    base = dict(
        dataset=npz,
        profile="exp",
        ratio=4,
        model="small-cnn",
        width=4,
        batch_size=16,
        epochs=3,
        lr=0.05,
        warmup_epochs=1,
        drw_epoch=2,
        lr_steps=((2, 0.1),),
        padding=1,
        eval_every=1,
        eval_batch_size=10,
        threads=1,
    )
    base.update(kw)
    return TrainConfig(**base)


KEYS = {"method", "dataset", "profile", "ratio", "seed", "epochs", "seconds", "config", "metrics"}
METRIC_KEYS = {
    "top1_error",
    "balanced_accuracy",
    "per_class_error",
    "many_acc",
    "medium_acc",
    "few_acc",
    "ece",
}


def test_data_is_long_tailed_and_test_balanced(npz):
    d = prepare_data(tiny(npz))
    assert d["counts"].tolist() == [24, 15, 9, 6]  # floor(24 · 4^(-i/3))
    assert torch.bincount(d["y_train"]).tolist() == [24, 15, 9, 6]
    assert torch.bincount(d["y_test"]).tolist() == [6] * NUM_CLASSES
    assert d["x_train"].dtype == torch.uint8
    step = prepare_data(tiny(npz, profile="step", ratio=3))
    assert step["counts"].tolist() == [24, 24, 8, 8]


@pytest.mark.parametrize("method", list(METHODS))
def test_every_recipe_trains(method, npz, tmp_path):
    record = train(
        tiny(npz, method=method, epochs=2, drw_epoch=1), tmp_path / "run", progress=False
    )
    assert KEYS <= set(record)
    assert METRIC_KEYS <= set(record["metrics"])
    assert len(record["metrics"]["per_class_error"]) == NUM_CLASSES
    assert record["class_counts"] == [24, 15, 9, 6]
    assert 0 <= record["metrics"]["top1_error"] <= 100
    assert record["config"]["method"] == method
    on_disk = json.loads((tmp_path / "run" / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1]
    assert all(np.isfinite(r["loss"]) for r in log)


def test_training_learns(npz):
    # (no flips: the toy classes are corners, and a flip swaps them)
    config = tiny(npz, method="erm", epochs=8, ratio=2, lr_steps=(), flip=False, lr=0.1)
    record = train(config, progress=False)
    assert record["metrics"]["top1_error"] < 30  # chance is 75


def test_drw_and_resampling_follow_the_schedule(npz, tmp_path):
    rec = train(tiny(npz, method="ldam-drw"), tmp_path / "drw", progress=False)
    log = [json.loads(x) for x in (tmp_path / "drw" / "log.jsonl").read_text().splitlines()]
    assert [r["reweighted"] for r in log] == [False, False, True]
    assert [r["lr"] for r in log] == pytest.approx([0.05, 0.05, 0.005])
    assert rec["config"]["reweight"] == "drw"
    log_cb = train(tiny(npz, method="cb-rw", epochs=1), tmp_path / "cb", progress=False)
    assert log_cb["config"]["reweight"] == "cb"


def _effective_weights(counts: list[int], beta: float = 0.9999) -> torch.Tensor:
    """Cui et al. (2019): (1 − β)/(1 − β^n_c), scaled to sum to the number of classes."""
    from test_weighting import reference_weights

    return torch.tensor(reference_weights(counts, "effective", beta), dtype=torch.float64)


@pytest.mark.parametrize(("method", "first"), [("erm-drw", 2), ("ldam-drw", 2), ("cb-rw", 0)])
def test_reweighting_reaches_the_loss_and_the_step_normaliser(method, first, npz, monkeypatch):
    """The log's `reweighted` flag is set before the weights are used: check that the loss gets
    the effective-number weights from the DRW epoch on (none before), and, for ERM-DRW, that
    the step's loss is Σ w_y ℓ_i / Σ w_y over the batch, ℓ the plain cross-entropy."""
    from longtail.data.images import normalize, random_crop_flip

    cls = sys.modules["longtail.engine.train"]._Classification
    real_step = cls._step
    weights, steps = [], []

    def step(self, idx, g, w_dev):
        w = self.criterion.weight
        weights.append(None if w is None else w.double())
        if method == "erm-drw":  # the same batch, drawn from a copy of the step's generator
            copy = torch.Generator()
            copy.set_state(g.get_state())
            d, cfg = self.data, self.config
            xb = random_crop_flip(d["x_train"][idx], cfg.padding, cfg.flip, generator=copy)
            with torch.no_grad():
                logits = self.model(normalize(xb, d["mean"], d["std"]))
            y = d["y_train"][idx]
            ce = torch.nn.functional.cross_entropy(logits.double(), y, reduction="none")
            wy = _effective_weights(COUNTS)[y] if w is not None else torch.ones(len(y))
            steps.append(float((wy * ce).sum() / wy.sum()))
        loss = real_step(self, idx, g, w_dev)
        if method == "erm-drw":
            steps[-1] = (steps[-1], loss)
        return loss

    monkeypatch.setattr(cls, "_step", step)
    train(tiny(npz, method=method, batch_size=64), progress=False)  # one batch an epoch
    assert len(weights) == 3
    for epoch, w in enumerate(weights):
        if epoch < first:
            assert w is None, (epoch, w)
        else:
            torch.testing.assert_close(w, _effective_weights(COUNTS), rtol=1e-6, atol=0)
    for want, got in steps:
        assert got == pytest.approx(want, rel=1e-5)


def record_orders(monkeypatch, cls) -> list[torch.Tensor]:
    """Wrap ``cls._order`` (an engine task's order of an epoch): the orders drawn, in turn."""
    real_order = cls._order
    orders = []

    def order(self, g, epoch):
        drawn = real_order(self, g, epoch)
        orders.append(drawn.clone())
        return drawn

    monkeypatch.setattr(cls, "_order", order)
    return orders


@pytest.mark.parametrize("method", ["cb-rs", "erm-drs"])
def test_resampling_draws_class_balanced_epochs(method, npz, monkeypatch):
    """cb-rs draws class-balanced epochs throughout, ERM-DRS a plain shuffle before its switch
    epoch and class-balanced ones after: the epochs the engine trains on, not the config."""
    orders = record_orders(monkeypatch, sys.modules["longtail.engine.train"]._Classification)
    if method == "erm-drs":  # a recipe kind the engine runs, though no registered method uses it
        spec = sys.modules["longtail.engine.config"].MethodSpec("erm-drs", "ce", resample="drs")
        monkeypatch.setitem(METHODS, "erm-drs", spec)
    config = tiny(npz, method=method, epochs=4, drw_epoch=1)
    train(config, progress=False)
    y = prepare_data(config)["y_train"]
    first = 1 if method == "erm-drs" else 0
    assert len(orders) == 4
    for idx in orders[:first]:
        assert sorted(idx.tolist()) == list(range(len(y)))  # a shuffle: every example once
    drawn = torch.cat(orders[first:])
    share = torch.bincount(y[drawn], minlength=NUM_CLASSES).double() / len(drawn)
    # natural shares 24/54 = 0.44 down to 6/54 = 0.11; class-balanced: 0.25 each, and the
    # effective-number weights of these counts are within 0.1% of the inverse frequencies
    assert share.tolist() == pytest.approx([0.25] * NUM_CLASSES, abs=0.08), share


def test_same_seed_same_result_and_seeds_differ(npz):
    a = train(tiny(npz, method="mm-drw"), progress=False)
    b = train(tiny(npz, method="mm-drw"), progress=False)
    c = train(tiny(npz, method="mm-drw", seed=1), progress=False)
    assert a["metrics"] == b["metrics"]
    assert a["metrics"]["ece"] != c["metrics"]["ece"]


def kill_after(config: TrainConfig, folder: Path, epoch: int) -> None:
    """Train ``config`` in ``folder`` and kill it (as a signal would) once ``epoch`` is saved."""

    def kill(done, row):
        if done == epoch:
            raise RunInterrupted("simulated kill")

    with pytest.raises(RunInterrupted):
        train(config, folder, progress=False, callback=kill)


@pytest.mark.parametrize("method", ["erm-drw", "cb-rs", "mm-ldam-drw"])
def test_killed_and_resumed_equals_uninterrupted(method, npz, tmp_path):
    config = tiny(npz, method=method, epochs=4, drw_epoch=2, lr_steps=((3, 0.1),))
    whole = train(config, tmp_path / "whole", progress=False)
    kill_after(config, tmp_path / "killed", epoch=1)
    assert not (tmp_path / "killed" / "result.json").exists()
    assert torch.load(tmp_path / "killed" / "checkpoint.pt")["epoch"] == 2
    resumed = train(config, tmp_path / "killed", progress=False)
    assert resumed["metrics"] == whole["metrics"]
    w = torch.load(tmp_path / "whole" / "checkpoint.pt")["task"]["model"]
    r = torch.load(tmp_path / "killed" / "checkpoint.pt")["task"]["model"]
    assert all(torch.equal(w[k], r[k]) for k in w)
    log = (tmp_path / "killed" / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in log] == [0, 1, 2, 3]


def test_compiled_step_resumes_exactly_and_matches_eager(npz, tmp_path):
    config = tiny(npz, method="ldam-drw", epochs=3, compile=True)
    whole = train(config, tmp_path / "whole", progress=False)

    def kill(epoch, row):
        if epoch == 0:
            raise RunInterrupted("simulated kill")

    with pytest.raises(RunInterrupted):
        train(config, tmp_path / "killed", progress=False, callback=kill)
    assert train(config, tmp_path / "killed", progress=False)["metrics"] == whole["metrics"]
    eager = tiny(npz, method="ldam-drw", epochs=3, compile=False)
    train(eager, tmp_path / "eager", progress=False)
    a = torch.load(tmp_path / "whole" / "checkpoint.pt")["task"]["model"]
    b = torch.load(tmp_path / "eager" / "checkpoint.pt")["task"]["model"]
    for k in a:  # fused kernels round differently, nothing more
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4)


def test_calibration_of_cosine_classifiers_uses_the_loss_scale(npz, tmp_path):
    from longtail.engine import evaluate
    from longtail.metrics import expected_calibration_error, top1_error

    config = tiny(npz, method="ldam", epochs=2)
    record = train(config, tmp_path / "r", progress=False)
    assert record["logit_scale"] == 30.0
    d = prepare_data(config)
    torch.manual_seed(0)
    model = create_model("small-cnn", NUM_CLASSES, 1, 4, normed=True)
    model.load_state_dict(torch.load(tmp_path / "r" / "checkpoint.pt")["task"]["model"])
    z = evaluate(model, d["x_test"], d["mean"], d["std"], channels_last=config.channels_last)
    assert record["metrics"]["ece"] == pytest.approx(
        expected_calibration_error(30 * z, d["y_test"])
    )
    assert record["metrics"]["top1_error"] == pytest.approx(top1_error(z, d["y_test"]))
    assert train(tiny(npz, epochs=1), progress=False)["logit_scale"] == 1.0


def test_finished_run_is_not_retrained(npz, tmp_path):
    config = tiny(npz, epochs=1)
    first = train(config, tmp_path / "r", progress=False)
    calls = []
    again = train(config, tmp_path / "r", progress=False, callback=lambda e, r: calls.append(e))
    assert again == json.loads(json.dumps(first)) and calls == []


def test_folder_of_another_run_is_refused(npz, tmp_path):
    train(tiny(npz, epochs=1), tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="holds a run with a different config"):
        train(tiny(npz, epochs=1, method="focal"), tmp_path / "r", progress=False)


def test_half_written_result_is_a_clear_error(npz, tmp_path):
    out = tmp_path / "r"
    train(tiny(npz, epochs=1), out, progress=False)
    text = (out / "result.json").read_text()
    (out / "result.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="damaged"):
        train(tiny(npz, epochs=1), out, progress=False)
    assert (out / "checkpoint.pt").exists()  # nothing else was touched


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"ratio": 0.5}, "ratio"),
        ({"method": "ldam-drs"}, "Did you mean"),
        ({"profile": "linear"}, "profile"),
        ({"epochs": 0}, "epochs"),
        ({"few_threshold": 200}, "few_threshold"),
    ],
)
def test_bad_config(kw, match, npz):
    with pytest.raises(ValueError, match=match):
        tiny(npz, **kw)


def test_presets_and_epoch_rescaling():
    q = make_config("quick")
    assert (q.epochs, q.model, q.width, q.drw_epoch) == (8, "resnet20", 8, 6)
    p = make_config("paper")
    assert (p.epochs, p.drw_epoch, p.lr_steps, p.warmup_epochs) == (
        200,
        160,
        ((160, 0.01), (180, 0.0001)),
        5,
    )
    assert [p.lr_at(e) for e in (0, 4, 5, 159, 160, 179, 180)] == pytest.approx(
        [0.02, 0.1, 0.1, 0.1, 0.001, 0.001, 0.00001]
    )
    r = make_config("paper", epochs=20)
    assert (r.drw_epoch, r.lr_steps, r.warmup_epochs) == (16, ((16, 0.01), (18, 0.0001)), 1)
    assert TrainConfig.from_dict(r.to_dict()).identity() == r.identity()


# ------------------------------------------------------------------------------- command line
def test_cli_train_resume_and_errors(npz, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "--dataset", npz, "--ratio", "4", "--method", "ldam-drw", "--epochs", "2"]
    args += ["--model", "small-cnn", "--width", "4", "--threads", "1", "--out", str(out)]
    assert cli_main(args) == 0
    text, err = capsys.readouterr()
    assert "top-1 error" in text and "many/medium/few" in text
    saved = json.loads((out / "config.json").read_text())
    assert saved["method"] == "ldam-drw" and saved["loss"] == "ldam" and saved["normed"]
    assert "(trained in" in text and "already holds" not in err
    assert cli_main(args) == 0  # finished: returns the record without training, and says so
    said = capsys.readouterr()
    assert "(trained before, in" in said.out and "nothing was trained now" in said.err
    assert cli_main([*args[:-1], str(tmp_path / "x"), "--ratio", "0.5"]) == 2
    assert "ratio" in capsys.readouterr().err
    assert cli_main([*args[:-2], "--out", str(tmp_path / "y"), "--method", "nope"]) == 2
    missing = ["train", "--dataset", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "z")]
    assert cli_main(missing) == 2
    assert "missing.npz" in capsys.readouterr().err


def test_cli_ctrl_c_says_how_to_resume_and_no_progress_still_says_the_resume(
    npz, tmp_path, capsys, monkeypatch
):
    train_mod = sys.modules["longtail.engine.train"]  # the package's `train` is the function
    real = train_mod.run_epochs

    def interrupted(*a, **kw):
        def ctrl_c(epoch, row):
            raise KeyboardInterrupt

        return real(*a, **{**kw, "callback": ctrl_c})

    out = tmp_path / "cc"
    args = ["train", "--dataset", npz, "--ratio", "4", "--epochs", "2", "--model", "small-cnn"]
    args += ["--width", "4", "--threads", "1", "--out", str(out), "--no-progress"]
    with monkeypatch.context() as m:
        m.setattr(train_mod, "run_epochs", interrupted)
        assert cli_main(args) == 130
    err = capsys.readouterr().err
    *said, last = err.strip().splitlines()
    assert last == f"longtail train: interrupted; the same command resumes from what {out} holds"
    assert said and all("WARNING: " in line for line in said)  # said despite --no-progress
    assert cli_main(args) == 0
    assert f"resuming {out} from epoch 1" in capsys.readouterr().err  # said despite --no-progress


def test_cli_label_outside_classes(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    x = np.zeros((4, 8, 8), np.uint8)
    np.savez(bad, x_train=x, y_train=np.array([0, 1, 2.5, 1]), x_test=x, y_test=np.zeros(4))
    assert cli_main(["train", "--dataset", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "label" in capsys.readouterr().err.lower()


# ------------------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, config: TrainConfig, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    train(config, out, progress=False)


@pytest.mark.skipif(sys.platform == "win32", reason="gloo over TCP on Linux/macOS")
@pytest.mark.parametrize("method", ["cb-rw", "mm-drw"])
def test_ddp_step_equals_one_process_on_the_global_batch(method, npz, tmp_path):
    # One epoch of one step: the whole long-tailed set (24 examples, ratio 1.5) is one batch.
    config = tiny(
        npz,
        method=method,
        ratio=1.5,
        n_max=8,
        epochs=1,
        drw_epoch=0,
        batch_size=32,
        eval_every=0,
        lr_steps=(),
    )
    assert len(prepare_data(config)["y_train"]) <= 32
    single = train(config, tmp_path / "single", progress=False)
    mp.start_processes(
        _ddp_worker,
        args=(2, _free_port(), config, str(tmp_path / "ddp")),
        nprocs=2,
        start_method="spawn",
    )
    a = torch.load(tmp_path / "single" / "checkpoint.pt")["task"]["model"]
    b = torch.load(tmp_path / "ddp" / "checkpoint.pt")["task"]["model"]
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6)
    ddp = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    # two processes are another run (per-process BatchNorm, per-process shards): the identity
    # says so, and a one-process rerun in the DDP run's folder is refused, not handed its record
    assert ddp["identity"] == {**single["identity"], "world_size": 2}
    with pytest.raises(ValueError, match="world_size"):
        train(config, tmp_path / "ddp", progress=False)
    torch.manual_seed(config.seed)  # the run's initial parameters: the step moved them
    fresh = create_model("small-cnn", NUM_CLASSES, 1, 4, METHODS[method].normed).state_dict()
    assert all(not torch.equal(fresh[k], a[k]) for k in a)
    # the logged training loss is the global batch's, not rank 0's half of it
    assert ddp["curve"][0]["loss"] == pytest.approx(single["curve"][0]["loss"], rel=1e-5)


def test_ddp_batch_smaller_than_the_processes_is_refused_before_anything_is_written(npz, tmp_path):
    # each process trains on batch[rank::world]: with batch_size 1 and 2 processes no batch
    # gives both an example, and the run would finish untrained with a record of loss 0
    train_mod = sys.modules["longtail.engine.train"]
    config = tiny(npz, batch_size=1, epochs=1)
    with pytest.raises(ValueError, match=r"batch_size \(--batch-size\) 1 is smaller than the 2"):
        train_mod._train(config, tmp_path / "ddp", 2, 0, False, None, {})
    assert not (tmp_path / "ddp").exists()
    train_mod._train(tiny(npz, batch_size=2, epochs=1), tmp_path / "one", 1, 0, False, None, {})


def _stateful_losses() -> list[str]:
    """The registered losses a ``loss:NAME`` method can train whose ``state_dict()`` changes in a
    training step (running statistics, a random loss's step counter): found by taking a step,
    so a stateful loss added to the registry is checked below without being named here."""
    from longtail.losses import create_loss_for_counts, get_loss_info, list_losses

    found = []
    for name in list_losses():
        info = get_loss_info(name)
        if not (info.single_label and info.per_sample):
            continue
        loss = create_loss_for_counts(name, COUNTS)
        loss.reduction = "none"
        before = {k: v.clone() for k, v in loss.state_dict().items()}
        logits = torch.randn(8, NUM_CLASSES, requires_grad=True)
        loss(logits, torch.tensor([0, 1, 2, 3, 0, 0, 1, 2])).sum().backward()
        after = loss.state_dict()
        if any(k not in before or not torch.equal(before[k], v) for k, v in after.items()):
            found.append(name)
    return found


STATEFUL_LOSSES = _stateful_losses()


def test_the_stateful_losses_are_found():
    # the search is not vacuous: running counts, gradient statistics and random draws are there
    assert {"seesaw", "eqlv2", "gcl", "softmax-eql"} <= set(STATEFUL_LOSSES)


@pytest.mark.parametrize("loss", STATEFUL_LOSSES)
def test_a_stateful_loss_resumes_to_the_uninterrupted_run(loss, npz, tmp_path):
    # the checkpoint holds the loss's state: a resumed seesaw continues its counts, a resumed
    # GCL its sequence of draws (before, both restarted and the metrics drifted unannounced)
    config = tiny(npz, method=f"loss:{loss}", epochs=3, drw_epoch=3)
    whole = train(config, tmp_path / "whole", progress=False)
    kill_after(config, tmp_path / "killed", epoch=0)
    resumed = train(config, tmp_path / "killed", progress=False)
    assert resumed["metrics"] == whole["metrics"]
    losses = [
        [json.loads(x)["loss"] for x in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        for run in ("whole", "killed")
    ]
    assert losses[0] == losses[1]
    saved = [torch.load(tmp_path / run / "checkpoint.pt")["task"] for run in ("whole", "killed")]
    assert saved[0]["criterion"].keys() == saved[1]["criterion"].keys()
    assert all(torch.equal(v, saved[1]["criterion"][k]) for k, v in saved[0]["criterion"].items())


def test_a_loss_with_learnable_parameters_is_refused_not_left_frozen(npz, monkeypatch):
    # AUC-M's a, b, α are parameters; a single-label loss like it would sit outside the
    # engine's SGD (which holds the model's parameters) and never move: refused instead
    engine_train = sys.modules["longtail.engine.train"]
    build = engine_train.create_loss_for_counts

    def with_a_parameter(*args, **kwargs):
        loss = build(*args, **kwargs)
        loss.margin = torch.nn.Parameter(torch.zeros(NUM_CLASSES))
        return loss

    monkeypatch.setattr(engine_train, "create_loss_for_counts", with_a_parameter)
    with pytest.raises(ValueError, match="learns margin: train it in your own loop"):
        train(tiny(npz, method="loss:vs"), progress=False)


def test_an_empty_test_set_is_refused_before_the_run_folder_is_made(tmp_path, capsys):
    # it used to train every epoch and then fail on a (0, 0) logits tensor, folder left behind
    src = np.load(write_npz(tmp_path / "full.npz"))
    arrays = dict(src, x_test=src["x_test"][:0], y_test=src["y_test"][:0])
    path = tmp_path / "no_test.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="empty test set"):
        train(tiny(str(path), method="erm"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    assert cli_main(["inspect", str(path)]) == 2  # inspect says what train would
    assert "empty test set" in capsys.readouterr().err
    # evaluating on a validation split carved from training needs no test set
    result = train(tiny(str(path), method="erm", val_per_class=2), progress=False)
    assert result["eval_split"] == "validation"
