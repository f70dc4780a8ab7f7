"""The long-tailed multi-label losses beyond the registry-wide contract: bad input, all-negative
rows (defined behaviour), the special cases their papers state, and the detached gradients.

The contract (tests/test_loss_contract.py, tests/test_loss_properties.py) checks them against
their transcriptions in tests/_reference_multilabel_lt.py; this file checks what it cannot.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import longtail as lt
from longtail import functional as LF
from longtail.losses.multilabel import db_statistics, effective_number_weights

COUNTS = [500, 120, 40, 9, 2]
C = len(COUNTS)
MINE = [
    "asl",
    "cb-bce",
    "cb-focal",
    "decoupled-softmax",
    "distribution-balanced",
    "la-bce",
    "pu-mlc",
    "zlpr",
]
BINARY_ONLY = ["pu-mlc", "zlpr"]


def build(name, **kw):
    return lt.create_loss_for_counts(name, COUNTS, **kw)


def problem(n=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = (torch.rand(n, C, generator=g, dtype=torch.float64) * 6 - 3).to(dtype)
    t = (torch.rand(n, C, generator=g) > 0.6).to(dtype)
    return z, t


def test_all_are_registered_in_the_multilabel_family():
    for name in MINE:
        info = lt.get_loss_info(name)
        assert info.family == "multilabel" and info.target == "multilabel"


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", BINARY_ONLY)
def test_soft_targets_refused_where_only_label_sets_mean_something(name):
    z, t = problem()
    soft = t * 0.7
    with pytest.raises(ValueError, match=r"Expected `target` to be 0/1 targets"):
        build(name)(z, soft)
    build(name)(z, t)  # 0/1 taken


@pytest.mark.parametrize("name", sorted(set(MINE) - set(BINARY_ONLY)))
def test_soft_targets_taken_elsewhere(name):
    z, t = problem()
    # the decoupled softmax's negatives are the entries equal to 0: smoothing away every 0 is
    # refused (a loss of 0 with no gradient), soft positives beside 0s are taken
    soft = t * 0.7 if name == "decoupled-softmax" else t * 0.7 + 0.1
    out = build(name)(z, soft)
    assert torch.isfinite(out)


@pytest.mark.parametrize("name", MINE)
def test_shape_mismatch_and_values_outside_are_value_errors(name):
    z, t = problem()
    crit = build(name)
    with pytest.raises(ValueError, match="Expected `target`"):
        crit(z, t[:, :-1])
    with pytest.raises(ValueError, match="Expected `target`"):
        crit(z, t[:-1])
    with pytest.raises(ValueError, match="Expected `target`"):
        crit(z, t * 2)  # not in [0, 1]
    with pytest.raises(ValueError, match="Expected `target`"):
        crit(z, t - 1)


def test_hyper_parameters_are_checked():
    with pytest.raises(ValueError, match="`clip`"):
        lt.create_loss("asl", clip=1.0)
    with pytest.raises(ValueError, match="`gamma_neg`"):
        lt.create_loss("asl", gamma_neg=-1.0)
    with pytest.raises(ValueError, match="`beta`"):
        lt.create_loss("cb-bce", class_counts=COUNTS, beta=1.0)
    for name in ("cb-bce", "cb-focal"):
        with pytest.raises(ValueError, match=r"`mode`.*'class', 'example'"):
            lt.create_loss(name, class_counts=COUNTS, mode="row")
        with pytest.raises(ValueError, match="`mode`"):
            lt.get_loss_info(name).function(*problem(), COUNTS, mode="per-class")
    with pytest.raises(ValueError, match="`rebalance`"):
        lt.create_loss("distribution-balanced", class_counts=COUNTS, rebalance="yes")
    with pytest.raises(ValueError, match="`num_samples`"):  # fewer examples than a class has
        lt.create_loss("la-bce", class_counts=COUNTS, num_samples=100)
    with pytest.raises(ValueError, match="`num_samples`"):  # a class in every example: p = 1
        lt.create_loss("distribution-balanced", class_counts=COUNTS, num_samples=500)
    lt.create_loss("distribution-balanced", class_counts=COUNTS, num_samples=500, ntr=False)
    with pytest.raises(ValueError, match="`scale`"):
        lt.create_loss("decoupled-softmax", scale=0.0)
    with pytest.raises(ValueError, match="`alpha`"):
        lt.create_loss("pu-mlc", alpha=0.0)
    with pytest.raises(ValueError, match="`reduction`"):
        lt.create_loss("pu-mlc", reduction="none")(*problem())
    z, t = problem()
    with pytest.raises(ValueError, match="`weight`"):
        lt.create_loss("zlpr", weight=torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0]))(z, t)


# ----------------------------------------------------------------------- all-negative rows
def test_all_negative_rows_are_defined_everywhere():
    z, t = problem()
    t[0] = 0
    t[3] = 0
    for name in MINE:
        for reduction in ("mean", "sum") if name == "pu-mlc" else ("mean", "sum", "none"):
            x = z.clone().requires_grad_(True)
            out = build(name, reduction=reduction)(x, t)
            out.sum().backward()
            assert torch.isfinite(out).all() and torch.isfinite(x.grad).all(), name


def test_db_all_negative_row_weight_is_the_limit_alpha_plus_one():
    z, t = problem()
    t[2] = 0
    kw = {"ntr": False, "gamma": 0.0, "reduction": "none", "alpha": 0.1}
    weighted = build("distribution-balanced", **kw)(z, t)
    plain = build("distribution-balanced", **kw, rebalance=False)(z, t)
    torch.testing.assert_close(weighted[2], 1.1 * plain[2])
    # and a row of one label y: r_c = n_y / n_c, weights α + σ(β (r − μ))
    t1 = torch.zeros(1, C, dtype=torch.float64)
    t1[0, 3] = 1
    w = build("distribution-balanced", **kw)(z[:1], t1) / build(
        "distribution-balanced", **kw, rebalance=False
    )(z[:1], t1)
    r = torch.tensor([9 / n for n in COUNTS], dtype=torch.float64)
    torch.testing.assert_close(w[0], 0.1 + torch.sigmoid(10.0 * (r - 0.2)))


def test_zlpr_rows_without_positives_or_negatives():
    z, t = problem()
    t[0], t[1] = 0, 1
    per = LF.zlpr_loss(z, t, reduction="none")
    torch.testing.assert_close(per[0], torch.log1p(z[0].exp().sum()))
    torch.testing.assert_close(per[1], torch.log1p((-z[1]).exp().sum()))


def test_zlpr_of_one_class_is_bce():
    z, t = problem(n=12)
    x, y = z[:, :1], t[:, :1]
    torch.testing.assert_close(
        LF.zlpr_loss(x, y, reduction="none"),
        F.binary_cross_entropy_with_logits(x, y, reduction="none")[:, 0],
    )


def test_zlpr_weight_zero_drops_a_class():
    z, t = problem()
    w = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    keep = [0, 2, 3, 4]
    torch.testing.assert_close(
        LF.zlpr_loss(z, t, weight=w, reduction="none"),
        LF.zlpr_loss(z[:, keep], t[:, keep], reduction="none"),
    )


def test_decoupled_softmax_rows_without_positives_count_in_the_mean():
    z, t = problem(n=2)
    t[0] = 0
    t[1] = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0])
    none = LF.decoupled_softmax_loss(z, t, reduction="none")
    assert (none[0] == 0).all() and (none[1, t[1] == 0] == 0).all()
    torch.testing.assert_close(LF.decoupled_softmax_loss(z, t), none[1].sum() / 2)
    # each positive against the negatives only: −log(e^z_c / (e^z_c + e^z_1 + e^z_3 + e^z_4))
    neg = z[1, [1, 3, 4]]
    for c in (0, 2):
        want = torch.logsumexp(torch.cat([z[1, c : c + 1], neg]), 0) - z[1, c]
        torch.testing.assert_close(none[1, c], want / 2)


def test_decoupled_softmax_positive_without_negatives_is_zero():
    z = torch.randn(1, C, dtype=torch.float64)
    assert LF.decoupled_softmax_loss(z, torch.ones(1, C, dtype=torch.float64)).item() == 0.0


def test_pu_mlc_class_without_positive_keeps_its_unlabelled_term():
    z, t = problem()
    t[:, 1] = 0
    per_class = torch.stack(
        [
            LF.pu_mlc_loss(
                z, t, weight=torch.eye(C, dtype=torch.float64)[c], reduction="sum", gamma=0.0
            )
            for c in range(C)
        ]
    )
    col = z[:, 1]
    temp = min(col.std(unbiased=False).item(), 1.0)
    want = torch.log(torch.sigmoid(col / temp).mean())
    torch.testing.assert_close(per_class[1], want)


def test_pu_mlc_batch_of_one_uses_temperature_one():
    z, t = problem(n=1)
    got = LF.pu_mlc_loss(z, t, gamma=0.0, reduction="sum")
    want = (F.logsigmoid(z[0]) - F.logsigmoid(z[0]) * t[0]).sum()  # log mean over one sample
    torch.testing.assert_close(got, want)


# ------------------------------------------------------------------------------- gradients
def test_asl_focusing_weights_are_detached():
    z, t = problem()
    x = z.clone().requires_grad_(True)
    LF.asymmetric_loss(x, t, reduction="sum").backward()
    # the official training's gradient: weights as constants
    y = z.clone().requires_grad_(True)
    p = torch.sigmoid(y.detach())
    w_pos, w_neg = 1.0, (p - 0.05).clamp_min(0) ** 4
    q = torch.clamp(torch.sigmoid(-y) + 0.05, max=1.0)
    (-(t * w_pos * F.logsigmoid(y) + (1 - t) * w_neg * torch.log(q))).sum().backward()
    torch.testing.assert_close(x.grad, y.grad)
    # ... which is not the true derivative (that one would see the weights move)
    u = z.clone().requires_grad_(True)
    pu = torch.sigmoid(u)
    qu = torch.clamp(1 - pu + 0.05, max=1.0)
    wn = (pu - 0.05).clamp_min(0) ** 4
    (-(t * torch.log(pu) + (1 - t) * wn * torch.log(qu))).sum().backward()
    assert not torch.allclose(u.grad, x.grad)


def test_asl_easy_negatives_below_the_margin_are_discarded():
    z = torch.full((1, C), -4.0, dtype=torch.float64, requires_grad=True)  # p = 0.018 < 0.05
    t = torch.zeros(1, C, dtype=torch.float64)
    out = LF.asymmetric_loss(z, t, reduction="sum")
    out.backward()
    assert out.item() == 0.0 and (z.grad == 0).all()


# ------------------------------------------------------------------------- class statistics
def test_effective_number_weights():
    w = effective_number_weights(COUNTS, 0.9999)
    torch.testing.assert_close(w.sum(), torch.tensor(float(C), dtype=torch.float64))
    assert (w[1:] > w[:-1]).all(), "rarer classes weigh more"
    raw = torch.tensor([(1 - 0.9999) / (1 - 0.9999**n) for n in COUNTS], dtype=torch.float64)
    torch.testing.assert_close(w, raw * C / raw.sum())
    assert (effective_number_weights(COUNTS, 0.0) == 1).all()


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_cb_example_mode_on_class_indices_is_cuis_sigmoid_loss(gamma):
    """Cui et al. (CVPR 2019), single-label: CB(z, y) = w_y Σ_c (1 − p_t)^γ BCE(z_c, [c = y]);
    the default per-class mode weights column c by w_c instead, which differs."""
    z, _ = problem(n=16, seed=4)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 3, 4, 0, 1, 0, 0, 2, 0, 1, 0])
    t = F.one_hot(y, C).double()
    p = torch.sigmoid(z)
    p_t = p * t + (1 - p) * (1 - t)
    elem = (1 - p_t) ** gamma * F.binary_cross_entropy_with_logits(z, t, reduction="none")
    w = effective_number_weights(COUNTS, 0.999)
    cui = (w[y].unsqueeze(1) * elem).mean()
    kw = {"beta": 0.999, "mode": "example"}
    name = "cb-focal" if gamma else "cb-bce"
    if gamma:
        kw["gamma"] = gamma
    fn = lt.get_loss_info(name).function
    torch.testing.assert_close(fn(z, y, COUNTS, **kw), cui)
    torch.testing.assert_close(fn(z, t, COUNTS, **kw), cui)  # one-hot rows: the same
    torch.testing.assert_close(build(name, **kw)(z, y), cui, rtol=1e-6, atol=0)
    per_class = fn(z, y, COUNTS, **{**kw, "mode": "class"})
    torch.testing.assert_close(per_class, (w * elem).mean())
    assert not torch.isclose(per_class, cui)


def test_cb_example_mode_averages_the_positive_labels_weights():
    """A multi-label row: the mean weight of its positive labels (DB's ``average_w``); a row with
    none gets 1; an ignored entry is not one of them."""
    z = torch.zeros(3, C, dtype=torch.float64)
    t = torch.tensor([[1, 0, 0, 1, 0], [0, 0, 0, 0, 0], [1, -100, 0, 0, 1]], dtype=torch.float64)
    w = effective_number_weights(COUNTS, 0.99)
    out = LF.class_balanced_bce_loss(z, t, COUNTS, beta=0.99, mode="example", reduction="none")
    bce0 = math.log(2.0)  # BCE at z = 0, whatever the target
    row0 = torch.full((C,), (w[0] + w[3]).item() / 2 * bce0, dtype=torch.float64)
    torch.testing.assert_close(out[0], row0)
    torch.testing.assert_close(out[1], torch.full((C,), bce0, dtype=torch.float64))
    row2 = torch.full((C,), (w[0] + w[4]).item() / 2 * bce0, dtype=torch.float64)
    row2[1] = 0.0
    torch.testing.assert_close(out[2], row2)


def test_la_bce_shift_is_tau_log_prior():
    z, t = problem()
    n = 1000
    got = LF.logit_adjusted_bce_loss(z, t, COUNTS, tau=0.7, num_samples=n, reduction="none")
    prior = torch.tensor(COUNTS, dtype=torch.float64) / n
    want = F.binary_cross_entropy_with_logits(z + 0.7 * prior.log(), t, reduction="none")
    torch.testing.assert_close(got, want)


def test_db_ntr_bias_follows_the_official_code():
    inv, bias = db_statistics(COUNTS, kappa=0.05, lam=2.0, num_samples=1000)
    n = torch.tensor(COUNTS, dtype=torch.float64)
    torch.testing.assert_close(inv, 1 / n)
    torch.testing.assert_close(bias, -torch.log(1000 / n - 1) * 0.05 / 2.0)
    assert bias[0] > bias[-1], "the rare classes' logits are lowered the most"


def test_state_survives_a_round_trip_with_non_default_statistics():
    crit = lt.create_loss(
        "distribution-balanced", class_counts=COUNTS, num_samples=800, kappa=0.2, lam=3.0
    )
    fresh = lt.create_loss(
        "distribution-balanced", class_counts=COUNTS, num_samples=800, kappa=0.2, lam=3.0
    )
    fresh.load_state_dict(crit.state_dict())
    assert {"class_counts", "inv_counts", "bias"} <= set(crit.state_dict())
    z, t = problem(dtype=torch.float32)
    assert math.isfinite(crit(z, t).item())
    torch.testing.assert_close(fresh(z, t), crit(z, t))


def test_decoupled_softmax_refuses_one_column():
    """A (N,) input was read as (N, 1): no positive has a negative to be softmaxed against, so
    the loss was 0 with no gradient, silently."""
    z, y = torch.tensor([2.0, -1.0, 0.5, 3.0]), torch.tensor([1.0, 0.0, 0.0, 1.0])
    for logits, target in ((z, y), (z[:, None], y[:, None])):
        with pytest.raises(ValueError, match=r"C >= 2 .* but got shape \(4,( 1)?\)\."):
            LF.decoupled_softmax_loss(logits, target)
    assert LF.decoupled_softmax_loss(z[None], y[None]) > 0  # one row of four columns
