"""Group-DIR (Pu et al., AAAI 2025): soft labels, the ordinal group-aware contrastive loss, the
multi-expert head and the full objective, against loop transcriptions of the paper's formulas."""

from __future__ import annotations

import math
import resource

import pytest
import torch

from longtail import regression as ltr


def ref_contrastive(h, g, t):
    """L_grc as written: a triple loop over anchors i, positives j and the ≥-distance set k."""

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
            sum(x * x for x in a) * sum(y * y for y in b)
        )

    b = len(h)
    total = 0.0
    for i in range(b):
        for j in range(b):
            if j == i:
                continue
            num = cos(h[i], h[j]) / t
            den = [
                cos(h[i], h[k]) / t
                for k in range(b)
                if k != i and abs(g[i] - g[k]) >= abs(g[i] - g[j])
            ]
            m = max(den)
            total += -(num - (m + math.log(sum(math.exp(v - m) for v in den))))
    return total / (b * (b - 1))


def ref_soft_labels(g, num_groups, beta):
    logits = [num_groups - beta * abs(k - g) for k in range(num_groups)]
    m = max(logits)
    z = sum(math.exp(v - m) for v in logits)
    return [math.exp(v - m) / z for v in logits]


# --- soft labels -----------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 3.0])
def test_soft_labels_sum_to_one_peak_at_the_group_and_descend_symmetrically(beta):
    G = 9
    groups = torch.arange(G)
    q = ltr.descending_soft_labels(groups, G, beta, dtype=torch.float64)
    assert q.shape == (G, G)
    torch.testing.assert_close(q.sum(1), torch.ones(G, dtype=torch.float64))
    for g in range(G):
        torch.testing.assert_close(q[g], torch.tensor(ref_soft_labels(g, G, beta)).double())
        if beta > 0:
            assert int(q[g].argmax()) == g
            for d in range(1, G):
                lo, hi = g - d, g + d
                if lo >= 0 and hi < G:
                    assert q[g, lo].item() == pytest.approx(q[g, hi].item())
                if lo >= 0:
                    assert q[g, lo] < q[g, lo + 1]
                    assert (q[g, lo] / q[g, lo + 1]).item() == pytest.approx(math.exp(-beta))
        else:
            torch.testing.assert_close(q[g], torch.full((G,), 1 / G, dtype=torch.float64))


def test_soft_labels_bad_input():
    with pytest.raises(ValueError, match="num_groups"):
        ltr.descending_soft_labels(torch.tensor([0]), 1)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        ltr.descending_soft_labels(torch.tensor([0, 4]), 4)
    with pytest.raises(ValueError, match="integer"):
        ltr.descending_soft_labels(torch.tensor([0.0, 1.0]), 4)
    with pytest.raises(ValueError, match="beta"):
        ltr.descending_soft_labels(torch.tensor([0]), 4, beta=-1.0)
    assert ltr.descending_soft_labels(torch.zeros(0, dtype=torch.long), 4).shape == (0, 4)


# --- contrastive loss ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("t", [0.1, 2.0])
def test_contrastive_loss_matches_triple_loop_with_ties(seed, t):
    g = torch.Generator().manual_seed(seed)
    b = 9
    h = torch.randn(b, 4, generator=g, dtype=torch.float64)
    groups = torch.randint(0, 4, (b,), generator=g)  # many ties in group distance
    got = ltr.group_contrastive_loss(h, groups, t)
    assert got.item() == pytest.approx(ref_contrastive(h.tolist(), groups.tolist(), t), rel=1e-10)


def test_contrastive_loss_with_real_labels_is_rank_n_contrast_with_cosine():
    g = torch.Generator().manual_seed(7)
    h = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = torch.rand(7, generator=g, dtype=torch.float64) * 10
    got = ltr.group_contrastive_loss(h, y, 2.0)
    assert got.item() == pytest.approx(ref_contrastive(h.tolist(), y.tolist(), 2.0), rel=1e-10)
    assert ltr.GroupContrastiveLoss(2.0)(h, y).item() == pytest.approx(got.item())


def test_contrastive_loss_is_stable_at_tiny_temperature():
    g = torch.Generator().manual_seed(3)
    h = torch.randn(16, 8, generator=g)
    groups = torch.randint(0, 5, (16,), generator=g)
    loss = ltr.group_contrastive_loss(h, groups, temperature=1e-3)  # logits up to ±1000
    assert torch.isfinite(loss)
    ref = ref_contrastive(h.double().tolist(), groups.tolist(), 1e-3)
    assert loss.item() == pytest.approx(ref, rel=1e-4)


