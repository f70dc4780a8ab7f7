"""The streaming metrics as ``torchmetrics.Metric`` subclasses (needs ``pip install torchmetrics``).

Each class here keeps the statistics of its namesake in :mod:`longtail.metrics_streaming` as
torchmetrics states (``add_state(name, default=zeros, dist_reduce_fx="sum")``), so it works
wherever a torchmetrics metric does: in a Lightning module (``self.log("bacc", metric)``), in a
``MetricCollection``, moved with ``.to(device)``, synchronised by torchmetrics over
``torch.distributed`` (a sum of the statistics: exact, as the streaming forms). Their numbers
are those of the streaming forms and of the functional forms of :mod:`longtail.metrics` on the
concatenated batches; following torchmetrics, ``compute()`` returns tensors rather than Python
values, and the states are left out of ``state_dict()`` unless ``metric.persistent(True)`` (a
metric restored without them has no example to compute from). Called on a batch,
``metric(logits, target)`` adds it and returns that batch's value, NaN for a batch with nothing
to measure (empty, or every target ``ignore_index``):

* :class:`Top1Error`, :class:`BalancedAccuracy`, :class:`ExpectedCalibrationError`,
  :class:`ClasswiseCalibrationError`: a float64 scalar tensor (percent);
* :class:`PerClassAccuracy` (fractions), :class:`PerClassError` (percent): a float64 tensor
  ``(C,)``, NaN for a class without any example;
* :class:`ShotAccuracy`, :class:`ClassificationMetrics`: a dict of such tensors (NaN where the
  streaming form gives ``None``).

Where torchmetrics has the same quantity, the numbers agree: :class:`BalancedAccuracy` with
``MulticlassAccuracy(num_classes, average="macro")`` when every class occurs in the targets
(torchmetrics counts a class that is predicted but never a target as accuracy 0, longtail leaves
it out), :class:`ExpectedCalibrationError` (as a fraction) with
``MulticlassCalibrationError(num_classes, n_bins, norm="l1")`` except for confidences that fall
exactly on a bin edge (torchmetrics' bins are ``[b/M, (b+1)/M)`` and it sums in float32).

Example:
    >>> import torch
    >>> metric = BalancedAccuracy(num_classes=3)
    >>> metric.update(torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), torch.tensor([0, 2]))
    >>> metric.update(torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([2]))
    >>> metric.compute()
    tensor(75., dtype=torch.float64)
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

try:
    import torchmetrics
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "longtail.metrics_torchmetrics needs torchmetrics: pip install torchmetrics "
        "(longtail.metrics_streaming has the same metrics without it)."
    ) from err

from longtail import metrics_streaming as _ms

__all__ = [
    "BalancedAccuracy",
    "ClassificationMetrics",
    "ClasswiseCalibrationError",
    "ExpectedCalibrationError",
    "PerClassAccuracy",
    "PerClassError",
    "ShotAccuracy",
    "Top1Error",
]


def _as_tensor_value(value: Any) -> Any:
    """A streaming metric's value in torchmetrics' form: float64 CPU tensors, NaN for None."""
    if isinstance(value, dict):
        return {k: _as_tensor_value(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.double()
    if isinstance(value, list):
        return torch.tensor([math.nan if v is None else v for v in value], dtype=torch.float64)
    return torch.tensor(math.nan if value is None else value, dtype=torch.float64)


# torchmetrics.Metric's own keywords; the others go to the streaming metric
_TORCHMETRICS_KEYWORDS = frozenset(
    {
        "compute_on_cpu",
        "compute_with_cache",
        "dist_sync_fn",
        "dist_sync_on_step",
        "distributed_available_fn",
        "process_group",
        "sync_on_compute",
    }
)


class _TorchMetric(torchmetrics.Metric):
    """A :mod:`longtail.metrics_streaming` metric whose statistics are torchmetrics states.

    The streaming metric (``_streaming``) checks the arguments, computes each batch's
    statistics and the value from their totals; torchmetrics holds the totals, moves them
    with the module, resets and synchronises them (``dist_reduce_fx="sum"``).
    """

    full_state_update = False
    is_differentiable = False
    _streaming: type[_ms.StreamingMetric]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # help() and inspect show the streaming metric's arguments (num_classes, n_bins, ...)
        # and torchmetrics' keywords, not (*args, **kwargs)
        sig = inspect.signature(cls._streaming.__init__)
        params = [p for p in sig.parameters.values() if p.name != "self"]
        params = [p for p in params if p.kind is not p.VAR_KEYWORD]
        if "ignore_index" not in {p.name for p in params}:  # the streaming base class's
            base = inspect.signature(_ms.StreamingMetric.__init__).parameters["ignore_index"]
            params.append(base)
        params.append(inspect.Parameter("torchmetrics_kwargs", inspect.Parameter.VAR_KEYWORD))
        cls.__signature__ = sig.replace(parameters=params, return_annotation=sig.empty)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        own = {k: kwargs.pop(k) for k in list(kwargs) if k in _TORCHMETRICS_KEYWORDS}
        super().__init__(**own)
        self._in_forward = False  # compute() of one batch alone (forward) may have no example
        self._metric = self._streaming(*args, sync_on_compute=False, **kwargs)
        for name, (shape, dtype) in self._metric._state_specs().items():
            self.add_state(name, default=torch.zeros(shape, dtype=dtype), dist_reduce_fx="sum")

    def update(self, logits: Any, target: Any) -> None:
        """Add one batch, as :meth:`longtail.metrics_streaming.StreamingMetric.update`."""
        inc = self._metric._increments(logits, target)
        if inc is None:
            return
        for name, value in inc.items():
            total = getattr(self, name)
            setattr(self, name, total + value.to(device=total.device, dtype=total.dtype))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Add the batch, as :meth:`update`, and return the metric of this batch alone: NaN
        (in the value's shape) for a batch with no example to measure, an empty one or one
        whose every target is ``ignore_index`` (padding), as in a Lightning ``*_step``."""
        self._in_forward = True
        try:
            return super().forward(*args, **kwargs)
        finally:
            self._in_forward = False

    def compute(self) -> Any:
        """The metric of every batch since ``reset()`` (torchmetrics has summed the states
        over the processes first), as float64 tensors.

        Raises:
            ValueError: If no example was given (on any process), or every target given was
                ``ignore_index``.
        """
        stats = {name: getattr(self, name) for name in self._metric._state_specs()}
        if self._in_forward and not self._metric._examples(stats):
            return _as_tensor_value(self._metric._value(stats))  # NaN: one batch, nothing in it
        return _as_tensor_value(self._metric._checked_value(stats))


