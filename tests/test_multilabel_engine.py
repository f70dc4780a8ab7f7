"""The multi-label engine on tiny data the tests write: methods, resume, identity, metrics,
DDP, the mosaic builder, the command line, the bench grid and its report."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from longtail.bench.multilabel import multilabel_markdown
from longtail.bench.report import write_report
from longtail.bench.runner import multilabel_jobs, run_grid
from longtail.cli import main as cli_main
from longtail.data.dataset import ImageDataset
from longtail.data.multilabel_images import (
    FASHION_MNIST_MOSAIC_LT,
    load_multilabel_dataset,
    mosaic_multilabel,
)
from longtail.data.profiles import imbalance_counts
from longtail.engine import RunInterrupted
from longtail.engine.multilabel import (
    MULTILABEL_METHODS,
    MultiLabelConfig,
    make_multilabel_config,
    prepare_multilabel_data,
    train_multilabel,
)
from longtail.engine.multilabel.loop import scores
from longtail.metrics_multilabel import multilabel_metrics, per_class_average_precision
from longtail.models import create_model

LABELS = 4


def write_npz(
    path: Path, n_train: int = 40, n_test: int = 16, seed: int = 0, val: bool = False
) -> Path:
    """Label c is a bright square in quadrant c of an 8x8 image; label frequencies 0.8 .. 0.1."""
    rng = np.random.default_rng(seed)
    freq = np.array([0.8, 0.45, 0.25, 0.12])

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.random((n, LABELS)) < freq
        y[np.arange(n), rng.integers(0, LABELS, n)] |= ~y.any(1)  # at least one label a row
        y[:LABELS, :] |= np.eye(LABELS, dtype=bool)  # every label at least once
        x = rng.integers(0, 50, size=(n, 1, 8, 8)).astype(np.uint8)
        for i, c in zip(*np.nonzero(y), strict=True):
            r, q = divmod(int(c), 2)
            x[i, 0, r * 4 : (r + 1) * 4, q * 4 : (q + 1) * 4] += 160
        return x, y.astype(np.uint8)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    extra = {}
    if val:
        extra["x_val"], extra["y_val"] = make(12)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **extra)
    return path


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    return str(write_npz(tmp_path_factory.mktemp("ml") / "toy.npz"))


def tiny(npz: str, **kw) -> MultiLabelConfig:
    base = dict(
        dataset=npz,
        model="small-cnn",
        width=4,
        epochs=2,
        batch_size=16,
        lr=0.01,
        padding=1,
        eval_batch_size=10,
        ks=(1, 2),
        threads=1,
        preset="smoke",
    )
    base.update(kw)
    return MultiLabelConfig(**base)


# ------------------------------------------------------------------------------- the engine
@pytest.mark.parametrize("method", list(MULTILABEL_METHODS))
def test_every_method_trains(method, npz):
    rec = train_multilabel(tiny(npz, method=method, epochs=1), progress=False)
    m = rec["metrics"]
    assert rec["task"] == "multilabel" and rec["method"] == method
    assert all(np.isfinite(p["loss"]) for p in rec["curve"])
    for key in ("map", "head_map", "micro_f1", "macro_f1", "tuned_micro_f1", "p@1", "p@2"):
        assert key in m
    assert len(m["per_label_ap"]) == len(rec["label_counts"]) == LABELS
    assert rec["config"]["sampler"] == MULTILABEL_METHODS[method].sampler


@pytest.mark.parametrize("method", ["bce", "db-cas"])
def test_killed_and_resumed_equals_uninterrupted(method, npz, tmp_path):
    config = tiny(npz, method=method, epochs=3)
    whole = train_multilabel(config, tmp_path / "whole", progress=False)

    def kill(epoch, row):
        if epoch == 0:
            raise RunInterrupted

    with pytest.raises(RunInterrupted):
        train_multilabel(config, tmp_path / "cut", progress=False, callback=kill)
    assert not (tmp_path / "cut" / "result.json").exists()
    resumed = train_multilabel(config, tmp_path / "cut", progress=False)
    assert resumed["metrics"] == whole["metrics"]
    assert [r["loss"] for r in resumed["curve"]] == [r["loss"] for r in whole["curve"]]
    log = (tmp_path / "cut" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [0, 1, 2]
    # a finished folder returns its record without training
    assert train_multilabel(config, tmp_path / "cut", progress=False) == resumed


def test_identity_refuses_another_config_or_other_data(tmp_path):
    data = write_npz(tmp_path / "d.npz")
    config = tiny(str(data), epochs=1)
    out = tmp_path / "run"
    train_multilabel(config, out, progress=False)
    with pytest.raises(ValueError, match=r"different config.*lr"):
        train_multilabel(tiny(str(data), epochs=1, lr=0.02), out, progress=False)
    write_npz(data, seed=1)  # the same path, other data
    with pytest.raises(ValueError, match="other data"):
        train_multilabel(config, out, progress=False)
    ident = json.loads((out / "result.json").read_text())["identity"]
    assert ident["task"] == "multilabel" and ident["dataset"] == "d.npz" and "threads" not in ident


def test_metrics_in_the_record_match_a_recomputation(npz, tmp_path):
    from sklearn.metrics import average_precision_score

    config = tiny(npz, method="asl", epochs=2)
    rec = train_multilabel(config, tmp_path / "run", progress=False)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["task"]["model"]
    data = prepare_multilabel_data(config)
    model = create_model("small-cnn", LABELS, 1, 4)
    model.load_state_dict(state)
    model = model.to(memory_format=torch.channels_last)
    test, val = scores(model, data.x_test, data, config), scores(model, data.x_val, data, config)
    want = multilabel_metrics(
        test, data.y_test, data.counts, ks=(1, 2), val_scores=val, val_targets=data.y_val
    )
    got = rec["metrics"]
    for key, value in want.items():
        if value is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value), key
    ap = per_class_average_precision(test, data.y_test)
    y = data.y_test.numpy()
    for c in range(LABELS):
        if y[:, c].any():
            sk = 100 * average_precision_score(y[:, c], test[:, c].numpy())
            assert got["per_label_ap"][c] == pytest.approx(sk) == pytest.approx(100 * ap[c])
    # each recorded threshold is one at which that label's validation F1 is the best any
    # threshold gets (checked against every candidate, with scikit-learn's F1)
    from sklearn.metrics import f1_score

    yv, sv = data.y_val.numpy(), val.numpy()
    for c in range(LABELS):
        t = got["thresholds"][c]
        if not yv[:, c].any():
            assert t == config.threshold
            continue
        best = max(f1_score(yv[:, c], sv[:, c] >= u, zero_division=0) for u in sv[:, c])
        assert f1_score(yv[:, c], sv[:, c] >= t, zero_division=0) == pytest.approx(best), c
    assert rec["label_counts"] == data.y_train.sum(0).tolist()
    assert rec["data"]["val_source"] == "train"  # the file has no validation split
    assert rec["data"]["val_size"] == round(0.1 * 40) and rec["data"]["train_size"] == 36
    assert rec["cooccurrence"]["train"]["examples"] == 36


def test_a_file_with_its_own_validation_split(tmp_path):
    path = write_npz(tmp_path / "v.npz", val=True)
    data = prepare_multilabel_data(tiny(str(path)))
    assert data.val_source == "data" and len(data.y_val) == 12 and len(data.y_train) == 40


def test_bad_config_and_data(npz, tmp_path):
    with pytest.raises(ValueError, match=r"method.*Did you mean 'asl'"):
        tiny(npz, method="asll")
    with pytest.raises(ValueError, match=r"loss_kwargs.*gamma_neg"):
        tiny(npz, method="asl", loss_kwargs={"gamma_negative": 2})
    with pytest.raises(ValueError, match="engine sets itself"):
        tiny(npz, method="db", loss_kwargs={"num_samples": 3})
    with pytest.raises(ValueError, match="classification dataset"):
        tiny(npz, dataset="fashion-mnist")
    with pytest.raises(ValueError, match="val_fraction"):
        tiny(npz, val_fraction=1.0)
    with pytest.raises(ValueError, match="an integer"):
        tiny(npz, epochs="2")
    empty = tmp_path / "e.npz"
    x = np.zeros((6, 8, 8), np.uint8)
    y = np.zeros((6, 3), np.uint8)
    y[:, 0] = 1
    np.savez(empty, x_train=x, y_train=y, x_test=x, y_test=y)
    with pytest.raises(ValueError, match=r"positive example of every label.*'1', '2'"):
        prepare_multilabel_data(tiny(str(empty)))


def test_presets():
    cpu = make_multilabel_config("cpu", method="db")
    assert (cpu.model, cpu.preset, cpu.dataset) == ("cnn5", "cpu", "fashion-mnist-mosaic-lt")
    assert make_multilabel_config("smoke").epochs == 2
    with pytest.raises(ValueError, match="preset"):
        make_multilabel_config("paper")


# ------------------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, config: MultiLabelConfig, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    train_multilabel(config, out, progress=False)


@pytest.mark.skipif(sys.platform == "win32", reason="gloo over TCP on Linux/macOS")
@pytest.mark.parametrize("method", ["db", "pu-mlc"])
def test_ddp_step_equals_one_process_on_the_global_batch(method, npz, tmp_path):
    # one step on the whole training set: 35 examples (5 of 40 set apart for validation) in
    # one batch, so the two processes' slices differ in size (18 and 17)
    config = tiny(npz, method=method, epochs=1, batch_size=64, val_fraction=0.125)
    assert len(prepare_multilabel_data(config).y_train) == 35
    single = train_multilabel(config, tmp_path / "single", progress=False)
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
        train_multilabel(config, tmp_path / "ddp", progress=False)
    assert ddp["curve"][0]["loss"] == pytest.approx(single["curve"][0]["loss"], rel=1e-5)


def test_ddp_batch_smaller_than_the_processes_is_refused_before_anything_is_written(
    npz, tmp_path, monkeypatch
):
    loop = sys.modules["longtail.engine.multilabel.loop"]

    @contextlib.contextmanager
    def two_processes():
        yield 2, 0

    monkeypatch.setattr(loop, "process_group", two_processes)
    with pytest.raises(ValueError, match=r"batch_size \(--batch-size\) 1 is smaller than the 2"):
        train_multilabel(tiny(npz, batch_size=1, epochs=1), tmp_path / "ddp", progress=False)
    assert not (tmp_path / "ddp").exists()


# ------------------------------------------------------------------------------ the mosaics
def _source(per_class: int = 1500, test_per_class: int = 120, classes: int = 6) -> ImageDataset:
    """Tiny 2x2 images that spell their own index: every source image is told apart."""

    def make(n: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.arange(n * classes)
        code = idx + offset
        x = np.stack([code % 251 + 1, code // 251 + 1, idx % classes + 1, 7 * np.ones_like(idx)])
        x = x.T.reshape(-1, 1, 2, 2).astype(np.uint8)
        return torch.from_numpy(x), torch.from_numpy((idx % classes).astype(np.int64))

    x_train, y_train = make(per_class, 0)
    x_test, y_test = make(test_per_class, 60_000)
    return ImageDataset("src", x_train, y_train, x_test, y_test, classes)


def _cells(x: torch.Tensor) -> list[list[tuple[int, ...]]]:
    """The images in each mosaic's cells (blank cells left out), as byte tuples."""
    out = []
    for img in x[:, 0].numpy():
        cells = [img[r : r + 2, q : q + 2].reshape(-1) for r in (0, 2) for q in (0, 2)]
        out.append([tuple(c.tolist()) for c in cells if c.any()])
    return out