@pytest.mark.parametrize(("b", "num_groups", "t"), [(256, 20, 2.0), (64, 40, 0.05), (33, 2, 1.0)])
def test_contrastive_loss_paths_agree(b, num_groups, t):
    """Integer groups take the sort-free path; the same labels as floats take the sorted one."""
    g = torch.Generator().manual_seed(b)
    h = torch.randn(b, 16, generator=g, dtype=torch.float64, requires_grad=True)
    groups = torch.randint(0, num_groups, (b,), generator=g)
    fast = ltr.group_contrastive_loss(h, groups, t)
    (grad_fast,) = torch.autograd.grad(fast, h)
    sorted_ = ltr.group_contrastive_loss(h, groups.double(), t)
    (grad_sorted,) = torch.autograd.grad(sorted_, h)
    assert fast.item() == pytest.approx(sorted_.item(), rel=1e-12)
    torch.testing.assert_close(grad_fast, grad_sorted, rtol=1e-9, atol=1e-15)


def test_contrastive_loss_gradcheck():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    groups = torch.tensor([0, 1, 1, 2, 0, 3])
    assert torch.autograd.gradcheck(lambda x: ltr.group_contrastive_loss(x, groups, 2.0), (h,))


def test_contrastive_loss_small_batches_half_precision_and_errors():
    one = torch.randn(1, 4, requires_grad=True)
    out = ltr.group_contrastive_loss(one, torch.tensor([2]))
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    empty = torch.zeros(0, 4, requires_grad=True)
    assert ltr.group_contrastive_loss(empty, torch.zeros(0, dtype=torch.long)).item() == 0.0
    h, groups = torch.randn(12, 5), torch.arange(12) % 3
    full = ltr.group_contrastive_loss(h, groups)
    for dtype in (torch.float16, torch.bfloat16):
        half = ltr.group_contrastive_loss(h.to(dtype), groups)
        assert half.dtype == torch.float32
        assert half.item() == pytest.approx(full.item(), rel=2e-2)
    with pytest.raises(ValueError, match="temperature"):
        ltr.group_contrastive_loss(h, groups, 0.0)
    with pytest.raises(ValueError, match="one label per feature row"):
        ltr.group_contrastive_loss(h, groups[:5])
    with pytest.raises(ValueError, match="finite"):
        ltr.group_contrastive_loss(h, torch.full((12,), float("nan")))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        ltr.group_contrastive_loss(h[0], groups)


def test_contrastive_loss_memory_is_quadratic_not_cubic():
    """B = 2048: a B³ intermediate would be 8.6e9 floats (34 GB); B² ones are 16 MB each."""
    b = 2048
    g = torch.Generator().manual_seed(0)
    h = torch.randn(b, 32, generator=g, requires_grad=True)
    groups = torch.randint(0, 20, (b,), generator=g)
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        loss = ltr.group_contrastive_loss(h, groups)
        loss.backward()
    biggest = max(e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0)
    # the largest op is the sort (int64 values + indices: 16 bytes per pair); one B³ float32
    # intermediate would be 4·B bytes per pair, 512 times that
    assert biggest <= 16 * b * b
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    loss = ltr.group_contrastive_loss(h, groups)
    loss.backward()
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 2 * 1024 * 1024  # far below the 34 GB of a B³ tensor
    assert torch.isfinite(loss) and torch.isfinite(h.grad).all()


# --- multi-expert head -----------------------------------------------------------------------


def test_head_routes_to_true_group_in_training_argmax_or_mixture_at_inference():
    torch.manual_seed(0)
    d, G = 6, 5
    h = torch.randn(10, d)
    groups = torch.tensor([0, 1, 2, 3, 4, 4, 3, 2, 1, 0])
    head = ltr.GroupDIRHead(d, G)
    logits, pred, experts = head(h, groups)
    assert logits.shape == (10, G) and pred.shape == (10,) and experts.shape == (10, G)
    for g in range(G):  # one batched map == G separate linear experts
        torch.testing.assert_close(experts[:, g], h @ head.expert_weight[g] + head.expert_bias[g])
    torch.testing.assert_close(pred, experts[torch.arange(10), groups])
    _, pred_hard, _ = head(h)
    torch.testing.assert_close(pred_hard, experts[torch.arange(10), logits.argmax(1)])
    head.routing = "soft"
    _, pred_soft, _ = head(h)
    torch.testing.assert_close(pred_soft, (torch.softmax(logits, 1) * experts).sum(1))
    soft = ltr.GroupDIRHead(d, G, routing="soft")
    soft.load_state_dict(head.state_dict())
    torch.testing.assert_close(soft(h)[1], pred_soft)


def test_head_training_gradient_reaches_only_the_true_groups_experts():
    torch.manual_seed(1)
    head = ltr.GroupDIRHead(4, 6)
    groups = torch.tensor([1, 1, 4])
    _, pred, _ = head(torch.randn(3, 4), groups)
    pred.sum().backward()
    touched = (head.expert_weight.grad.abs().sum(1) > 0).nonzero().flatten().tolist()
    assert touched == [1, 4]
    assert head.classifier.weight.grad is None