def _doc(name: str, returns: str) -> str:
    return (
        f"torchmetrics form of :class:`longtail.metrics_streaming.{name}` (same arguments, "
        f"and torchmetrics' keywords such as ``sync_on_compute``); ``compute()`` returns "
        f"{returns}."
    )


class Top1Error(_TorchMetric):
    __doc__ = _doc("Top1Error", "the error (%) as a float64 scalar tensor")
    _streaming = _ms.Top1Error
    higher_is_better = False


class PerClassAccuracy(_TorchMetric):
    __doc__ = _doc("PerClassAccuracy", "a float64 tensor (C,) of fractions, NaN for absent")
    _streaming = _ms.PerClassAccuracy
    higher_is_better = True


class PerClassError(_TorchMetric):
    __doc__ = _doc("PerClassError", "a float64 tensor (C,) in percent, NaN for absent")
    _streaming = _ms.PerClassError
    higher_is_better = False


class BalancedAccuracy(_TorchMetric):
    __doc__ = _doc("BalancedAccuracy", "the balanced accuracy (%) as a float64 scalar tensor")
    _streaming = _ms.BalancedAccuracy
    higher_is_better = True


class ShotAccuracy(_TorchMetric):
    __doc__ = _doc("ShotAccuracy", "{'many_acc', 'medium_acc', 'few_acc'} of scalar tensors")
    _streaming = _ms.ShotAccuracy
    higher_is_better = True


class ExpectedCalibrationError(_TorchMetric):
    __doc__ = _doc("ExpectedCalibrationError", "ECE (%) as a float64 scalar tensor")
    _streaming = _ms.ExpectedCalibrationError
    higher_is_better = False


class ClasswiseCalibrationError(_TorchMetric):
    __doc__ = _doc("ClasswiseCalibrationError", "class-wise ECE (%) as a float64 scalar tensor")
    _streaming = _ms.ClasswiseCalibrationError
    higher_is_better = False


class ClassificationMetrics(_TorchMetric):
    __doc__ = _doc("ClassificationMetrics", "the record's metrics as a dict of tensors")
    _streaming = _ms.ClassificationMetrics
