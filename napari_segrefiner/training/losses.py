"""SegRefiner's training loss: BCE with logits + 5 x L1 between Sobel gradient maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sobel_kernels", "texture_l1", "refiner_loss"]


def sobel_kernels(device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The official (1, 1, 3, 3) Sobel kernels, divided by 4 (x: columns, y: rows)."""
    kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 4.0
    ky = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]) / 4.0
    return kx.view(1, 1, 3, 3).to(device, dtype), ky.view(1, 1, 3, 3).to(device, dtype)


def _gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    x = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)
    kx, ky = sobel_kernels(x.device, x.dtype)
    gx = F.conv2d(x, kx, padding=1)
    gy = F.conv2d(x, ky, padding=1)
    return torch.sqrt(gx * gx + gy * gy + 1e-4)


def texture_l1(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |grad(avgpool(sigmoid(logits)))| - |grad(avgpool(target))| over all pixels.

    Parameters
    ----------
    logits, target : Tensor of shape (N, 1, H, W)
        Network logits and the fine mask in {0, 1}.
    """
    return (_gradient_magnitude(torch.sigmoid(logits.float())) - _gradient_magnitude(target.float())).abs().mean()


def refiner_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    texture_weight: float = 5.0,
    coarse: torch.Tensor | None = None,
    wrong_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """The official objective (BCE + ``texture_weight`` x texture L1).

    With ``wrong_weight > 0`` and the ``coarse`` mask given, the BCE of pixels where the
    coarse mask is wrong is weighted ``1 + wrong_weight`` (not in the official recipe: it
    stops a briefly trained network from settling on copying its input mask).

    Returns
    -------
    dict
        ``"bce"``, ``"texture"`` (already weighted) and their sum ``"loss"``.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits shape {tuple(logits.shape)} does not match target shape {tuple(target.shape)}")
    weight = None
    if wrong_weight and coarse is not None:
        weight = 1.0 + wrong_weight * (coarse.float() != target.float()).float()
    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float(), weight=weight)
    tex = texture_weight * texture_l1(logits, target)
    return {"bce": bce, "texture": tex, "loss": bce + tex}
