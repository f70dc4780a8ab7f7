"""The network of a DIR run: a backbone, an optional FDS on its features, and a head."""

from __future__ import annotations

import torch
from torch import nn

from longtail.data.images import normalize
from longtail.engine.regression.config import RegressionConfig
from longtail.engine.regression.data import RegressionData
from longtail.models import create_model
from longtail.regression import FDS, GroupDIRHead

__all__ = ["DIRNet", "build_model", "group_outputs", "mlp", "model_inputs", "predict"]


class DIRNet(nn.Module):
    """A backbone, an optional FDS on its features, and a head.

    ``forward(x, bins=None, groups=None, epoch=0)`` returns ``(prediction (N,), features (N, D),
    group_logits (N, G) or None)``. The head is a linear regressor, or a
    :class:`~longtail.regression.GroupDIRHead` (true-group routing when ``groups`` is given,
    predicted-group routing otherwise). FDS (with ``bins``) calibrates the features fed to the
    head in training; it is the identity in eval mode. The features returned are the
    uncalibrated ones (what FDS tracks and what Group-DIR's contrastive loss sees).
    """

    def __init__(
        self, encoder: nn.Module, feature_dim: int, head: nn.Module, fds: FDS | None = None
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.feature_dim = feature_dim
        self.head = head
        self.fds = fds

    def forward(
        self,
        x: torch.Tensor,
        bins: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
        epoch: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        h = self.encoder(x)
        hs = self.fds.smooth(h, bins, epoch) if self.fds is not None and bins is not None else h
        if isinstance(self.head, GroupDIRHead):
            logits, pred, _ = self.head(hs, groups)
            return pred, h, logits
        return self.head(hs).squeeze(1), h, None


def mlp(in_features: int, hidden: tuple[int, ...]) -> nn.Sequential:
    """Linear + ReLU per hidden size; the last size is the feature size."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_features, h), nn.ReLU()]
        in_features = h
    return nn.Sequential(*layers)


def build_model(config: RegressionConfig, data: RegressionData) -> DIRNet:
    """The network of ``config`` (parameters drawn from torch's global generator)."""
    if config.backbone == "mlp":
        encoder: nn.Module = mlp(data.x_train.shape[1], config.hidden)
        dim = config.hidden[-1]
    else:
        encoder = create_model(config.model, 1, data.x_train.shape[1], config.width)
        dim = int(encoder.feature_dim)
        encoder.fc = nn.Identity()  # the pooled features; the head sits on them
    spec = config.spec
    head: nn.Module = (
        GroupDIRHead(dim, config.num_groups, config.routing)
        if spec.loss == "group-dir"
        else nn.Linear(dim, 1)
    )
    fds = None
    if spec.fds:
        fds = FDS(
            dim,
            num_bins=data.edges.numel() - 1,
            start_update=config.fds_start_update,
            start_smooth=config.fds_start_smooth,
            kernel=config.fds_kernel,
            ks=config.fds_ks,
            sigma=config.fds_sigma,
            momentum=config.fds_momentum,
        )
    return DIRNet(encoder, dim, head, fds)


def model_inputs(x: torch.Tensor, data: RegressionData, device: torch.device) -> torch.Tensor:
    """A batch as the network takes it: features as they are, images normalised."""
    if data.kind == "table":
        return x.to(device)
    return normalize(x.to(device), data.image_mean, data.image_std)


@torch.no_grad()
def predict(
    model: DIRNet, x: torch.Tensor, data: RegressionData, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions (transformed units, float32 CPU) and features of ``x``, in eval mode."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    preds, feats = [], []
    for i in range(0, len(x), batch_size):
        p, h, _ = model(model_inputs(x[i : i + batch_size], data, device))
        preds.append(p.float().cpu())
        feats.append(h.float())
    model.train(was)
    empty = torch.zeros(0)
    return (torch.cat(preds) if preds else empty), (torch.cat(feats) if feats else empty)


@torch.no_grad()
def group_outputs(
    model: DIRNet, x: torch.Tensor, data: RegressionData, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A Group-DIR network's group logits and every expert's output (transformed units) on ``x``.

    Both ``(N, G)``, float32 on the CPU, in eval mode; for
    :func:`~longtail.regression.routing_diagnostics`.
    """
    if not isinstance(model.head, GroupDIRHead):
        raise TypeError("group_outputs needs a Group-DIR network (a GroupDIRHead)")
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    logits, experts = [], []
    for i in range(0, len(x), batch_size):
        h = model.encoder(model_inputs(x[i : i + batch_size], data, device))
        lg, _, ex = model.head(h)
        logits.append(lg.float().cpu())
        experts.append(ex.float().cpu())
    model.train(was)
    g = model.head.num_groups
    empty = torch.zeros(0, g)
    return (
        torch.cat(logits) if logits else empty,
        torch.cat(experts) if experts else empty,
    )
