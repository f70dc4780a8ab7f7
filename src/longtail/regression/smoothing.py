"""Label and feature distribution smoothing (Yang et al., "Delving into Deep Imbalanced Regression",
ICML 2021; reference code ``YyzHarry/imbalanced-regression``).

* :func:`lds_weights` — LDS: the training label histogram convolved with a symmetric kernel gives
  an effective label density; each sample is weighted by its inverse (or inverse square root).
* :class:`FDS` — FDS: per-bin running feature statistics, smoothed over neighbouring bins, used to
  re-calibrate the training features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_choice, check_in_range, check_positive, expected
from .binning import Bins, as_targets, bin_of, resolve_bins

KERNELS = ("gaussian", "triang", "laplace")


def check_kernel(kind: str, ks: int, sigma: float, *, prefix: str = "") -> None:
    """Check a smoothing kernel's settings: ``kind`` one of :data:`KERNELS`, ``ks`` an odd
    size, ``sigma`` > 0 (unused by ``"triang"``). ``prefix`` names them as the caller's
    settings do (``"lds_"``: ``lds_kernel``, ``lds_ks``, ``lds_sigma``)."""
    check_choice(f"{prefix}kernel", kind, KERNELS)
    if not isinstance(ks, int) or isinstance(ks, bool) or ks < 1 or ks % 2 == 0:
        raise expected(f"{prefix}ks", "an odd integer >= 1 (the kernel size)", repr(ks))
    if kind != "triang":
        check_positive(f"{prefix}sigma", sigma)


def kernel_window(
    kind: str = "gaussian", ks: int = 5, sigma: float = 2.0, normalize: str = "peak"
) -> torch.Tensor:
    """The symmetric smoothing kernel of LDS and FDS, as the DIR reference code builds it.

    * ``"gaussian"``: ``scipy.ndimage.gaussian_filter1d`` applied to a unit impulse of length
      ``ks`` (σ = ``sigma``, truncated at 4σ, *reflect* boundary — so for σ large against ``ks``
      the window is a reflected, not a plain sampled, Gaussian; longtail reproduces that exactly
      without needing scipy);
    * ``"triang"``: ``scipy.signal.windows.triang(ks)``, ``1 − |k| / ((ks + 1) / 2)``;
    * ``"laplace"``: ``exp(−|k| / σ) / (2σ)``.

    Args:
        kind: ``"gaussian"``, ``"triang"`` or ``"laplace"``.
        ks: odd kernel size (5 by default here; the AgeDB scripts default to 9 with σ = 1).
        sigma: σ of the Gaussian and Laplace kernels (ignored by ``"triang"``).
        normalize: ``"peak"`` (largest value 1: LDS) or ``"sum"`` (sums to 1: FDS).

    Returns:
        float64 tensor of shape ``(ks,)``.

    >>> kernel_window("triang", 5)
    tensor([0.3333, 0.6667, 1.0000, 0.6667, 0.3333], dtype=torch.float64)
    """
    check_kernel(kind, ks, sigma)
    check_choice("normalize", normalize, ("peak", "sum"))
    h = (ks - 1) // 2
    k = np.arange(-h, h + 1, dtype=np.float64)
    if kind == "gaussian":
        r = int(4.0 * float(sigma) + 0.5)  # gaussian_filter1d's radius at truncate=4
        m = np.arange(-r, r + 1)
        w = np.exp(-0.5 * (m / float(sigma)) ** 2)
        # correlate the impulse at h with w under scipy's "reflect" boundary (d c b a | a b c d)
        j = np.arange(ks)[:, None] + m[None, :]
        j = np.mod(j, 2 * ks)
        j = np.where(j >= ks, 2 * ks - 1 - j, j)
        window = (w[None, :] * (j == h)).sum(axis=1)
    elif kind == "triang":
        window = 1.0 - np.abs(k) / ((ks + 1) / 2)
    else:
        window = np.exp(-np.abs(k) / float(sigma)) / (2.0 * float(sigma))
    window = window / (window.max() if normalize == "peak" else window.sum())
    return torch.from_numpy(window)


def _smooth_1d(values: torch.Tensor, window: torch.Tensor, mode: str) -> torch.Tensor:
    """Convolve ``values`` (B, ...) along dim 0 with a symmetric ``window``.

    ``mode``: ``"constant"`` (zero padding), ``"reflect"`` (``d c b a | a b c d``, scipy's
    reflect) or ``"mirror"`` (``d c b | a b c d``, torch's ``F.pad(mode="reflect")``, which the
    FDS code uses). Any length works, a single bin included.
    """
    n, h = values.shape[0], (window.numel() - 1) // 2
    j = torch.arange(-h, n + h, device=values.device)
    if mode == "constant":
        padded = torch.cat(
            [
                values.new_zeros((h, *values.shape[1:])),
                values,
                values.new_zeros((h, *values.shape[1:])),
            ]
        )
    else:
        if mode == "reflect":
            j = torch.remainder(j, 2 * n)
            j = torch.where(j >= n, 2 * n - 1 - j, j)
        elif n == 1:
            j = torch.zeros_like(j)
        else:
            j = torch.remainder(j, 2 * (n - 1))
            j = torch.where(j >= n, 2 * (n - 1) - j, j)
        padded = values[j]
    w = window.to(device=values.device, dtype=values.dtype)
    # (n + 2h, ...) -> windows (n, ..., ks) · w
    return padded.unfold(0, window.numel(), 1).matmul(w)


def lds_weights(
    train_targets: Any,
    bins: Bins = 1.0,
    kernel: str = "gaussian",
    ks: int = 5,
    sigma: float = 2.0,
    reweight: str = "inverse",
    *,
    mode: str = "reflect",
    clip: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Label distribution smoothing (LDS) sample weights, rescaled to mean 1.

    .. math::

        \\tilde p(b) = \\sum_{b'} k(b - b')\\, n(b'),\\qquad
        w_i \\propto \\tilde p(b_i)^{-1} \\;(\\text{or } \\tilde p(b_i)^{-1/2}),\\qquad
        \\frac{1}{N}\\sum_i w_i = 1

    with ``n(b)`` the training histogram and ``k`` the kernel normalised to peak 1
    (:func:`kernel_window`). As in the reference code, ``"sqrt_inv"`` smooths the square roots of
    the counts (``w = 1 / (k * √n)``), and the optional ``clip`` bounds the counts before smoothing
    (the AgeDB/IMDB-WIKI code clips to ``(5, 1000)`` for ``"inverse"``; longtail clips only when
    asked). ``ks = 1`` is plain inverse-frequency re-weighting. The smoothed density is a float
    (the AgeDB/IMDB-WIKI code hands integer counts to ``convolve1d``, which truncates the smoothed
    counts to integers for ``"inverse"``; longtail does not copy that).

    Boundary: ``mode="reflect"`` (the NYUD2 code's choice, and longtail's default) mirrors the
    histogram at its ends, so a flat histogram gets equal weights. The AgeDB/IMDB-WIKI code pads
    a fixed 0–120 year histogram with zeros (``mode="constant"``); on a histogram that covers only
    the training range, zero padding lowers the density of the end bins and raises their weights.
    So ``mode="constant", clip=(5, 1000)`` is *not* that code's weighting at the ends: it clips
    the whole 0–120 histogram, so its empty bins beyond the training range count 5 before
    smoothing, where longtail pads with 0 (the smoothed density of the bins within the kernel's
    reach of the ends differs, their weights by up to about 60% with the default kernel, and
    with them the rescaling to mean 1).

    Args:
        train_targets: the training targets ``(N,)``; NaN raises ``ValueError``.
        bins: a bin width (1 year for ages) or explicit bin edges; targets outside explicit edges
            are clamped to the end bins.
        kernel, ks, sigma: the kernel (by default Gaussian, size 5, σ 2).
        reweight: ``"inverse"`` or ``"sqrt_inv"`` (``"sqrt-inverse"``, the name
            :func:`~longtail.class_weights` uses, is the same).
        mode: ``"reflect"`` or ``"constant"`` (see above).
        clip: optional ``(low, high)`` bounds on the (square-rooted) counts before smoothing.

    Returns:
        float32 per-sample weights ``(N,)`` with mean 1.

    >>> lds_weights([1.0, 1.0, 2.0, 2.0], bins=1.0).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    if reweight == "sqrt-inverse":  # class_weights' name for it
        reweight = "sqrt_inv"
    check_choice("reweight", reweight, ("inverse", "sqrt_inv"))
    check_choice("mode", mode, ("reflect", "constant"))
    check_kernel(kernel, ks, sigma)
    t = as_targets(train_targets, "train_targets")
    if t.numel() == 0:
        raise expected("train_targets", "non-empty", "no targets")
    edges, width = resolve_bins(bins, t)
    nb = edges.numel() - 1
    idx = torch.from_numpy(bin_of(t, edges, width)).clamp_(0, nb - 1)
    counts = torch.bincount(idx, minlength=nb).to(torch.float64)
    if reweight == "sqrt_inv":
        counts = counts.sqrt()
    if clip is not None:
        lo, hi = clip
        counts = counts.clamp(float(lo), float(hi))
    smoothed = _smooth_1d(counts, kernel_window(kernel, ks, sigma, "peak"), mode)
    inv = 1.0 / smoothed[idx]  # every training bin has n >= 1, so its smoothed density is > 0
    return (inv * (inv.numel() / inv.sum())).to(torch.float32)


class FDS(nn.Module):
    """Feature distribution smoothing (Yang et al., ICML 2021).

    Keeps, for each label bin ``b``, a running mean ``μ_b`` and variance ``σ²_b`` of the features
    of the training samples in that bin, and their versions smoothed over neighbouring bins,
    ``μ̃ = k * μ``, ``σ̃² = k * σ²`` (kernel normalised to sum 1, mirror padding at the ends, as
    the reference code's ``F.pad(mode="reflect")``). In training, from epoch ``start_smooth``,
    features are re-calibrated:

    .. math::

        \\tilde f = (f - \\mu_b)\\,
        \\sqrt{\\mathrm{clamp}(\\tilde\\sigma^2_b / \\sigma^2_b,\\ 0.1,\\ 10)} + \\tilde\\mu_b

    (dimensions with ``σ²_b = 0``, and bins whose total variance is below 1e-10, are left as they
    are, as in the reference ``calibrate_mean_var``). In eval mode, and before ``start_smooth``,
    :meth:`smooth` is the identity.

    Statistics are epoch-level, as in the reference code: during epoch ``e`` (from
    ``start_update``), :meth:`update_running_stats` accumulates each bin's count, mean and
    sum of squared deviations (exactly, in float64, over any number of calls); at the end of the
    epoch :meth:`update_last_epoch_stats` folds that epoch's mean and unbiased variance into the
    running statistics, ``μ ← m·μ + (1 − m)·μ_epoch`` (the first epoch with samples in a bin sets
    them), and recomputes the smoothed statistics. One deliberate difference: the reference code
    smooths epoch ``e``'s features with statistics that lag by two epochs (and its
    ``running_mean_last_epoch = running_mean`` aliases the live tensor, mixing the two); longtail
    uses the statistics through epoch ``e − 1``, consistently for ``μ`` and ``μ̃``.

    Bins below ``bucket_start`` are merged into it and bins from ``num_bins − 1`` up into the last
    one (the reference code's ``bucket_start`` / ``bucket_num``). Every statistic is a buffer, so
    ``state_dict()`` and ``.to()`` carry them; a run resumed mid-epoch keeps its accumulators.

    Usage::

        fds = FDS(feature_dim=512, num_bins=100)
        for epoch in range(epochs):
            for x, y in loader:
                b = bin_index(y, edges)
                h = encoder(x)
                pred = regressor(fds.smooth(h, b, epoch))
                fds.update_running_stats(h.detach(), b, epoch)   # or one pass at the epoch end
                ...
            fds.update_last_epoch_stats(epoch)

    Args:
        feature_dim: feature size ``D``.
        num_bins: number of label bins (the reference ``bucket_num``).
        bucket_start: first tracked bin; lower bins are merged into it.
        start_update: first epoch whose features update the statistics (0).
        start_smooth: first epoch whose features are calibrated (1).
        kernel, ks, sigma: smoothing kernel (longtail defaults: Gaussian, 5, 2).
        momentum: ``m`` (0.9); ``None`` is the cumulative average over epochs.
    """

    def __init__(
        self,
        feature_dim: int,
        num_bins: int,
        bucket_start: int = 0,
        start_update: int = 0,
        start_smooth: int = 1,
        kernel: str = "gaussian",
        ks: int = 5,
        sigma: float = 2.0,
        momentum: float | None = 0.9,
    ):
        super().__init__()
        for name, v, lo in (("feature_dim", feature_dim, 1), ("num_bins", num_bins, 1)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise expected(name, f"an integer >= {lo}", repr(v))
        if not isinstance(bucket_start, int) or not 0 <= bucket_start < num_bins:
            raise expected("bucket_start", f"an integer in [0, {num_bins})", repr(bucket_start))
        if start_smooth < start_update:
            raise expected("start_smooth", f">= start_update={start_update}", start_smooth)
        if momentum is not None:
            check_in_range("momentum", momentum, 0.0, 1.0)
        self.feature_dim = feature_dim
        self.num_bins = num_bins
        self.bucket_start = bucket_start
        self.start_update = start_update
        self.start_smooth = start_smooth
        self.kernel, self.ks, self.sigma = kernel, ks, sigma
        self.momentum = momentum
        r = num_bins - bucket_start
        self.register_buffer("kernel_window", kernel_window(kernel, ks, sigma, "sum").float())
        self.register_buffer("running_mean", torch.zeros(r, feature_dim))
        self.register_buffer("running_var", torch.ones(r, feature_dim))
        self.register_buffer("smoothed_mean", torch.zeros(r, feature_dim))
        self.register_buffer("smoothed_var", torch.ones(r, feature_dim))
        self.register_buffer("num_samples_tracked", torch.zeros(r, dtype=torch.float64))
        # the current epoch's exact accumulators (Chan et al.'s parallel mean / M2)
        self.register_buffer("epoch_count", torch.zeros(r, dtype=torch.float64))
        self.register_buffer("epoch_mean", torch.zeros(r, feature_dim, dtype=torch.float64))
        self.register_buffer("epoch_m2", torch.zeros(r, feature_dim, dtype=torch.float64))
        self.register_buffer("accumulating_epoch", torch.tensor(-1, dtype=torch.long))
        self.register_buffer("last_folded_epoch", torch.tensor(-1, dtype=torch.long))

    def extra_repr(self) -> str:
        return (
            f"feature_dim={self.feature_dim}, num_bins={self.num_bins}, "
            f"bucket_start={self.bucket_start}, start_update={self.start_update}, "
            f"start_smooth={self.start_smooth}, kernel={self.kernel!r}, ks={self.ks}, "
            f"sigma={self.sigma}, momentum={self.momentum}"
        )

    def reset(self) -> None:
        """Forget every statistic (the state of a freshly built module)."""
        for name in (
            "running_mean",
            "smoothed_mean",
            "num_samples_tracked",
            "epoch_count",
            "epoch_mean",
            "epoch_m2",
        ):
            getattr(self, name).zero_()
        self.running_var.fill_(1)
        self.smoothed_var.fill_(1)
        self.accumulating_epoch.fill_(-1)
        self.last_folded_epoch.fill_(-1)

    def _rows(self, features: torch.Tensor, bin_idx: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or features.shape[1] != self.feature_dim:
            raise expected(
                "features", f"of shape (N, {self.feature_dim})", f"shape {tuple(features.shape)}"
            )
        if bin_idx.is_floating_point():
            raise expected("bin_idx", "an integer tensor of label bins", bin_idx.dtype)
        b = bin_idx.reshape(-1)
        if b.numel() != features.shape[0]:
            raise expected(
                "bin_idx", f"one bin per feature row ({features.shape[0]})", f"{b.numel()} bins"
            )
        return (
            b.to(features.device).long().clamp(self.bucket_start, self.num_bins - 1)
            - self.bucket_start
        )

    @torch.no_grad()
    def update_running_stats(
        self, features: torch.Tensor, bin_idx: torch.Tensor, epoch: int
    ) -> None:
        """Accumulate ``features`` (N, D) of label bins ``bin_idx`` (N,) into epoch ``epoch``.

        Call it with every batch of the epoch (or once with all the epoch's features). Epochs
        before ``start_update`` are ignored. Features of a new epoch while an older one is still
        pending fold the older one first.
        """
        if epoch < self.start_update or epoch <= int(self.last_folded_epoch):
            return
        pending = int(self.accumulating_epoch)
        if pending >= 0 and epoch > pending:
            self.update_last_epoch_stats(pending)
        self.accumulating_epoch.fill_(epoch)
        rows = self._rows(features, bin_idx)
        if rows.numel() == 0:
            return
        f = features.detach().to(self.epoch_mean.dtype)
        r = self.epoch_count.numel()
        nb = torch.zeros(r, dtype=f.dtype, device=f.device).index_add_(
            0, rows, torch.ones_like(rows, dtype=f.dtype)
        )
        sb = torch.zeros(r, self.feature_dim, dtype=f.dtype, device=f.device).index_add_(0, rows, f)
        mb = sb / nb.clamp_min(1).unsqueeze(1)
        m2b = torch.zeros_like(sb).index_add_(0, rows, (f - mb[rows]) ** 2)
        na = self.epoch_count
        n = na + nb
        delta = mb - self.epoch_mean
        frac = (nb / n.clamp_min(1)).unsqueeze(1)
        self.epoch_mean.add_(delta * frac)
        self.epoch_m2.add_(m2b + delta**2 * (na.unsqueeze(1) * frac))
        self.epoch_count.copy_(n)

    @torch.no_grad()
    def update_last_epoch_stats(self, epoch: int) -> None:
        """End of epoch ``epoch``: fold its statistics into the running ones and smooth them.

        Only bins with samples in the epoch change; a bin's first epoch sets its statistics (the
        reference code's factor 0 at ``start_update``). The per-epoch variance is unbiased
        (biased, i.e. 0, for a single sample, as in the reference code). Calling it twice for
        the same epoch, or for an epoch with nothing accumulated, changes nothing.
        """
        if epoch <= int(self.last_folded_epoch):
            return
        pending = int(self.accumulating_epoch)
        if pending < 0 or pending > epoch:
            return
        n = self.epoch_count
        seen = n > 0
        dtype = self.running_mean.dtype
        mean = self.epoch_mean.to(dtype)
        var = (self.epoch_m2 / torch.where(n > 1, n - 1, torch.ones_like(n)).unsqueeze(1)).to(dtype)
        if self.momentum is None:
            tracked = self.num_samples_tracked + n
            factor = 1 - n / tracked.clamp_min(1)
        else:
            factor = torch.full_like(n, float(self.momentum))
        factor = torch.where(self.num_samples_tracked > 0, factor, torch.zeros_like(factor))
        f = factor.to(dtype).unsqueeze(1)
        s = seen.unsqueeze(1)
        self.running_mean.copy_(
            torch.where(s, f * self.running_mean + (1 - f) * mean, self.running_mean)
        )
        self.running_var.copy_(
            torch.where(s, f * self.running_var + (1 - f) * var, self.running_var)
        )
        self.num_samples_tracked.add_(n)
        self.smoothed_mean.copy_(_smooth_1d(self.running_mean, self.kernel_window, "mirror"))
        self.smoothed_var.copy_(_smooth_1d(self.running_var, self.kernel_window, "mirror"))
        self.epoch_count.zero_()
        self.epoch_mean.zero_()
        self.epoch_m2.zero_()
        self.accumulating_epoch.fill_(-1)
        self.last_folded_epoch.fill_(pending)

    def smooth(self, features: torch.Tensor, bin_idx: torch.Tensor, epoch: int) -> torch.Tensor:
        """Calibrate training ``features`` (N, D) of label bins ``bin_idx`` (N,).

        Identity in eval mode and before ``start_smooth``. Out of place and differentiable with
        respect to ``features``; computed in at least float32 and returned in the features'
        dtype.
        """
        if not self.training or epoch < self.start_smooth:
            return features
        rows = self._rows(features, bin_idx)
        cd = torch.promote_types(features.dtype, torch.float32)
        f = features.to(cd)
        m1, v1 = self.running_mean[rows].to(cd), self.running_var[rows].to(cd)
        m2, v2 = self.smoothed_mean[rows].to(cd), self.smoothed_var[rows].to(cd)
        ok = (v1 != 0) & (v1.sum(dim=1, keepdim=True) >= 1e-10)
        factor = torch.where(ok, v2 / torch.where(ok, v1, torch.ones_like(v1)), torch.ones_like(v1))
        out = (f - m1) * factor.clamp(0.1, 10.0).sqrt() + m2
        return torch.where(ok, out, f).to(features.dtype)

    def forward(self, features: torch.Tensor, bin_idx: torch.Tensor, epoch: int) -> torch.Tensor:
        """Same as :meth:`smooth`."""
        return self.smooth(features, bin_idx, epoch)
