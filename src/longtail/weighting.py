"""Re-weighting and re-sampling for long-tailed data.

* :func:`class_weights` -- per-class loss weights from class counts (inverse frequency, square-root
  inverse frequency, or the "effective number of samples" of Cui et al., CVPR 2019).
* :class:`DeferredReweighting` -- DRW (Cao et al., NeurIPS 2019): plain loss until a given epoch,
  class-balanced weights from then on.
* :class:`ClassBalancedSampler` and :class:`DeferredResampler` (DRS, Cao et al. 2019) -- samplers
  for ``torch.utils.data.DataLoader(sampler=...)`` that also split an epoch across
  ``DistributedDataParallel`` replicas.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from longtail._labels import as_labels, check_int, label_counts
from longtail._validation import as_counts, check_choice, check_in_range, expected

__all__ = [
    "WEIGHT_SCHEMES",
    "ClassBalancedSampler",
    "DeferredResampler",
    "DeferredReweighting",
    "MultiLabelClassAwareSampler",
    "class_weights",
]

#: Names accepted by the ``scheme`` argument. ``"none"`` and ``"uniform"`` both give ones.
WEIGHT_SCHEMES = ("inverse", "sqrt-inverse", "effective", "none", "uniform")

# torch.multinomial refuses more categories than this.
_MULTINOMIAL_MAX = 2**24


def _raw_weights(counts: torch.Tensor, scheme: str, beta: float) -> torch.Tensor:
    """Unnormalised float64 weights for strictly positive float64 ``counts``."""
    if scheme in ("none", "uniform"):
        return torch.ones_like(counts)
    if scheme == "inverse":
        return 1.0 / counts
    if scheme == "sqrt-inverse":
        return 1.0 / counts.sqrt()
    # "effective": (1 - β) / (1 - β^n). β = 1 is the limit 1/n; β = 0 gives 1 for every n >= 1.
    if beta == 1.0:
        return 1.0 / counts
    if beta == 0.0:
        return torch.ones_like(counts)
    # 1 - β^n = -expm1(n log β): accurate even when β^n is close to 1.
    return (1.0 - beta) / -torch.expm1(counts * math.log(beta))


def _checked_scheme(scheme: str, beta: float) -> None:
    check_choice("scheme", scheme, WEIGHT_SCHEMES)
    check_in_range("beta", beta, 0.0, 1.0)


def class_weights(counts: Any, scheme: str = "inverse", beta: float = 0.9999) -> torch.Tensor:
    """Per-class weights from per-class training counts, normalised to sum to ``C``.

    With ``n_c`` the number of training examples of class ``c`` and ``C`` the number of classes:

    * ``"inverse"``: ``w_c ∝ 1 / n_c``.
    * ``"sqrt-inverse"``: ``w_c ∝ 1 / sqrt(n_c)``.
    * ``"effective"``: ``w_c ∝ (1 - β) / (1 - β^{n_c})``, the inverse of the effective number of
      samples ``E_n = (1 - β^n) / (1 - β)`` (Cui et al., "Class-Balanced Loss Based on Effective
      Number of Samples", CVPR 2019). ``β = 0`` gives uniform weights and ``β -> 1`` tends to
      ``"inverse"`` (``β = 1`` is taken as that limit).
    * ``"none"`` / ``"uniform"``: ``w_c = 1``.

    Every scheme is rescaled so that ``Σ_c w_c = C`` (uniform weights are all ones). Computed in
    float64 (``0.9999 ** n`` needs it) and returned as float32.

    Example:
        >>> [round(w, 4) for w in class_weights([100, 10, 1], scheme="inverse").tolist()]
        [0.027, 0.2703, 2.7027]

    Args:
        counts: Per-class counts (list, array or tensor of length ``C``), all ``> 0`` (``>= 0``
            for the uniform schemes, which use none of them).
        scheme: One of :data:`WEIGHT_SCHEMES`. Default ``"inverse"``.
        beta: ``β ∈ [0, 1]`` of the effective-number scheme (ignored by the others, but still
            checked). Default ``0.9999``, the paper's choice for CIFAR.

    Returns:
        A float32 CPU tensor of shape ``(C,)``.

    Raises:
        ValueError: On an unknown scheme, ``beta`` outside ``[0, 1]``, or counts that are not a
            1-D sequence of finite non-negative numbers, or a zero count where the scheme divides
            by a function of it.
    """
    _checked_scheme(scheme, beta)
    # uniform weights use no count: a class absent from the data is no reason to refuse them
    n = as_counts(counts, name="counts", allow_zero=scheme in ("none", "uniform"))
    w = _raw_weights(n, scheme, beta)
    w = w * (n.numel() / w.sum())
    return w.to(torch.float32)


def _check_epoch(epoch: Any) -> int:
    return check_int("epoch", epoch, minimum=0)


class DeferredReweighting:
    """Deferred re-weighting (DRW) schedule: uniform weights, then class-balanced weights.

    From Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss",
    NeurIPS 2019: train with an unweighted loss for the first ``start_epoch`` epochs, then with
    ``class_weights(counts, scheme, beta)``. Epochs are 0-based, so::

        weights(epoch) = ones(C)                             if epoch <  start_epoch
                       = class_weights(counts, scheme, beta) if epoch >= start_epoch

    A pure function of the epoch (both tensors are computed once), so a resumed run gets the
    same weights. The paper uses ``start_epoch=160`` of 200 CIFAR epochs, ``β = 0.9999``.

    Args:
        counts: Per-class training counts, all ``> 0``.
        start_epoch: First (0-based) epoch with class-balanced weights. Default 160.
        beta: ``β`` of the effective-number scheme. Default 0.9999.
        scheme: Any :data:`WEIGHT_SCHEMES` name. Default ``"effective"``.

    Example:
        >>> drw = DeferredReweighting([500, 50, 5], start_epoch=2)
        >>> drw.weights(1).tolist(), drw.is_active(2)
        ([1.0, 1.0, 1.0], True)
    """

    def __init__(
        self,
        counts: Any,
        start_epoch: int = 160,
        beta: float = 0.9999,
        scheme: str = "effective",
    ) -> None:
        self.start_epoch = check_int("start_epoch", start_epoch, minimum=0)
        self.beta = beta
        self.scheme = scheme
        self._balanced = class_weights(counts, scheme=scheme, beta=beta)
        self._uniform = torch.ones_like(self._balanced)

    @property
    def num_classes(self) -> int:
        return self._balanced.numel()

    def is_active(self, epoch: int) -> bool:
        """Whether the class-balanced weights apply at 0-based ``epoch``."""
        return _check_epoch(epoch) >= self.start_epoch

    def weights(self, epoch: int) -> torch.Tensor:
        """Per-class weights (float32, shape ``(C,)``, CPU) for 0-based ``epoch``.

        A fresh copy is returned each call, so moving or editing it is safe.
        """
        return (self._balanced if self.is_active(epoch) else self._uniform).clone()

    __call__ = weights

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_classes={self.num_classes}, "
            f"start_epoch={self.start_epoch}, scheme={self.scheme!r}, beta={self.beta})"
        )


def _resolve_replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """Fill missing ``num_replicas`` / ``rank`` from ``torch.distributed`` (else 1 / 0)."""
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    num_replicas = check_int("num_replicas", num_replicas, minimum=1)
    rank = check_int("rank", rank, minimum=0)
    if rank >= num_replicas:
        raise expected("rank", f"in [0, {num_replicas - 1}] (num_replicas={num_replicas})", rank)
    return num_replicas, rank


class _EpochSampler(Sampler[int]):
    """Shared machinery: labels, seeded per-epoch draws and the split across DDP replicas.

    Subclasses implement :meth:`_global_indices`, the whole epoch's index sequence drawn from a
    generator seeded with ``seed + epoch``; every replica computes the same sequence, pads it by
    repeating from its start to a multiple of ``num_replicas`` and keeps
    ``indices[rank::num_replicas]``.
    """

    def __init__(
        self,
        targets: Any,
        *,
        num_samples: int | None,
        seed: int,
        num_replicas: int | None,
        rank: int | None,
        num_classes: int | None,
    ) -> None:
        if num_classes is not None:
            num_classes = check_int("num_classes", num_classes, minimum=1)
        self.labels = as_labels(targets, num_classes=num_classes)
        self.class_counts = label_counts(self.labels, num_classes)
        self.num_classes = len(self.class_counts)
        if num_samples is None:
            num_samples = len(self.labels)
        self.num_samples = check_int("num_samples", num_samples, minimum=1)
        self.seed = check_int("seed", seed)
        self.num_replicas, self.rank = _resolve_replicas(num_replicas, rank)
        self.epoch = 0

    # ----------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Set the (0-based) epoch; the draws depend only on ``seed + epoch``."""
        self.epoch = _check_epoch(epoch)

    @property
    def total_size(self) -> int:
        """Global epoch length after padding to a multiple of ``num_replicas``."""
        return len(self) * self.num_replicas

    def __len__(self) -> int:
        """Number of indices this replica yields per epoch."""
        return math.ceil(self.num_samples / self.num_replicas)

    def _global_indices(self, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def global_indices(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """The whole epoch's index sequence (all replicas, before padding) for this epoch.

        Args:
            generator: Draw from this generator instead of one seeded with ``seed + epoch``
                (a training loop that draws its augmentation from the same per-epoch
                generator passes it here); the phase still follows :meth:`set_epoch`.
        """
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
        return self._global_indices(generator)

    def __iter__(self) -> Iterator[int]:
        indices = self.global_indices()
        pad = self.total_size - len(indices)
        if pad > 0:
            reps = math.ceil(pad / len(indices))
            indices = torch.cat([indices, indices.repeat(reps)[:pad]])
        return iter(indices[self.rank : self.total_size : self.num_replicas].tolist())

    # ---- class-balanced drawing, shared by both public samplers -----------------------------
    def _init_balanced(self, scheme: str, beta: float, replacement: bool) -> None:
        _checked_scheme(scheme, beta)
        if not isinstance(replacement, bool):
            raise expected("replacement", "a bool", repr(replacement))
        self.scheme, self.beta, self.replacement = scheme, beta, replacement
        counts = torch.as_tensor(self.class_counts, dtype=torch.float64)
        present = counts > 0
        w = torch.zeros_like(counts)  # classes without examples get weight 0: never drawn
        w[present] = _raw_weights(counts[present], scheme, beta)
        w = w * (int(present.sum()) / w.sum())
        self.class_weights = w.to(torch.float32)
        # Probability of drawing class c: w_c n_c / Σ_k w_k n_k.
        self._class_probs = w * counts / (w * counts).sum()
        # Example positions grouped by class, and where each class's group starts.
        self._by_class = torch.as_tensor(np.argsort(self.labels, kind="stable"))
        self._starts = torch.cumsum(counts.long(), 0) - counts.long()
        self._class_sizes = counts.long()
        if not replacement:
            if len(self.labels) > _MULTINOMIAL_MAX:
                raise expected(
                    "targets",
                    f"at most {_MULTINOMIAL_MAX} examples for replacement=False",
                    f"{len(self.labels)} examples",
                )
            if self.num_samples > len(self.labels):
                raise expected(
                    "num_samples",
                    f"<= {len(self.labels)} (the number of examples) for replacement=False",
                    self.num_samples,
                )

    def _balanced_indices(self, generator: torch.Generator) -> torch.Tensor:
        """``num_samples`` indices, example ``i`` drawn with probability ∝ ``w[y_i]``."""
        if not self.replacement:
            per_example = self.class_weights.to(torch.float64)[torch.as_tensor(self.labels)]
            return torch.multinomial(per_example, self.num_samples, False, generator=generator)
        # With replacement, draw the class (probability ∝ w_c n_c) and then an example of it
        # uniformly: the same distribution as per-example weights, with no size limit.
        cls = torch.multinomial(self._class_probs, self.num_samples, True, generator=generator)
        sizes = self._class_sizes[cls]
        u = torch.rand(self.num_samples, generator=generator, dtype=torch.float64)
        within = torch.minimum((u * sizes).long(), sizes - 1)
        return self._by_class[self._starts[cls] + within]


class ClassBalancedSampler(_EpochSampler):
    """Sample example ``i`` with probability ``∝ w_{y_i}``, ``w = class_weights(counts, ...)``.

    The probability of drawing class ``c`` is therefore ``∝ w_c n_c``: with the default
    ``scheme="inverse"`` every class is equally likely; ``"sqrt-inverse"`` gives square-root
    sampling (class ``c`` ``∝ sqrt(n_c)``); ``"effective"`` the effective-number weights of Cui
    et al. (CVPR 2019), with ``beta=0.9999`` the class-balanced re-sampling (CB-RS) of Cao et
    al.'s and the MM paper's tables, which ``longtail train --method cb-rs`` uses. Classes with
    no examples (possible with an explicit ``num_classes``) get weight 0 and are never drawn.

    Works with ``DataLoader(sampler=...)`` and with ``DistributedDataParallel``: every replica
    draws the same global sequence from a ``torch.Generator`` seeded with ``seed + epoch``, pads
    it (repeating from its start) to a multiple of ``num_replicas`` and keeps
    ``indices[rank::num_replicas]``. Call :meth:`set_epoch` at the start of every epoch, as with
    ``DistributedSampler``; a resumed run then gets the same draws.

    Args:
        targets: Labels (list, array, tensor) or a dataset with a ``.targets`` attribute.
        scheme: Weighting scheme, one of :data:`WEIGHT_SCHEMES`. Default ``"inverse"``.
        beta: ``β`` of the ``"effective"`` scheme. Default 0.9999.
        num_samples: Global number of draws per epoch. Default ``len(targets)``.
        replacement: Draw with replacement (default ``True``). Without it ``num_samples`` must
            not exceed the number of examples.
        seed: Base seed; epoch ``e`` uses ``seed + e``, as torch's ``DistributedSampler``.
            So seeds ``s`` and ``s + k`` draw the same epochs ``k`` apart: for runs over
            seeds, space the sampler seeds far apart (``1_000_003 * seed``, as
            ``longtail train`` does). Default 0.
        num_replicas: Number of DDP processes. Default: the world size if ``torch.distributed``
            is initialised, else 1.
        rank: This process's rank. Default: from ``torch.distributed`` if initialised, else 0.
        num_classes: Number of classes. Default ``max label + 1``.
    """

    def __init__(
        self,
        targets: Any,
        scheme: str = "inverse",
        beta: float = 0.9999,
        num_samples: int | None = None,
        replacement: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(
            targets,
            num_samples=num_samples,
            seed=seed,
            num_replicas=num_replicas,
            rank=rank,
            num_classes=num_classes,
        )
        self._init_balanced(scheme, beta, replacement)

    def _global_indices(self, generator: torch.Generator) -> torch.Tensor:
        return self._balanced_indices(generator)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_examples={len(self.labels)}, "
            f"num_classes={self.num_classes}, scheme={self.scheme!r}, beta={self.beta}, "
            f"num_samples={self.num_samples}, replacement={self.replacement}, seed={self.seed}, "
            f"num_replicas={self.num_replicas}, rank={self.rank})"
        )


class DeferredResampler(_EpochSampler):
    """Deferred re-sampling (DRS, Cao et al., NeurIPS 2019).

    Before ``start_epoch`` (0-based) an epoch is a uniform random permutation of the dataset
    (plain shuffling, no replacement); from ``start_epoch`` on, ``len(targets)`` class-balanced
    draws with replacement exactly as :class:`ClassBalancedSampler` makes them (default weights:
    effective number, ``β = 0.9999``). The epoch length is ``len(targets)`` in both phases.

    The phase and the draws depend only on ``seed + epoch``: call :meth:`set_epoch` at the start
    of every epoch. DDP splitting is the same as :class:`ClassBalancedSampler`.

    Args:
        targets: Labels (list, array, tensor) or a dataset with a ``.targets`` attribute.
        start_epoch: First epoch with class-balanced sampling. Default 160.
        scheme: Weighting scheme of the balanced phase. Default ``"effective"``.
        beta: ``β`` of the ``"effective"`` scheme. Default 0.9999.
        seed: Base seed; epoch ``e`` uses ``seed + e``, as torch's ``DistributedSampler``.
            So seeds ``s`` and ``s + k`` draw the same epochs ``k`` apart: for runs over
            seeds, space the sampler seeds far apart (``1_000_003 * seed``, as
            ``longtail train`` does). Default 0.
        num_replicas: Number of DDP processes (default from ``torch.distributed``, else 1).
        rank: This process's rank (default from ``torch.distributed``, else 0).
        num_classes: Number of classes. Default ``max label + 1``.
    """

    def __init__(
        self,
        targets: Any,
        start_epoch: int = 160,
        scheme: str = "effective",
        beta: float = 0.9999,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(
            targets,
            num_samples=None,
            seed=seed,
            num_replicas=num_replicas,
            rank=rank,
            num_classes=num_classes,
        )
        self.start_epoch = check_int("start_epoch", start_epoch, minimum=0)
        self._init_balanced(scheme, beta, replacement=True)

    def is_active(self, epoch: int | None = None) -> bool:
        """Whether ``epoch`` (default: the current one) uses class-balanced sampling."""
        e = self.epoch if epoch is None else _check_epoch(epoch)
        return e >= self.start_epoch

    def _global_indices(self, generator: torch.Generator) -> torch.Tensor:
        if self.is_active():
            return self._balanced_indices(generator)
        return torch.randperm(len(self.labels), generator=generator)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_examples={len(self.labels)}, "
            f"num_classes={self.num_classes}, start_epoch={self.start_epoch}, "
            f"scheme={self.scheme!r}, beta={self.beta}, seed={self.seed}, "
            f"num_replicas={self.num_replicas}, rank={self.rank})"
        )


class MultiLabelClassAwareSampler(_EpochSampler):
    """Class-aware sampling for multi-label data: draw a label, then an example carrying it.

    Label ``c`` is drawn with probability ``∝ w_c n_c`` (``n_c`` its positives,
    ``w = class_weights(n, scheme)``): with the default ``scheme="inverse"`` every label is
    equally likely, the class-aware sampling of Shen et al. (ECCV 2016) that the DB loss (Wu et
    al., ECCV 2020) trains with; then an example is drawn uniformly among the ``n_c`` carrying it.
    Example ``i`` is therefore drawn with probability ``Σ_{c ∈ y_i} p_c / n_c``
    (:meth:`example_probabilities`): an example with several labels is drawn through each of
    them, which is what DB's re-balanced weights correct. Examples with no label, and labels with
    no example, are never drawn.

    Works with ``DataLoader(sampler=...)`` and ``DistributedDataParallel`` exactly as
    :class:`longtail.ClassBalancedSampler`: every replica draws the same global sequence from a
    ``torch.Generator`` seeded with ``seed + epoch``, pads it (repeating from its start) to a
    multiple of ``num_replicas`` and keeps ``indices[rank::num_replicas]``; call
    :meth:`set_epoch` every epoch.

    Args:
        targets: the multi-hot matrix ``(N, C)`` (see :func:`as_multihot`) or a dataset with a
            ``.targets`` attribute holding it.
        scheme: label weights, one of :data:`longtail.weighting.WEIGHT_SCHEMES`. Default
            ``"inverse"`` (every label equally likely).
        beta: ``β`` of the ``"effective"`` scheme. Default 0.9999.
        num_samples: global draws per epoch. Default ``N``.
        seed: base seed; epoch ``e`` uses ``seed + e``. Default 0.
        num_replicas: DDP processes (default: the world size if ``torch.distributed`` is
            initialised, else 1).
        rank: this process's rank (default: from ``torch.distributed``, else 0).

    Example:
        >>> s = MultiLabelClassAwareSampler([[1, 0], [1, 0], [1, 1], [0, 0]], num_samples=6)
        >>> s.class_counts.tolist(), len(list(s))
        ([3, 1], 6)
    """

    def __init__(
        self,
        targets: Any,
        scheme: str = "inverse",
        beta: float = 0.9999,
        num_samples: int | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        from longtail.data.multilabel import as_multihot  # the data module imports this one

        # _EpochSampler's __init__ reads single labels: its state is set here instead
        y = as_multihot(targets)
        _checked_scheme(scheme, beta)
        self.targets = y
        self.class_counts = y.sum(0).astype(np.int64)
        self.num_classes = y.shape[1]
        if not self.class_counts.any():
            raise expected("targets", "at least one positive label", "an all-zero matrix")
        self.num_samples = check_int(
            "num_samples", len(y) if num_samples is None else num_samples, minimum=1
        )
        self.seed = check_int("seed", seed)
        self.num_replicas, self.rank = _resolve_replicas(num_replicas, rank)
        self.epoch = 0
        self.scheme, self.beta = scheme, beta
        counts = torch.as_tensor(self.class_counts, dtype=torch.float64)
        present = counts > 0
        w = torch.zeros_like(counts)  # labels without examples: weight 0, never drawn
        w[present] = _raw_weights(counts[present], scheme, beta)
        w = w * (int(present.sum()) / w.sum())
        self.class_weights = w.to(torch.float32)
        self._class_probs = w * counts / (w * counts).sum()
        # the examples carrying each label, label after label, and where each label's run starts
        _, example = np.nonzero(y.T)
        self._by_class = torch.as_tensor(example, dtype=torch.int64)
        sizes = torch.as_tensor(self.class_counts, dtype=torch.int64)
        self._starts = torch.cumsum(sizes, 0) - sizes
        self._class_sizes = sizes

    def example_probabilities(self) -> torch.Tensor:
        """The probability of drawing each example at one draw, float64 ``(N,)``."""
        per_label = self._class_probs / torch.as_tensor(self.class_counts).clamp_min(1)
        return torch.as_tensor(self.targets, dtype=torch.float64) @ per_label

    def _global_indices(self, generator: torch.Generator) -> torch.Tensor:
        cls = torch.multinomial(self._class_probs, self.num_samples, True, generator=generator)
        sizes = self._class_sizes[cls]
        u = torch.rand(self.num_samples, generator=generator, dtype=torch.float64)
        within = torch.minimum((u * sizes).long(), sizes - 1)
        return self._by_class[self._starts[cls] + within]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_examples={len(self.targets)}, "
            f"num_classes={self.num_classes}, scheme={self.scheme!r}, beta={self.beta}, "
            f"num_samples={self.num_samples}, seed={self.seed}, "
            f"num_replicas={self.num_replicas}, rank={self.rank})"
        )