def test_mosaics_are_deterministic_and_follow_the_profile():
    src = _source()
    kw = dict(ratio=20.0, n_max=300, labels_per_example=1.6, val_size=80, test_size=100, seed=3)
    a, b = mosaic_multilabel(src, **kw), mosaic_multilabel(src, **kw)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(a, f"x_{split}"), getattr(b, f"x_{split}"))
        assert torch.equal(getattr(a, f"y_{split}"), getattr(b, f"y_{split}"))
    other = mosaic_multilabel(src, **{**kw, "seed": 4})
    assert not torch.equal(other.y_train, a.y_train)
    want = imbalance_counts(300, 6, 20.0, "exp")
    assert a.y_train.sum(0).tolist() == want == a.construction["train_counts"]
    assert len(a.y_train) == round(sum(want) / 1.6)
    assert a.x_train.shape[1:] == (1, 4, 4)
    sizes = a.y_train.sum(1)
    assert int(sizes.min()) >= 1 and int(sizes.max()) <= 4


def test_mosaic_cells_hold_their_labels_and_splits_share_no_image():
    src = _source()
    data = mosaic_multilabel(
        src, ratio=10.0, n_max=200, labels_per_example=1.5, val_size=60, test_size=90, seed=0
    )
    train_pool = {tuple(x.reshape(-1).tolist()) for x in src.x_train}
    test_pool = {tuple(x.reshape(-1).tolist()) for x in src.x_test}
    used = {}
    for split, pool in (("train", train_pool), ("val", train_pool), ("test", test_pool)):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        cells = _cells(x)
        used[split] = [c for row in cells for c in row]
        for row, labels in zip(cells, y.numpy(), strict=True):
            assert 2 <= len(row) <= 4
            assert all(c in pool for c in row)
            assert sorted({c[2] - 1 for c in row}) == np.flatnonzero(labels).tolist()
    everything = used["train"] + used["val"] + used["test"]
    assert len(set(everything)) == len(everything)  # no source image twice


