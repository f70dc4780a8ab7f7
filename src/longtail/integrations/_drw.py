"""What the trainers' DRW callbacks share: the schedule from counts or a ready one."""

from __future__ import annotations

from typing import Any

from longtail._validation import expected
from longtail.weighting import DeferredReweighting


def drw_schedule(
    counts_or_schedule: Any,
    start_epoch: int | None = None,
    beta: float | None = None,
    scheme: str | None = None,
) -> DeferredReweighting:
    """A :class:`~longtail.weighting.DeferredReweighting` from class counts and its settings
    (defaults: epoch 160, β = 0.9999, effective number; Cao et al., NeurIPS 2019), or the
    schedule given, whose settings are its own (then none may be given).
    """
    if isinstance(counts_or_schedule, DeferredReweighting):
        own = {"start_epoch": start_epoch, "beta": beta, "scheme": scheme}
        for name, value in own.items():
            if value is not None:
                raise expected(
                    name, "unset when a DeferredReweighting is given (it has its own)", value
                )
        return counts_or_schedule
    return DeferredReweighting(
        counts_or_schedule,
        start_epoch=160 if start_epoch is None else start_epoch,
        beta=0.9999 if beta is None else beta,
        scheme="effective" if scheme is None else scheme,
    )
