"""The multi-label unit over the run harness: build, fit one epoch, evaluate, record.

The run folder, its identity (config + data fingerprint), the checkpoint, the kill-safe log and
the divergence check are the harness's (:mod:`longtail.engine.run`). Every random draw of epoch
``e`` (the order or the class-aware draws, the augmentation) comes from a generator seeded with
``(seed, e)``, so a run killed and resumed ends exactly where an uninterrupted one ends.

Under ``torchrun`` (``WORLD_SIZE > 1``) the run is data-parallel as the classification engine's:
every process draws the same global batch and runs its slice ``batch[rank::world]`` through the
model; the logits of the other slices are gathered (``all_gather``, no gradient), the process's
own slice is put in its place with its gradient, and the loss is the method's loss on the whole
global batch. Its gradient, times ``world`` and averaged over the processes by
``DistributedDataParallel``, is the single-process gradient on the global batch, for every loss
here, PU-MLC's batch-level value included (for models without batch statistics; on CPU,
BatchNorm statistics stay per process, on GPUs BatchNorm becomes ``SyncBatchNorm``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from longtail.data.images import normalize, random_crop_flip
from longtail.data.multilabel import MultiLabelClassAwareSampler
from longtail.engine.multilabel.config import (
    MultiLabelConfig,
    build_criterion,
    check_method_on_data,
)
from longtail.engine.multilabel.data import (
    MultiLabelData,
    prepare_multilabel_data,
    run_identity,
)
from longtail.engine.run import (
    Progress,
    RunFolder,
    batches,
    check_batch_for_processes,
    check_finite,
    clean_json,
    environment,
    epoch_generator,
    run_epochs,
    with_processes,
)
from longtail.engine.train import evaluate, process_group, run_device
from longtail.metrics_multilabel import (
    mean_average_precision,
    multilabel_metrics,
    per_class_average_precision,
    tune_thresholds,
)
from longtail.models import create_model

__all__ = ["scores", "train_multilabel"]


@torch.no_grad()
def scores(
    model: nn.Module, x: torch.Tensor, data: MultiLabelData, config: MultiLabelConfig
) -> torch.Tensor:
    """Sigmoid scores ``(N, C)`` (float64, CPU) of ``model`` in eval mode for images ``x``."""
    logits = evaluate(model, x, data.mean, data.std, config.eval_batch_size, config.channels_last)
    return torch.sigmoid(logits.double()).cpu()


class _MultiLabel:
    """Model, loss, optimizer and sampler of one run; the harness drives its epochs."""

    def __init__(
        self, config: MultiLabelConfig, data: MultiLabelData, world: int, rank: int, label: str
    ) -> None:
        self.config, self.data, self.world, self.rank, self.label = config, data, world, rank, label
        self.device = run_device(world)
        spec = config.spec
        torch.manual_seed(config.seed)
        model = create_model(config.model, data.num_labels, data.channels, config.width).to(
            self.device
        )
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        n = len(data.y_train)
        self.criterion = build_criterion(spec, data.counts.tolist(), n, config.loss_kwargs).to(
            self.device
        )
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.sampler = (
            MultiLabelClassAwareSampler(data.y_train, num_replicas=1, rank=0)
            if spec.sampler == "class-aware"
            else None
        )
        train_model: nn.Module = model
        if world > 1:
            if self.device.type == "cuda":
                train_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            train_model = nn.parallel.DistributedDataParallel(
                train_model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.train_model = train_model
        self.final: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "criterion": self.criterion.state_dict(),  # a stateful or random loss's state
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if "criterion" in state:  # older checkpoints have none
            self.criterion.load_state_dict(state["criterion"])

    def _order(self, g: torch.Generator, epoch: int) -> torch.Tensor:
        if self.sampler is None:
            return torch.randperm(len(self.data.y_train), generator=g)
        self.sampler.set_epoch(epoch)
        return self.sampler.global_indices(generator=g)

    def _global_logits(self, own: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The global batch's logits (this process's slice with its gradient, the others'
        gathered) and the indices of their rows, in the same order."""
        world, rank = self.world, self.rank
        if world == 1:
            return own, idx
        sizes = [len(idx[r::world]) for r in range(world)]
        padded = own.new_zeros((max(sizes), own.shape[1]))
        padded[: len(own)] = own.detach()
        gathered = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(gathered, padded)
        parts = [own if r == rank else gathered[r][: sizes[r]] for r in range(world)]
        return torch.cat(parts), torch.cat([idx[r::world] for r in range(world)])

    def _step(self, idx: torch.Tensor, g: torch.Generator) -> float:
        cfg, d, world, rank = self.config, self.data, self.world, self.rank
        xb = d.x_train.index_select(0, idx)
        if cfg.augment:
            xb = random_crop_flip(xb, cfg.padding, cfg.flip, generator=g)
        own = normalize(
            xb[rank::world].to(self.device), d.mean, d.std, channels_last=cfg.channels_last
        )
        logits, rows = self._global_logits(self.train_model(own).float(), idx)
        targets = d.y_train.index_select(0, rows).to(self.device, torch.float32)
        value = self.criterion(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        (value * world).backward()  # DDP averages the processes' gradients
        self.optimizer.step()
        return float(value.detach())

    def fit_epoch(self, epoch: int, progress: Progress) -> dict[str, Any]:
        cfg = self.config
        lr = cfg.lr_at(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        g = epoch_generator(cfg.seed, epoch)
        order = self._order(g, epoch)
        progress.start(epoch, math.ceil(len(order) / cfg.batch_size))
        self.train_model.train()
        loss_sum, seen = 0.0, 0
        for b, idx in enumerate(batches(order, cfg.batch_size)):
            if len(idx) < self.world:
                continue  # a last batch too small to give every process a sample
            loss = self._step(idx, g)
            check_finite(loss, epoch, b, self.label)
            loss_sum, seen = loss_sum + loss * len(idx), seen + len(idx)
            progress.step(loss_sum / seen)
        row: dict[str, Any] = {"lr": lr, "loss": loss_sum / max(seen, 1), "images": seen}
        last = epoch == cfg.epochs - 1
        if last:
            self.final = self.final_metrics()
            row["val_map"] = self.final["val_map"]
        elif cfg.eval_every and (epoch + 1) % cfg.eval_every == 0:
            d = self.data
            row["val_map"] = _percent(
                mean_average_precision(scores(self.model, d.x_val, d, cfg), d.y_val)
            )
        return row

    def final_metrics(self) -> dict[str, Any]:
        """Test metrics (:func:`~longtail.metrics_multilabel.multilabel_metrics`, thresholds
        tuned on the validation split), the validation mAP, per-label test AP and thresholds.

        With ``eval_split="validation"`` the metrics are the validation split's (at the fixed
        threshold; no tuned thresholds, which would be tuned on the same split) and the test
        split is never scored."""
        cfg, d = self.config, self.data
        val = scores(self.model, d.x_val, d, cfg)
        kw = {
            "threshold": cfg.threshold,
            "ks": cfg.ks,
            "many_threshold": cfg.many_threshold,
            "few_threshold": cfg.few_threshold,
        }
        if cfg.eval_split == "validation":
            metrics = multilabel_metrics(val, d.y_val, d.counts, **kw)
            ap = per_class_average_precision(val, d.y_val)
        else:
            test = scores(self.model, d.x_test, d, cfg)
            metrics = multilabel_metrics(
                test, d.y_test, d.counts, val_scores=val, val_targets=d.y_val, **kw
            )
            ap = per_class_average_precision(test, d.y_test)
            metrics["thresholds"] = [
                float(t) for t in tune_thresholds(val, d.y_val, untuned=cfg.threshold)
            ]
        metrics["val_map"] = _percent(mean_average_precision(val, d.y_val))
        metrics["per_label_ap"] = [_percent(float(v)) for v in ap]
        return clean_json(metrics)


def _percent(v: float) -> float | None:
    return None if math.isnan(v) else 100.0 * v


def _epoch_line(label: str, epochs: int) -> Callable[[dict[str, Any]], str]:
    def line(row: dict[str, Any]) -> str:
        speed = row.get("images_per_s", float("nan"))
        msg = (
            f"{label} epoch {row['epoch'] + 1}/{epochs} loss {row['loss']:.4f} "
            f"lr {row['lr']:.3g} ({speed:.0f} img/s)"
        )
        if row.get("val_map") is not None:
            msg += f" val mAP {row['val_map']:.2f}"
        return msg

    return line


def _curve(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: row[k] for k in ("epoch", "lr", "loss", "val_map") if k in row} for row in rows]


def _regions(counts: torch.Tensor, config: MultiLabelConfig) -> list[str]:
    from longtail.metrics import regions_of_counts

    return list(regions_of_counts(counts.tolist(), config.many_threshold, config.few_threshold))


# -------------------------------------------------------------------------------------- train
def train_multilabel(
    config: MultiLabelConfig,
    out: str | os.PathLike[str] | None = None,
    *,
    progress: bool | None = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one multi-label run of ``config`` and return its results record.

    Args:
        config: The run (see :class:`~longtail.engine.multilabel.MultiLabelConfig`).
        out: Output folder for config, checkpoint, log and result; ``None`` keeps nothing on
            disk. An existing folder of the same run (same config, same data) is resumed (a
            finished one returns its record); a folder of another run, or of this config on
            other data, is refused.
        progress: Show progress on stderr (default); ``False`` is silent.
        callback: Called as ``callback(epoch, row)`` after each epoch's checkpoint is written
            (raise :class:`~longtail.engine.RunInterrupted` to stop the run there).
        extra: Top-level keys added to the record (e.g. ``{"bench": "multilabel"}``).

    Returns:
        ``{"task": "multilabel", "method", "dataset", "seed", "epochs", "seconds", "config",
        "metrics", "label_names", "label_counts", "label_regions", "test_label_counts",
        "cooccurrence", "identity", "data", "schedule", "schedule_warnings", "curve", ...}``.
        ``metrics`` holds
        :func:`~longtail.metrics_multilabel.multilabel_metrics` on the test set in percent
        (``map``, ``map_zero``, ``head_map``, ``medium_map``, ``tail_map`` by training label
        counts, ``micro_f1``/``macro_f1`` at ``threshold``, ``tuned_micro_f1``/
        ``tuned_macro_f1`` at per-label thresholds tuned on the validation split, ``p@k``),
        ``val_map``, ``per_label_ap`` (one per label, ``None`` without test positives) and the
        tuned ``thresholds``.

    Raises:
        ValueError: bad data, a folder of another run or of other data, damaged files;
            :class:`~longtail.engine.run.TrainingDiverged` when the loss becomes NaN or inf.
    """
    with process_group() as (world, rank):
        check_batch_for_processes(config.batch_size, world)
        folder = RunFolder(out, config.to_dict(), config.identity(), main=rank == 0)
        try:
            return _train_in(folder, config, world, rank, progress, callback, extra or {})
        finally:
            folder.close()


def _saved_identity(saved: Any) -> dict[str, Any]:
    if not isinstance(saved, dict) or saved.get("task") != "multilabel":
        raise ValueError("it is not a multi-label run's config")
    return MultiLabelConfig.from_dict(saved).identity()


def _train_in(
    folder: RunFolder,
    config: MultiLabelConfig,
    world: int,
    rank: int,
    progress: bool | None,
    callback: Callable[[int, dict[str, Any]], None] | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    folder.check_config(_saved_identity)
    data = prepare_multilabel_data(config)
    check_method_on_data(
        config.spec, data.counts.tolist(), len(data.y_train), data.label_names, config.loss_kwargs
    )
    sizes = {"train_size": len(data.y_train), "test_size": len(data.y_test)}
    record = folder.open(with_processes(run_identity(config, data), world), sizes)
    if record is not None:
        return record
    folder.start()
    if config.threads:
        torch.set_num_threads(config.threads)
    label = f"{config.method} {data.name}"
    task = _MultiLabel(config, data, world, rank, label)
    bar = Progress(progress, config.epochs, label, main=rank == 0)
    schedule_warnings = bar.schedule(label, config)
    rows, seconds, _ = run_epochs(
        task,
        folder,
        config.epochs,
        bar,
        map_location=task.device,
        callback=callback,
        barrier=dist.barrier if world > 1 else None,
        describe=_epoch_line(label, config.epochs),
    )
    metrics = task.final or task.final_metrics()  # resumed after the last epoch
    summary = data.summary()
    record = {
        "task": "multilabel",
        "method": config.method,
        "dataset": config.dataset,
        "seed": config.seed,
        "epochs": config.epochs,
        "seconds": round(seconds, 3),
        "config": config.to_dict(),
        "metrics": metrics,
        "eval_split": config.eval_split,
        "label_names": list(data.label_names),
        "label_counts": data.counts.tolist(),
        "label_regions": _regions(data.counts, config),
        "val_label_counts": summary["val_label_counts"],
        "test_label_counts": summary["test_label_counts"],
        "cooccurrence": {s: summary[f"{s}_cooccurrence"] for s in ("train", "val", "test")},
        "world_size": world,
        "identity": folder.identity,
        "data": {
            "fingerprint": data.fingerprint,
            "train_size": summary["train_size"],
            "val_size": summary["val_size"],
            "test_size": summary["test_size"],
            "num_labels": data.num_labels,
            "imbalance_ratio": summary["imbalance_ratio"],
            "val_source": data.val_source,
            "construction": data.construction,
        },
        "schedule": config.describe_schedule(),
        "schedule_warnings": schedule_warnings,
        "curve": _curve(rows),
        "environment": environment(task.device),
        **extra,
    }
    record = clean_json(record)
    folder.write_record(record)
    return record
