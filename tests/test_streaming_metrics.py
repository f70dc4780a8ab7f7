"""Streaming metrics (longtail.metrics_streaming, longtail.metrics_torchmetrics): batch by batch
they give what the functional forms give on the concatenated batches, also summed over two gloo
processes, and agree with torchmetrics' own metrics where both define the same quantity."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import longtail as lt
from longtail import metrics as F
from longtail import metrics_streaming as S

C = 6
COUNTS = [400, 150, 60, 25, 12, 3]  # many, many, medium, medium, few, few
SIZES = [0, 1, 9, 1, 0, 17, 4, 1, 30]  # empty batches and batches of one among them


def _batches(seed: int = 0, sizes=SIZES, absent: int | None = 5, layout: str = "mixed"):
    """Random logit batches; class ``absent`` never occurs in the targets, and a batch of one
    misses most classes. Some batches are non-contiguous (a transposed or strided view)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(sizes):
        if absent is None:
            target = torch.randint(0, C, (n,), generator=g)
        else:
            target = torch.randint(0, C - 1, (n,), generator=g)
            target[target >= absent] += 1  # skip the absent class
        z = 2.0 * torch.randn(n, C, generator=g)
        z[torch.arange(n), target] += torch.rand(n, generator=g) * 3  # better than chance
        if layout == "mixed" and i % 3 == 1:
            z = z.t().contiguous().t()  # same values, column-major
        elif layout == "mixed" and i % 3 == 2:
            wide = torch.zeros(n, 2 * C)
            wide[:, ::2] = z
            z = wide[:, ::2]  # a strided view
        out.append((z, target))
    return out


def _cat(batches):
    return torch.cat([z for z, _ in batches]), torch.cat([t for _, t in batches])


def _stream(metric, batches):
    for z, t in batches:
        metric.update(z, t)
    return metric.compute()


def test_batches_are_what_they_claim():
    batches = _batches()
    assert not all(z.is_contiguous() for z, _ in batches if len(z) > 1)
    _, t = _cat(batches)
    assert (t == 5).sum() == 0 and set(t.tolist()) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_metrics_equal_functional_forms(seed):
    batches = _batches(seed)
    z, t = _cat(batches)
    acc = _stream(S.PerClassAccuracy(C), batches)
    want = F.per_class_accuracy(z, t)
    assert acc.dtype == torch.float64 and acc.device.type == "cpu"
    torch.testing.assert_close(acc, want, rtol=0, atol=0, equal_nan=True)
    assert math.isnan(acc[5])
    err = _stream(S.PerClassError(C), batches)
    assert err[:5] == F.per_class_error(z, t)[:5] and math.isnan(err[5])
    assert _stream(S.BalancedAccuracy(C), batches) == F.balanced_accuracy(z, t)
    assert _stream(S.Top1Error(C), batches) == F.top1_error(z, t)
    shots = _stream(S.ShotAccuracy(COUNTS), batches)
    want_shots = F.shot_accuracy(want, COUNTS)
    assert shots["many_acc"] == want_shots["many_acc"]
    assert shots["medium_acc"] == want_shots["medium_acc"]
    assert shots["few_acc"] == want_shots["few_acc"]


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_calibration_metrics_equal_functional_forms(n_bins):
    batches = _batches(3)
    z, t = _cat(batches)
    ece = _stream(S.ExpectedCalibrationError(C, n_bins=n_bins), batches)
    assert ece == pytest.approx(F.expected_calibration_error(z, t, n_bins), rel=1e-12, abs=1e-12)
    cw = _stream(S.ClasswiseCalibrationError(C, n_bins=n_bins), batches)
    assert cw == pytest.approx(F.classwise_calibration_error(z, t, n_bins), rel=1e-12, abs=1e-12)


def test_from_probs():
    batches = [(torch.softmax(z, 1), t) for z, t in _batches(4)]
    z, t = _cat(batches)
    ece = _stream(S.ExpectedCalibrationError(C, from_probs=True), batches)
    assert ece == pytest.approx(F.expected_calibration_error(z, t, from_probs=True), abs=1e-12)
    cw = _stream(S.ClasswiseCalibrationError(C, from_probs=True), batches)
    assert cw == pytest.approx(F.classwise_calibration_error(z, t, from_probs=True), abs=1e-12)
    with pytest.raises(ValueError, match="probabilities in"):
        S.ExpectedCalibrationError(C, from_probs=True).update(torch.full((2, C), 2.0), t[:2])


