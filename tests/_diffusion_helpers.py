"""Schedule constants and oracle networks shared by the scheduler and sampling tests."""

from __future__ import annotations

import torch

from napari_segrefiner.diffusion.scheduler import Schedule

SCHED = Schedule()  # the official one: T = 6, linspace(0.8, 0, 6)
BETA_BAR = [0.80, 0.64, 0.48, 0.32, 0.16, 0.00]  # the published schedule, written out by hand
BIG = 50.0  # |logit| of an oracle: sigmoid(50) == 1.0 exactly in float32 -> confidence 1


def gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def oracle_from_image(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Oracle network: the ground truth is encoded in image channel 0 (> 0 = foreground)."""
    assert x.ndim == 4 and x.shape[1] == 4  # normalised RGB first, then the mask
    assert t.dtype == torch.long and t.shape == (x.shape[0],)
    return torch.where(x[:, :1] > 0, BIG, -BIG)
