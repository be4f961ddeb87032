"""Per-object uncertainty of a refinement: where should an annotator look first?

The score of an object is ``1 - mean confidence`` of the network's last step on the
object's boundary band (pixels within ``width`` network pixels of the refined boundary):
the interior and the far background are easy for any model, the boundary is where a
refinement goes wrong. 0 = the network was sure of every boundary pixel, 1 = it was not
sure of any (or the object vanished). Pure torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["boundary_uncertainty"]


def boundary_uncertainty(
    prob: torch.Tensor, confidence: torch.Tensor, *, region: torch.Tensor | None = None, width: int = 2
) -> torch.Tensor:
    """Uncertainty of each sample's boundary band.

    Parameters
    ----------
    prob, confidence : Tensor of shape (N, 1, H, W)
        The last step's ``sigmoid(logits)`` and ``2 |prob - 0.5|``.
    region : Tensor of shape (N, 1, H, W), bool, optional
        Only these pixels count (whole mode: the object's own box).
    width : int
        Half-width of the band in network pixels.

    Returns
    -------
    Tensor of shape (N,)
        ``1 - mean(confidence on the band)``; 1.0 for an empty band.
    """
    if prob.shape != confidence.shape or prob.ndim != 4:
        raise ValueError(f"prob {tuple(prob.shape)} and confidence {tuple(confidence.shape)} must be (N, 1, H, W)")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    fg = (prob >= 0.5).float()
    k = 2 * width + 1
    grown = F.max_pool2d(fg, k, stride=1, padding=width)
    shrunk = 1.0 - F.max_pool2d(1.0 - fg, k, stride=1, padding=width)
    band = (grown - shrunk) > 0
    if region is not None:
        band = band & region
    n = band.flatten(1).sum(1)
    total = (confidence.float() * band).flatten(1).sum(1)
    mean = torch.where(n > 0, total / n.clamp(min=1), torch.zeros_like(total))
    return torch.where(n > 0, 1.0 - mean, torch.ones_like(mean))
