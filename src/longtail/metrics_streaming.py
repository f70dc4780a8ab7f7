"""Streaming classification metrics: ``update(logits, target)`` per batch, ``compute()`` at the end.

The functions of :mod:`longtail.metrics` take every logit of the test set at once. In a user's
own evaluation loop -- batches from a ``DataLoader``, a model split over processes with
``DistributedDataParallel`` -- the objects here keep only the *sufficient statistics* of each
metric and add every batch's to them:

* :class:`Top1Error`, :class:`PerClassAccuracy`, :class:`PerClassError`,
  :class:`BalancedAccuracy`, :class:`ShotAccuracy` (many / medium / few): the correct and the
  total examples of each class (``2 C`` integers);
* :class:`ExpectedCalibrationError`: per confidence bin, the examples, the sum of the
  confidences and the number correct (``3 M`` numbers for ``M`` bins);
* :class:`ClasswiseCalibrationError`: per class and bin of that class's probability, the
  examples, the sum of the probabilities and the number of that class (``3 C M`` numbers);
* :class:`ClassificationMetrics`: all of the first two at once (class-wise ECE on request), the
  ``"metrics"`` dict of a results record.

Each is the streaming form of the function of the same name in :mod:`longtail.metrics`
(:func:`~longtail.metrics.top1_error`, :func:`~longtail.metrics.per_class_accuracy`,
:func:`~longtail.metrics.per_class_error`, :func:`~longtail.metrics.balanced_accuracy`,
:func:`~longtail.metrics.shot_accuracy`, :func:`~longtail.metrics.expected_calibration_error`,
:func:`~longtail.metrics.classwise_calibration_error`,
:func:`~longtail.metrics.classification_metrics`), and takes the same inputs.

``compute()`` gives what the functional form gives on the concatenation of every batch seen
since the last ``reset()``: the counts are integers, so the accuracies are exact, and the
calibration sums are float64 (the functional forms' precision; only the order of the additions
differs, a few units in the 15th digit).

Distributed evaluation: when ``torch.distributed`` has an initialised process group of more than
one process, ``compute()`` sums the statistics of every process with ``all_reduce`` (on a copy:
the local state is kept, and ``compute()`` may be called again), so every rank gets the metric
of the union of the ranks' data -- exact, not an average of the ranks' metrics, whatever the
number of examples each rank saw (none included). Every rank must call ``compute()`` (a
collective); pass ``sync_on_compute=False`` for the local value. The state tensors live on the
device of the inputs (CPU until the first batch), so with the ``nccl`` backend they are reduced
on the GPU; a rank that saw no batch moves its zeros to its current CUDA device for ``nccl``.

With ``torchmetrics`` installed, :mod:`longtail.metrics_torchmetrics` wraps each class as a
``torchmetrics.Metric`` (same statistics, registered with ``dist_reduce_fx="sum"``), for
Lightning and ``MetricCollection``.

Example:
    >>> import torch
    >>> metric = BalancedAccuracy(num_classes=3)
    >>> metric.update(torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), torch.tensor([0, 2]))
    >>> metric.update(torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([2]))
    >>> metric.compute()  # class 0: 1/1, class 2: 1/2, class 1 absent
    75.0
    >>> metric.reset()
"""

from __future__ import annotations

import math
from typing import Any

import torch

from longtail._labels import check_int
from longtail._validation import as_counts, expected
from longtail.metrics import (
    _as_logits,
    _as_target,
    _as_tensor,
    _check_ignore_index,
    _check_probabilities,
    _check_thresholds,
    _classwise_stats,
    _classwise_value,
    _drop_ignored,
    _ece_stats,
    _ece_value,
    _json_float,
    _labels_and_classes,
    _nanmean,
    _probabilities,
    _shot_groups,
)

__all__ = [
    "BalancedAccuracy",
    "ClassificationMetrics",
    "ClasswiseCalibrationError",
    "ExpectedCalibrationError",
    "PerClassAccuracy",
    "PerClassError",
    "ShotAccuracy",
    "StreamingMetric",
    "Top1Error",
]


