"""Building blocks of the denoising networks (improved-DDPM style, torch only).

Module and attribute names follow the released SegRefiner checkpoint layout
(``in_layers``, ``emb_layers``, ``out_layers``, ``skip_connection``, ``qkv``, ``proj_out``,
``op``, ``conv``) so that the official weights load with strict key matching.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConcatDenoiser",
    "GroupNorm32",
    "TimestepBlock",
    "TimestepSequential",
    "ResBlock",
    "AttentionBlock",
    "Downsample",
    "Upsample",
    "legacy_attention",
]


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back (as the released network does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return super().forward(x.float()).to(x.dtype)


class TimestepBlock(nn.Module):
    """A module whose forward takes the timestep embedding as second argument."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class TimestepSequential(nn.Sequential):
    """Sequential that passes the embedding to the :class:`TimestepBlock` children."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for layer in self:
            x = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
        return x


class ResBlock(TimestepBlock):
    """GN-SiLU-conv, + projected embedding, GN-SiLU-dropout-conv, residual (1x1 conv if widths differ)."""

    def __init__(self, channels: int, emb_dim: int, out_channels: int, *, groups: int, dropout: float = 0.0):
        super().__init__()
        self.in_layers = nn.Sequential(
            GroupNorm32(groups, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(groups, out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        if channels == out_channels:
            self.skip_connection: nn.Module = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        h = self.out_layers(h)
        return self.skip_connection(x) + h


def legacy_attention(qkv: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Multi-head self-attention with the legacy iddpm qkv channel grouping.

    Parameters
    ----------
    qkv : Tensor of shape (B, 3 * C, T)
        Output of the qkv projection. Its channels are grouped head-major:
        ``[head0: q k v][head1: q k v]...`` with ``C / num_heads`` channels each.
    num_heads : int
        Number of heads.

    Returns
    -------
    Tensor of shape (B, C, T)
        Heads concatenated head-major. Logits are scaled by ``1 / sqrt(C / num_heads)``.
    """
    bs, width, length = qkv.shape
    ch = width // (3 * num_heads)
    q, k, v = qkv.reshape(bs * num_heads, 3 * ch, length).split(ch, dim=1)
    # (B*heads, T, ch) for scaled_dot_product_attention; its default scale is 1/sqrt(ch),
    # the same as scaling q and k by ch**-0.25 each.
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2).reshape(bs, num_heads * ch, length)


class AttentionBlock(nn.Module):
    """GN -> 1x1 Conv1d qkv -> legacy multi-head attention -> 1x1 Conv1d proj -> residual."""

    def __init__(self, channels: int, *, num_heads: int, groups: int):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.norm = GroupNorm32(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        out = self.proj_out(legacy_attention(self.qkv(self.norm(flat)), self.num_heads))
        return (flat + out).reshape(b, c, h, w)


class Downsample(nn.Module):
    """Strided 3x3 convolution (stride 2, same width)."""

    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 convolution (same width)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ConcatDenoiser(nn.Module):
    """A denoiser that sees the image only as input channels: ``forward(cat(image, mask), t)``.

    Its :meth:`encode` passes the normalised image through unchanged and :meth:`denoise`
    concatenates it with the mask, so it has the two-part contract of every network (the
    encoder-decoder refiner computes real features once per crop instead).
    """

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The normalised image itself (nothing to precompute)."""
        return (image,)

    def denoise(
        self, mask: torch.Tensor, t: torch.Tensor, features: tuple[torch.Tensor, ...], image: torch.Tensor
    ) -> torch.Tensor:
        """``forward(cat(features[0], mask), t)``: the network's logits."""
        return self(torch.cat([features[0], mask.to(features[0].dtype)], dim=1), t)