def test_mosaic_arguments_are_checked():
    src = _source()
    with pytest.raises(ValueError, match="labels_per_example"):
        mosaic_multilabel(src, n_max=300, ratio=10.0, labels_per_example=3.5)
    with pytest.raises(ValueError, match="items"):
        mosaic_multilabel(src, items=(2, 5))
    with pytest.raises(ValueError, match=r"n_max.*images of class 0"):
        mosaic_multilabel(src, n_max=1400, ratio=2.0, labels_per_example=1.2)


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Fashion-MNIST not installed"
)
def test_the_registered_fashion_mnist_mosaics():
    data = load_multilabel_dataset("fmnist-mosaic-lt", download=False)
    a = FASHION_MNIST_MOSAIC_LT
    want = imbalance_counts(a["n_max"], 10, a["ratio"], a["profile"])
    assert data.y_train.sum(0).tolist() == want
    assert data.x_train.shape[1:] == (1, 56, 56)
    assert (len(data.y_val), len(data.y_test)) == (a["val_size"], a["test_size"])
    assert data.label_names[0] == "T-shirt/top"


# ------------------------------------------------------------------------------ command line
def test_cli_train_and_errors(npz, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "--task", "multilabel", "--dataset", npz, "--method", "la-bce"]
    args += ["--preset", "smoke", "--model", "small-cnn", "--width", "4", "--epochs", "1"]
    args += ["--threads", "1", "--out", str(out), "--no-progress"]
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    assert "la-bce on toy" in text and "mAP" in text and "tuned" in text
    # 4 labels: P@1 and P@3 exist, P@5 does not and is left out (it was printed as "P@5 -")
    assert "P@1 " in text and "P@3 " in text and "P@5" not in text
    assert json.loads((out / "result.json").read_text())["config"]["loss"] == "la-bce"
    assert cli_main(args) == 0  # finished: the record, no training, and it says so
    said = capsys.readouterr()
    assert "(trained before, in" in said.out and "nothing was trained now" in said.err
    for bad, word in (
        (["--method", "nope"], "method"),
        (["--dataset", "no-such-set"], "dataset"),
        (["--dataset", "fashion-mnist"], "classification dataset"),
        (["--ratio", "10"], "--ratio"),
        (["--preset", "paper"], "preset"),
    ):
        code = cli_main([*args[:-3], "--out", str(tmp_path / "x"), *bad])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and word in err[0], err
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------- bench and report
def test_bench_grid_skips_finished_runs_and_the_report_renders(npz, tmp_path):
    overrides = dict(model="small-cnn", width=4, epochs=1, batch_size=16, ks=(1, 2), threads=1)
    jobs = multilabel_jobs(npz, "smoke", seeds=2, methods=("bce", "asl"), **overrides)
    # 1 epoch is not the smoke preset's 2: the names carry the length, so that the same
    # benchmark at another length goes beside this one, never in its place
    names = ["toy_bce_e1_s0", "toy_asl_e1_s0", "toy_bce_e1_s1", "toy_asl_e1_s1"]
    assert [j.name for j in jobs] == names
    at_preset = multilabel_jobs(
        npz, "smoke", seeds=1, methods=("bce",), **{**overrides, "epochs": 2}
    )
    assert [j.name for j in at_preset] == ["toy_bce_s0"]
    out = tmp_path / "bench"
    first = run_grid(jobs, out, progress=False)
    assert first["ran"] == 4 and not first["failed"]
    again = run_grid(jobs, out, progress=False)
    assert again["skipped"] == 4 and again["ran"] == 0
    rec = json.loads((out / "toy_asl_e1_s1.json").read_text())
    assert rec["bench"] == "multilabel" and rec["seed"] == 1

    paths = write_report(out)
    names = [p.name for p in paths]
    assert "multilabel_ap_toy.png" in names and names[-1] == "report.md"
    report = (out / "report.md").read_text()
    assert "## Long-tailed multi-label classification" in report
    assert "| BCE |" in report and "| ASL |" in report and "± " in report
    assert "![multilabel_ap_toy.png](multilabel_ap_toy.png)" in report
    assert "Table 1" not in report  # multi-label records stay out of the classification tables
    assert cli_main(["report", str(out)]) == 0


