"""PyTorch Lightning support: deferred re-weighting as a callback, and samplers sharded once.

Install with ``pip install longtail[lightning]``; import with
``from longtail.integrations.lightning import ...`` (``import longtail`` never imports Lightning).

* :class:`DeferredReweightingCallback` -- DRW (Cao et al., "Learning Imbalanced Datasets with
  Label-Distribution-Aware Margin Loss", NeurIPS 2019): at the start of every training epoch it
  sets ``DeferredReweighting.weights(epoch)`` on the LightningModule's loss, on the module's
  device, as ``longtail/engine/train.py`` does in its own loop.
* :func:`sharding_kwargs` -- the ``num_replicas`` / ``rank`` to build a longtail sampler
  (:class:`~longtail.ClassBalancedSampler`, :class:`~longtail.DeferredResampler`,
  :class:`~longtail.weighting.MultiLabelClassAwareSampler`) with, so that an epoch is split
  across the DDP processes exactly once.
* :class:`SamplerShardingCheck` and :func:`check_sampler_sharding` -- refuse to train when a
  longtail sampler is split twice (every process would silently see ``1/world²`` of the epoch
  instead of ``1/world``) or not at all (every process would train on the same examples).

Why the sharding rule: a longtail sampler splits its epoch across processes itself
(``num_replicas`` and ``rank``, read from ``torch.distributed`` when not given), and Lightning,
with its default ``Trainer(use_distributed_sampler=True)``, wraps any custom sampler in
``lightning.fabric.utilities.distributed.DistributedSamplerWrapper``, which splits the wrapped
sampler's output again. So either the sampler draws the whole epoch (``num_replicas=1,
rank=0``) and Lightning's wrapper splits it -- every process draws the same sequence, since the
draws depend only on ``seed + epoch``, and the wrapper's own shuffle is seeded identically on
every process -- or ``use_distributed_sampler=False`` and the sampler splits itself.
:func:`sharding_kwargs` gives the right pair for either setting. In both, Lightning's fit loop
calls ``set_epoch`` on the sampler (through the wrapper, which forwards it) before
``on_train_epoch_start``, so :class:`~longtail.DeferredResampler` switches phase on time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from longtail._validation import did_you_mean, expected
from longtail.integrations._drw import drw_schedule
from longtail.weighting import DeferredResampler, _EpochSampler

try:
    import lightning.pytorch as pl
    from lightning.pytorch.utilities import rank_zero_warn
except ImportError as err:  # pragma: no cover - the extra is installed wherever this is tested
    raise ImportError(
        "longtail.integrations.lightning needs Lightning: pip install 'longtail[lightning]'"
    ) from err

__all__ = [
    "DeferredReweightingCallback",
    "SamplerShardingCheck",
    "check_sampler_sharding",
    "sharding_kwargs",
    "sharding_problems",
]

#: Attribute names of the LightningModule searched for the loss, in this order.
LOSS_ATTRIBUTES = ("criterion", "loss_fn")


# ---- sharding -------------------------------------------------------------------------------
def _lightning_shards(trainer: pl.Trainer) -> bool:
    """Whether Lightning will wrap a custom training sampler in its distributed wrapper."""
    connector = getattr(trainer, "_accelerator_connector", None)
    use = getattr(connector, "use_distributed_sampler", True)
    distributed = getattr(connector, "is_distributed", trainer.world_size > 1)
    return bool(use and distributed)


def sharding_kwargs(trainer: pl.Trainer | None = None) -> dict[str, int]:
    """``num_replicas`` and ``rank`` for a longtail sampler trained under ``trainer``.

    With Lightning's default ``use_distributed_sampler=True`` (and for ``trainer=None``, or a
    single process) this is ``{"num_replicas": 1, "rank": 0}``: the sampler draws the whole
    epoch and Lightning's ``DistributedSamplerWrapper`` gives each process its share. With
    ``use_distributed_sampler=False`` it is ``{"num_replicas": trainer.world_size, "rank":
    trainer.global_rank}``: the sampler keeps ``indices[rank::num_replicas]`` itself.

    Call it where the trainer is known, e.g. in ``LightningModule.train_dataloader``::

        sampler = ClassBalancedSampler(y, **sharding_kwargs(self.trainer))

    Args:
        trainer: The Trainer, or ``None`` (a sampler built before there is one: Lightning's
            default setting is assumed).

    Returns:
        The keyword arguments ``num_replicas`` and ``rank``.
    """
    if trainer is None or trainer.world_size == 1 or _lightning_shards(trainer):
        return {"num_replicas": 1, "rank": 0}
    return {"num_replicas": int(trainer.world_size), "rank": int(trainer.global_rank)}


def _loaders(obj: Any) -> Iterator[DataLoader]:
    """The DataLoaders in what ``trainer.train_dataloader`` holds (one, or nested collections)."""
    if isinstance(obj, DataLoader):
        yield obj
    elif isinstance(obj, Mapping):
        for value in obj.values():
            yield from _loaders(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _loaders(value)
    elif hasattr(obj, "flattened"):  # a CombinedLoader
        yield from _loaders(list(obj.flattened))


def _samplers(loader: DataLoader) -> Iterator[Any]:
    seen: set[int] = set()
    for s in (getattr(loader, "sampler", None), getattr(loader.batch_sampler, "sampler", None)):
        if s is not None and id(s) not in seen:
            seen.add(id(s))
            yield s


def sharding_problems(loader: DataLoader, world_size: int, rank: int) -> list[str]:
    """What is wrong with how ``loader`` splits a longtail sampler's epoch (``[]``: nothing).

    A longtail sampler found directly in ``loader`` must split the epoch itself
    (``num_replicas == world_size``, ``rank == rank``); one found inside Lightning's
    ``DistributedSamplerWrapper`` (or any ``DistributedSampler`` over it) must not
    (``num_replicas == 1``), since the wrapper already splits it ``world_size`` ways.

    Args:
        loader: A training DataLoader, as Lightning prepared it.
        world_size: The number of processes training together.
        rank: This process's global rank.

    Returns:
        One sentence per problem found.
    """
    problems = []
    for sampler in _samplers(loader):
        inner = getattr(getattr(sampler, "dataset", None), "_sampler", None)
        if isinstance(sampler, DistributedSampler) and isinstance(inner, _EpochSampler):
            if inner.num_replicas != 1:
                per_rank = len(sampler)
                problems.append(
                    f"a {type(inner).__name__} with num_replicas={inner.num_replicas}, "
                    f"rank={inner.rank}, which splits its epoch of {inner.num_samples} draws "
                    f"itself, inside Lightning's {type(sampler).__name__}, which splits its "
                    f"{len(inner)} draws again {sampler.num_replicas} ways: this process would "
                    f"see {per_rank} examples per epoch instead of "
                    f"{-(-inner.num_samples // world_size)}"
                )
        elif isinstance(sampler, _EpochSampler):
            if (sampler.num_replicas, sampler.rank) != (world_size, rank):
                share = -(-sampler.num_samples // world_size)
                problems.append(
                    f"a {type(sampler).__name__} with num_replicas={sampler.num_replicas}, "
                    f"rank={sampler.rank} in process {rank} of {world_size}, where nothing "
                    "else splits the epoch: this process would see "
                    f"{len(sampler)} examples per epoch instead of its own {share}"
                    + (" (the same ones as every other process)" if world_size > 1 else "")
                )
    return problems


_FIX = (
    "Build the sampler with `**sharding_kwargs(self.trainer)` "
    "(from longtail.integrations.lightning): num_replicas=1, rank=0 under Lightning's default "
    "Trainer(use_distributed_sampler=True), the world size and rank under "
    "use_distributed_sampler=False"
)


def check_sampler_sharding(trainer: pl.Trainer) -> None:
    """Raise if a longtail sampler in the training DataLoaders is split twice, or not at all.

    Looks at the DataLoaders as Lightning prepared them (``trainer.train_dataloader``, after any
    ``DistributedSamplerWrapper`` was put in); see :func:`sharding_problems`. Samplers that are
    not longtail's are left alone.

    Args:
        trainer: A Trainer whose training DataLoaders are set up (from ``on_train_start`` on).

    Raises:
        ValueError: Naming the sampler, what each process would see and the fix.
    """
    world, rank = int(trainer.world_size), int(trainer.global_rank)
    problems = [
        p for dl in _loaders(trainer.train_dataloader) for p in sharding_problems(dl, world, rank)
    ]
    if problems:
        processes = f"{world} processes" if world > 1 else "1 process"
        raise expected(
            "sampler",
            f"split exactly once across the {processes}",
            "; ".join(problems) + ". " + _FIX,
        )


def _longtail_samplers(loader: DataLoader) -> Iterator[_EpochSampler]:
    """The longtail samplers of ``loader``, inside Lightning's wrapper or not."""
    for sampler in _samplers(loader):
        inner = getattr(getattr(sampler, "dataset", None), "_sampler", None)
        if isinstance(sampler, _EpochSampler):
            yield sampler
        elif isinstance(inner, _EpochSampler):
            yield inner


