"""The official SegRefiner denoising UNet ("DenoiseUNet"), re-implemented in plain PyTorch.

The module tree mirrors the released checkpoints (``time_embed``, ``input_blocks``,
``middle_block``, ``output_blocks``, ``out``), so ``UNet(UNetConfig.official())`` loads the
authors' LR and HR weights with strict key and shape matching.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import UNetConfig
from .blocks import AttentionBlock, ConcatDenoiser, Downsample, GroupNorm32, ResBlock, TimestepSequential, Upsample

__all__ = ["UNet"]


class UNet(ConcatDenoiser):
    """Denoiser mapping ``(x, t)`` to fine-mask logits.

    Parameters
    ----------
    config : UNetConfig
        Architecture; :meth:`UNetConfig.official` is the released network.

    Notes
    -----
    ``forward(x, t)`` takes ``x`` of shape (N, 4, H, W) -- RGB normalised with the ImageNet
    statistics on the 0-255 scale, then the current mask in {0, 1} -- and ``t`` of shape (N,)
    (long, 0..num_timesteps-1, the largest being the coarsest state). It returns (N, 1, H, W)
    logits. H and W must be multiples of ``config.divisor`` (32 for the official network).
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        cfg = config or UNetConfig.official()
        self.config = cfg
        mc, groups = cfg.model_channels, cfg.norm_groups
        emb_dim = 4 * mc
        self.time_embed = nn.Embedding(cfg.num_timesteps, emb_dim)

        def res(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, emb_dim, cout, groups=groups, dropout=cfg.dropout)

        def attn(c: int) -> AttentionBlock:
            return AttentionBlock(c, num_heads=cfg.num_heads, groups=groups)

        self.input_blocks = nn.ModuleList([TimestepSequential(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))])
        skip_widths = [mc]
        ch, stride = mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res(ch, mult * mc)]
                ch = mult * mc
                if stride in cfg.attention_strides:
                    layers.append(attn(ch))
                self.input_blocks.append(TimestepSequential(*layers))
                skip_widths.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(TimestepSequential(Downsample(ch)))
                skip_widths.append(ch)
                stride *= 2

        self.middle_block = TimestepSequential(res(ch, ch), attn(ch), res(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skip_widths.pop(), mult * mc)]
                ch = mult * mc
                if stride in cfg.attention_strides:
                    layers.append(attn(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    stride //= 2
                self.output_blocks.append(TimestepSequential(*layers))

        self.out = nn.Sequential(GroupNorm32(groups, ch), nn.SiLU(), nn.Conv2d(ch, cfg.out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # noqa: D102
        emb = self.time_embed(t)
        skips = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)
