"""Deep imbalanced regression: bins, shot regions, LDS, FDS, metrics and the regression losses.

Each loss is checked against a loop-by-loop transcription of its paper's formula (float64, pure
Python math, sharing no code with longtail), and LDS / FDS against transcriptions of the
reference code ``YyzHarry/imbalanced-regression``. Group-DIR is in test_regression_group_dir.py,
the data loaders in test_regression_data.py.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from longtail import regression as ltr

# --- loop references -------------------------------------------------------------------------


def _lse(values):
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def ref_bmc(p, t, var):
    """ℓ_i = −log softmax_j(−(ŷ_i − y_j)² / 2σ²)_i · 2σ², one row at a time (1-D targets)."""
    out = []
    for i in range(len(p)):
        row = [-((p[i] - t[j]) ** 2) / (2 * var) for j in range(len(t))]
        out.append((_lse(row) - row[i]) * 2 * var)
    return out


def ref_gai(p, t, means, variances, weights, var):
    out = []
    for pi, ti in zip(p, t, strict=True):
        mse = (pi - ti) ** 2 / (2 * var) + 0.5 * math.log(var)
        terms = [
            -0.5 * math.log(v + var) - 0.5 * (pi - m) ** 2 / (v + var) + math.log(w)
            for m, v, w in zip(means, variances, weights, strict=True)
        ]
        out.append((mse + _lse(terms)) * 2 * var)
    return out


def ref_bni(p, t, centers, weights, var):
    out = []
    for pi, ti in zip(p, t, strict=True):
        mse = (pi - ti) ** 2 / (2 * var)
        terms = [
            -0.5 * (pi - c) ** 2 / var + math.log(w) for c, w in zip(centers, weights, strict=True)
        ]
        out.append((mse + _lse(terms)) * 2 * var)
    return out


# --- bins ------------------------------------------------------------------------------------


def test_equal_width_bins_and_bin_index_top_edge_and_clamping():
    edges = ltr.equal_width_bins(torch.tensor([2.0, 7.0, 12.0]), 5)
    assert edges.tolist() == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    y = torch.tensor([2.0, 3.99, 4.0, 11.9, 12.0, -5.0, 40.0])
    assert ltr.bin_index(y, edges).tolist() == [0, 0, 1, 4, 4, 0, 4]
    assert ltr.bin_index(y.reshape(7, 1), edges).shape == (7, 1)


def test_fixed_width_bins_put_decimal_scores_in_their_bin():
    scores = torch.arange(0, 51, dtype=torch.float64) / 10  # 0.0, 0.1, ..., 5.0 (STS-B)
    edges = ltr.fixed_width_bins(scores, 0.1)
    assert edges.numel() == 52 and edges[0] == 0 and edges[-1] == pytest.approx(5.1)
    assert ltr.bin_index(scores, edges).tolist() == list(range(51))
    # float32 labels (0.7 is 0.69999999 in float32) land in their bin too
    assert ltr.bin_index(scores.float(), edges).tolist() == list(range(51))
    ages = torch.tensor([0.0, 25.0, 25.9, 101.0])
    e = ltr.fixed_width_bins(ages, 1.0)
    assert e[0] == 0 and e[-1] == 102
    assert ltr.bin_index(ages, e).tolist() == [0, 25, 25, 101]


def test_bins_reject_nan_and_bad_edges():
    with pytest.raises(ValueError, match="finite"):
        ltr.bin_index(torch.tensor([1.0, float("nan")]), [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        ltr.bin_index(torch.tensor([1.0]), [0.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        ltr.fixed_width_bins([1.0, float("nan")], 1.0)
    with pytest.raises(ValueError, match="bin_width"):
        ltr.fixed_width_bins([1.0], 0.0)
    with pytest.raises(ValueError, match="num_bins"):
        ltr.equal_width_bins([1.0, 2.0], 0)
    with pytest.raises(ValueError, match="high"):
        ltr.equal_width_bins([3.0, 3.0], 4)


def test_group_labels_equal_width_over_training_range():
    y = torch.tensor([0.0, 9.9, 10.0, 55.0, 99.9, 100.0])
    assert ltr.group_labels(y, 10).tolist() == [0, 0, 1, 5, 9, 9]
    # test targets outside the training range are clamped to the end groups
    g = ltr.group_labels(torch.tensor([-3.0, 130.0]), 10, low=0.0, high=100.0)
    assert g.tolist() == [0, 9]
    assert ltr.group_labels(y, 10).dtype == torch.int64


def test_group_labels_rules():
    y = torch.arange(0, 11, dtype=torch.float32)  # ages 0..10: 11 labels of step 1
    with pytest.raises(ValueError, match="num_groups"):
        ltr.group_labels(y, 1)
    with pytest.raises(ValueError, match="at most 11"):
        ltr.group_labels(y, 12, bin_width=1.0)
    g = ltr.group_labels(y, 11, bin_width=1.0)  # the limit: one label per group
    assert g.tolist() == list(range(11))
    assert ltr.max_groups(0, 100, 1) == 101
    with pytest.raises(ValueError, match="finite"):
        ltr.group_labels(torch.tensor([1.0, float("nan"), 3.0]), 2, 0.0, 4.0)


# --- shot regions ----------------------------------------------------------------------------


def test_shot_regions_boundaries_exactly_at_100_and_20():
    # bins [0,1) .. [5,6): counts 101, 100, 20, 19, 0, 150
    counts = [101, 100, 20, 19, 0, 150]
    y = np.concatenate([np.full(c, b + 0.5) for b, c in enumerate(counts)])
    r = ltr.shot_regions(y, bins=1.0)
    assert r.counts.tolist() == counts
    assert r.regions == ("many", "medium", "medium", "few", "few", "many")
    test = [0.0, 1.2, 2.9, 3.5, 4.1, 5.99, -1.0, 6.0, 250.0]
    expect = ["many", "medium", "medium", "few", "few", "many", "few", "few", "few"]
    assert r.assign(test).tolist() == expect
    assert ltr.assign_regions(test, r).tolist() == expect
    m = r.masks(test)
    assert m["few"].sum() == 5 and m["many"].sum() == 2 and m["medium"].sum() == 2


def test_one_many_few_rule_for_label_bins_and_classes():
    from longtail.metrics import shot_accuracy

    counts = [500, 101, 100, 21, 20, 19, 1]
    regions = ltr.regions_of_counts(counts)
    assert regions == ("many", "many", "medium", "medium", "medium", "few", "few")
    y = np.repeat(np.arange(len(counts)) + 0.5, counts)
    assert ltr.shot_regions(y, 1.0).regions == regions
    for name in ("many", "medium", "few"):  # classification groups classes by the same rule
        acc = torch.tensor([1.0 if r == name else 0.0 for r in regions])
        assert shot_accuracy(acc, counts)[f"{name}_acc"] == 100.0
    assert ltr.regions_of_counts(torch.tensor([5, 3, 1]), 4, 2) == ("many", "medium", "few")
    with pytest.raises(ValueError, match="few_threshold"):
        ltr.regions_of_counts([1], 2, 5)


def test_shot_regions_with_explicit_edges_clamp_and_custom_thresholds():
    y = [0.1] * 5 + [1.5] * 3 + [2.5]
    r = ltr.shot_regions(y, bins=[0.0, 1.0, 2.0, 3.0], many_threshold=4, few_threshold=2)
    assert r.regions == ("many", "medium", "few")
    assert r.assign([-10.0, 10.0]).tolist() == ["many", "few"]  # clamped to the end bins
    with pytest.raises(ValueError, match="few_threshold"):
        ltr.shot_regions(y, 1.0, many_threshold=2, few_threshold=5)
    with pytest.raises(ValueError, match="finite"):
        ltr.shot_regions([1.0, float("nan")], 1.0)


# --- LDS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ltr.KERNELS)
@pytest.mark.parametrize("reweight", ["inverse", "sqrt_inv"])
def test_lds_flat_histogram_gives_equal_weights(kernel, reweight):
    y = np.repeat(np.arange(30) + 0.5, 7)
    w = ltr.lds_weights(y, bins=1.0, kernel=kernel, ks=5, sigma=2.0, reweight=reweight)
    assert w.dtype == torch.float32 and w.shape == (210,)
    torch.testing.assert_close(w, torch.ones(210))


def test_lds_takes_class_weights_name_for_the_square_root_scheme():
    y = np.concatenate([np.repeat(0.5, 40), np.repeat(1.5, 10), np.repeat(2.5, 3)])
    torch.testing.assert_close(
        ltr.lds_weights(y, reweight="sqrt-inverse"), ltr.lds_weights(y, reweight="sqrt_inv")
    )
    with pytest.raises(ValueError, match="reweight"):
        ltr.lds_weights(y, reweight="sqrt")


def _official_lds(labels, kernel, ks, sigma, reweight, max_target=121):
    """Transcription of AgeDB ``_prepare_weights`` + ``get_lds_kernel_window`` (scipy)."""
    from scipy.ndimage import convolve1d, gaussian_filter1d
    from scipy.signal.windows import triang

    value = {x: 0 for x in range(max_target)}
    for label in labels:
        value[min(max_target - 1, int(label))] += 1
    if reweight == "sqrt_inv":
        value = {k: np.sqrt(v) for k, v in value.items()}
    else:
        value = {k: np.clip(v, 5, 1000) for k, v in value.items()}
    half = (ks - 1) // 2
    if kernel == "gaussian":
        base = [0.0] * half + [1.0] + [0.0] * half
        win = gaussian_filter1d(base, sigma=sigma) / max(gaussian_filter1d(base, sigma=sigma))
    elif kernel == "triang":
        win = triang(ks)
    else:
        lap = [np.exp(-abs(x) / sigma) / (2.0 * sigma) for x in np.arange(-half, half + 1)]
        win = np.asarray(lap) / max(lap)
    # float input: with "inverse" the reference passes integer counts, and convolve1d returns the
    # smoothed counts truncated to integers (its output keeps the input dtype); longtail does not.
    counts = np.asarray(list(value.values()), dtype=np.float64)
    smoothed = convolve1d(counts, weights=win, mode="constant")
    w = np.asarray([1 / smoothed[min(max_target - 1, int(label))] for label in labels])
    return w * len(w) / w.sum()


@pytest.mark.parametrize(
    "kernel,ks,sigma",
    [("gaussian", 5, 2.0), ("gaussian", 9, 1.0), ("triang", 5, 2.0), ("laplace", 5, 2.0)],
)
@pytest.mark.parametrize("reweight", ["inverse", "sqrt_inv"])
def test_lds_matches_the_reference_code(kernel, ks, sigma, reweight):
    rng = np.random.default_rng(0)
    ages = np.clip(rng.gamma(4.0, 8.0, size=3000), 0, 120).astype(int).astype(float)
    ref = _official_lds(ages, kernel, ks, sigma, reweight)
    clip = (5, 1000) if reweight == "inverse" else None
    edges = np.arange(122, dtype=float)  # the reference's fixed 0..120 histogram
    w = ltr.lds_weights(ages, edges, kernel, ks, sigma, reweight, mode="constant", clip=clip)
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-5)
    assert w.mean().item() == pytest.approx(1.0, abs=1e-6)


def test_lds_upweights_rare_labels_and_ks1_is_plain_inverse_frequency():
    y = np.concatenate([np.full(90, 10.5), np.full(10, 40.5)])
    w = ltr.lds_weights(y, bins=1.0)
    assert w[-1] > w[0]
    plain = ltr.lds_weights(y, bins=1.0, ks=1)
    expect = np.concatenate([np.full(90, 1 / 90), np.full(10, 1 / 10)])
    np.testing.assert_allclose(plain.numpy(), expect * 100 / expect.sum(), rtol=1e-6)


def test_kernel_window_matches_scipy():
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal.windows import triang

    for ks, sigma in [(5, 2.0), (9, 1.0), (3, 5.0), (7, 0.7), (1, 2.0)]:
        base = np.zeros(ks)
        base[ks // 2] = 1
        g = gaussian_filter1d(base, sigma)
        np.testing.assert_allclose(ltr.kernel_window("gaussian", ks, sigma), g / g.max())
        np.testing.assert_allclose(ltr.kernel_window("gaussian", ks, sigma, "sum"), g / g.sum())
        np.testing.assert_allclose(ltr.kernel_window("triang", ks, sigma), triang(ks), atol=1e-15)
    with pytest.raises(ValueError, match="ks"):
        ltr.kernel_window("gaussian", 4, 2.0)
    with pytest.raises(ValueError, match="kernel"):
        ltr.kernel_window("box", 5, 2.0)
    with pytest.raises(ValueError, match="sigma"):
        ltr.kernel_window("laplace", 5, 0.0)


def test_lds_rejects_bad_input():
    with pytest.raises(ValueError, match="finite"):
        ltr.lds_weights([1.0, float("nan")])
    with pytest.raises(ValueError, match="reweight"):
        ltr.lds_weights([1.0, 2.0], reweight="none")
    with pytest.raises(ValueError, match="non-empty"):
        ltr.lds_weights([])


# --- FDS -------------------------------------------------------------------------------------


def _official_smooth(stats, window):
    """The reference ``_update_last_epoch_stats``: F.pad reflect + conv1d over bins."""
    half = (window.numel() - 1) // 2
    x = F.pad(stats.unsqueeze(1).permute(2, 1, 0), pad=(half, half), mode="reflect")
    return F.conv1d(x, window.view(1, 1, -1).to(stats.dtype)).permute(2, 1, 0).squeeze(1)


def test_fds_epoch_statistics_momentum_and_smoothing_match_the_reference():
    torch.manual_seed(0)
    nb, d = 8, 3
    fds = ltr.FDS(d, nb, momentum=0.9)
    f0, b0 = torch.randn(60, d), torch.randint(0, nb, (60,))
    b0[:nb] = torch.arange(nb)  # every bin seen
    b0[nb] = 3
    for chunk in torch.arange(60).split(17):  # batches of one epoch
        fds.update_running_stats(f0[chunk], b0[chunk], epoch=0)
    fds.update_last_epoch_stats(0)
    mean0 = torch.stack([f0[b0 == k].mean(0) for k in range(nb)])
    var0 = torch.stack([f0[b0 == k].var(0, unbiased=bool((b0 == k).sum() > 1)) for k in range(nb)])
    torch.testing.assert_close(fds.running_mean, mean0)
    torch.testing.assert_close(fds.running_var, var0)
    window = ltr.kernel_window("gaussian", 5, 2.0, "sum").float()
    torch.testing.assert_close(fds.smoothed_mean, _official_smooth(mean0, window))
    torch.testing.assert_close(fds.smoothed_var, _official_smooth(var0, window))
    fds.update_last_epoch_stats(0)  # idempotent
    torch.testing.assert_close(fds.running_mean, mean0)

    f1, b1 = torch.randn(40, d) + 2, torch.arange(40) % nb
    fds.update_running_stats(f1, b1, epoch=1)
    fds.update_last_epoch_stats(1)
    mean1 = torch.stack([f1[b1 == k].mean(0) for k in range(nb)])
    var1 = torch.stack([f1[b1 == k].var(0) for k in range(nb)])
    torch.testing.assert_close(fds.running_mean, 0.9 * mean0 + 0.1 * mean1)
    torch.testing.assert_close(fds.running_var, 0.9 * var0 + 0.1 * var1)


def test_fds_calibration_formula_against_a_loop():
    torch.manual_seed(1)
    nb, d = 5, 4
    fds = ltr.FDS(d, nb, start_smooth=1)
    fds.running_mean.normal_()
    fds.running_var.uniform_(0.05, 3.0)
    fds.smoothed_mean.normal_()
    fds.smoothed_var.uniform_(0.0, 40.0)  # ratios below 0.1 and above 10 get clamped
    fds.running_var[2, 1] = 0.0  # a zero-variance dimension is left as it is
    f, b = torch.randn(30, d, dtype=torch.float64), torch.arange(30) % nb
    out = fds.smooth(f, b, epoch=1)
    for i in range(30):
        k = int(b[i])
        for j in range(d):
            v1, v2 = float(fds.running_var[k, j]), float(fds.smoothed_var[k, j])
            if v1 == 0:
                expect = float(f[i, j])
            else:
                s = math.sqrt(min(max(v2 / v1, 0.1), 10.0))
                m1, m2 = float(fds.running_mean[k, j]), float(fds.smoothed_mean[k, j])
                expect = (float(f[i, j]) - m1) * s + m2
            assert float(out[i, j]) == pytest.approx(expect, rel=1e-5, abs=1e-5)


def test_fds_one_bin_and_fresh_stats_change_nothing():
    torch.manual_seed(2)
    f, b = torch.randn(12, 6), torch.zeros(12, dtype=torch.long)
    fresh = ltr.FDS(6, 4)
    torch.testing.assert_close(fresh.smooth(f, b, epoch=5), f)  # identity statistics
    one = ltr.FDS(6, 1)
    one.update_running_stats(f, b, 0)
    one.update_last_epoch_stats(0)
    torch.testing.assert_close(one.smoothed_mean, one.running_mean)
    torch.testing.assert_close(one.smooth(f, b, epoch=1), f)


def test_fds_identity_in_eval_and_before_start_smooth_and_state_dict_round_trip():
    torch.manual_seed(3)
    fds = ltr.FDS(4, 6, start_smooth=2)
    for epoch in range(3):
        fds.update_running_stats(torch.randn(50, 4) * (epoch + 1), torch.arange(50) % 6, epoch)
        fds.update_last_epoch_stats(epoch)
    f, b = torch.randn(10, 4), torch.arange(10) % 6
    assert torch.equal(fds.smooth(f, b, epoch=1), f)
    calibrated = fds.smooth(f, b, epoch=3)
    assert not torch.allclose(calibrated, f)
    fds.eval()
    assert torch.equal(fds.smooth(f, b, epoch=3), f)
    fds.train()
    # a half-finished epoch travels in the state_dict too
    fds.update_running_stats(torch.randn(7, 4), torch.arange(7) % 6, 3)
    other = ltr.FDS(4, 6, start_smooth=2)
    other.load_state_dict(fds.state_dict())
    torch.testing.assert_close(other.smooth(f, b, epoch=3), calibrated)
    more = torch.randn(9, 4), torch.arange(9) % 6
    for m in (fds, other):
        m.update_running_stats(*more, 3)
        m.update_last_epoch_stats(3)
    for name, buf in fds.named_buffers():
        torch.testing.assert_close(dict(other.named_buffers())[name], buf)


def test_fds_bucket_start_merges_low_bins_and_pending_epochs_fold():
    fds = ltr.FDS(1, 10, bucket_start=3)
    assert fds.running_mean.shape == (7, 1)
    f = torch.tensor([[1.0], [3.0], [5.0], [7.0]])
    fds.update_running_stats(f, torch.tensor([0, 2, 3, 15]), 0)  # 0, 2 -> 3; 15 -> 9
    fds.update_running_stats(torch.tensor([[9.0]]), torch.tensor([4]), 1)  # folds epoch 0
    assert fds.running_mean[0].item() == pytest.approx(3.0)
    assert fds.running_mean[-1].item() == pytest.approx(7.0)
    assert int(fds.last_folded_epoch) == 0
    with pytest.raises(ValueError, match="features"):
        fds.update_running_stats(torch.randn(2, 3), torch.tensor([0, 1]), 1)
    with pytest.raises(ValueError, match="bin_idx"):
        fds.smooth(torch.randn(2, 1), torch.tensor([0.5, 1.0]), 2)


def test_fds_gradcheck_and_half_features():
    torch.manual_seed(4)
    fds = ltr.FDS(3, 4).double()
    fds.update_running_stats(torch.randn(20, 3, dtype=torch.float64), torch.arange(20) % 4, 0)
    fds.update_last_epoch_stats(0)
    f = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    b = torch.arange(6) % 4
    assert torch.autograd.gradcheck(lambda x: fds.smooth(x, b, 1), (f,))
    half = fds.float().smooth(f.detach().half(), b, 1)
    assert half.dtype == torch.float16


# --- metrics ---------------------------------------------------------------------------------


def test_regression_metrics_against_numpy_and_scipy():
    from scipy.stats import gmean, pearsonr

    rng = np.random.default_rng(0)
    train = np.concatenate([np.full(150, 1.5), np.full(50, 2.5), np.full(5, 3.5)])
    target = rng.uniform(1, 4, size=300)
    pred = target + rng.normal(0, 0.5, size=300)
    m = ltr.regression_metrics(torch.tensor(pred), torch.tensor(target), train, bins=1.0)
    keys = ["mae", "mse", "gm", "pearson"]
    assert sorted(m) == sorted(keys + [f"{k}_{r}" for k in keys for r in ltr.REGIONS])
    assert all(isinstance(v, float) for v in m.values())
    e = pred - target
    assert m["mae"] == pytest.approx(np.abs(e).mean())
    assert m["mse"] == pytest.approx((e**2).mean())
    assert m["gm"] == pytest.approx(gmean(np.abs(e)))
    assert m["pearson"] == pytest.approx(pearsonr(pred, target)[0])
    regions = ltr.shot_regions(train, 1.0).assign(target)
    for r in ltr.REGIONS:
        sel = regions == r
        assert m[f"mae_{r}"] == pytest.approx(np.abs(e[sel]).mean())
        assert m[f"mse_{r}"] == pytest.approx((e[sel] ** 2).mean())
        assert m[f"gm_{r}"] == pytest.approx(gmean(np.abs(e[sel])))
        assert m[f"pearson_{r}"] == pytest.approx(pearsonr(pred[sel], target[sel])[0])


def test_gm_with_an_exact_zero_error_is_zero_like_scipy():
    from scipy.stats import gmean

    errors = np.array([0.0, 1.0, 4.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ltr.geometric_mean_error(errors) == gmean(errors) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # longtail does not warn
        assert ltr.geometric_mean_error(errors) == 0.0


def test_regression_metrics_empty_region_is_none_and_bad_input_raises():
    train = [1.5] * 200
    m = ltr.regression_metrics([1.0, 2.0], [1.2, 1.8], train, bins=1.0)
    assert m["mae_medium"] is None and m["gm_few"] is None and m["pearson_medium"] is None
    assert m["mae_many"] == pytest.approx(0.2)
    one = ltr.regression_metrics([1.0], [1.2], train)
    assert math.isnan(one["pearson"])
    with pytest.raises(ValueError, match="finite"):
        ltr.regression_metrics([1.0], [float("nan")], train)
    with pytest.raises(ValueError, match="prediction"):
        ltr.regression_metrics([1.0, 2.0], [1.0], train)
    nan = ltr.regression_metrics([float("nan")], [1.0], train)
    assert math.isnan(nan["mae"])


# --- weighted losses -------------------------------------------------------------------------


def test_weighted_losses_match_their_formula():
    torch.manual_seed(0)
    p, t, w = torch.randn(9, dtype=torch.float64), torch.randn(9), torch.rand(9)
    td = t.double()
    assert ltr.weighted_mse_loss(p, td).item() == pytest.approx(F.mse_loss(p, td).item())
    assert ltr.weighted_l1_loss(p, td).item() == pytest.approx(F.l1_loss(p, td).item())
    expect = (w.double() * (p - td) ** 2).mean().item()
    assert ltr.weighted_mse_loss(p, td, w).item() == pytest.approx(expect)
    expect = (w.double() * (p - td).abs()).sum().item()
    assert ltr.weighted_l1_loss(p, td, w, "sum").item() == pytest.approx(expect)
    # (N, 1) predictions take (N,) per-sample weights
    col = ltr.weighted_mse_loss(p[:, None], td[:, None], w, "none")
    torch.testing.assert_close(col.squeeze(1), w.double() * (p - td) ** 2)
    assert ltr.WeightedMSELoss()(p, td, w).item() == pytest.approx(
        ltr.weighted_mse_loss(p, td, w).item()
    )
    assert ltr.WeightedL1Loss(reduction="sum")(p, td).item() == pytest.approx(
        (p - td).abs().sum().item()
    )


def test_weighted_losses_reject_broadcasting_and_bad_weights():
    with pytest.raises(ValueError, match="no broadcasting"):
        ltr.weighted_mse_loss(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(ValueError, match="weight"):
        ltr.weighted_l1_loss(torch.zeros(4), torch.zeros(4), torch.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        ltr.weighted_l1_loss(torch.zeros(4), torch.zeros(4), reduction="avg")
    with pytest.raises(ValueError, match="floating"):
        ltr.weighted_mse_loss(torch.zeros(4, dtype=torch.long), torch.zeros(4))


# --- Balanced MSE ----------------------------------------------------------------------------

GMM = ([0.0, 2.0, 5.0], [1.0, 0.5, 2.0], [0.5, 0.3, 0.2])


def _batch(n=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=dtype) * 2, torch.randn(n, generator=g, dtype=dtype)


@pytest.mark.parametrize("var", [0.3, 1.0, 4.0])
def test_bmc_matches_loop(var):
    p, t = _batch()
    ref = ref_bmc(p.tolist(), t.tolist(), var)
    got = ltr.bmc_loss(p, t, var, reduction="none")
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10)
    assert ltr.bmc_loss(p[:, None], t[:, None], var).item() == pytest.approx(np.mean(ref))
    assert ltr.bmc_loss(p, t, torch.tensor(var, dtype=torch.float64)).item() == pytest.approx(
        np.mean(ref)
    )


def test_bmc_multi_dim_is_the_squared_norm_and_equals_the_reference_mvn_form():
    torch.manual_seed(1)
    p, t, var = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64), 0.7
    logits = torch.distributions.MultivariateNormal(
        p.unsqueeze(1), var * torch.eye(3, dtype=torch.float64)
    ).log_prob(t.unsqueeze(0))  # bmc_loss_md of jiawei-ren/BalancedMSE
    expect = F.cross_entropy(logits, torch.arange(6)) * 2 * var
    assert ltr.bmc_loss(p, t, var).item() == pytest.approx(expect.item())


def test_gai_and_bni_match_loops():
    p, t = _batch(n=8, seed=2)
    var = 0.8
    ref = ref_gai(p.tolist(), t.tolist(), *GMM, var)
    gmm = [torch.tensor(x, dtype=torch.float64) for x in GMM]
    np.testing.assert_allclose(ltr.gai_loss(p, t, *gmm, var, "none"), ref)
    centers, weights = [-1.0, 0.0, 1.0, 2.5], [0.1, 0.4, 0.3, 0.2]
    ref = ref_bni(p.tolist(), t.tolist(), centers, weights, var)
    got = ltr.bni_loss(
        p[:, None], t[:, None], var, torch.tensor(centers), torch.tensor(weights), "none"
    )
    assert got.shape == (8, 1)
    np.testing.assert_allclose(got.squeeze(1), ref)


def test_balanced_mse_modules_learn_sigma_and_match_functions():
    p, t = _batch(dtype=torch.float32)
    bmc = ltr.BMCLoss(init_noise_sigma=1.5)
    loss = bmc(p, t)
    assert loss.item() == pytest.approx(ltr.bmc_loss(p, t, 2.25).item(), rel=1e-6)
    loss.backward()
    assert bmc.noise_sigma.grad is not None and bmc.noise_sigma.grad.abs() > 0
    gai = ltr.GAILoss(*GMM, init_noise_sigma=0.5)
    assert gai(p, t).item() == pytest.approx(
        ltr.gai_loss(p, t, *map(torch.tensor, GMM), 0.25).item(), rel=1e-6
    )
    centers, weights = ltr.bni_buckets(np.repeat([0.5, 1.5, 3.5], [5, 3, 2]), bins=1.0)
    assert centers.tolist() == [0.5, 1.5, 3.5]
    assert weights.tolist() == pytest.approx([0.5, 0.3, 0.2])
    bni = ltr.BNILoss(centers, weights)
    assert bni(p, t).item() == pytest.approx(
        ltr.bni_loss(p, t, 1.0, centers, weights).item(), rel=1e-6
    )
    assert set(dict(gai.named_buffers())) == {"means", "variances", "weights"}
    assert "bucket_centers" in bni.state_dict()


def test_balanced_mse_gradcheck():
    p, t = _batch(n=5, seed=3)
    p.requires_grad_(True)
    var = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    gmm = [torch.tensor(x, dtype=torch.float64) for x in GMM]
    c, w = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64), torch.tensor([0.2, 0.5, 0.3])
    # The 2σ² scale is detached, so σ's gradient is that of the unscaled loss times 2σ²:
    # dividing by the same detached 2σ² leaves a function whose full derivative gradcheck can see.
    losses = [
        lambda x, v: ltr.bmc_loss(x, t, v),
        lambda x, v: ltr.gai_loss(x, t, *gmm, v),
        lambda x, v: ltr.bni_loss(x, t, v, c, w.double()),
    ]
    for fn in losses:
        assert torch.autograd.gradcheck(lambda x, v, fn=fn: fn(x, v) / (2 * v.detach()), (p, var))
        assert torch.autograd.gradcheck(lambda x, fn=fn: fn(x, var.detach()), (p,))
    wt = torch.rand(5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: ltr.weighted_mse_loss(x, t, wt), (p,))
    assert torch.autograd.gradcheck(lambda x: ltr.weighted_l1_loss(x, t, wt), (p,))


@pytest.mark.parametrize(
    "fn",
    [
        lambda p, t: ltr.bmc_loss(p, t, 1.0),
        lambda p, t: ltr.gai_loss(p, t, *map(torch.tensor, GMM), 1.0),
        lambda p, t: ltr.bni_loss(p, t, 1.0, torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5])),
        lambda p, t: ltr.weighted_mse_loss(p, t, torch.ones_like(p)),
        lambda p, t: ltr.weighted_l1_loss(p, t),
    ],
)
def test_regression_losses_half_inputs_and_empty_batch(fn):
    p, t = _batch(n=6, dtype=torch.float32)
    full = fn(p, t)
    for dtype in (torch.float16, torch.bfloat16):
        half = fn(p.to(dtype), t.to(dtype))
        assert half.dtype == torch.float32
        assert half.item() == pytest.approx(full.item(), rel=5e-2, abs=5e-2)
    empty = torch.zeros(0, requires_grad=True)
    out = fn(empty, torch.zeros(0))
    assert out.item() == 0.0 and out.requires_grad
    out.backward()


def test_balanced_mse_rejects_bad_input():
    p, t = _batch()
    with pytest.raises(ValueError, match="noise_var"):
        ltr.bmc_loss(p, t, 0.0)
    with pytest.raises(ValueError, match="no broadcasting"):
        ltr.bmc_loss(p[:, None], t, 1.0)
    with pytest.raises(ValueError, match="pred"):
        ltr.gai_loss(p.reshape(7, 1, 1), t.reshape(7, 1, 1), *map(torch.tensor, GMM), 1.0)
    with pytest.raises(ValueError, match="init_noise_sigma"):
        ltr.BMCLoss(init_noise_sigma=-1.0)
    with pytest.raises(ValueError, match="bucket_weights"):
        ltr.BNILoss([0.0, 1.0], [1.0])


def test_fds_clamps_a_variance_ratio_below_a_tenth_to_a_tenth():
    # (h − μ) · sqrt(clamp(σ̃² / σ², 0.1, 10)) + μ̃ with μ = μ̃ = 0, σ² = 1, σ̃² = 0.01
    fds = ltr.FDS(1, 2, start_smooth=0)
    fds.running_mean.zero_()
    fds.smoothed_mean.zero_()
    fds.running_var.fill_(1.0)
    fds.smoothed_var.fill_(0.01)
    out = fds.smooth(torch.tensor([[2.0], [2.0]]), torch.tensor([0, 1]), epoch=0)
    assert out.flatten().tolist() == pytest.approx([2.0 * math.sqrt(0.1)] * 2, rel=1e-6)


def test_a_target_is_in_the_bin_whose_edges_hold_it_at_any_magnitude():
    """The bin of a target is the largest k with edge k <= y, the edges the doubles nearest the
    decimals k·w: a tolerance on y / w put 1000005.4998 in [1000005.5, 1000006) with w = 0.5 and
    made the bins of a table depend on adding a constant to its target."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from longtail.regression.binning import _lattice_index, _lattice_values

    @settings(max_examples=300, deadline=None)
    @given(
        st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
        st.sampled_from([0.001, 0.1, 0.25, 0.5, 1.0, 2.5, 100.0, 1000.0]),
    )
    def holds(y, w):
        k = _lattice_index(y, w)
        assert _lattice_values(k, w) <= y < _lattice_values(k + 1, w)

    holds()
    e = ltr.fixed_width_bins(torch.tensor([1000005.4998, 1000006.2], dtype=torch.float64), 0.5)
    assert e.tolist() == [1000005.0, 1000005.5, 1000006.0, 1000006.5]
    assert ltr.fixed_width_bins([2000.9995, 2001.5], 1.0).tolist() == [2000.0, 2001.0, 2002.0]
    # the same table shifted by a multiple of the width: the same counts per bin
    y = torch.tensor([5.0, 5.2, 5.4998, 5.5, 5.9, 6.7, 7.49999], dtype=torch.float64)
    base, shifted = ltr.shot_regions(y, 0.5), ltr.shot_regions(y + 1e6, 0.5)
    assert base.counts.tolist() == shifted.counts.tolist() == [3, 2, 0, 1, 1]
