"""The encoder-decoder refiner: a frozen pretrained encoder once per crop, a small decoder per step.

``encode(image)`` runs the pretrained encoder (EfficientNet-Lite0 or DINOv2 ViT-S/14) on
the normalised crop, without gradients; ``denoise(mask, t, features, image)`` runs the
trainable mask decoder at every reverse step. The decoder works coarse to fine at strides
32, 16, 8 and 4: each level joins the projected encoder features (where the encoder has
them), the current mask averaged down to that stride and the coarser level, in a
timestep-conditioned residual block; a trainable stem on (image, mask) gives strides 2
and 4, and a full-resolution head places the edge with the raw image and mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EncDecConfig
from ..imaging import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["EncDecRefiner", "build_encoder"]

_DECODER_STRIDES = (32, 16, 8, 4)


def build_encoder(config: EncDecConfig) -> nn.Module:
    """The (random-weight) encoder module of ``config``; see :class:`EncDecRefiner`."""
    if config.encoder == "efficientnet-lite0":
        from .efficientnet import EfficientNetLite

        return EfficientNetLite(tuple(config.encoder_taps))
    from .vit import DinoViT

    return DinoViT(tuple(config.encoder_taps))


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class _Level(nn.Module):
    """Fuse inputs to ``width`` channels, then a residual block with FiLM from the timestep."""

    def __init__(self, cin: int, width: int, time_channels: int, groups: int):
        super().__init__()
        self.fuse = _conv(cin, width)
        self.norm1 = nn.GroupNorm(groups, width)
        self.film = nn.Linear(time_channels, 2 * width)
        self.conv1 = _conv(width, width)
        self.norm2 = nn.GroupNorm(groups, width)
        self.conv2 = _conv(width, width)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.fuse(x)
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        r = F.silu(self.norm1(h) * (1 + scale) + shift)
        r = self.conv2(F.silu(self.norm2(self.conv1(r))))
        return h + r


class EncDecRefiner(nn.Module):
    """Frozen pretrained encoder + timestep-conditioned mask decoder.

    Parameters
    ----------
    config : EncDecConfig
        Architecture.

    Notes
    -----
    ``encode(image)`` takes the normalised crop (N, 3, H, W) (ImageNet statistics on
    0-255, as every pipeline gives it) and returns a tuple of feature maps;
    ``denoise(mask, t, features, image)`` returns (N, 1, H, W) logits. ``forward(x, t)``
    with ``x = cat(image, mask)`` runs both (the contract of the other networks), for
    training and tests. The encoder's parameters never require gradients and it always
    runs in eval mode.
    """

    def __init__(self, config: EncDecConfig | None = None):
        super().__init__()
        cfg = config or EncDecConfig()
        self.config = cfg
        self.encoder = build_encoder(cfg)
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if cfg.encoder == "efficientnet-lite0":
            strides = tuple(sorted(cfg.encoder_taps))
            feat = dict(zip(strides, self.encoder.channels))
        else:  # every ViT tap sits on the 1/16 grid (224-px input for a 256-px crop)
            feat = {16: sum(self.encoder.channels)}
        self.feature_strides = tuple(sorted(feat))
        s1, s2 = cfg.stem_channels
        self.stem1 = _conv(cfg.in_channels, s1, stride=2)
        self.stem2 = _conv(s1, s2, stride=2)
        self.time_embed = nn.Embedding(cfg.num_timesteps, cfg.time_channels)
        self.levels = nn.ModuleDict()
        prev = 0
        for stride, width in zip(_DECODER_STRIDES, cfg.widths):
            cin = feat.get(stride, 0) + 1 + prev + (s2 if stride == 4 else 0)
            self.levels[str(stride)] = _Level(cin, width, cfg.time_channels, cfg.norm_groups)
            prev = width
        self.up2 = _conv(prev + s1, s1)
        self.head = nn.Sequential(
            _conv(s1 + cfg.in_channels, cfg.head_channels), nn.SiLU(), _conv(cfg.head_channels, cfg.out_channels)
        )

    def train(self, mode: bool = True) -> EncDecRefiner:  # noqa: D102
        super().train(mode)
        self.encoder.eval()  # frozen batch-norm statistics, always
        return self

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Pretrained features of a normalised crop batch (no gradients)."""
        raw = image * self.std + self.mean  # back to RGB on 0-255
        if self.config.encoder == "efficientnet-lite0":
            return tuple(self.encoder(raw))
        n, _, h, w = raw.shape
        side = (h // 16 * 14, w // 16 * 14)  # the 1/16 grid of the crop in 14-px patches
        small = F.interpolate(raw, size=side, mode="bilinear", align_corners=False, antialias=True)
        return (torch.cat(self.encoder(small), dim=1),)

    def denoise(
        self, mask: torch.Tensor, t: torch.Tensor, features: tuple[torch.Tensor, ...], image: torch.Tensor
    ) -> torch.Tensor:
        """Fine-mask logits (N, 1, H, W) for the current mask at timestep ``t``."""
        mask = mask.to(image.dtype)
        x = torch.cat([image, mask], dim=1)
        f1 = F.silu(self.stem1(x))
        f2 = F.silu(self.stem2(f1))
        emb = F.silu(self.time_embed(t))
        feats = dict(zip(self.feature_strides, features))
        h = None
        for stride, level in zip(_DECODER_STRIDES, self.levels.values()):
            size = (image.shape[-2] // stride, image.shape[-1] // stride)
            parts = [F.adaptive_avg_pool2d(mask, size)]
            if stride in feats:
                parts.append(feats[stride].to(image.dtype))
            if h is not None:
                parts.append(F.interpolate(h, size=size, mode="bilinear", align_corners=False))
            if stride == 4:
                parts.append(f2)
            h = level(torch.cat(parts, dim=1), emb)
        h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
        h = F.silu(self.up2(torch.cat([h, f1], dim=1)))
        h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.head(torch.cat([h, x], dim=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # noqa: D102
        image, mask = x[:, :3], x[:, 3:]
        return self.denoise(mask, t, self.encode(image), image)
