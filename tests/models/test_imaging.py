"""napari_segrefiner.models.imaging: the network's input normalisation."""

from __future__ import annotations

import torch

from napari_segrefiner.models.imaging import IMAGENET_MEAN, IMAGENET_STD, normalize


def test_normalize_uses_imagenet_statistics():
    x = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) + torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(normalize(x), torch.ones(1, 3, 1, 1))
