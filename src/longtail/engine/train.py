"""One training run: data → sampler/weights → model → loss → SGD → metrics → results record.

The run lives in one output folder::

    config.json      the resolved config (written first)
    checkpoint.pt    model, optimizer, epoch, timing: replaced atomically after every epoch
    log.jsonl        one line per finished epoch (loss, lr, images/s, test metrics when evaluated)
    result.json      the results record (ARCHITECTURE.md), written atomically at the end

Calling :func:`train` again with the same folder resumes from ``checkpoint.pt``; a finished run
returns its record without training. Every random draw of epoch ``e`` (the sampling order and
the augmentation) comes from a generator seeded with ``(seed, e)``, so a run killed and resumed
follows exactly the path of a run never killed.

Under ``torchrun`` (``WORLD_SIZE > 1``) the run is data-parallel with
``DistributedDataParallel``: every process draws the same global batch and trains on its slice
``batch[rank::world]``; the loss is normalised by the global sum of sample weights, so one step
equals the single-process step on the whole batch (for models without batch statistics: on CPU
BatchNorm statistics stay per process, since ``SyncBatchNorm`` needs GPUs; on GPUs the engine
converts BatchNorm to ``SyncBatchNorm``).
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from longtail.data.images import ImageDataset, load_image_dataset, normalize, random_crop_flip
from longtail.data.profiles import imbalance_counts, imbalanced_indices
from longtail.engine.config import TrainConfig
from longtail.engine.io import atomic_torch_save, atomic_write_json, read_json
from longtail.losses import create_loss
from longtail.metrics import classification_metrics
from longtail.models import create_model
from longtail.weighting import ClassBalancedSampler, class_weights

__all__ = ["RunInterrupted", "evaluate", "prepare_data", "train"]

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
LOG = "log.jsonl"
CONFIG = "config.json"


class RunInterrupted(RuntimeError):
    """Raised by a callback to stop a run after a checkpoint (tests use it to simulate a kill)."""


# ------------------------------------------------------------------------------------- data
@functools.lru_cache(maxsize=4)
def _load_cached(name: str, data_dir: str | None, download: bool) -> ImageDataset:
    return load_image_dataset(name, data_dir=data_dir, download=download)


def prepare_data(config: TrainConfig) -> dict[str, Any]:
    """Load the dataset and build the long-tailed training set of ``config``.

    Returns a dict with ``x_train``/``y_train`` (the imbalanced subset, uint8 / int64),
    ``x_test``/``y_test`` (balanced, untouched), ``counts`` (training counts per class),
    ``mean``/``std`` (channel statistics of the long-tailed training images), ``num_classes``
    and ``channels``.
    """
    data = _load_cached(config.dataset, config.data_dir, config.download)
    full = data.class_counts
    n_max = config.n_max if config.n_max is not None else int(full.max())
    counts = imbalance_counts(n_max, data.num_classes, config.ratio, config.profile)
    # the subset's seed is fixed (0), not the run's: every seed trains on the same data, as in
    # the LDAM-DRW code, so the spread over seeds is that of training, not of the subset
    idx = torch.as_tensor(imbalanced_indices(data.y_train, counts=counts, seed=0))
    x_train = data.x_train.index_select(0, idx)
    y_train = data.y_train.index_select(0, idx)
    lt = ImageDataset(data.name, x_train, y_train, data.x_test, data.y_test, data.num_classes)
    mean, std = lt.channel_stats()
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": data.x_test,
        "y_test": data.y_test,
        "counts": torch.as_tensor(counts, dtype=torch.long),
        "mean": mean,
        "std": std,
        "num_classes": data.num_classes,
        "channels": data.x_train.shape[1],
    }


# ------------------------------------------------------------------------------ distributed
def _dist_setup() -> tuple[int, int, bool]:
    """(world, rank, we_initialised) from an initialised group or torchrun's environment."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank(), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and dist.is_available():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        return dist.get_world_size(), dist.get_rank(), True
    return 1, 0, False


