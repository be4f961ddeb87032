"""The network's input normalisation: 8-bit RGB to ImageNet-normalised float (training and inference)."""

from __future__ import annotations

import torch

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "normalize"]

# ImageNet statistics on the 0-255 scale, RGB order (the released models' img_norm_cfg).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def normalize(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB on the 0-255 scale -> ImageNet-normalised float32."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device, dtype=torch.float32).view(1, 3, 1, 1)
    return (image.float() - mean) / std
