"""The step learning-rate schedule of the multi-label and regression engines.

Both train with Adam at ``lr``, multiplied by ``lr_gamma`` at each of ``lr_milestones``
(0-based epochs; by default 2/3 and 8/9 of the run, the shape of the DIR papers' 60 and 80 of
90 epochs). :class:`StepSchedule` holds that rule once for both configs: the milestones, the lr
of an epoch, the schedule in words, and what in it cannot happen as written. The
classification engine's schedule (warm-up, DRW, the paper's steps) lives in
:class:`longtail.engine.config.TrainConfig`.
"""

from __future__ import annotations

__all__ = ["StepSchedule", "default_milestones"]


def default_milestones(epochs: int) -> tuple[int, int]:
    """``round(2/3 · epochs)`` and ``round(8/9 · epochs)``: 60 and 80 of 90 epochs.

    Example:
        >>> default_milestones(90), default_milestones(20)
        ((60, 80), (13, 18))
    """
    return (round(2 * epochs / 3), round(8 * epochs / 9))


class StepSchedule:
    """Mixin for a config dataclass with ``epochs``, ``lr``, ``lr_gamma`` and ``lr_milestones``.

    Milestones compound: two at one epoch multiply the lr by ``lr_gamma`` twice, and their order
    does not matter (the lr of an epoch counts the milestones at or before it).
    """

    epochs: int
    lr: float
    lr_gamma: float
    lr_milestones: tuple[int, ...] | None

    def milestones(self) -> tuple[int, ...]:
        """The lr milestones: given, or :func:`default_milestones` of the epochs."""
        if self.lr_milestones is not None:
            return self.lr_milestones
        return default_milestones(self.epochs)

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``."""
        return self.lr * self.lr_gamma ** sum(epoch >= m for m in self.milestones())

    def describe_steps(self) -> str:
        """``"N epochs, Adam lr X, × g from epoch m, ..."`` (0-based epochs)."""
        e = self.epochs
        steps = "".join(
            f", × {self.lr_gamma:g} from epoch {m}"
            + (" (after the last epoch: never)" if m >= e else "")
            for m in self.milestones()
        )
        return f"{e} epoch{'s' if e != 1 else ''}, Adam lr {self.lr:g}{steps}"

    def schedule_warnings(self) -> list[str]:
        """Milestones that cannot act as written, one sentence each.

        A milestone after the last epoch never happens (a run too short for the default
        milestones: 1 or 2 epochs); one at epoch 0 is no step, it scales the lr from the start.
        """
        last = self.epochs - 1
        out = []
        for m in self.milestones():
            if m > last:
                out.append(
                    f"the lr step × {self.lr_gamma:g} at epoch {m} never happens: "
                    f"the last epoch is {last}"
                )
            elif m == 0:
                out.append(
                    f"the lr step × {self.lr_gamma:g} at epoch 0 is no step: "
                    f"it scales lr {self.lr:g} from the start"
                )
        return list(dict.fromkeys(out))  # default milestones can coincide (1-epoch run)