def _distributed_world(group: Any) -> int:
    """The size of ``group`` (default: the world) when a process group is initialised, else 1."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


def all_reduce_sum(stats: dict[str, torch.Tensor], group: Any = None) -> dict[str, torch.Tensor]:
    """``stats`` summed over the processes of ``group`` (``all_reduce``, on copies), or
    ``stats`` itself without an initialised process group of more than one process."""
    if _distributed_world(group) <= 1:
        return stats
    import torch.distributed as dist

    target = None
    if dist.get_backend(group) == "nccl":  # nccl reduces CUDA tensors only
        target = torch.device("cuda", torch.cuda.current_device())
    out = {}
    for name, value in stats.items():
        copy = value.clone() if target is None or value.device == target else value.to(target)
        dist.all_reduce(copy, op=dist.ReduceOp.SUM, group=group)
        out[name] = copy
    return out


# ---- the statistics ---------------------------------------------------------------------------
# A metric is a set of statistic groups; each group is a few tensors that add over batches.
#   "acc": correct and total examples of each class                    (C,) int64 each
#   "ece": examples, Σ confidence and Σ correct of each confidence bin  (M,) int64/float64
#   "cw":  examples, Σ p_ic and Σ [y_i = c] of each class and bin       (C, M) int64/float64
_GROUP_STATES = {
    "acc": ("correct", "total"),
    "ece": ("ece_count", "ece_conf", "ece_hits"),
    "cw": ("cw_count", "cw_prob", "cw_hits"),
}


class _Core:
    """What a metric computes, apart from where its state lives: the shapes of its statistics,
    their increments for one batch, and the value from their totals. :class:`StreamingMetric`
    keeps the totals in a dict; :mod:`longtail.metrics_torchmetrics` in torchmetrics states."""

    groups: tuple[str, ...] = ("acc",)

    def _setup(self, num_classes: int, n_bins: int = 15, from_probs: bool = False) -> None:
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        self.n_bins = check_int("n_bins", n_bins, minimum=1)
        if not isinstance(from_probs, bool):
            raise expected("from_probs", "True or False", repr(from_probs))
        self.from_probs = from_probs

    def _state_specs(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        c, m = self.num_classes, self.n_bins
        specs: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        if "acc" in self.groups:
            specs.update(correct=((c,), torch.int64), total=((c,), torch.int64))
        if "ece" in self.groups:
            specs.update(
                ece_count=((m,), torch.int64),
                ece_conf=((m,), torch.float64),
                ece_hits=((m,), torch.float64),
            )
        if "cw" in self.groups:
            specs.update(
                cw_count=((c, m), torch.int64),
                cw_prob=((c, m), torch.float64),
                cw_hits=((c, m), torch.float64),
            )
        return specs

    @property
    def _needs_scores(self) -> bool:
        return "ece" in self.groups or "cw" in self.groups

    def _empty_batch(self, logits: Any, target: torch.Tensor) -> bool:
        """Whether the batch holds no example (then checked for shape and left out)."""
        if target.dim() != 1 or target.numel():
            return False
        x = _as_tensor(logits, "logits")
        if x.dim() == 2 and x.shape == (0, self.num_classes) and x.is_floating_point():
            return True
        if x.dim() == 1 and x.numel() == 0 and not self._needs_scores:
            return True
        what = f"of shape (0, {self.num_classes}) for an empty target"
        if not self._needs_scores:
            what += " (or predicted labels of shape (0,))"
        raise expected("logits", what, f"{x.dtype} tensor of shape {tuple(x.shape)}")

    ignore_index: int | None = None

    def _increments(self, logits: Any, target: Any) -> dict[str, torch.Tensor] | None:
        """The statistics of one batch (``None`` for an empty one), on the inputs' device."""
        logits, tgt = _drop_ignored(logits, target, self.ignore_index)
        if self._empty_batch(logits, tgt):
            return None
        c = self.num_classes
        out: dict[str, torch.Tensor] = {}
        if not self._needs_scores:
            pred, tgt, _ = _labels_and_classes(logits, tgt, c, "logits")
        else:
            n = tgt.shape[0] if tgt.dim() >= 1 else -1
            # contiguous: the softmax of a row does not depend on the layout it was read from
            x = _as_logits(logits, "logits", n).contiguous()
            if x.shape[1] != c:
                raise expected("logits", f"of shape (N, {c}) (num_classes={c})", tuple(x.shape))
            tgt = _as_target(tgt, c).to(x.device)
            if self.from_probs:
                _check_probabilities(x, "logits")
            pred = x.argmax(dim=1)
            probs = _probabilities(x, self.from_probs)
            if "ece" in self.groups:
                size, conf, hits = _ece_stats(probs, pred, tgt, self.n_bins)
                out.update(ece_count=size, ece_conf=conf, ece_hits=hits)
            if "cw" in self.groups:
                size, prob, hits = _classwise_stats(probs, tgt, self.n_bins)
                out.update(cw_count=size, cw_prob=prob, cw_hits=hits)
        if "acc" in self.groups:
            out["total"] = torch.bincount(tgt, minlength=c)
            out["correct"] = torch.bincount(tgt[pred == tgt], minlength=c)
        return out

    def _examples(self, stats: dict[str, torch.Tensor]) -> int:
        if "acc" in self.groups:
            return int(stats["total"].sum())
        if "ece" in self.groups:
            return int(stats["ece_count"].sum())
        return int(stats["cw_count"][0].sum())

    def _per_class_acc(self, stats: dict[str, torch.Tensor]) -> torch.Tensor:
        # as metrics._per_class_accuracy: 0 / 0 = NaN for a class absent from the targets
        return stats["correct"].cpu().double() / stats["total"].cpu().double()

    def _top1(self, stats: dict[str, torch.Tensor]) -> float:
        correct, total = int(stats["correct"].sum()), int(stats["total"].sum())
        return 100.0 * (total - correct) / total if total else math.nan

    def _ece(self, stats: dict[str, torch.Tensor]) -> float:
        return _ece_value(*(stats[k].cpu() for k in ("ece_count", "ece_conf", "ece_hits")))

    def _classwise(self, stats: dict[str, torch.Tensor]) -> float:
        return _classwise_value(*(stats[k].cpu() for k in ("cw_count", "cw_prob", "cw_hits")))

    def _value(self, stats: dict[str, torch.Tensor]) -> Any:
        raise NotImplementedError

    def _checked_value(self, stats: dict[str, torch.Tensor]) -> Any:
        if not self._examples(stats):
            raise ValueError(
                f"{type(self).__name__}.compute() has no example to compute from: since the "
                "last reset() (on any process) update() has been given no batch, only empty "
                "ones, or only examples whose target is ignore_index."
            )
        return self._value(stats)


