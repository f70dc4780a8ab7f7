"""Reproducible random draws for the losses whose formula is random (GCL's Gaussian cloud, the
softmax equalization loss's random drop).

A random loss is awkward to test and to resume: two calls on the same batch give two values, and a
checkpoint does not say which numbers come next. The modules here draw from a generator seeded
afresh for each *training step*, from two buffers:

* ``noise_seed``: the base seed (the constructor's ``seed``; when it is None, one drawn from
  torch's global generator as the module is built, so that ``torch.manual_seed(s)`` before
  building it gives run ``s`` its own noise);
* ``noise_step``: the step, advanced by one each time a gradient flows back through the loss's
  output (a backward pass is what ends a training step).

The draw of step ``k`` on rank ``r`` (``torch.distributed``; 0 without it) uses the seed
:func:`step_seed` ``(seed, k, r) = (seed + k·φ + r·ψ) mod 2⁶³`` with two large odd constants
(φ, ψ below), so step 0 on rank 0 draws with the base seed itself. Calls between two backward
passes (the two terms of a mixup loss, a validation pass) see the same draw; a resumed run (the
buffers are in ``state_dict()``) continues the sequence; two modules with the same seed and step
draw the same numbers. Give each run its own ``seed`` for independent repeats.

Draws are taken for the entries that are not ignored, in order, and in float32 whatever the
logits' dtype (then cast), so ignoring an entry is dropping it and half inputs see the float32
numbers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from .._validation import expected

_STEP_STRIDE = 0x9E3779B97F4A7C15  # φ: 2⁶⁴ / golden ratio, odd
_RANK_STRIDE = 0xBF58476D1CE4E5B9  # ψ: SplitMix64's first multiplier, odd
_MASK = (1 << 63) - 1


def check_seed(seed: Any) -> None:
    """``seed`` is None or an int in [0, 2⁶³)."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MASK:
        raise expected("seed", "None or an integer in [0, 2**63)", repr(seed))


def step_seed(seed: int | None, step: int, rank: int = 0) -> int:
    """The seed of the draw of ``step`` on ``rank`` for base ``seed`` (None counts as 0; the
    modules never pass None: theirs is drawn when they are built)."""
    base = 0 if seed is None else int(seed)
    return (base + int(step) * _STEP_STRIDE + int(rank) * _RANK_STRIDE) & _MASK


def generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A generator on ``device`` seeded with ``seed``; None (torch's global generator) for None."""
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def _rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


class SteppedRandom:
    """Mixin for a loss module that draws random numbers: the two buffers and the step's seed.

    Call :meth:`_init_random` in ``__init__`` (after ``nn.Module.__init__``), pass
    :meth:`draw_seed` to the loss function, and :meth:`_advance_on_backward` the output.
    """

    def _init_random(self, seed: int | None) -> None:
        check_seed(seed)
        self.seed = seed
        if seed is None:
            # drawn from torch's global generator: torch.manual_seed(s) before the loss is built
            # gives each run its own noise, as it gives each its own initial weights; kept in a
            # buffer, so a resumed run (state_dict) continues the same sequence
            seed = int(torch.randint(0, _MASK, (), dtype=torch.int64))
        base = torch.tensor(seed, dtype=torch.int64)
        self.register_buffer("noise_seed", base)  # type: ignore[attr-defined]
        self.register_buffer("noise_step", torch.zeros((), dtype=torch.int64))  # type: ignore[attr-defined]

    def draw_seed(self) -> int:
        """The seed of this step's draw (what the module passes to its function as ``seed``)."""
        return step_seed(int(self.noise_seed), int(self.noise_step), _rank())  # type: ignore[attr-defined]

    def _advance(self, grad: torch.Tensor) -> None:
        with torch.no_grad():
            self.noise_step += 1  # type: ignore[attr-defined]

    def _advance_on_backward(self, out: torch.Tensor) -> torch.Tensor:
        if out.requires_grad:
            out.register_hook(self._advance)
        return out