def test_head_bad_input_and_empty_batch():
    with pytest.raises(ValueError, match="num_groups"):
        ltr.GroupDIRHead(4, 1)
    with pytest.raises(ValueError, match="routing"):
        ltr.GroupDIRHead(4, 3, routing="top2")
    head = ltr.GroupDIRHead(4, 3)
    with pytest.raises(ValueError, match="features"):
        head(torch.randn(2, 5))
    with pytest.raises(ValueError, match="groups"):
        head(torch.randn(2, 4), torch.tensor([0, 3]))
    logits, pred, experts = head(torch.randn(0, 4))
    assert logits.shape == (0, 3) and pred.shape == (0,) and experts.shape == (0, 3)


# --- the objective ---------------------------------------------------------------------------


def test_group_dir_loss_is_the_weighted_sum_of_its_parts():
    torch.manual_seed(2)
    G, d, n = 5, 8, 12
    y = torch.rand(n) * 50
    groups = ltr.group_labels(y, G, 0.0, 50.0)
    h = torch.randn(n, d, dtype=torch.float64)
    logits = torch.randn(n, G, dtype=torch.float64)
    pred = torch.randn(n, dtype=torch.float64) * 10 + 25
    w = ltr.lds_weights(y, bins=5.0).double()
    crit = ltr.GroupDIRLoss(G, lambda1=0.7, lambda2=1.3, beta=1.0, temperature=2.0)
    out = crit(h, logits, pred, y.double(), groups, weight=w)
    grc = ref_contrastive(h.tolist(), groups.tolist(), 2.0)
    mse = sum(float(w[i]) * (float(y[i]) - float(pred[i])) ** 2 for i in range(n)) / n
    soft = 0.0
    for i in range(n):
        q = ref_soft_labels(int(groups[i]), G, 1.0)
        row = logits[i].tolist()
        lse = max(row) + math.log(sum(math.exp(v - max(row)) for v in row))
        soft -= sum(q[k] * (row[k] - lse) for k in range(G)) / n
    assert out.contrastive.item() == pytest.approx(grc)
    assert out.mse.item() == pytest.approx(mse)
    assert out.soft.item() == pytest.approx(soft)
    assert out.loss.item() == pytest.approx(grc + 0.7 * mse + 1.3 * soft)
    logged = out.as_dict()
    assert set(logged) == {"loss", "contrastive", "mse", "soft"}
    assert all(isinstance(v, float) for v in logged.values())
    skipped = crit(None, logits, pred, y.double(), groups)
    assert skipped.contrastive.item() == 0.0


def test_group_dir_loss_gradcheck_and_a_training_step():
    torch.manual_seed(3)
    G, n = 4, 6
    crit = ltr.GroupDIRLoss(G).double()
    groups = torch.tensor([0, 1, 2, 3, 1, 2])
    y = torch.randn(n, dtype=torch.float64)
    args = (
        torch.randn(n, 3, dtype=torch.float64, requires_grad=True),
        torch.randn(n, G, dtype=torch.float64, requires_grad=True),
        torch.randn(n, dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(lambda h, z, p: crit(h, z, p, y, groups).loss, args)

    encoder, head = torch.nn.Linear(5, 8), ltr.GroupDIRHead(8, G)
    opt = torch.optim.SGD([*encoder.parameters(), *head.parameters()], lr=0.05)
    x, yy = torch.randn(32, 5), torch.rand(32) * 4
    gg = ltr.group_labels(yy, G, 0.0, 4.0)
    crit = ltr.GroupDIRLoss(G)
    losses = []
    for _ in range(30):
        h = encoder(x)
        logits, pred, _ = head(h, gg)
        out = crit(h, logits, pred, yy, gg)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < losses[0]


def test_group_dir_loss_half_precision_empty_batch_and_errors():
    G = 3
    crit = ltr.GroupDIRLoss(G)
    h, z = torch.randn(5, 4), torch.randn(5, G)
    p, y, g = torch.randn(5), torch.randn(5), torch.tensor([0, 1, 2, 1, 0])
    full = crit(h, z, p, y, g).loss
    half = crit(h.half(), z.half(), p.half(), y.half(), g).loss
    assert half.dtype == torch.float32 and half.item() == pytest.approx(full.item(), rel=2e-2)
    empty = [
        torch.zeros(0, 4, requires_grad=True),
        torch.zeros(0, G, requires_grad=True),
        torch.zeros(0, requires_grad=True),
    ]
    out = crit(*empty, torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert out.loss.item() == 0.0 and out.loss.requires_grad
    out.loss.backward()
    with pytest.raises(ValueError, match="num_groups"):
        ltr.GroupDIRLoss(1)
    with pytest.raises(ValueError, match="group_logits"):
        crit(h, torch.randn(5, 4), p, y, g)
    with pytest.raises(ValueError, match="groups"):
        crit(h, z, p, y, torch.tensor([0, 1, 2, 3, 0]))
    with pytest.raises(ValueError, match="no broadcasting"):
        crit(h, z, p[:, None], y, g)
    with pytest.raises(ValueError, match="lambda1"):
        ltr.GroupDIRLoss(3, lambda1=-1.0)
