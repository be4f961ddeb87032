"""A DINOv2-style ViT-S/14 feature extractor (pretrained weights, used frozen).

Written from the published architecture (Oquab et al., DINOv2; ViT-S/14: width 384, 12
blocks, 6 heads, MLP 1536, LayerScale, a learned position grid of 37 x 37 + cls token
interpolated bicubically to the input's grid). Key names follow HuggingFace's
``Dinov2Model`` (``embeddings.patch_embeddings.projection``, ``encoder.layer.N.attention.
attention.query`` ...) so tensors read from a package file load with strict matching.

Inputs are RGB on 0-255, normalised with the ImageNet statistics on 0-1; sides must be
multiples of 14.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DinoViT"]

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attention = nn.Module()
        self.attention.query = nn.Linear(dim, dim)
        self.attention.key = nn.Linear(dim, dim)
        self.attention.value = nn.Linear(dim, dim)
        self.output = nn.Module()
        self.output.dense = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        a = self.attention

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.view(n, t, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(a.query(x)), split(a.key(x)), split(a.value(x)))
        return self.output.dense(out.transpose(1, 2).reshape(n, t, d))


class _LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.lambda1 = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.lambda1


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attention = _Attention(dim, heads)
        self.layer_scale1 = _LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, hidden)
        self.mlp.fc2 = nn.Linear(hidden, dim)
        self.layer_scale2 = _LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale1(self.attention(self.norm1(x)))
        h = self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))
        return x + self.layer_scale2(h)


class DinoViT(nn.Module):
    """ViT-S/14 returning patch-token maps of chosen blocks.

    Parameters
    ----------
    taps : tuple of int
        0-based block indices whose output tokens are returned (the last one after the
        final LayerNorm); blocks after the deepest tap are not built.
    grid : int
        Side of the stored position grid (37 for DINOv2).

    Notes
    -----
    ``forward(image)`` takes RGB on 0-255, (N, 3, H, W) with H and W multiples of 14, and
    returns a list of (N, 384, H / 14, W / 14) maps, one per tap.
    """

    dim, heads, hidden, patch = 384, 6, 1536, 14

    def __init__(self, taps: tuple[int, ...] = (11,), grid: int = 37):
        super().__init__()
        if not taps or any(not 0 <= t < 12 for t in taps):
            raise ValueError(f"taps must be block indices in [0, 11], got {taps}")
        self.taps = tuple(sorted(taps))
        self.grid = grid
        self.embeddings = nn.Module()
        self.embeddings.cls_token = nn.Parameter(torch.zeros(1, 1, self.dim))
        self.embeddings.position_embeddings = nn.Parameter(torch.zeros(1, grid * grid + 1, self.dim))
        self.embeddings.patch_embeddings = nn.Module()
        self.embeddings.patch_embeddings.projection = nn.Conv2d(3, self.dim, self.patch, stride=self.patch)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(_Block(self.dim, self.heads, self.hidden) for _ in range(self.taps[-1] + 1))
        self.layernorm = nn.LayerNorm(self.dim, eps=1e-6)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.channels = tuple(self.dim for _ in self.taps)

    def _positions(self, gh: int, gw: int) -> torch.Tensor:
        pos = self.embeddings.position_embeddings
        if gh == gw == self.grid:
            return pos
        patch = pos[:, 1:].reshape(1, self.grid, self.grid, self.dim).permute(0, 3, 1, 2)
        patch = F.interpolate(patch.float(), size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([pos[:, :1], patch.to(pos.dtype).flatten(2).transpose(1, 2)], dim=1)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:  # noqa: D102
        n, _, h, w = image.shape
        if h % self.patch or w % self.patch:
            raise ValueError(f"image sides must be multiples of {self.patch}, got {h} x {w}")
        gh, gw = h // self.patch, w // self.patch
        x = self.embeddings.patch_embeddings.projection((image - self.mean) / self.std)
        x = torch.cat([self.embeddings.cls_token.expand(n, -1, -1), x.flatten(2).transpose(1, 2)], dim=1)
        x = x + self._positions(gh, gw)
        out = []
        for i, block in enumerate(self.encoder.layer):
            x = block(x)
            if i in self.taps:
                y = self.layernorm(x) if i == self.taps[-1] else x
                out.append(y[:, 1:].transpose(1, 2).reshape(n, self.dim, gh, gw))
        return out