def _same_record(got, want):
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key in ("ece", "classwise_ece"):
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12)
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_classification_metrics_equal_the_record(dtype):
    batches = [(z.to(dtype), t) for z, t in _batches(5)]
    z, t = _cat(batches)
    got = _stream(S.ClassificationMetrics(COUNTS), batches)
    want = F.classification_metrics(z, t, COUNTS)
    _same_record(got, want)
    assert got["per_class_error"][5] is None
    json.dumps(got)
    got = _stream(S.ClassificationMetrics(COUNTS, n_bins=10, classwise_ece=True), batches)
    assert got["classwise_ece"] == pytest.approx(
        F.classwise_calibration_error(z, t, 10), rel=1e-12, abs=1e-12
    )
    del got["classwise_ece"]
    _same_record(got, F.classification_metrics(z, t, COUNTS, n_bins=10))


def test_one_batch_and_many_batches_of_one():
    batches = _batches(6, sizes=[25], layout="contiguous")
    z, t = _cat(batches)
    ones = [(z[i : i + 1], t[i : i + 1]) for i in range(len(t))]
    a = _stream(S.ClassificationMetrics(COUNTS, classwise_ece=True), batches)
    b = _stream(S.ClassificationMetrics(COUNTS, classwise_ece=True), ones)
    _same_record(a, b)


