"""A CPU-first SegRefiner denoiser: same contract as the official UNet, ~100x cheaper.

Design (see the model card): the official network spends most of its ~249 GMAC at full
resolution with 128 channels. Here two strided convolutions take the 4-channel input
to 1/4 resolution, a small official-style UNet (timestep-conditioned ResBlocks, attention at
the coarsest level) does the reasoning there, and a thin decoder brings the features back
through 1/2 to full resolution, where the raw image and mask are concatenated again so that
edges are placed with pixel accuracy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import LiteConfig, UNetConfig
from .blocks import ConcatDenoiser
from .unet import UNet

__all__ = ["LiteRefiner"]


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class LiteRefiner(ConcatDenoiser):
    """Stem (1/2, 1/4) -> inner UNet at 1/4 -> decoder with skips -> logits.

    Parameters
    ----------
    config : LiteConfig
        Architecture.

    Notes
    -----
    ``forward(x, t)`` has the contract of :class:`~napari_segrefiner.nets.unet.UNet`: ``x`` of
    shape (N, 4, H, W) (normalised RGB, then the mask in {0, 1}), ``t`` of shape (N,) long;
    returns (N, 1, H, W) logits. H and W must be multiples of ``config.divisor``.
    """

    def __init__(self, config: LiteConfig | None = None):
        super().__init__()
        cfg = config or LiteConfig()
        self.config = cfg
        s1, s2 = cfg.stem_channels
        self.stem1 = _conv(cfg.in_channels, s1, stride=2)
        self.stem2 = _conv(s1, s2, stride=2)
        self.inner = UNet(
            UNetConfig(
                in_channels=s2,
                out_channels=s2,
                model_channels=cfg.model_channels,
                channel_mult=cfg.channel_mult,
                num_res_blocks=cfg.num_res_blocks,
                attention_strides=cfg.attention_strides,
                num_heads=cfg.num_heads,
                num_timesteps=cfg.num_timesteps,
                norm_groups=cfg.norm_groups,
                dropout=cfg.dropout,
            )
        )
        self.up1 = _conv(s2 + s1, s1)
        self.head = nn.Sequential(
            _conv(s1 + cfg.in_channels, cfg.head_channels),
            nn.SiLU(),
            _conv(cfg.head_channels, cfg.out_channels),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # noqa: D102
        f1 = F.silu(self.stem1(x))
        f2 = F.silu(self.stem2(f1))
        h = self.inner(f2, t)
        h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
        h = F.silu(self.up1(torch.cat([h, f1], dim=1)))
        h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.head(torch.cat([h, x], dim=1))