def warn_late_resampling(trainer: pl.Trainer) -> None:
    """Warn (``UserWarning``, on rank 0) when a :class:`~longtail.weighting.DeferredResampler`
    in the training DataLoaders starts after the last epoch (``Trainer(max_epochs=...)``): it
    would shuffle uniformly for the whole run."""
    epochs = trainer.max_epochs
    if epochs is None or epochs < 0:
        return
    for dl in _loaders(trainer.train_dataloader):
        for sampler in _longtail_samplers(dl):
            start = getattr(sampler, "start_epoch", None)
            if isinstance(sampler, DeferredResampler) and start is not None and start >= epochs:
                rank_zero_warn(
                    f"Deferred re-sampling starts at epoch {start} (0-based), but training runs "
                    f"{epochs} epoch{'s' if epochs != 1 else ''} (Trainer(max_epochs={epochs})): "
                    "every epoch is drawn uniformly. Lower start_epoch or raise max_epochs.",
                    category=UserWarning,
                )


class SamplerShardingCheck(pl.Callback):
    """A callback that runs :func:`check_sampler_sharding` at the start of every training epoch,
    and warns once, at the start of training, when a deferred re-sampler would never switch
    (:func:`warn_late_resampling`).

    Every epoch, because ``Trainer(reload_dataloaders_every_n_epochs=...)`` may build new
    DataLoaders; the check costs nothing next to an epoch. :class:`DeferredReweightingCallback`
    runs the same check unless told not to.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        warn_late_resampling(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        check_sampler_sharding(trainer)


# ---- deferred re-weighting ------------------------------------------------------------------
def _find_loss(pl_module: nn.Module, attribute: str | None) -> tuple[str, Any]:
    names = (attribute,) if attribute is not None else LOSS_ATTRIBUTES
    for name in names:
        loss = getattr(pl_module, name, None)
        if loss is not None:
            return name, loss
    cls = type(pl_module).__name__
    if attribute is not None:
        hint = did_you_mean(attribute, [n for n, _ in pl_module.named_children()])
        raise ValueError(
            f"Expected `attribute` to be the name of the loss attribute of {cls}, but got "
            f"{attribute!r}, which {cls} does not have." + hint
        )
    children = [n for n, m in pl_module.named_children() if hasattr(m, "weight")]
    holders = ", ".join(f"`{n}`" for n in children) if children else "none"
    raise ValueError(
        f"Expected the LightningModule to hold its loss as `{'` or `'.join(LOSS_ATTRIBUTES)}`, "
        f"but got a {cls} with neither (its submodules with a `weight`: {holders}). Name the "
        "loss attribute with DeferredReweightingCallback(..., attribute=NAME)."
    )


def _set_loss_weight(loss: Any, weight: torch.Tensor, device: torch.device, name: str) -> None:
    """Set per-class ``weight`` on ``loss`` on ``device`` (dtype of the loss's own weight)."""
    current = getattr(loss, "weight", None)
    if isinstance(current, torch.Tensor) and current.is_floating_point():
        weight = weight.to(dtype=current.dtype)
    weight = weight.to(device)
    if callable(getattr(loss, "set_weight", None)):  # longtail's losses (losses/_base.py)
        loss.set_weight(weight)
        if isinstance(loss.weight, torch.Tensor) and loss.weight.device != device:
            loss.weight = loss.weight.to(device)  # set_weight keeps the loss's own device
    elif isinstance(loss, nn.Module) and "weight" in loss._buffers:  # torch.nn.CrossEntropyLoss
        loss.weight = weight
    elif hasattr(loss, "weight") and not isinstance(loss, nn.Module):
        loss.weight = weight  # a plain object holding its weights
    else:
        raise ValueError(
            f"Expected the loss `{name}` to be a loss with per-class weights (a `set_weight` "
            f"method or a `weight` buffer), but got a {type(loss).__name__}."
        )


class DeferredReweightingCallback(pl.Callback):
    """Deferred re-weighting (DRW) for a LightningModule's loss.

    At the start of every training epoch ``e`` (0-based, ``trainer.current_epoch``) the loss gets
    the per-class weights ``DeferredReweighting.weights(e)``: all ones before ``start_epoch``, the
    class-balanced weights ``class_weights(counts, scheme, beta)`` from then on (by default the
    effective-number weights ``(1 - β) / (1 - β^{n_c})`` of Cui et al., CVPR 2019, rescaled to
    sum to ``C``), as in Cao et al. (NeurIPS 2019) and ``longtail/engine/train.py``. The weights
    are moved to the LightningModule's device.

    The loss is the module's attribute ``attribute`` (default: the first of ``criterion``,
    ``loss_fn``). It may be any longtail loss (weights set through its ``set_weight``) or any
    loss with a ``weight`` buffer such as ``torch.nn.CrossEntropyLoss``. The weights are also
    set at ``setup`` (so that a checkpoint holding them loads into a loss built without weights)
    and at ``on_train_start`` (so that a run resumed mid-epoch gets its epoch's weights).

    Unless ``check_sampler=False`` it also runs :func:`check_sampler_sharding` every epoch.

    At the start of ``fit`` it warns (``UserWarning``) when ``start_epoch`` is not below the
    Trainer's ``max_epochs``: the loss would stay unweighted. A warning, not an error: a run
    resumed with more epochs does reach it.

    Args:
        counts_or_schedule: Per-class training counts, or a ready
            :class:`~longtail.DeferredReweighting` (then leave the next three unset).
        start_epoch: First 0-based epoch with class-balanced weights. Default 160 (the paper's,
            of 200 CIFAR epochs).
        beta: ``β`` of the effective-number scheme. Default 0.9999.
        scheme: Any name of :data:`longtail.weighting.WEIGHT_SCHEMES`. Default ``"effective"``.
        attribute: Name of the loss attribute of the LightningModule.
        check_sampler: Also check the sharding of longtail samplers. Default ``True``.

    Example:
        >>> cb = DeferredReweightingCallback([500, 50, 5], start_epoch=2)
        >>> cb.schedule.weights(1).tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(
        self,
        counts_or_schedule: Any,
        start_epoch: int | None = None,
        beta: float | None = None,
        scheme: str | None = None,
        *,
        attribute: str | None = None,
        check_sampler: bool = True,
    ) -> None:
        self.schedule = drw_schedule(counts_or_schedule, start_epoch, beta, scheme)
        if attribute is not None and not isinstance(attribute, str):
            raise expected("attribute", "a str", repr(attribute))
        if not isinstance(check_sampler, bool):
            raise expected("check_sampler", "a bool", repr(check_sampler))
        self.attribute = attribute
        self.check_sampler = check_sampler

    def apply(self, pl_module: pl.LightningModule, epoch: int) -> torch.Tensor:
        """Set the weights of 0-based ``epoch`` on ``pl_module``'s loss; return them (CPU)."""
        name, loss = _find_loss(pl_module, self.attribute)
        weight = self.schedule.weights(epoch)
        _set_loss_weight(loss, weight, pl_module.device, name)
        return weight

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Warn (``UserWarning``, on rank 0) when ``start_epoch`` is not below ``max_epochs``."""
        epochs = trainer.max_epochs
        start = self.schedule.start_epoch
        if epochs is not None and epochs >= 0 and start >= epochs:
            rank_zero_warn(
                f"Deferred re-weighting starts at epoch {start} (0-based), but training runs "
                f"{epochs} epoch{'s' if epochs != 1 else ''} (Trainer(max_epochs={epochs})): the "
                "loss stays unweighted for the whole run. Lower start_epoch or raise max_epochs "
                "(a run resumed with more epochs does reach it).",
                category=UserWarning,
            )

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.apply(pl_module, trainer.current_epoch)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.check_sampler:
            warn_late_resampling(trainer)
        self.apply(pl_module, trainer.current_epoch)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.check_sampler:
            check_sampler_sharding(trainer)
        self.apply(pl_module, trainer.current_epoch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.schedule!r}, attribute={self.attribute!r})"
