"""One classification run: data → sampler/weights → model → loss → SGD → metrics → record.

The run folder, its identity (config + data fingerprint), the checkpoint, the kill-safe log and
the record are the harness's (:mod:`longtail.engine.run`); this module is the classification
unit over it: build the data and the model, fit one epoch, evaluate, write the record. Every
random draw of epoch ``e`` (the sampling order and the augmentation) comes from a generator
seeded with ``(seed, e)``, so a run killed and resumed follows exactly the path of a run never
killed.

Under ``torchrun`` (``WORLD_SIZE > 1``) the run is data-parallel with
``DistributedDataParallel``: every process draws the same global batch and trains on its slice
``batch[rank::world]``; the loss is normalised by the global sum of sample weights, so one step
equals the single-process step on the whole batch (for models without batch statistics: on CPU
BatchNorm statistics stay per process, since ``SyncBatchNorm`` needs GPUs; on GPUs the engine
converts BatchNorm to ``SyncBatchNorm``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import math
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from longtail._validation import expected
from longtail.data.folders import folder_stamp
from longtail.data.images import ImageDataset, load_image_dataset, normalize, random_crop_flip
from longtail.data.profiles import head_order, imbalanced_indices, profile_counts
from longtail.engine.config import TrainConfig
from longtail.engine.run import (
    Progress,
    RunFolder,
    RunInterrupted,
    batches,
    check_batch_for_processes,
    check_finite,
    environment,
    epoch_generator,
    fingerprint,
    run_epochs,
    with_processes,
)
from longtail.losses import create_loss_for_counts, get_loss_info
from longtail.metrics import classification_metrics
from longtail.models import create_model
from longtail.weighting import ClassBalancedSampler, DeferredResampler, DeferredReweighting

__all__ = ["RunInterrupted", "evaluate", "prepare_data", "run_identity", "train"]


# ------------------------------------------------------------------------------------- data
def _file_stamp(name: str, data_dir: str | None) -> Any:
    """(mtime, size) of a dataset given as a file, so a replaced file is loaded again; for a
    folder, a hash of its image files' names, sizes and mtimes (a changed folder too)."""
    for p in (Path(name).expanduser(), Path(data_dir or ".") / name):
        if p.is_file():
            st = p.stat()
            return (str(p.resolve()), st.st_mtime_ns, st.st_size)
        if p.is_dir():
            return (str(p.resolve()), folder_stamp(p))
    return None


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, data_dir: str | None, download: bool, stamp: Any) -> ImageDataset:
    return load_image_dataset(name, data_dir=data_dir, download=download)