def _device(world: int) -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0
        return torch.device("cuda", local)
    return torch.device("cpu")


# ------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int = 1000,
    channels_last: bool = True,
) -> torch.Tensor:
    """Logits of ``model`` (in eval mode) for uint8 images ``x``, on the model's device."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(x), batch_size):
        xb = normalize(x[i : i + batch_size].to(device), mean, std, channels_last=channels_last)
        out.append(model(xb).float())
    model.train(was_training)
    if not out:
        return torch.empty(0, 0)
    return torch.cat(out)


# ----------------------------------------------------------------------------------- helpers
class _Progress:
    """A line per epoch on stderr, and a tqdm bar over its batches when stderr is a terminal."""

    def __init__(self, enabled: bool | None, total_epochs: int, label: str) -> None:
        self.tty = sys.stderr.isatty()
        self.enabled = True if enabled is None else enabled
        self.total = total_epochs
        self.label = label
        self.bar = None

    def start(self, epoch: int, steps: int) -> None:
        if not (self.enabled and self.tty):
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is an optional extra; fall back to lines
            return
        self.bar = tqdm(
            total=steps, desc=f"{self.label} {epoch + 1}/{self.total}", leave=False, unit="batch"
        )

    def step(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    def end(self, line: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.enabled:
            print(line, file=sys.stderr, flush=True)


def _test_metrics(
    model: nn.Module, data: dict[str, Any], config: TrainConfig, logit_scale: float
) -> dict[str, Any]:
    logits = evaluate(
        model,
        data["x_test"],
        data["mean"],
        data["std"],
        config.eval_batch_size,
        config.channels_last,
    )
    return classification_metrics(
        logits * logit_scale,
        data["y_test"].to(logits.device),
        data["counts"],
        many_threshold=config.many_threshold,
        few_threshold=config.few_threshold,
    )


def _maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when asked and a C++ compiler exists (inductor needs one)."""
    if not enabled:
        return model
    if next(model.parameters()).device.type == "cpu":
        cxx = os.environ.get("CXX", "g++")
        if shutil.which(cxx) is None and shutil.which("c++") is None:
            warnings.warn(
                "compile=True needs a C++ compiler for torch.compile on CPU and none was found; "
                "training eagerly.",
                stacklevel=3,
            )
            return model
    return torch.compile(model)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed * 1_000_003 + epoch)
    return g


def _epoch_weights(config: TrainConfig, counts: torch.Tensor, epoch: int) -> torch.Tensor | None:
    spec = config.spec
    if spec.reweight == "cb" or (spec.reweight == "drw" and epoch >= config.drw_epoch):
        return class_weights(counts, scheme="effective", beta=config.cb_beta)
    return None


def _epoch_order(
    config: TrainConfig, y: torch.Tensor, g: torch.Generator, epoch: int, samplers: dict[str, Any]
) -> torch.Tensor:
    spec = config.spec
    if spec.resample == "cb" or (spec.resample == "drs" and epoch >= config.drw_epoch):
        sampler = samplers.setdefault(
            "cb",
            ClassBalancedSampler(
                y, scheme="effective", beta=config.cb_beta, num_replicas=1, rank=0
            ),
        )
        return sampler._balanced_indices(g)
    return torch.randperm(len(y), generator=g)