def test_predicted_labels_for_the_accuracy_metrics():
    batches = [(z.argmax(1), t) for z, t in _batches(7)]
    z, t = _cat(batches)
    assert _stream(S.BalancedAccuracy(C), batches) == F.balanced_accuracy(z, t, C)
    m = S.PerClassAccuracy(C)
    m.update(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"predicted labels in \[0, 5\]"):
        m.update(torch.tensor([6]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"shape \(0, 6\)"):  # ECE needs scores
        S.ExpectedCalibrationError(C).update(torch.zeros(0, dtype=torch.long), t[:0])
    with pytest.raises(ValueError, match="floating-point"):
        S.ExpectedCalibrationError(C).update(torch.tensor([[1, 2, 3, 4, 5, 6]]), t[:1])


def test_bad_batches_and_no_data():
    m = S.ClassificationMetrics(COUNTS)
    with pytest.raises(ValueError, match="no example"):
        m.compute()
    m.update(torch.zeros(0, C), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="no example"):
        m.compute()
    with pytest.raises(ValueError, match=r"of shape \(0, 6\)"):
        m.update(torch.zeros(0, C + 1), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"of shape \(N, 6\)"):
        m.update(torch.zeros(2, C + 1), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"class labels in \[0, 5\]"):
        m.update(torch.zeros(1, C), torch.tensor([6]))
    with pytest.raises(ValueError, match="NaN"):
        m.update(torch.full((1, C), math.nan), torch.tensor([0]))
    with pytest.raises(ValueError, match="one row per target"):
        m.update(torch.zeros(3, C), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="num_classes"):
        S.BalancedAccuracy(0)
    with pytest.raises(ValueError, match="few_threshold"):
        S.ShotAccuracy(COUNTS, many_threshold=10, few_threshold=20)
    with pytest.raises(ValueError, match="train_counts"):
        S.ClassificationMetrics([3, -1])


def test_reset_merge_and_state_dict():
    batches = _batches(8)
    z, t = _cat(batches)
    half = len(batches) // 2
    a, b = S.ClassificationMetrics(COUNTS), S.ClassificationMetrics(COUNTS)
    _stream(a, batches[:half])
    _stream(b, batches[half:])
    a.merge(b)
    _same_record(a.compute(), F.classification_metrics(z, t, COUNTS))
    c = S.ClassificationMetrics(COUNTS)
    c.load_state_dict(a.state_dict())
    assert c.compute() == a.compute()
    a.reset()
    with pytest.raises(ValueError, match="no example"):
        a.compute()
    _stream(a, batches)
    _same_record(a.compute(), c.compute())
    with pytest.raises(ValueError, match="same settings"):
        a.merge(S.ClassificationMetrics(COUNTS, n_bins=10))
    with pytest.raises(ValueError, match="statistics"):
        c.load_state_dict({"correct": torch.zeros(C)})


def test_compute_does_not_change_the_state_and_exported():
    m = lt.ClassificationMetrics(COUNTS)
    assert lt.metrics_streaming is S
    _stream(m, _batches(9))
    first = m.compute()
    assert m.compute() == first
    assert repr(m) == "ClassificationMetrics(num_classes=6)"


def _loop_classwise(probs, target, n_bins):
    """Class-wise ECE from its definition: for every class, bin its probability of every
    example, compare the bin's mean probability with the class's frequency in the bin."""
    n, c = probs.shape
    total = 0.0
    for k in range(c):
        for b in range(n_bins):
            lo, hi = b / n_bins, (b + 1) / n_bins
            rows = [
                i
                for i in range(n)
                if lo < float(probs[i, k]) <= hi or (b == 0 and float(probs[i, k]) == 0.0)
            ]
            if rows:
                freq = sum(int(target[i]) == k for i in rows) / len(rows)
                conf = sum(float(probs[i, k]) for i in rows) / len(rows)
                total += len(rows) / n * abs(freq - conf)
    return 100.0 * total / c


@pytest.mark.parametrize("n_bins", [1, 5, 15])
def test_classwise_ece_from_its_definition(n_bins):
    z, t = _cat(_batches(10))
    probs = torch.softmax(z.double(), 1)
    want = _loop_classwise(probs, t, n_bins)
    got = F.classwise_calibration_error(probs, t, n_bins, from_probs=True)
    assert got == pytest.approx(want, rel=1e-10)
    # a one-hot prediction of the truth is perfectly calibrated, and with two classes each
    # class's bins mirror the other's
    assert F.classwise_calibration_error(torch.eye(4), torch.arange(4), from_probs=True) == 0.0
    with pytest.raises(ValueError, match="n_bins"):
        F.classwise_calibration_error(z, t, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_state_follows_the_inputs_to_the_gpu():
    batches = _batches(11)
    z, t = _cat(batches)
    m = S.ClassificationMetrics(COUNTS, classwise_ece=True)
    for zb, tb in batches:
        m.update(zb.cuda(), tb.cuda())
    assert m.device.type == "cuda"
    got = m.compute()
    want = F.classification_metrics(z, t, COUNTS)
    assert got["per_class_error"] == want["per_class_error"]
    assert got["ece"] == pytest.approx(want["ece"], abs=1e-3)


# ---- torchmetrics -------------------------------------------------------------------------------
def _tm():
    return pytest.importorskip(
        "torchmetrics", reason="torchmetrics is not installed (pip install torchmetrics)"
    )


def _as_tensor(value):
    """A streaming value as the torchmetrics form's float64 tensor (None: NaN)."""
    if isinstance(value, torch.Tensor):
        return value.double()
    if isinstance(value, list):
        return torch.tensor([math.nan if v is None else v for v in value], dtype=torch.float64)
    return torch.tensor(math.nan if value is None else value, dtype=torch.float64)


def test_torchmetrics_adapters_show_their_arguments():
    # help() showed (*args, **kwargs) for every adapter: now the streaming metric's arguments,
    # ignore_index, and torchmetrics' own keywords
    _tm()
    import inspect

    from longtail import metrics_torchmetrics as T

    ece = inspect.signature(T.ExpectedCalibrationError).parameters
    assert list(ece) == [
        "num_classes",
        "n_bins",
        "from_probs",
        "ignore_index",
        "torchmetrics_kwargs",
    ]
    assert ece["n_bins"].default == 15
    assert next(iter(inspect.signature(T.ClassificationMetrics).parameters)) == "train_counts"
    assert T.Top1Error(C, ignore_index=-100, sync_on_compute=False)._metric.ignore_index == -100


def test_torchmetrics_adapters_give_the_streaming_numbers():
    _tm()
    from longtail import metrics_torchmetrics as T

    batches = _batches(12)
    z, t = _cat(batches)
    for name, args in [
        ("Top1Error", (C,)),
        ("PerClassAccuracy", (C,)),
        ("PerClassError", (C,)),
        ("BalancedAccuracy", (C,)),
        ("ShotAccuracy", (COUNTS,)),
        ("ExpectedCalibrationError", (C, 10)),
        ("ClasswiseCalibrationError", (C, 10)),
        ("ClassificationMetrics", (COUNTS,)),
    ]:
        tm, st = getattr(T, name)(*args), getattr(S, name)(*args)
        got, want = _stream(tm, batches), _stream(st, batches)
        if isinstance(want, dict):
            assert got.keys() == want.keys()
            pairs = [(got[k], want[k]) for k in want]
        else:
            pairs = [(got, want)]
        for g, w in pairs:
            torch.testing.assert_close(g, _as_tensor(w), rtol=1e-12, atol=1e-12, equal_nan=True)
    bacc = T.BalancedAccuracy(C)
    bacc.update(z, t)
    bacc.reset()
    bacc.update(z[:0], t[:0])
    with pytest.raises(ValueError, match="no example"):
        bacc.compute()


def test_torchmetrics_forward_on_a_batch_with_nothing_to_measure_is_nan():
    """metric(logits, target) in a Lightning step gives the batch's own value: an empty batch,
    or one whose every target is ignore_index (padding), is NaN (it raised "no example", and
    ended the training step); the running value is that of the measured batches alone."""
    T = pytest.importorskip("longtail.metrics_torchmetrics")
    z, t = _cat(_batches(absent=None))
    pad = torch.full((2,), -100)
    for cls, args in [
        (T.Top1Error, (C,)),
        (T.BalancedAccuracy, (C,)),
        (T.PerClassError, (C,)),
        (T.ShotAccuracy, (COUNTS,)),
        (T.ExpectedCalibrationError, (C,)),
        (T.ClassificationMetrics, (COUNTS,)),
    ]:
        metric, alone = cls(*args, ignore_index=-100), cls(*args, ignore_index=-100)
        for batch in ((z[:2], pad), (z[:0], t[:0])):
            got = metric(*batch)
            values = got.values() if isinstance(got, dict) else [got]
            assert all(torch.isnan(v).all() for v in values), cls.__name__
        metric(z, t)
        alone.update(z, t)
        torch.testing.assert_close(metric.compute(), alone.compute(), equal_nan=True)
        metric.reset()
        metric(z[:2], pad)
        with pytest.raises(ValueError, match="only examples whose target is ignore_index"):
            metric.compute()  # a whole epoch of padding is still no measurement


@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_ignore_index_leaves_those_examples_out(ignore_index):
    """``ignore_index`` drops the examples with that target, in every metric and in the
    torchmetrics forms: the same numbers as the batches without them (a batch left empty adds
    nothing); predicted labels too."""
    _tm()
    from longtail import metrics_torchmetrics as T

    batches, kept = [], []
    for i, (z, t) in enumerate(_batches(21)):
        masked = t.masked_fill(torch.arange(len(t)) % 3 == i % 3, ignore_index)
        batches.append((z, masked))
        keep = masked != ignore_index  # with ignore_index=2, true 2s go too
        kept.append((z[keep], t[keep]))
    assert sum(len(t) for _, t in kept) < sum(len(t) for _, t in batches)
    for name, args in [
        ("Top1Error", (C,)),
        ("PerClassAccuracy", (C,)),
        ("ExpectedCalibrationError", (C, 10)),
        ("ClasswiseCalibrationError", (C, 10)),
        ("ClassificationMetrics", (COUNTS,)),
    ]:
        want = _stream(getattr(S, name)(*args), kept)
        got = _stream(getattr(S, name)(*args, ignore_index=ignore_index), batches)
        tm_got = _stream(getattr(T, name)(*args, ignore_index=ignore_index), batches)
        if isinstance(want, dict):
            assert got == want
            for k in want:
                torch.testing.assert_close(tm_got[k], _as_tensor(want[k]), equal_nan=True)
        else:
            torch.testing.assert_close(_as_tensor(got), _as_tensor(want), equal_nan=True)
            torch.testing.assert_close(tm_got, _as_tensor(want), equal_nan=True)
    labels = [(z.argmax(1), t) for z, t in batches]
    want = _stream(S.Top1Error(C), [(z.argmax(1), t) for z, t in kept])
    assert _stream(S.Top1Error(C, ignore_index=ignore_index), labels) == want
    if ignore_index == -100:
        with pytest.raises(ValueError, match="class labels in"):  # without it: out of range
            _stream(S.Top1Error(C), batches)
    with pytest.raises(ValueError, match="`ignore_index`"):
        S.Top1Error(C, ignore_index=True)
    with pytest.raises(ValueError, match="`other`"):
        S.Top1Error(C, ignore_index=ignore_index).merge(S.Top1Error(C))


def _every_class_batches(seed):
    """Batches whose union has every class (torchmetrics' macro accuracy counts a class that is
    predicted but never a target as 0), with confidences away from the bin edges."""
    batches = _batches(seed, absent=None)
    return [(z.double(), t) for z, t in batches]


@pytest.mark.parametrize("seed", [13, 14])
def test_torchmetrics_own_metrics_agree(seed):
    tmx = _tm()
    from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

    from longtail import metrics_torchmetrics as T

    batches = _every_class_batches(seed)
    _, t = _cat(batches)
    assert set(t.tolist()) == set(range(C))
    theirs = MulticlassAccuracy(num_classes=C, average="macro")
    ours = T.BalancedAccuracy(C)
    for zb, tb in batches:
        if len(tb):  # torchmetrics refuses nothing, but skip its empty-batch warnings
            theirs.update(zb, tb)
        ours.update(zb, tb)
    assert float(ours.compute()) == pytest.approx(100 * float(theirs.compute()), abs=1e-4)
    collection = tmx.MetricCollection(
        {
            "ours": T.ExpectedCalibrationError(C, n_bins=10),
            "theirs": MulticlassCalibrationError(num_classes=C, n_bins=10, norm="l1"),
        }
    )
    for zb, tb in batches:
        if len(tb):
            collection.update(zb, tb)
    out = collection.compute()
    assert float(out["ours"]) == pytest.approx(100 * float(out["theirs"]), abs=1e-3)


# ---- two gloo processes -------------------------------------------------------------------------
WORLD = 2


def _shard(rank: int):
    """Rank 0 gets the even batches, rank 1 the odd ones and an empty one."""
    batches = _batches(15)
    mine = batches[rank::WORLD]
    if rank == 1:
        mine.append((torch.zeros(0, C), torch.zeros(0, dtype=torch.long)))
    return mine


def _ddp_worker(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        results = {}
        full = _stream(S.ClassificationMetrics(COUNTS, classwise_ece=True), _shard(rank))
        results["full"] = full
        results["bacc"] = _stream(S.BalancedAccuracy(C), _shard(rank))
        results["local"] = _stream(S.BalancedAccuracy(C, sync_on_compute=False), _shard(rank))
        idle = S.Top1Error(C)  # a rank without a batch still takes part
        if rank == 0:
            for zb, tb in _shard(0):
                idle.update(zb, tb)
        else:
            idle.update(torch.zeros(0, C), torch.zeros(0, dtype=torch.long))
        results["idle"] = idle.compute()
        try:
            from longtail import metrics_torchmetrics as T
        except ImportError:
            results["tm"] = None
        else:
            tm = T.ClassificationMetrics(COUNTS, classwise_ece=True)
            for zb, tb in _shard(rank):
                tm.update(zb, tb)
            results["tm"] = {
                k: v.tolist() if v.dim() else float(v) for k, v in tm.compute().items()
            }
        with open(f"{out}.{rank}", "w") as f:
            json.dump(results, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_sums_over_two_gloo_processes_equal_one_process(tmp_path):
    store, out = str(tmp_path / "store"), str(tmp_path / "out")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.start_processes(_ddp_worker, args=(store, out), nprocs=WORLD, start_method="spawn")
    ranks = [json.loads((tmp_path / f"out.{r}").read_text()) for r in range(WORLD)]
    z, t = _cat(_batches(15))
    want = F.classification_metrics(z, t, COUNTS)
    want["classwise_ece"] = F.classwise_calibration_error(z, t)
    for r, res in enumerate(ranks):
        _same_record(res["full"], want)
        assert res["bacc"] == F.balanced_accuracy(z, t)
        zl, tl = _cat(_shard(r))
        assert res["local"] == F.balanced_accuracy(zl, tl)  # sync_on_compute=False
        assert res["idle"] == F.top1_error(*_cat(_shard(0)))
        if res["tm"] is not None:
            for key, value in want.items():
                got = res["tm"][key]
                if isinstance(value, list):
                    value = [math.nan if v is None else v for v in value]
                    assert got[:5] == pytest.approx(value[:5], rel=1e-12)
                    assert math.isnan(got[5])
                else:
                    assert got == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert ranks[0]["local"] != ranks[1]["local"]


def test_an_infinite_logit_does_not_poison_the_running_ece():
    z = torch.tensor([[math.inf, 0.0, 0.0], [0.0, 1.0, 0.0]])
    y = torch.tensor([0, 1])
    m = lt.ClassificationMetrics([500, 50, 5])
    m.update(z, y)
    m.update(torch.tensor([[0.5, 0.2, 0.1]]), torch.tensor([2]))
    ece = m.compute()["ece"]
    whole = torch.cat([z, torch.tensor([[0.5, 0.2, 0.1]])])
    labels = torch.cat([y, torch.tensor([2])])
    assert math.isfinite(ece)
    assert ece == pytest.approx(F.expected_calibration_error(whole, labels))


def test_a_merge_refused_names_the_setting_that_differs():
    with pytest.raises(ValueError, match="with ignore_index -100, not None"):
        S.BalancedAccuracy(5).merge(S.BalancedAccuracy(5, ignore_index=-100))
    with pytest.raises(ValueError, match=r"ece_count of shape \(10,\), not \(15,\)"):
        S.ExpectedCalibrationError(5).merge(S.ExpectedCalibrationError(5, n_bins=10))
    with pytest.raises(ValueError, match=r"but got Top1Error\(num_classes=5\)\."):
        S.BalancedAccuracy(5).merge(S.Top1Error(5))