def test_multilabel_table_by_hand():
    def rec(method, seed, m):
        return {
            "method": method,
            "dataset": "d.npz",
            "seed": seed,
            "bench": "multilabel",
            "task": "multilabel",
            "identity": {"method": method, "dataset": "d.npz", "seed": seed, "data": "f"},
            "metrics": {"map": m, "head_map": m + 1, "tail_map": None},
        }

    text = multilabel_markdown([rec("bce", 0, 50.0), rec("bce", 1, 52.0), rec("db", 0, 60.0)])
    lines = text.splitlines()
    assert lines[-4] == "| Method | mAP | head |"
    assert lines[-2] == "| BCE | 51.00 ± 1.41 | 52.00 ± 1.41 |"
    # 1 seed of the 2 beside it: marked, and not crowned best on one seed's luck
    assert lines[-1] == "| DB | 60.00 (1) | 61.00 (1) |"
    assert "a cell of fewer seeds says how many, as (n), and is not set in bold" in text
    text = multilabel_markdown(
        [rec("bce", s, 50.0 + s) for s in (0, 1)]
        + [rec("asl", s, 53.0 + s) for s in (0, 1)]
        + [rec("db", 0, 60.0)]
    )
    assert "| ASL | **53.50 ± 0.71** | **54.50 ± 0.71** |" in text  # best of the full rows


