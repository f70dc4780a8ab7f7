"""Group-DIR's group edges (equal-width, equal-frequency) and its routing diagnostics, in the
library and through the DIR engine's records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from longtail.engine.regression import (
    RegressionConfig,
    check_regression_data,
    prepare_regression_data,
    train_regression,
)
from longtail.regression import (
    GROUP_EDGES,
    GroupDIRHead,
    bin_index,
    equal_width_bins,
    group_edges,
    group_labels,
    routing_diagnostics,
)


def write_csv(path: Path, n: int = 700, seed: int = 0) -> Path:
    """A learnable table with a right-skewed target (as the DIR engine's tests write it)."""
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.normal(size=(3, n))
    y = np.clip(10 * np.exp(0.9 * x1 + 0.3 * x2) + rng.normal(scale=0.5, size=n), 0.5, 120)
    rows = (f"{x1[i]:.5f},{x2[i]:.5f},{x3[i]:.5f},{y[i]:.4f}" for i in range(n))
    path.write_text("x1,x2,x3,y\n" + "\n".join(rows) + "\n")
    return path


TINY = dict(
    target="y",
    bins=5.0,
    val_per_bin=4,
    test_per_bin=4,
    epochs=3,
    batch_size=64,
    hidden=(16, 16),
    lr=1e-2,
    num_groups=5,
    many_threshold=40,
    few_threshold=10,
    threads=1,
)


@pytest.fixture(scope="module")
def csv(tmp_path_factory) -> str:
    return str(write_csv(tmp_path_factory.mktemp("routing") / "skewed.csv"))


# ---- group edges ------------------------------------------------------------------------------
def test_equal_width_edges_are_the_group_labels_edges():
    y = torch.from_numpy(np.random.default_rng(0).lognormal(size=500))
    edges = group_edges(y, 7)
    assert torch.equal(edges, equal_width_bins(y, 7))
    assert torch.equal(bin_index(y, edges), group_labels(y, 7))


@pytest.mark.parametrize("n,g", [(1000, 20), (1003, 7), (40, 40), (57, 2)])
def test_equal_frequency_groups_hold_equal_counts(n, g):
    y = torch.from_numpy(np.random.default_rng(n).lognormal(sigma=1.5, size=n))
    edges = group_edges(y, g, "equal-frequency")
    assert edges.shape == (g + 1,) and edges.dtype == torch.float64
    assert float(edges[0]) == float(y.min()) and float(edges[-1]) == float(y.max())
    assert bool((edges[1:] > edges[:-1]).all())
    counts = torch.bincount(bin_index(y, edges), minlength=g)
    assert int(counts.max() - counts.min()) <= 1  # continuous targets: no ties
    assert int(counts.sum()) == n


def test_equal_frequency_cuts_the_head_finely_and_the_tail_coarsely():
    y = np.random.default_rng(1).lognormal(sigma=1.0, size=5000)
    width = np.diff(group_edges(y, 10, "equal-frequency").numpy())
    assert width.argmax() == len(width) - 1  # the sparse tail is one wide group
    assert width[-1] > 10 * width[4]


def test_equal_frequency_refuses_coinciding_edges_and_bad_arguments():
    y = [1.0] * 90 + [2.0] * 5 + [3.0] * 5
    with pytest.raises(ValueError, match="equal-frequency groups"):
        group_edges(y, 10, "equal-frequency")
    with pytest.raises(ValueError, match="kind"):
        group_edges([0.0, 1.0], 2, "quantile")
    with pytest.raises(ValueError, match="num_groups"):
        group_edges([0.0, 1.0], 1)
    with pytest.raises(ValueError, match="all equal"):
        group_edges([2.0, 2.0], 2, "equal-frequency")
    with pytest.raises(ValueError, match="at most 3"):
        group_edges([0.0, 2.0], 5, bin_width=1.0)
    assert GROUP_EDGES == ("equal-width", "equal-frequency")


# ---- routing diagnostics ----------------------------------------------------------------------
def _case():
    # 6 samples, 3 groups; experts predict 0, 10, 20; targets near their group's expert
    logits = torch.tensor(
        [[5.0, 0, 0], [0, 5.0, 0], [5.0, 0, 0], [0, 5.0, 0], [5.0, 0, 0], [0, 0, 5.0]]
    )
    experts = torch.tensor([[0.0, 10.0, 20.0]]).expand(6, 3).clone()
    y = [1.0, 11.0, 12.0, 19.0, 21.0, 22.0]
    groups = [0, 1, 1, 2, 2, 2]
    regions = ["many", "many", "medium", "few", "few", "few"]
    return logits, experts, y, groups, regions


def test_routing_diagnostics_by_hand():
    d = routing_diagnostics(*_case())
    a = d["all"]
    # routed: 0, 1, 0, 1, 0, 2 against true 0, 1, 1, 2, 2, 2
    assert a["n"] == 6
    assert a["accuracy"] == pytest.approx(3 / 6)
    assert a["within_one"] == pytest.approx(5 / 6)
    assert a["mean_shift"] == pytest.approx((0 + 0 - 1 - 1 - 2 + 0) / 6)
    assert a["mean_distance"] == pytest.approx(4 / 6)
    assert a["mean_distance_wrong"] == pytest.approx(4 / 3)
    hard = [1, 1, 12, 9, 21, 2]
    assert a["mae"] == pytest.approx(np.mean(hard))
    assert a["mae_routed_right"] == pytest.approx((1 + 1 + 2) / 3)
    assert a["mae_routed_wrong"] == pytest.approx((12 + 9 + 21) / 3)
    assert a["mae_wrong_if_right"] == pytest.approx((2 + 1 + 1) / 3)
    assert a["mae_true_expert"] == pytest.approx(np.mean([1, 1, 2, 1, 1, 2]))
    assert a["wrong_error_share"] == pytest.approx(42 / 46)
    few = d["few"]
    assert few["n"] == 3 and few["accuracy"] == pytest.approx(1 / 3)
    assert few["mean_shift"] == pytest.approx(-1.0)
    assert d["medium"]["accuracy"] == 0.0 and d["medium"]["mae_routed_right"] is None
    assert d["per_group"]["n"] == [1, 2, 3]
    assert d["per_group"]["accuracy"] == pytest.approx([1.0, 0.5, 1 / 3])
    assert d["per_group"]["mean_predicted"] == pytest.approx([0.0, 0.5, 1.0])
    assert list(d) == ["all", "many", "medium", "few", "per_group"]


def test_routing_diagnostics_agree_with_the_head():
    torch.manual_seed(0)
    head = GroupDIRHead(8, 5)
    h = torch.randn(300, 8)
    y = torch.randn(300, dtype=torch.float64)
    g = torch.randint(0, 5, (300,))
    logits, hard, experts = head(h)
    soft = GroupDIRHead(8, 5, routing="soft")
    soft.load_state_dict(head.state_dict())
    _, mix, _ = soft(h)
    d = routing_diagnostics(logits, experts, y, g)
    yy = y.numpy()
    assert d["all"]["mae"] == pytest.approx(
        float(np.abs(hard.detach().double().numpy() - yy).mean())
    )
    assert d["all"]["mae_soft"] == pytest.approx(
        float(np.abs(mix.detach().double().numpy() - yy).mean()), rel=1e-5
    )
    _, true, _ = head(h, g)
    assert d["all"]["mae_true_expert"] == pytest.approx(
        float(np.abs(true.detach().double().numpy() - yy).mean()), rel=1e-6
    )
    assert d["per_group"]["n"][3] is not None and sum(d["per_group"]["n"]) == 300


def test_routing_diagnostics_empty_groups_and_errors():
    logits, experts, y, groups, _ = _case()
    d = routing_diagnostics(logits, experts, y, groups, ["few"] * 6)
    assert list(d) == ["all", "few", "per_group"]
    big = torch.zeros(6, 4)
    d = routing_diagnostics(big, big, [0.0] * 6, [0] * 6)
    assert d["per_group"]["n"] == [6, 0, 0, 0] and d["per_group"]["accuracy"][1] is None
    with pytest.raises(ValueError, match="expert_outputs"):
        routing_diagnostics(logits, experts[:, :2], y, groups)
    with pytest.raises(ValueError, match="targets"):
        routing_diagnostics(logits, experts, y[:5], groups)
    with pytest.raises(ValueError, match="groups"):
        routing_diagnostics(logits, experts, y, [0, 1, 2, 3, 0, 0])
    with pytest.raises(ValueError, match="regions"):
        routing_diagnostics(logits, experts, y, groups, ["few"])
    with pytest.raises(ValueError, match="group_logits"):
        routing_diagnostics(logits[0], experts, y, groups)


# ---- the engine ------------------------------------------------------------------------------
def tiny(csv: str, **kw) -> RegressionConfig:
    return RegressionConfig(**{"dataset": csv, **TINY, **kw})


def test_group_edges_default_leaves_the_identity_unchanged(csv):
    default = tiny(csv, method="group-dir")
    assert default.group_edges == "equal-width"
    assert "group_edges" not in default.identity()
    assert default.to_dict()["group_edges"] == "equal-width"
    freq = tiny(csv, method="group-dir", group_edges="equal-frequency")
    assert freq.identity()["group_edges"] == "equal-frequency"
    assert RegressionConfig.from_dict(freq.to_dict()).identity() == freq.identity()
    with pytest.raises(ValueError, match="group_edges"):
        tiny(csv, method="group-dir", group_edges="quantile")


@pytest.mark.parametrize("edges", ["equal-width", "equal-frequency"])
def test_group_dir_records_carry_routing_diagnostics(csv, edges):
    rec = train_regression(tiny(csv, method="group-dir", group_edges=edges), progress=False)
    m = rec["metrics"]
    r = m["routing"]
    data = prepare_regression_data(tiny(csv))
    assert r["all"]["n"] == len(data.y_test)
    assert r["all"]["mae"] == pytest.approx(m["mae"], rel=1e-6)
    for region in ("many", "medium", "few"):
        if m[f"mae_{region}"] is not None:
            assert r[region]["mae"] == pytest.approx(m[f"mae_{region}"], rel=1e-6)
    assert len(r["group_edges"]) == 6 and len(r["train_per_group"]) == 5
    assert sum(r["train_per_group"]) == len(data.y_train)
    expected = group_edges(data.y_train, 5, edges).tolist()
    assert r["group_edges"] == pytest.approx(expected)
    if edges == "equal-frequency":
        counts = r["train_per_group"]
        assert max(counts) - min(counts) <= 1
    plain = train_regression(tiny(csv, method="vanilla"), progress=False)
    assert "routing" not in plain["metrics"]


def test_equal_frequency_groups_that_coincide_are_refused_before_training(tmp_path):
    path = tmp_path / "ties.csv"
    rng = np.random.default_rng(0)
    y = np.concatenate([np.full(300, 1.0), rng.uniform(2, 50, size=60)])
    x = y + rng.normal(size=y.size)
    path.write_text("x,y\n" + "\n".join(f"{a:.4f},{b:.4f}" for a, b in zip(x, y, strict=True)))
    cfg = RegressionConfig(
        dataset=str(path),
        target="y",
        bins=5.0,
        method="group-dir",
        group_edges="equal-frequency",
        num_groups=8,
        val_per_bin=4,
        test_per_bin=4,
    )
    with pytest.raises(ValueError, match="equal-frequency groups"):
        check_regression_data(cfg)
