"""The DIR unit over the run harness: build, fit one epoch, evaluate, record.

The run folder, its identity (config + data fingerprint), the checkpoint, the kill-safe log and
the divergence check are the harness's (:mod:`longtail.engine.run`). This module builds the
model, the loss and Adam of a DIR method, fits one epoch at a time (the shuffling and, for
images, the augmentation of epoch ``e`` come from a generator seeded with ``(seed, e)``, so a
run killed and resumed ends exactly where an uninterrupted run ends), keeps the weights of the
best validation MAE, and writes the record.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from longtail._validation import expected
from longtail.data.images import random_crop_flip
from longtail.engine.regression.config import RegressionConfig, is_csv
from longtail.engine.regression.data import (
    RegressionData,
    TargetTransform,
    check_regression_data,
    run_identity,
)
from longtail.engine.regression.model import (
    DIRNet,
    build_model,
    group_outputs,
    model_inputs,
    predict,
)
from longtail.engine.run import (
    Progress,
    RunFolder,
    batches,
    check_finite,
    clean_json,
    environment,
    epoch_generator,
    run_epochs,
)
from longtail.regression import (
    REGIONS,
    BMCLoss,
    GroupDIRLoss,
    bin_index,
    group_edges,
    lds_weights,
    per_bin_mae,
    regression_metrics,
    routing_diagnostics,
    weighted_l1_loss,
    weighted_mse_loss,
)

__all__ = ["better", "train_regression", "train_step"]

_REGION_SUFFIXES = ("", *(f"_{r}" for r in REGIONS))


# --------------------------------------------------------------------------------------- step
def train_step(
    model: DIRNet,
    criterion: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    loss: str,
    x: torch.Tensor,
    z: torch.Tensor,
    weight: torch.Tensor | None = None,
    bins: torch.Tensor | None = None,
    groups: torch.Tensor | None = None,
    epoch: int = 0,
) -> dict[str, float]:
    """One optimisation step of a DIR method on a batch (the engine's step, also benchmarked).

    Args:
        model: the network (in train mode).
        criterion: :class:`~longtail.regression.BMCLoss` or
            :class:`~longtail.regression.GroupDIRLoss` for those methods, else unused.
        optimizer: the optimizer of the model (and of BMC's σ).
        loss: the method's loss kind: ``"mse"``, ``"l1"``, ``"bmc"`` or ``"group-dir"``.
        x, z: inputs and transformed targets ``(B,)``.
        weight: per-sample LDS weights, or None.
        bins: label bins of the batch (FDS), groups: Group-DIR groups, epoch: for FDS.

    Returns:
        ``{"loss": ...}`` and, for Group-DIR, its unweighted parts ``contrastive``, ``mse``,
        ``soft``.
    """
    pred, h, logits = model(x, bins=bins, groups=groups, epoch=epoch)
    parts: dict[str, torch.Tensor] = {}
    if loss == "group-dir":
        res = criterion(h, logits, pred, z, groups, weight=weight)
        value = res.loss
        parts = {"contrastive": res.contrastive, "mse": res.mse, "soft": res.soft}
    elif loss == "bmc":
        value = criterion(pred, z)
    elif loss == "l1":
        value = weighted_l1_loss(pred, z, weight)
    else:
        value = weighted_mse_loss(pred, z, weight)
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return {k: float(v.detach()) for k, v in {"loss": value, **parts}.items()}


def better(value: float, best: float) -> bool:
    """Lower validation MAE wins; NaN (a diverged epoch) never does, and any number beats it."""
    if math.isnan(value):
        return False
    return math.isnan(best) or value < best


def _criterion_and_optimizer(
    config: RegressionConfig, model: DIRNet, device: torch.device
) -> tuple[nn.Module | None, torch.optim.Optimizer]:
    """The method's loss module (BMC, Group-DIR; else None) and Adam over everything learned."""
    spec = config.spec
    criterion: nn.Module | None = None
    groups: list[dict[str, Any]] = [
        {"params": list(model.parameters()), "weight_decay": config.weight_decay}
    ]
    if spec.loss == "bmc":
        criterion = BMCLoss(config.bmc_init_sigma).to(device)
        # σ keeps its own constant lr (the Balanced MSE code's --sigma_lr), never scheduled
        groups.append(
            {"params": [criterion.noise_sigma], "lr": config.bmc_sigma_lr, "weight_decay": 0.0}
        )
    elif spec.loss == "group-dir":
        criterion = GroupDIRLoss(
            config.num_groups, config.lambda1, config.lambda2, config.group_beta, config.temperature
        ).to(device)
    return criterion, torch.optim.Adam(groups, lr=config.lr)


# --------------------------------------------------------------------------------------- task
class _Regression:
    """Model, loss, optimizer and best-validation weights of one DIR run; the harness drives it."""

    def __init__(
        self, config: RegressionConfig, data: RegressionData, device: torch.device, label: str
    ) -> None:
        self.config, self.data, self.device, self.label = config, data, device, label
        spec = config.spec
        y = data.y_train
        self.tt = TargetTransform(config.target_transform, y)
        self.z_train = self.tt.forward(y)
        self.bins_train = bin_index(y, data.edges)
        self.groups_train = self.group_edges = None
        if spec.loss == "group-dir":
            self.group_edges = group_edges(y, config.num_groups, config.group_edges)
            self.groups_train = bin_index(y, self.group_edges)
        self.weights = None
        if spec.lds:
            self.weights = lds_weights(
                y,
                data.bin_width,
                config.lds_kernel,
                config.lds_ks,
                config.lds_sigma,
                config.lds_reweight,
            )
        torch.manual_seed(config.seed)
        self.model = build_model(config, data).to(device)
        self.criterion, self.optimizer = _criterion_and_optimizer(config, self.model, device)
        self.best: dict[str, Any] = {"val_mae": None, "epoch": None, "model": None}

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "criterion": self.criterion.state_dict() if self.criterion is not None else {},
            "best": self.best,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.criterion is not None:
            self.criterion.load_state_dict(state["criterion"])
        self.best = state["best"]

    def _batch(self, idx: torch.Tensor, g: torch.Generator) -> tuple[Any, ...]:
        """(x, z, weight, bins, groups) of the batch ``idx``, on the device."""
        cfg, d, dev = self.config, self.data, self.device
        xb = d.x_train.index_select(0, idx)
        if d.kind == "image" and cfg.augment:
            xb = random_crop_flip(xb, cfg.padding, True, generator=g)

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return t.index_select(0, idx).to(dev) if t is not None else None

        return (
            model_inputs(xb, d, dev),
            pick(self.z_train),
            pick(self.weights),
            pick(self.bins_train),
            pick(self.groups_train),
        )

    def fit_epoch(self, epoch: int, progress: Progress) -> dict[str, Any]:
        cfg, n = self.config, len(self.data.y_train)
        lr = cfg.lr_at(epoch)
        self.optimizer.param_groups[0]["lr"] = lr  # BMC's σ keeps its own constant lr
        g = epoch_generator(cfg.seed, epoch)
        order = torch.randperm(n, generator=g)
        progress.start(epoch, math.ceil(n / cfg.batch_size))
        self.model.train()
        sums: dict[str, float] = {}
        seen = 0
        for b, idx in enumerate(batches(order, cfg.batch_size)):
            step = (self.model, self.criterion, self.optimizer, cfg.spec.loss)
            parts = train_step(*step, *self._batch(idx, g), epoch=epoch)
            check_finite(parts["loss"], epoch, b, self.label)
            seen += len(idx)
            for name, v in parts.items():
                sums[name] = sums.get(name, 0.0) + v * len(idx)
            progress.step(sums["loss"] / seen)
        self._update_fds(epoch)
        val_mae = self.val_mae()
        if self.best["val_mae"] is None or better(val_mae, self.best["val_mae"]):
            weights = copy.deepcopy(self.model.state_dict())
            self.best = {"val_mae": val_mae, "epoch": epoch, "model": weights}
        row: dict[str, Any] = {
            "lr": lr,
            **{k: v / max(seen, 1) for k, v in sums.items()},
            "samples": seen,
            "val_mae": val_mae,
            "best_val_mae": self.best["val_mae"],
        }
        if isinstance(self.criterion, BMCLoss):
            row["noise_sigma"] = float(self.criterion.noise_sigma.detach())
        return row

    def _update_fds(self, epoch: int) -> None:
        """The DIR code's end-of-epoch pass: features of all training data, then fold them."""
        fds, d = self.model.fds, self.data
        if fds is not None and epoch >= self.config.fds_start_update:
            _, feats = predict(self.model, d.x_train, d, self.config.eval_batch_size)
            fds.update_running_stats(feats, self.bins_train.to(feats.device), epoch)
            fds.update_last_epoch_stats(epoch)

    def val_mae(self) -> float:
        """Validation MAE in target units (float64)."""
        z, _ = predict(self.model, self.data.x_val, self.data, self.config.eval_batch_size)
        return float((self.tt.inverse(z) - self.data.y_val).abs().mean())

    def test_metrics(self) -> tuple[dict[str, Any], torch.Tensor]:
        """Test metrics of the current weights, and their predictions in target units."""
        d = self.data
        z, _ = predict(self.model, d.x_test, d, self.config.eval_batch_size)
        pred = self.tt.inverse(z)
        return regression_metrics(pred, d.y_test, d.y_train, regions=d.regions), pred

    def final_metrics(self) -> dict[str, Any]:
        """Test metrics of the best-validation weights, with the last epoch's beside them.

        Loads the best weights into the model (the run is over).
        """
        last, _ = self.test_metrics()
        self.model.load_state_dict(self.best["model"])
        metrics, pred = self.test_metrics()
        per_bin, _ = per_bin_mae(pred, self.data.y_test, self.data.edges)
        out = {
            **metrics,
            "per_bin_mae": per_bin,
            "best_epoch": self.best["epoch"],
            "val_mae": self.best["val_mae"],
            **{f"last_{m}{r}": last[f"{m}{r}"] for m in ("mae", "gm") for r in _REGION_SUFFIXES},
        }
        if self.group_edges is not None:
            out["routing"] = self.routing()
        return out

    def routing(self) -> dict[str, Any]:
        """Group-DIR's routing on the test set (:func:`~longtail.regression.routing_diagnostics`)
        with the group edges and each group's training count, for the current weights."""
        d, edges = self.data, self.group_edges
        logits, experts = group_outputs(self.model, d.x_test, d, self.config.eval_batch_size)
        experts = self.tt.inverse(experts)  # every expert in target units
        groups = bin_index(d.y_test, edges)
        diag = routing_diagnostics(logits, experts, d.y_test, groups, d.regions.assign(d.y_test))
        diag["group_edges"] = edges.tolist()
        diag["train_per_group"] = torch.bincount(
            self.groups_train, minlength=edges.numel() - 1
        ).tolist()
        return diag


def _epoch_line(label: str, epochs: int) -> Callable[[dict[str, Any]], str]:
    def line(row: dict[str, Any]) -> str:
        val = row.get("val_mae")
        return (
            f"{label} epoch {row['epoch'] + 1}/{epochs} loss {row['loss']:.4f} lr {row['lr']:.3g} "
            f"val MAE {val if val is None else format(val, '.4g')}"
        )

    return line


def _saved_identity(saved: Any) -> dict[str, Any]:
    """The config identity of a saved regression config (``ValueError`` for anything else)."""
    if not isinstance(saved, dict) or saved.get("task") != "regression":
        raise ValueError("it is not a regression run's config")
    return RegressionConfig.from_dict(saved).identity()


# ------------------------------------------------------------------------------------- record
def _record(
    config: RegressionConfig,
    data: RegressionData,
    metrics: dict[str, Any],
    seconds: float,
    identity: dict[str, Any] | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    return clean_json(
        {
            "method": config.method,
            "dataset": Path(config.dataset).stem if is_csv(config.dataset) else config.dataset,
            "profile": "dir",
            "ratio": data.ratio,
            "seed": config.seed,
            "epochs": config.epochs,
            "seconds": round(seconds, 3),
            "config": config.to_dict(),
            "metrics": metrics,
            "target": data.target,
            "bin_width": data.bin_width,
            "bin_edges": data.edges.tolist(),
            "train_hist": data.train_hist,
            "train_regions": list(data.regions.regions),
            "test_hist": data.test_hist,
            "selection": "best validation MAE",
            "schedule": config.describe_schedule(),
            "schedule_warnings": config.schedule_warnings(),
            "identity": identity,
            "data": {"fingerprint": data.fingerprint, **data.sizes()},
            "environment": environment(),
            **extra,
        }
    )


# -------------------------------------------------------------------------------------- train
def train_regression(
    config: RegressionConfig,
    out: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one DIR run of ``config`` and return its results record.

    Args:
        config: The run (see :class:`~longtail.engine.regression.RegressionConfig`).
        out: Output folder for config, checkpoint, log and result; ``None`` keeps nothing on
            disk. An existing folder of the same run (same config, same data) is resumed (a
            finished one returns its record); a folder holding a different run, or this config
            on other data (a CSV file replaced at the same path), is refused (``ValueError``).
        progress: Show progress on stderr (default): the schedule (and any of its steps that
            cannot happen as written), a line per epoch, plus a bar over the batches when
            stderr is a terminal. ``False`` is silent.
        callback: Called as ``callback(epoch, row)`` after each epoch's checkpoint is written
            (raise :class:`~longtail.engine.RunInterrupted` to stop the run there).
        extra: Top-level keys added to the record (e.g. ``{"bench": "dir"}``).

    Returns:
        ``{"method", "dataset", "profile": "dir", "ratio", "seed", "epochs", "seconds",
        "config", "metrics", "target", "bin_width", "bin_edges", "train_hist", "train_regions",
        "test_hist", "selection", "schedule", "schedule_warnings", "identity", "data",
        ...extra}``: ``ratio`` is the largest over
        the smallest training count of the non-empty label bins; ``train_regions`` the shot
        region of each bin; ``identity`` the run's identity (config + data fingerprint) and
        ``data`` the fingerprint and split sizes; ``metrics`` holds
        :func:`~longtail.regression.regression_metrics` of the best-validation weights on the
        test set (``mae``, ``mse``, ``gm``, ``pearson`` and each per region, ``mae_many``,
        ...), ``per_bin_mae`` (one value per bin of ``bin_edges``, ``None`` for bins without
        test samples), ``best_epoch``, ``val_mae`` (its validation MAE) and the last epoch's
        ``last_mae``, ``last_mae_many``, ..., ``last_gm_few``; for Group-DIR methods also
        ``routing``: :func:`~longtail.regression.routing_diagnostics` of the best-validation
        weights on the test set (the group classifier's accuracy per label region, how far it
        misroutes, the experts' errors when routed right and wrong, the soft mixture's MAE),
        with ``group_edges`` and ``train_per_group``. Undefined values (Pearson's r of
        constant predictions) are ``None``.

    Raises:
        ValueError: bad data (see :func:`~longtail.engine.regression.prepare_regression_data`),
            ``num_groups`` larger than the label bins allow, a folder of another run or of other
            data, damaged files, a start under ``torchrun`` with several processes (the
            regression engine has no DDP); :class:`~longtail.engine.run.TrainingDiverged` (a
            ``ValueError``) when the loss becomes NaN or infinite.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1:  # before the folder: each process would train the whole run alone
        raise expected(
            "the regression engine",
            "run in one process (it has no data-parallel training: run it without torchrun)",
            f"WORLD_SIZE={world} (torchrun)",
        )
    folder = RunFolder(out, config.to_dict(), config.identity())
    try:
        return _train_in(folder, config, progress, callback, extra or {})
    finally:
        folder.close()


def _train_in(
    folder: RunFolder,
    config: RegressionConfig,
    progress: bool | None,
    callback: Callable[[int, dict[str, Any]], None] | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    folder.check_config(_saved_identity)
    data = check_regression_data(config)
    record = folder.open(run_identity(config, data), data.sizes())
    if record is not None:
        return record
    folder.start()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    label = f"{config.method} {Path(data.name).stem}"
    task = _Regression(config, data, device, label)
    bar = Progress(progress, config.epochs, label)
    bar.schedule(label, config)  # the record states it again (_record)
    _rows, seconds, _ = run_epochs(
        task,
        folder,
        config.epochs,
        bar,
        map_location=device,
        callback=callback,
        describe=_epoch_line(label, config.epochs),
    )
    record = _record(config, data, task.final_metrics(), seconds, folder.identity, extra)
    folder.write_record(record)
    return record
