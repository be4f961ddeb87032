"""A slowed-down network for runs that must last (Cancel, closing), and a frame of many objects.

:class:`SlowNet` sleeps a little per batch, so a run of many objects takes seconds while
each batch stays short, as with a real network on a CPU. Imported by the tests and by the
subprocess of the closing test (plain module, no pytest).
"""

from __future__ import annotations

import time

import numpy as np
import torch

MANY = 300  # objects of many_objects(): above preflight.LARGE_RUN_OBJECTS


class SlowNet(torch.nn.Module):
    """``forward`` sleeps ``delay`` seconds per batch and returns logits of the coarse mask.

    ``threads`` and ``sizes`` (class attributes: shared, never copied) record
    ``torch.get_num_threads()`` in the thread that runs each batch, and its size.
    """

    threads: list = []
    sizes: list = []

    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay
        self.gain = torch.nn.Parameter(torch.tensor(4.0))

    def forward(self, x, t):
        SlowNet.threads.append(torch.get_num_threads())
        SlowNet.sizes.append(int(x.shape[0]))
        time.sleep(self.delay)
        return (x[:, 3:4] * 2 - 1) * self.gain


def slow_refiner(delay: float = 0.05):
    """A CPU Refiner over :class:`SlowNet`: 64 px crops, 4 crops a batch, any object size."""
    from napari_segrefiner import load_refiner

    return load_refiner(SlowNet(delay).eval(), device="cpu").with_options(size=64, min_area=1, batch_size=4)


def many_objects() -> tuple[np.ndarray, np.ndarray]:
    """A 160 x 210 RGB frame with MANY bright squares and labels 1..MANY over them (15 x 20 grid)."""
    image = np.full((160, 210, 3), 30, dtype=np.uint8)
    labels = np.zeros((160, 210), dtype=np.uint16)
    for value in range(1, MANY + 1):
        row, col = divmod(value - 1, 20)
        y, x = 5 + row * 10, 5 + col * 10
        image[y : y + 5, x : x + 5] = 220
        labels[y - 1 : y + 6, x - 1 : x + 6] = value
    return image, labels