def _read_log(path: Path, upto: int) -> list[dict[str, Any]]:
    """Log lines of epochs < ``upto`` (lines of epochs past the checkpoint are dropped)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if isinstance(row, dict) and row.get("epoch", upto) < upto:
            rows.append(row)
    return rows


# -------------------------------------------------------------------------------------- train
def train(
    config: TrainConfig,
    out: str | os.PathLike[str] | None = None,
    *,
    progress: bool | None = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one run of ``config`` and return its results record.

    Args:
        config: The run (see :class:`~longtail.engine.config.TrainConfig`).
        out: Output folder for config, checkpoint, log and result; ``None`` keeps nothing on
            disk (no resume). An existing folder of the same run is resumed; a folder holding a
            different run is refused.
        progress: Show progress on stderr (default): a line per epoch, plus a bar over the
            batches when stderr is a terminal. ``False`` is silent.
        callback: Called as ``callback(epoch, row)`` after each epoch's checkpoint is written.
        extra: Top-level keys added to the record (e.g. ``{"bench": "table1"}``).

    Returns:
        The record ``{"method", "dataset", "profile", "ratio", "seed", "epochs", "seconds",
        "config", "metrics", "class_counts", ...}``.
    """
    out_dir = Path(out) if out is not None else None
    world, rank, own_group = _dist_setup()
    try:
        return _train(config, out_dir, world, rank, progress, callback, extra or {})
    finally:
        if own_group:
            dist.destroy_process_group()


def finished_record(out_dir: Path, matches: Callable[[Any], bool]) -> dict[str, Any] | None:
    """Open a run folder: refuse one holding another run, return the record of a finished one.

    ``matches(saved_config)`` says whether the folder's ``config.json`` is this run; a config
    that cannot even be read as one (``TypeError``/``ValueError``) is another run. Shared by the
    classification and the regression engines.
    """
    cfg_path = out_dir / CONFIG
    if cfg_path.exists():
        saved = read_json(cfg_path)
        try:
            same = matches(saved)
        except (TypeError, ValueError):
            same = False
        if not same:
            raise ValueError(
                f"Expected output folder {str(out_dir)!r} to be empty or to hold this same run, "
                f"but it holds a run with a different config ({cfg_path}). Use another --out, or "
                "delete the folder to start over."
            )
    if (out_dir / RESULT).exists():
        record = read_json(out_dir / RESULT)
        if isinstance(record, dict) and "metrics" in record:
            return record
    return None