def test_a_step_that_never_happens_is_printed_and_recorded(npz, capsys):
    rec = train_multilabel(tiny(npz, epochs=1), progress=True)
    err = capsys.readouterr().err
    warning = "the lr step × 0.1 at epoch 1 never happens: the last epoch is 0"
    assert f"WARNING: {warning}" in err and err.count("WARNING") == 1
    assert rec["schedule_warnings"] == [warning]
    assert rec["schedule"].startswith("schedule (0-based epochs): 1 epoch, ")
    rec = train_multilabel(tiny(npz, epochs=2, lr_milestones=(1,)), progress=True)
    assert "WARNING" not in capsys.readouterr().err and rec["schedule_warnings"] == []


# ---------------------------------------------------- a method's ingredients reach training
@pytest.mark.parametrize("method", ["bce", "db", "bce-cas", "db-cas"])
def test_class_aware_sampling_draws_the_rare_labels_more(method, npz, monkeypatch):
    """bce-cas/db-cas draw epochs from the class-aware law (a label uniformly, then one of its
    examples: P(i) = Σ_{c ∈ y_i} 1 / (C n_c)); bce/db shuffle each example once an epoch."""
    from test_engine import record_orders

    orders = record_orders(monkeypatch, sys.modules["longtail.engine.multilabel.loop"]._MultiLabel)
    config = tiny(npz, method=method, epochs=6)
    train_multilabel(config, progress=False)
    y = prepare_multilabel_data(config).y_train.double()
    assert len(orders) == 6
    if not method.endswith("-cas"):
        for idx in orders:
            assert sorted(idx.tolist()) == list(range(len(y)))
        return
    n = y.sum(0)
    p = (y / (LABELS * n)).sum(1)  # the law, written out
    expected = (p[:, None] * y).sum(0)  # the share of draws that carry each label
    natural = y.mean(0)
    drawn = y[torch.cat(orders)].mean(0)
    assert expected[-1] > natural[-1] + 0.1  # the test can tell the two laws apart
    assert drawn.tolist() == pytest.approx(expected.tolist(), abs=0.07), (drawn, expected)