def _split_validation(
    data: ImageDataset, per_class: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_pool, y_pool, x_val, y_val): ``per_class`` training images of every class set apart.

    The held-out images are the first ``per_class`` of a permutation of each class (generator
    seeded 1, apart from the profile's seed 0), so the split is the same for every run.
    """
    y = data.y_train
    sizes = torch.bincount(y, minlength=data.num_classes)
    small = int(sizes.argmin())  # the class that decides what can be held out
    size, source = int(sizes[small]), f"{data.classes[small]!r} of the source data"
    if size <= per_class:
        raise ValueError(
            f"Expected argument `val_per_class` to leave training examples of every class, "
            f"but got {per_class}, while the smallest class, {small} ({source}), has {size} "
            f"training examples: at most {size - 1} can be held out"
        )
    if 2 * per_class > size:
        warnings.warn(
            f"val_per_class={per_class} holds out more than half of class {small} ({source}, "
            f"{size} training examples, {size - per_class} left to train on): the training "
            "set's imbalance changes with it (the record gives the ratio trained on)",
            stacklevel=2,
        )
    g = torch.Generator().manual_seed(1)
    held = []
    for c in range(data.num_classes):
        idx = torch.nonzero(y == c).flatten()
        held.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    val = torch.sort(torch.cat(held)).values
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[val] = False
    pool = torch.nonzero(keep).flatten()
    return data.x_train[pool], y[pool], data.x_train[val], y[val]


@functools.lru_cache(maxsize=8)
def _prepare_cached(
    name: str,
    data_dir: str | None,
    download: bool,
    stamp: Any,
    profile: str,
    ratio: float,
    n_max: int | None,
    val_per_class: int,
) -> dict[str, Any]:
    data = _load_cached(name, data_dir, download, stamp)
    if data.num_classes < 2:
        raise expected(
            "dataset",
            "at least 2 classes to classify",
            f"{name!r} with 1 class ({data.classes[0]!r} of the source data)",
        )
    if val_per_class:
        x_pool, y_pool, x_eval, y_eval = _split_validation(data, val_per_class)
    else:
        x_pool, y_pool, x_eval, y_eval = data.x_train, data.y_train, data.x_test, data.y_test
        if not len(y_eval):  # refused before a run folder is made, not after training
            raise expected(
                "dataset",
                "test examples to evaluate the run on (or --val-per-class K, which holds K "
                "training examples per class out and evaluates on them instead)",
                f"{name!r} with an empty test set",
            )
    available = torch.bincount(y_pool, minlength=data.num_classes)
    if profile == "natural":
        counts, order, n_max = available.tolist(), head_order(available.tolist()), None
        x_train, y_train = x_pool, y_pool
    else:
        # the head of the profile is the largest class (ties by label), and the default head
        # size is the largest that the profile can take from the classes at hand
        try:
            counts, order, n_max = profile_counts(available.tolist(), ratio, profile, n_max)
        except ValueError as err:
            if list(data.classes) == list(range(data.num_classes)):
                raise
            # the message counts classes 0..C-1: say which labels of the data they are
            names = ", ".join(f"{k} is {c!r}" for k, c in enumerate(data.classes[:10]))
            more = ", ..." if data.num_classes > 10 else ""
            raise ValueError(f"{err} (class {names}{more} of the source data)") from None
        # the subset's seed is fixed (0), not the run's: every seed trains on the same data, as
        # in the LDAM-DRW code, so the spread over seeds is that of training, not of the subset
        idx = torch.as_tensor(imbalanced_indices(y_pool, counts=counts, seed=0))
        x_train, y_train = x_pool.index_select(0, idx), y_pool.index_select(0, idx)
    lt = dataclasses.replace(data, x_train=x_train, y_train=y_train)
    mean, std = lt.channel_stats()
    present = [c for c in counts if c > 0]
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_eval,
        "y_test": y_eval,
        "eval_split": "validation" if val_per_class else "test",
        "counts": torch.as_tensor(counts, dtype=torch.long),
        "available": available.tolist(),  # the examples each class had before the cut
        "head_order": order,
        "n_max": n_max,
        "imbalance_ratio": max(present) / min(present) if present else float("nan"),
        "mean": mean,
        "std": std,
        "num_classes": data.num_classes,
        "channels": data.x_train.shape[1],
        "classes": list(data.classes),  # the source label of each class index
        "fingerprint": fingerprint(x_train, y_train, x_eval, y_eval, *_class_map(data)),
    }


def data_line(config: TrainConfig, data: dict[str, Any]) -> str:
    """What the run trains on, in one progress line: the examples kept of those available and
    per class (the default exp profile cuts data that is already long-tailed: say so)."""
    counts, available = data["counts"].tolist(), data["available"]
    kept, total = sum(counts), sum(available)
    shown = ", ".join(map(str, counts[:10])) + (", ..." if len(counts) > 10 else "")
    split = " (less the validation split)" if data["eval_split"] == "validation" else ""
    if config.profile == "natural":
        return f"training on all {kept} examples{split} (per class {shown}: the data's own profile)"
    line = (
        f"training on {kept} of {total} examples{split} (per class {shown}: {config.profile} "
        f"profile, ratio {config.ratio:g}, n_max {data['n_max']})"
    )
    if kept < total:
        line += "; --profile natural keeps them all"
    return line


def _class_map(data: ImageDataset) -> tuple[Any, ...]:
    """What the fingerprint adds for labels renumbered from the source data's: the source label
    (or class name) of each class index, so that two files of the same images whose labels mean
    other classes are different data. Nothing for labels that are ``0 .. K - 1`` already, so
    those runs keep the fingerprint they always had."""
    classes = list(data.classes)
    if classes == list(range(data.num_classes)):
        return ()
    if all(isinstance(c, str) for c in classes):
        return (np.array(classes, dtype=str),)
    return (np.asarray(classes, dtype=np.int64),)


def prepare_data(config: TrainConfig) -> dict[str, Any]:
    """Load the dataset and build the long-tailed training set of ``config``.

    Returns a dict with ``x_train``/``y_train`` (the imbalanced subset, uint8 / int64),
    ``x_test``/``y_test`` (what the run is evaluated on: the balanced test set, or with
    ``val_per_class > 0`` a balanced validation split of that many training images per class,
    set apart before the profile is applied, the test set then unused), ``eval_split``
    (``"test"`` or ``"validation"``), ``counts`` (training counts per class), ``head_order``
    (classes from the profile's head to its tail: largest class first, ties by label),
    ``n_max`` (the head size used; by default the largest the profile can take from the data),
    ``imbalance_ratio`` (largest / smallest training class), ``mean``/``std`` (channel
    statistics of the long-tailed training images), ``num_classes``, ``channels``, ``classes``
    (the source data's label of each class index: labels that were not ``0 .. K - 1`` are
    renumbered in sorted order) and ``fingerprint`` (:func:`~longtail.engine.run.fingerprint`
    of the four tensors, and of ``classes`` when labels were renumbered: what the run's
    identity records of its data).
    """
    stamp = _file_stamp(config.dataset, config.data_dir)
    return dict(
        _prepare_cached(
            config.dataset,
            config.data_dir,
            config.download,
            stamp,
            config.profile,
            config.ratio,
            config.n_max,
            config.val_per_class,
        )
    )


def run_identity(config: TrainConfig, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything that determines the run of ``config``: its config identity and its data."""
    data = prepare_data(config) if data is None else data
    return {**config.identity(), "data": data["fingerprint"]}


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


@contextlib.contextmanager
def process_group() -> Iterator[tuple[int, int]]:
    """``(world, rank)`` of the run, inside the process group it needs: the one already
    initialised, or one set up from torchrun's environment and destroyed on exit.

    Every engine runs inside it, so that DDP's teardown is the same for all: the
    ``DistributedDataParallel`` wrapper sits in reference cycles, and a Reducer still alive when
    the group is destroyed or the interpreter exits aborts the process now and then ("terminate
    called without an active exception"), so it is freed first.
    """
    world, rank, own_group = _dist_setup()
    try:
        yield world, rank
    finally:
        if world > 1:
            gc.collect()
        if own_group:
            dist.destroy_process_group()


def run_device(world: int) -> torch.device:
    """The device of this process: its local GPU under torchrun, the GPU, or the CPU."""
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
    for idx in batches(torch.arange(len(x)), batch_size):
        xb = normalize(x[idx].to(device), mean, std, channels_last=channels_last)
        out.append(model(xb).float())
    model.train(was_training)
    if not out:
        return torch.empty(0, 0)
    return torch.cat(out)


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


# ------------------------------------------------------------------------------ the task
class _Classification:
    """Model, loss, optimizer and schedules of one run; the harness drives its epochs."""

    def __init__(
        self, config: TrainConfig, data: dict[str, Any], world: int, rank: int, label: str
    ) -> None:
        self.config, self.data, self.world, self.rank, self.label = (
            config,
            data,
            world,
            rank,
            label,
        )
        self.device = run_device(world)
        spec = config.spec
        torch.manual_seed(config.seed)
        model = create_model(
            config.model, data["num_classes"], data["channels"], config.width, spec.normed
        ).to(self.device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        counts = data["counts"]
        loss_kwargs = {**spec.loss_kwargs, **config.loss_kwargs}
        if "seed" in get_loss_info(spec.loss).keywords and loss_kwargs.get("seed") is None:
            # a loss whose formula is random (GCL, softmax EQL) draws from the run's seed: each
            # seed of a grid its own noise (seed 0 the base seed 0 such runs always had)
            loss_kwargs["seed"] = config.seed
        criterion = create_loss_for_counts(spec.loss, counts.tolist(), **loss_kwargs)
        learned = [name for name, _ in criterion.named_parameters()]
        if learned:  # the SGD below trains the model's parameters; these would stay frozen
            raise expected(
                "method",
                "a loss without learnable parameters (the engine's SGD trains the model's)",
                f"{spec.loss!r}, which learns {', '.join(learned)}: train it in your own loop "
                f"with the optimizer its docstring names",
            )
        criterion.reduction = "none"  # weighting and normalisation happen in fit_epoch
        self.criterion = criterion.to(self.device)
        self.optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        # the library's own schedules: "cb" is DRW/DRS from epoch 0
        start = {"drw": config.drw_epoch, "drs": config.drw_epoch, "cb": 0}
        self.reweighting = (
            DeferredReweighting(counts, start[spec.reweight], beta=config.cb_beta)
            if spec.reweight != "none"
            else None
        )
        y = data["y_train"]
        self.sampler: ClassBalancedSampler | DeferredResampler | None = None
        if spec.resample == "cb":
            self.sampler = ClassBalancedSampler(
                y, scheme="effective", beta=config.cb_beta, num_replicas=1, rank=0
            )
        elif spec.resample == "drs":
            self.sampler = DeferredResampler(
                y, config.drw_epoch, beta=config.cb_beta, num_replicas=1, rank=0
            )
        train_model: nn.Module = model
        if world > 1:
            if self.device.type == "cuda":
                train_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            train_model = nn.parallel.DistributedDataParallel(
                train_model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.train_model = train_model
        self.step_model = _maybe_compile(train_model, config.compile)
        # Cosine classifiers output z in [-1, 1]; their losses see s·z, and so must calibration
        # (ECE on raw cosines would be a near-uniform softmax). Top-1 does not depend on s.
        self.logit_scale = float(getattr(criterion, "scale", 1.0)) if spec.normed else 1.0
        self.best: float | None = None
        self.final_metrics: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        # the loss's state too: a stateful loss's running statistics (seesaw's counts, EQL's
        # gradient statistics) and a random loss's step counter, so that a resumed run draws
        # and weighs as the run never killed would
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "criterion": self.criterion.state_dict(),
            "best": self.best,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if "criterion" in state:  # checkpoints written before the loss state was saved
            self.criterion.load_state_dict(state["criterion"])
        self.best = state["best"]

    def _weight(self, epoch: int) -> torch.Tensor | None:
        r = self.reweighting
        return r.weights(epoch) if r is not None and r.is_active(epoch) else None

    def _order(self, g: torch.Generator, epoch: int) -> torch.Tensor:
        if self.sampler is None:
            return torch.randperm(len(self.data["y_train"]), generator=g)
        self.sampler.set_epoch(epoch)
        return self.sampler.global_indices(generator=g)

    def _step(self, idx: torch.Tensor, g: torch.Generator, w_dev: torch.Tensor | None) -> float:
        cfg, d, world, rank = self.config, self.data, self.world, self.rank
        xb = d["x_train"].index_select(0, idx)
        if cfg.augment:
            xb = random_crop_flip(xb, cfg.padding, cfg.flip, generator=g)
        xb, yb = xb[rank::world], d["y_train"].index_select(0, idx)[rank::world]
        xb = normalize(xb.to(self.device), d["mean"], d["std"], channels_last=cfg.channels_last)
        yb = yb.to(self.device)
        per_sample = self.criterion(self.step_model(xb), yb)  # w_y · ℓ (reduction="none")
        den = w_dev[yb].sum() if w_dev is not None else per_sample.new_tensor(len(yb))
        den = den.detach().clone()
        if world > 1:
            dist.all_reduce(den)  # global Σw: DDP's gradient mean then equals one process
        loss = per_sample.sum() * world / den
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def fit_epoch(self, epoch: int, progress: Progress) -> dict[str, Any]:
        cfg = self.config
        lr = cfg.lr_at(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        weight = self._weight(epoch)
        self.criterion.set_weight(weight)
        w_dev = weight.to(self.device) if weight is not None else None
        g = epoch_generator(cfg.seed, epoch)
        order = self._order(g, epoch)
        progress.start(epoch, math.ceil(len(order) / cfg.batch_size))
        self.train_model.train()
        loss_sum, seen = 0.0, 0
        for b, idx in enumerate(batches(order, cfg.batch_size)):
            if len(idx) < self.world:
                continue  # a last batch too small to give every process a sample
            loss = self._step(idx, g, w_dev)
            check_finite(loss, epoch, b, self.label)
            # this process's share of the global batch's loss (which is the mean of the
            # processes' values, each normalised by the global Σw), weighted by the batch size
            loss_sum, seen = loss_sum + loss * len(idx) / self.world, seen + len(idx)
            progress.step(loss_sum * self.world / seen)
        row: dict[str, Any] = {
            "lr": lr,
            "loss": self._global_sum(loss_sum) / max(seen, 1),
            "images": seen,
            "reweighted": weight is not None,
        }
        last = epoch == cfg.epochs - 1
        if last or (cfg.eval_every and (epoch + 1) % cfg.eval_every == 0):
            m = self.test_metrics()
            split = "val" if self.data["eval_split"] == "validation" else "test"
            row[split] = {k: v for k, v in m.items() if k != "per_class_error"}
            if self.best is None or m["top1_error"] < self.best:
                self.best = m["top1_error"]
            if last:
                self.final_metrics = m
        return row

    def _global_sum(self, value: float) -> float:
        """``value`` summed over the processes (itself in one process)."""
        if self.world == 1:
            return value
        total = torch.tensor(value, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return float(total)

    def test_metrics(self) -> dict[str, Any]:
        cfg, d = self.config, self.data
        logits = evaluate(
            self.model, d["x_test"], d["mean"], d["std"], cfg.eval_batch_size, cfg.channels_last
        )
        return classification_metrics(
            logits * self.logit_scale,
            d["y_test"].to(logits.device),
            d["counts"],
            many_threshold=cfg.many_threshold,
            few_threshold=cfg.few_threshold,
        )


def _epoch_line(label: str, epochs: int) -> Callable[[dict[str, Any]], str]:
    def line(row: dict[str, Any]) -> str:
        speed = row.get("images_per_s", float("nan"))  # the harness's figure for this row
        msg = (
            f"{label} epoch {row['epoch'] + 1}/{epochs} loss {row['loss']:.4f} "
            f"lr {row['lr']:.4g} ({speed:.0f} img/s)"
        )
        for split in ("test", "val"):
            if split in row:
                msg += f" {split} err {row[split]['top1_error']:.2f}%"
        return msg

    return line


def _curve(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training curve a record keeps: per epoch the lr, mean training loss, whether the
    deferred weights were on, and the top-1 error of the epochs that were evaluated (on the
    split the run evaluates: ``val_top1_error`` or ``test_top1_error``)."""
    out = []
    for row in rows:
        point = {k: row[k] for k in ("epoch", "lr", "loss", "reweighted") if k in row}
        for split in ("val", "test"):
            if split in row:
                point[f"{split}_top1_error"] = row[split]["top1_error"]
        out.append(point)
    return out


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
            disk (no resume). An existing folder of the same run (same config, same data) is
            resumed; a folder holding a different run, or the same config on other data, is
            refused.
        progress: Show progress on stderr (default): the schedule, a line per epoch, plus a bar
            over the batches when stderr is a terminal. ``False`` is silent.
        callback: Called as ``callback(epoch, row)`` after each epoch's checkpoint is written.
        extra: Top-level keys added to the record (e.g. ``{"bench": "table1"}``).

    Returns:
        The record ``{"method", "dataset", "profile", "ratio", "seed", "epochs", "seconds",
        "config", "metrics", "class_counts", "identity", "data", "schedule", ...}``.

    Raises:
        ValueError: a folder of another run, damaged files, bad data;
            :class:`~longtail.engine.run.TrainingDiverged` (a ``ValueError``) when the loss
            becomes NaN or infinite.
    """
    with process_group() as (world, rank):
        return _train(config, out, world, rank, progress, callback, extra or {})


def _train(
    config: TrainConfig,
    out: str | os.PathLike[str] | None,
    world: int,
    rank: int,
    progress: bool | None,
    callback: Callable[[int, dict[str, Any]], None] | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    main = rank == 0
    check_batch_for_processes(config.batch_size, world)
    folder = RunFolder(out, config.to_dict(), config.identity(), main=main)
    try:
        return _train_in(folder, config, world, rank, progress, callback, extra)
    finally:
        folder.close()


def _train_in(
    folder: RunFolder,
    config: TrainConfig,
    world: int,
    rank: int,
    progress: bool | None,
    callback: Callable[[int, dict[str, Any]], None] | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    main = rank == 0
    folder.check_config(lambda saved: TrainConfig.from_dict(saved).identity())
    data = prepare_data(config)
    sizes = {"train_size": len(data["y_train"]), "test_size": len(data["y_test"])}
    record = folder.open(with_processes(run_identity(config, data), world), sizes)
    if record is not None:
        return record
    folder.start()
    if config.threads:
        torch.set_num_threads(config.threads)
    setting = "natural" if config.profile == "natural" else f"{config.profile}-{config.ratio:g}"
    label = f"{config.method} {setting}"
    task = _Classification(config, data, world, rank, label)
    bar = Progress(progress, config.epochs, label, main=main)
    warnings_ = bar.schedule(label, config)
    bar.say(f"{label}: {data_line(config, data)}")
    flush_before = torch.set_flush_denormal(True) if config.flush_denormal else None
    try:
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
    finally:
        if flush_before is not None:
            torch.set_flush_denormal(False)
    metrics = dict(task.final_metrics or task.test_metrics())  # resumed after the last epoch
    if task.best is not None and config.eval_every:
        metrics["best_top1_error"] = task.best
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
        "class_counts": data["counts"].tolist(),
        "classes": data["classes"],
        "logit_scale": task.logit_scale,
        "world_size": world,
        "identity": folder.identity,
        "data": {
            "fingerprint": data["fingerprint"],
            **sizes,
            "num_classes": data["num_classes"],
            "n_max": data["n_max"],
            "head_order": data["head_order"],
            "imbalance_ratio": data["imbalance_ratio"],
        },
        "eval_split": data["eval_split"],
        "schedule": config.describe_schedule(),
        "schedule_warnings": warnings_,
        "curve": _curve(rows),
        "environment": environment(task.device),
        **extra,
    }
    folder.write_record(record)
    return record
