"""Tiny models and synthetic corrections for the adaptation tests (milliseconds each)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_segrefiner.diffusion.scheduler import Schedule
from napari_segrefiner.models.config import EncDecConfig, LiteConfig, RefineConfig
from napari_segrefiner.models.nets import build_network
from napari_segrefiner.models.refiner import Refiner

TINY = RefineConfig(size=64, min_area=8, pad=4, context=3.0, context_cap=48)


def tiny_refiner(kind: str = "encdec", seed: int = 0) -> Refiner:
    """A random tiny encoder-decoder (or Lite) network as a CPU Refiner with 64-px crops."""
    torch.manual_seed(seed)
    config = EncDecConfig.tiny() if kind == "encdec" else LiteConfig.tiny()
    return Refiner(build_network(config).eval(), TINY, Schedule(), torch.device("cpu"), source=f"tiny-{kind}")


def scene(n: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, coarse labels, final labels): ``n`` bright discs, coarse = shifted squares."""
    rng = np.random.default_rng(seed)
    h, w = 120, 40 * n + 20
    yy, xx = np.mgrid[:h, :w]
    image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    final = np.zeros((h, w), np.int32)
    coarse = np.zeros((h, w), np.int32)
    for k in range(1, n + 1):
        cy, cx = 60, 40 * k - 10
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 100
        image[disc] = (200, 120, 180)
        final[disc] = k
        coarse[cy - 9 : cy + 11, cx - 11 : cx + 9] = k
    return image, coarse, final


def store(n: int = 4, seed: int = 0):
    """A PairStore of ``n`` pairs with the tiny crop options."""
    from napari_segrefiner.adapt import PairStore

    image, coarse, final = scene(n, seed)
    s = PairStore(TINY)
    for k in range(1, n + 1):
        s.add(image, coarse, final, k)
    return s


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The model cache (and so the adapted-model folder) in a temporary folder."""
    monkeypatch.setenv("NAPARI_SEGREFINER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def adapted_result():
    """A tiny adaptation (2 steps) to save, list and load."""
    from napari_segrefiner.adapt import adapt

    return adapt(tiny_refiner(), store(4), max_steps=2, seed=0)
