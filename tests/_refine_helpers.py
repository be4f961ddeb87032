"""Networks and arrays shared by the API and pipeline tests.

* ``tiny``: ``build_network(LiteConfig.tiny())`` with random weights (milliseconds per call);
* ``Oracle``: a module that "knows" the truth from the image: +50 where the red channel is
  bright, -50 where it is dark (|50| -> sigmoid is exactly 0/1 in float32, confidence 1);
  where the green channel is bright it answers with |logit| 0.5 (confidence
  2 |sigmoid(0.5) - 0.5| = 0.245), i.e. right but unsure, which is what makes the HR
  pipeline pick local patches there.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Oracle(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = []
        self.eval()  # a module in training mode would be refined through an eval copy

    def forward(self, x, t):
        self.calls.append((tuple(x.shape), t.tolist()))
        # normalised channel > 0 <=> 0-255 value above the ImageNet mean (~124 / ~116)
        sign = torch.where(x[:, :1] > 0, 1.0, -1.0)
        mag = torch.where(x[:, 1:2] > 0, 0.5, 50.0)
        return sign * mag


def rgb_from_truth(truth: np.ndarray, unsure: np.ndarray | None = None) -> np.ndarray:
    """R = 255 on the truth, G = 255 where the oracle should be unsure, B = 0."""
    img = np.zeros(truth.shape + (3,), np.uint8)
    img[..., 0] = np.where(truth != 0, 255, 0)
    if unsure is not None:
        img[..., 1] = np.where(unsure, 255, 0)
    return img


def rect(shape, r0, r1, c0, c1, value=1, dtype=np.int32):
    """Array with rows [r0, r1) and cols [c0, c1) set to value."""
    a = np.zeros(shape, dtype)
    a[r0:r1, c0:c1] = value
    return a


def blob_case(n=96):
    img = np.random.default_rng(0).integers(0, 256, (n, n, 3), dtype=np.uint8)
    mask = rect((n, n), 20, 70, 25, 75, dtype=bool)
    return img, mask