def _train(
    config: TrainConfig,
    out_dir: Path | None,
    world: int,
    rank: int,
    progress: bool | None,
    callback: Callable[[int, dict[str, Any]], None] | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    main = rank == 0
    if out_dir is not None:
        record = finished_record(
            out_dir, lambda saved: TrainConfig.from_dict(saved).identity() == config.identity()
        )
        if record is not None:
            return record
        if main:
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out_dir / CONFIG, config.to_dict())

    if config.threads:
        torch.set_num_threads(config.threads)
    device = _device(world)
    data = prepare_data(config)
    counts = data["counts"]
    x_train, y_train = data["x_train"], data["y_train"]
    mean, std = data["mean"], data["std"]

    torch.manual_seed(config.seed)
    spec = config.spec
    model = create_model(
        config.model, data["num_classes"], data["channels"], config.width, spec.normed
    ).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_kwargs = {**spec.loss_kwargs, **config.loss_kwargs}
    criterion = create_loss(spec.loss, class_counts=counts.tolist(), **loss_kwargs)
    criterion.reduction = "none"  # weighting and normalisation happen here (see below)
    criterion = criterion.to(device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )

    start_epoch, seconds, best = 0, 0.0, None
    ckpt_path = out_dir / CHECKPOINT if out_dir is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, seconds, best = state["epoch"], state["seconds"], state.get("best")
        if main and progress is not False:
            print(f"resuming {out_dir} from epoch {start_epoch}", file=sys.stderr)
    log_rows = _read_log(out_dir / LOG, start_epoch) if out_dir is not None else []

    train_model: nn.Module = model
    if world > 1:
        if device.type == "cuda":
            train_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        train_model = nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None
        )

    # Cosine classifiers output z in [-1, 1]; their losses see s·z, and so must calibration
    # (ECE on raw cosines would be a near-uniform softmax). Top-1 does not depend on s.
    logit_scale = float(getattr(criterion, "scale", 1.0)) if spec.normed else 1.0
    step_model = _maybe_compile(train_model, config.compile)
    label = f"{config.method} {config.profile}-{config.ratio:g}"
    bar = _Progress(progress if main else False, config.epochs, label)
    samplers: dict[str, Any] = {}
    flush_before = None
    if config.flush_denormal:
        flush_before = torch.set_flush_denormal(True)
    try:
        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            lr = config.lr_at(epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            weight = _epoch_weights(config, counts, epoch)
            criterion.set_weight(weight)
            w_dev = weight.to(device) if weight is not None else None
            g = _epoch_generator(config.seed, epoch)
            order = _epoch_order(config, y_train, g, epoch, samplers)
            steps = math.ceil(len(order) / config.batch_size)
            bar.start(epoch, steps)
            train_model.train()
            loss_sum, loss_n, seen = 0.0, 0, 0
            for b in range(steps):
                idx = order[b * config.batch_size : (b + 1) * config.batch_size]
                if len(idx) < world:
                    continue  # a last batch too small to give every process a sample
                xb = x_train.index_select(0, idx)
                if config.augment:
                    xb = random_crop_flip(xb, config.padding, config.flip, generator=g)
                xb, yb = xb[rank::world], y_train.index_select(0, idx)[rank::world]
                xb = normalize(xb.to(device), mean, std, channels_last=config.channels_last)
                yb = yb.to(device)
                per_sample = criterion(step_model(xb), yb)  # w_y · ℓ (reduction="none")
                den = w_dev[yb].sum() if w_dev is not None else per_sample.new_tensor(len(yb))
                den = den.detach().clone()
                if world > 1:
                    dist.all_reduce(den)  # global Σw: DDP's gradient mean then equals one process
                loss = per_sample.sum() * world / den
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach()) * len(yb)
                loss_n += len(yb)
                seen += len(idx)
                bar.step(loss_sum / loss_n)
            dt = time.perf_counter() - t0
            seconds += dt
            row: dict[str, Any] = {
                "epoch": epoch,
                "lr": lr,
                "loss": loss_sum / max(loss_n, 1),
                "images_per_s": seen / dt if dt > 0 else None,
                "seconds": dt,
                "reweighted": weight is not None,
            }
            last = epoch == config.epochs - 1
            if last or (config.eval_every and (epoch + 1) % config.eval_every == 0):
                m = _test_metrics(model, data, config, logit_scale)
                row["test"] = {k: v for k, v in m.items() if k != "per_class_error"}
                if best is None or m["top1_error"] < best:
                    best = m["top1_error"]
                if last:
                    final_metrics = m
            log_rows.append(row)
            if out_dir is not None and main:
                atomic_torch_save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "epoch": epoch + 1,
                        "seconds": seconds,
                        "best": best,
                    },
                    ckpt_path,
                )
                with open(out_dir / LOG, "w") as f:
                    f.writelines(json.dumps(r) + "\n" for r in log_rows)
            msg = f"{label} epoch {epoch + 1}/{config.epochs} loss {row['loss']:.4f} lr {lr:.4g}"
            if "test" in row:
                msg += f" test err {row['test']['top1_error']:.2f}%"
            bar.end(msg)
            if world > 1:
                dist.barrier()  # nobody races ahead of rank 0's checkpoint
            if callback is not None:
                callback(epoch, row)
    finally:
        if flush_before is not None:
            torch.set_flush_denormal(False)

    if config.epochs <= start_epoch:  # resumed a run whose training had finished
        final_metrics = _test_metrics(model, data, config, logit_scale)
    metrics = dict(final_metrics)
    if best is not None and config.eval_every:
        metrics["best_top1_error"] = best
    record = {
        "method": config.method,
        "dataset": config.dataset,
        "profile": config.profile,
        "ratio": config.ratio,
        "seed": config.seed,
        "epochs": config.epochs,
        "seconds": round(seconds, 3),
        "config": config.to_dict(),
        "metrics": metrics,
        "class_counts": counts.tolist(),
        "logit_scale": logit_scale,
        "world_size": world,
        **extra,
    }
    if out_dir is not None and main:
        atomic_write_json(out_dir / RESULT, record)
    return record
