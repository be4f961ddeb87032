"""Adam for the few steps of an adaptation, without ``torch.optim``.

Building any ``torch.optim`` optimiser imports ``torch._dynamo`` on first use: 2-6 s on a
small CPU, a tenth of a one-minute adaptation, paid on the first "Learn" of a session.
:class:`Adam` is the same update (``torch.optim.Adam`` without AMSGrad and weight decay,
bias-corrected moments) in a few tensor operations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

__all__ = ["Adam"]


class Adam:
    """Adam over ``params`` (tensors with ``requires_grad``); the learning rate is given per step."""

    def __init__(self, params: Iterable[torch.Tensor], *, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.betas, self.eps, self.count = betas, eps, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        """Drop every gradient."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """One update with learning rate ``lr`` (parameters without a gradient are skipped)."""
        self.count += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.count, 1 - b2**self.count
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.addcdiv_(m, (v.sqrt() / math.sqrt(c2)).add_(self.eps), value=-lr / c1)