class StreamingMetric(_Core):
    """The base of the streaming metrics: sufficient statistics summed over batches and ranks.

    Subclasses say which statistics they keep and what they compute from them; the base adds
    every batch's statistics in :meth:`update`, sums them over processes in :meth:`compute`
    and zeroes them in :meth:`reset`. Two metrics of the same kind and settings can be added
    with :meth:`merge` (say, one per data shard). The state is :attr:`state`, a dict of
    tensors that :meth:`state_dict` / :meth:`load_state_dict` copy.

    Args (common to every subclass):
        sync_on_compute: Sum the statistics over the processes of an initialised
            ``torch.distributed`` group in :meth:`compute`. Default ``True``.
        process_group: The group to reduce over; default the whole world.
        ignore_index: Examples whose target is this value are left out (padding tokens
            labelled -100, as the losses and torchmetrics take them). Default ``None``.
    """

    def __init__(
        self,
        *,
        sync_on_compute: bool = True,
        process_group: Any = None,
        ignore_index: int | None = None,
    ) -> None:
        if not isinstance(sync_on_compute, bool):
            raise expected("sync_on_compute", "True or False", repr(sync_on_compute))
        self.ignore_index = _check_ignore_index(ignore_index)
        self.sync_on_compute = sync_on_compute
        self.process_group = process_group
        self.state: dict[str, torch.Tensor] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every batch: the statistics are zero again (on the CPU)."""
        self.state = {
            name: torch.zeros(shape, dtype=dtype)
            for name, (shape, dtype) in self._state_specs().items()
        }

    @property
    def device(self) -> torch.device:
        """The device of the statistics: the device of the last batch (CPU before any)."""
        return next(iter(self.state.values())).device

    @torch.no_grad()
    def update(self, logits: Any, target: Any) -> None:
        """Add one batch: ``logits`` ``(N, C)`` (any float dtype, device, layout; predicted
        labels ``(N,)`` for the accuracy metrics) and integer ``target`` ``(N,)``. ``N = 0`` is
        allowed. The statistics move to the batch's device if they are elsewhere.

        Raises:
            ValueError: As the functional form on a bad batch (shapes, labels, NaN).
        """
        inc = self._increments(logits, target)
        if inc is None:
            return
        for name, value in inc.items():
            total = self.state[name]
            if total.device != value.device:
                total = total.to(value.device)
            self.state[name] = total + value.to(total.dtype)

    def merge(self, other: StreamingMetric) -> None:
        """Add the statistics of ``other``, a metric of the same class and settings."""
        differs = []
        if type(other) is type(self):
            if other.ignore_index != self.ignore_index:
                differs.append(f"ignore_index {other.ignore_index!r}, not {self.ignore_index!r}")
            mine, theirs = self._state_specs(), other._state_specs()
            differs += [
                f"{name} of shape {tuple(theirs[name][0])}, not {tuple(mine[name][0])}"
                for name in mine
                if name in theirs and theirs[name] != mine[name]
            ]
            if set(mine) != set(theirs):
                differs.append("other statistics (other settings)")
        if type(other) is not type(self) or differs:
            got = f"{other!r}" + (f" with {'; '.join(differs)}" if differs else "")
            raise expected("other", f"a {type(self).__name__} of the same settings", got)
        for name, value in other.state.items():
            self.state[name] = self.state[name] + value.to(self.state[name].device)

    def synced_state(self) -> dict[str, torch.Tensor]:
        """The statistics summed over the processes (the local ones without a process group
        of more than one process, or with ``sync_on_compute=False``). A collective call."""
        if not self.sync_on_compute:
            return self.state
        return all_reduce_sum(self.state, self.process_group)

    def compute(self) -> Any:
        """The metric of every example given to :meth:`update` since :meth:`reset` (on every
        process of the group). A collective call under ``torch.distributed``.

        Raises:
            ValueError: If no example was given (on any process).
        """
        return self._checked_value(self.synced_state())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A copy of the statistics."""
        return {name: value.clone() for name, value in self.state.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Set the statistics from :meth:`state_dict`'s output."""
        specs = self._state_specs()
        if set(state) != set(specs):
            raise expected("state", f"the statistics {sorted(specs)}", sorted(state))
        for name, (shape, dtype) in specs.items():
            value = torch.as_tensor(state[name])
            if tuple(value.shape) != shape:
                raise expected(f"state[{name!r}]", f"of shape {shape}", tuple(value.shape))
            self.state[name] = value.to(dtype).clone()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes})"


