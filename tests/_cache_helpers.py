"""A deterministic training-crop recipe for the feature-cache and cached-training tests."""

from __future__ import annotations

import numpy as np
import torch

SIZE = 64


class Recipe:
    """A deterministic item source: the image and masks are functions of the index."""

    size = SIZE

    def __init__(self, offset: int):
        self.offset = offset
        self.calls: list[int] = []

    def item_with_coarse(self, index: int, count: int) -> dict:
        self.calls.append(index)
        rng = np.random.default_rng(self.offset + index)
        image = rng.integers(0, 256, (3, SIZE, SIZE), dtype=np.uint8)
        fine = rng.random((1, SIZE, SIZE)) > 0.5
        coarse = rng.random((count, SIZE, SIZE)) > 0.5
        return {
            "image": torch.from_numpy(image),
            "fine": torch.from_numpy(fine.astype(np.float32)),
            "coarse": torch.from_numpy(coarse.astype(np.float32)),
        }