def _cb_bce(logits, targets, counts, beta=0.9999):
    """Class-balanced BCE (Cui et al. 2019), written out: column c weighted by
    (1 − β)/(1 − β^n_c), the weights scaled to sum to C, mean over the entries."""
    from test_weighting import reference_weights

    w = torch.tensor(reference_weights(counts.tolist(), "effective", beta), dtype=torch.float64)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits.double(), targets.double(), reduction="none"
    )
    return float((w * bce).mean())


@pytest.mark.parametrize("method", ["cb-bce", "la-bce", "focal", "asl", "db", "db-cas", "pu-mlc"])
def test_the_loss_gets_the_training_label_counts_and_the_method_settings(method, npz, monkeypatch):
    """The engine's loss is the method's, built from the training split's label counts with
    the method's own settings (DB with both of its parts, CB-BCE with its weights)."""
    import longtail as lt

    cls = sys.modules["longtail.engine.multilabel.loop"]._MultiLabel
    real_init = cls.__init__
    tasks = []

    def init(self, *a, **kw):
        real_init(self, *a, **kw)
        tasks.append(self)

    monkeypatch.setattr(cls, "__init__", init)
    config = tiny(npz, method=method, epochs=1)
    train_multilabel(config, progress=False)
    y = prepare_multilabel_data(config).y_train
    counts = y.sum(0)
    gen = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(y.shape, generator=gen)
    got = float(tasks[0].criterion(logits, y.float()))
    if method == "cb-bce":
        assert got == pytest.approx(_cb_bce(logits, y, counts), rel=1e-5)
        return
    spec = MULTILABEL_METHODS[method]
    info = lt.get_loss_info(spec.loss)
    kwargs = dict(spec.loss_kwargs)
    if "num_samples" in info.keywords:
        kwargs["num_samples"] = len(y)
    if info.needs_counts:
        kwargs["class_counts"] = counts.tolist()
    want = float(lt.create_loss(spec.loss, **kwargs)(logits, y.float()))
    assert got == pytest.approx(want, rel=1e-6)
    if spec.loss == "distribution-balanced":  # both parts on, and each one counts here
        for part in ({"rebalance": False}, {"ntr": False}):
            off = float(lt.create_loss(spec.loss, **kwargs, **part)(logits, y.float()))
            assert off != pytest.approx(got, rel=1e-3), part


def test_the_smoke_preset_has_no_step_after_its_end():
    # a built-in preset warned about its own schedule ("× 0.1 at epoch 2 never happens")
    from longtail.engine.multilabel.config import make_multilabel_config

    config = make_multilabel_config("smoke", dataset="x.npz", method="bce")
    assert config.schedule_warnings() == [] and config.milestones() == (1,)