# ---- the metrics ------------------------------------------------------------------------------
class Top1Error(StreamingMetric):
    """Streaming :func:`~longtail.metrics.top1_error`: the top-1 error (%) as a Python float.

    Args:
        num_classes: Number of classes ``C``.
        **kwargs: ``sync_on_compute``, ``process_group``, ``ignore_index``
            (:class:`StreamingMetric`).
    """

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        self._setup(num_classes)
        super().__init__(**kwargs)

    def _value(self, stats: dict[str, torch.Tensor]) -> float:
        return self._top1(stats)


class PerClassAccuracy(StreamingMetric):
    """Streaming :func:`~longtail.metrics.per_class_accuracy`: a float64 CPU tensor ``(C,)`` of
    fractions, NaN for a class without any example.

    Args:
        num_classes: Number of classes ``C``.
        **kwargs: ``sync_on_compute``, ``process_group``, ``ignore_index``
            (:class:`StreamingMetric`).
    """

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        self._setup(num_classes)
        super().__init__(**kwargs)

    def _value(self, stats: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._per_class_acc(stats)


class PerClassError(PerClassAccuracy):
    """Streaming :func:`~longtail.metrics.per_class_error`: a list of ``C`` errors (%), NaN for
    a class without any example."""

    def _value(self, stats: dict[str, torch.Tensor]) -> list[float]:
        return (100.0 * (1.0 - self._per_class_acc(stats))).tolist()


class BalancedAccuracy(PerClassAccuracy):
    """Streaming :func:`~longtail.metrics.balanced_accuracy`: the mean accuracy (%) of the
    classes that occur in the targets, a Python float."""

    def _value(self, stats: dict[str, torch.Tensor]) -> float:
        return 100.0 * _nanmean(self._per_class_acc(stats))


class ShotAccuracy(StreamingMetric):
    """Streaming many / medium / few-shot accuracy (:func:`~longtail.metrics.shot_accuracy` of
    the per-class accuracies): ``{"many_acc", "medium_acc", "few_acc"}`` in percent, NaN for a
    group none of whose classes occurs in the targets.

    Args:
        train_counts: Training examples per class ``(C,)``; ``C`` is their number.
        many_threshold: Many-shot means more than this many training examples. Default 100.
        few_threshold: Few-shot means fewer than this many. Default 20.
        **kwargs: ``sync_on_compute``, ``process_group``, ``ignore_index``
            (:class:`StreamingMetric`).
    """

    def __init__(
        self,
        train_counts: Any,
        many_threshold: float = 100,
        few_threshold: float = 20,
        **kwargs: Any,
    ) -> None:
        _check_thresholds(many_threshold, few_threshold)
        self.train_counts = as_counts(train_counts, name="train_counts")
        self.many_threshold, self.few_threshold = many_threshold, few_threshold
        self._setup(len(self.train_counts))
        super().__init__(**kwargs)

    def _value(self, stats: dict[str, torch.Tensor]) -> dict[str, float]:
        acc = self._per_class_acc(stats)
        return _shot_groups(acc, self.train_counts, self.many_threshold, self.few_threshold)


class ExpectedCalibrationError(StreamingMetric):
    """Streaming :func:`~longtail.metrics.expected_calibration_error`: ECE (%) with ``n_bins``
    equal-width confidence bins, a Python float.

    Args:
        num_classes: Number of classes ``C``.
        n_bins: Number of bins over ``(0, 1]``. Default 15.
        from_probs: The batches hold probabilities rather than logits. Default ``False``.
        **kwargs: ``sync_on_compute``, ``process_group``, ``ignore_index``
            (:class:`StreamingMetric`).
    """

    groups = ("ece",)

    def __init__(
        self, num_classes: int, n_bins: int = 15, from_probs: bool = False, **kwargs: Any
    ) -> None:
        self._setup(num_classes, n_bins, from_probs)
        super().__init__(**kwargs)

    def _value(self, stats: dict[str, torch.Tensor]) -> float:
        return self._ece(stats)


class ClasswiseCalibrationError(ExpectedCalibrationError):
    """Streaming :func:`~longtail.metrics.classwise_calibration_error`: class-wise ECE (%), the
    probability of every class binned (Kull et al., NeurIPS 2019), a Python float. Its state is
    ``3 · C · n_bins`` numbers. Arguments as :class:`ExpectedCalibrationError`."""

    groups = ("cw",)

    def _value(self, stats: dict[str, torch.Tensor]) -> float:
        return self._classwise(stats)


class ClassificationMetrics(StreamingMetric):
    """Streaming :func:`~longtail.metrics.classification_metrics`: the ``"metrics"`` dict of a
    results record (JSON-ready, ``None`` where a value does not exist).

    Example:
        >>> m = ClassificationMetrics(train_counts=[500, 50, 5])
        >>> m.update(torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]]), torch.tensor([0, 1]))
        >>> m.update(torch.tensor([[3.0, 0.0, 0.0]]), torch.tensor([1]))
        >>> out = m.compute()
        >>> round(out["top1_error"], 2), out["per_class_error"], out["few_acc"]
        (33.33, [0.0, 50.0, None], None)

    Args:
        train_counts: Training examples per class ``(C,)``.
        many_threshold, few_threshold: See :class:`ShotAccuracy`.
        n_bins: Bins of the ECE. Default 15.
        classwise_ece: Also compute ``"classwise_ece"`` (:class:`ClasswiseCalibrationError`).
            Default ``False`` (the keys of the functional form).
        **kwargs: ``sync_on_compute``, ``process_group``, ``ignore_index``
            (:class:`StreamingMetric`).
    """

    def __init__(
        self,
        train_counts: Any,
        many_threshold: float = 100,
        few_threshold: float = 20,
        n_bins: int = 15,
        classwise_ece: bool = False,
        **kwargs: Any,
    ) -> None:
        _check_thresholds(many_threshold, few_threshold)
        self.train_counts = as_counts(train_counts, name="train_counts")
        self.many_threshold, self.few_threshold = many_threshold, few_threshold
        if not isinstance(classwise_ece, bool):
            raise expected("classwise_ece", "True or False", repr(classwise_ece))
        self.groups = ("acc", "ece", "cw") if classwise_ece else ("acc", "ece")
        self._setup(len(self.train_counts), n_bins)
        super().__init__(**kwargs)

    def _value(self, stats: dict[str, torch.Tensor]) -> dict[str, Any]:
        acc = self._per_class_acc(stats)
        shots = _shot_groups(acc, self.train_counts, self.many_threshold, self.few_threshold)
        out = {
            "top1_error": self._top1(stats),
            "balanced_accuracy": _json_float(100.0 * _nanmean(acc)),
            "per_class_error": [_json_float(e) for e in (100.0 * (1.0 - acc)).tolist()],
            "many_acc": _json_float(shots["many_acc"]),
            "medium_acc": _json_float(shots["medium_acc"]),
            "few_acc": _json_float(shots["few_acc"]),
            "ece": self._ece(stats),
        }
        if "cw" in self.groups:
            out["classwise_ece"] = self._classwise(stats)
        return out
