"""Optimizers that a loss needs of its own: PESG for the AUC margin loss (``auc-m``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ._validation import check_positive, expected

__all__ = ["PESG"]


class PESG(torch.optim.Optimizer):
    """Proximal epoch stochastic gradient (Yuan, Yan, Sonka and Yang, "Large-scale Robust Deep AUC
    Maximization: A New Surrogate Loss and Empirical Studies on Medical Image Classification",
    ICCV 2021, Algorithm 1), the optimizer of the min-max AUC margin loss
    (:class:`longtail.losses.AUCMLoss`).

    The *primal* variables ``v`` (the model's parameters and the loss's ``a``, ``b``) descend,
    pulled toward a reference point ``v_ref``; the *dual* variable ``α`` ascends and is projected
    onto ``α ≥ 0``:

    .. math::

        v_{t+1} = v_t - \\eta\\,\\big(\\nabla_v F(v_t, \\alpha_t) + \\lambda_0 (v_t - v_{ref})
                  + \\lambda v_t\\big),
        \\qquad
        \\alpha_{t+1} = \\big[\\alpha_t + \\eta\\, \\nabla_\\alpha F(v_t, \\alpha_t)\\big]_+

    ``v_ref`` starts at the initial point ``v_0`` (taken at the first step) and is moved at the
    end of each stage by :meth:`update_regularizer`, which also decays ``η``; the paper leaves
    the new reference open ("update ``v_ref`` periodically"): it is the average of the stage's
    iterates, as in LibAUC.

    Where LibAUC's code (``libauc/optimizers/pesg.py``) departs from the paper's algorithm,
    longtail follows the paper: the dual step uses the stochastic gradient ``∇_α F`` (LibAUC now
    uses ``2(m + b − a) − 2α``, a closed form of another version of the objective); no gradient
    clipping (LibAUC clips to [−1, 1]); no momentum; ``v_ref`` starts at ``v_0`` (LibAUC draws it
    at random); ``α`` is not capped above (LibAUC caps it at 999).

    Under DDP, the gradients of ``a``, ``b`` and ``α`` are averaged only if the loss is inside the
    wrapped module (LibAUC all-reduces them itself).

    Args:
        params: the primal parameters: the model's and the loss's ``a`` and ``b`` (or parameter
            groups, as for any optimizer).
        dual: the dual parameters (the loss's ``alpha``), updated by projected ascent.
        lr: the step size ``η``; default 0.1, LibAUC's.
        epoch_decay: ``λ₀``, the weight of the pull toward ``v_ref`` (``1/γ`` in the paper's
            notation); default 2e-3, LibAUC's (``γ = 500`` in its first releases). The paper
            tunes it.
        weight_decay: ``λ``; default 1e-5, LibAUC's.

    Example:
        >>> import torch, longtail as lt
        >>> from longtail.optim import PESG
        >>> model = torch.nn.Linear(4, 3)
        >>> crit = lt.create_loss("auc-m")
        >>> x, y = torch.randn(8, 4), (torch.rand(8, 3) > 0.5).float()
        >>> _ = crit(model(x), y)  # gives a, b, α one entry per class
        >>> opt = PESG([*model.parameters(), crit.a, crit.b], dual=[crit.alpha], lr=0.1)
        >>> crit(model(x), y).backward()
        >>> opt.step()
    """

    def __init__(
        self,
        params: Iterable[Any],
        dual: Iterable[torch.Tensor] = (),
        *,
        lr: float = 0.1,
        epoch_decay: float = 2e-3,
        weight_decay: float = 1e-5,
    ):
        check_positive("lr", lr, allow_zero=True)
        check_positive("epoch_decay", epoch_decay, allow_zero=True)
        check_positive("weight_decay", weight_decay, allow_zero=True)
        if isinstance(params, torch.Tensor):
            raise expected("params", "an iterable of tensors or parameter groups", "a tensor")
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        dual = [dual] if isinstance(dual, torch.Tensor) else list(dual)
        if dual:
            groups.append({"params": dual, "dual": True})
        defaults = {
            "lr": lr,
            "epoch_decay": epoch_decay,
            "weight_decay": weight_decay,
            "dual": False,
        }
        super().__init__(groups, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        """One PESG step (descent on the primal groups, projected ascent on the dual group)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if group["dual"]:
                    p.add_(p.grad, alpha=lr).clamp_min_(0)
                    continue
                state = self.state[p]
                if not state:
                    state["reference"] = p.detach().clone()
                    state["iterate_sum"] = torch.zeros_like(p)
                    state["iterates"] = 0
                d = p.grad
                if group["epoch_decay"] != 0:
                    d = d.add(p - state["reference"], alpha=group["epoch_decay"])
                if group["weight_decay"] != 0:
                    d = d.add(p, alpha=group["weight_decay"])
                p.add_(d, alpha=-lr)
                state["iterate_sum"].add_(p)
                state["iterates"] += 1
        return loss

    @torch.no_grad()
    def update_regularizer(self, decay_factor: float | None = None) -> None:
        """End a stage: ``v_ref`` becomes the average of the stage's iterates (a parameter not
        stepped in the stage keeps its reference), and ``lr`` is divided by ``decay_factor``."""
        if decay_factor is not None:
            check_positive("decay_factor", decay_factor)
        for group in self.param_groups:
            if decay_factor is not None:
                group["lr"] = group["lr"] / decay_factor
            if group["dual"]:
                continue
            for p in group["params"]:
                state = self.state.get(p)
                if state and state["iterates"]:
                    state["reference"] = state["iterate_sum"] / state["iterates"]
                    state["iterate_sum"].zero_()
                    state["iterates"] = 0
