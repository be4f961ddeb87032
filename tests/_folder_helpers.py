"""Tiny synthetic image/mask folders (written to tmp_path) for the folder and dataset tests."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

H, W = 90, 120
# (y0, y1, x0, x1) of the foreground rectangle of each image of the binary folder.
RECTS = {"a": (20, 50, 30, 70), "b": (5, 25, 10, 40), "c": (40, 80, 60, 110), "d": (0, 30, 0, 25)}


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def image(seed):
    g = np.random.default_rng(seed)
    return g.integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture
def binary_folder(tmp_path):
    root = tmp_path / "binary"
    for k, (y0, y1, x0, x1) in enumerate(RECTS.values()):
        name = list(RECTS)[k]
        write(root / "images" / f"{name}.png", image(k))
        m = np.zeros((H, W), np.uint8)
        m[y0:y1, x0:x1] = 255
        write(root / "masks" / f"{name}.png", m)
    (root / "train.txt").write_text("a\nb\nc\n")
    (root / "val.txt").write_text("d\n")
    return root


# Label image: instance 1 = a 40 x 40 square with a 10 x 10 hole that is instance 2,
# instance 3 = a 20 x 30 rectangle, instance 4 = 6 x 6 = 36 px (< 64: not an item).
def labels():
    lab = np.zeros((H, W), np.uint16)
    lab[20:60, 20:60] = 1
    lab[35:45, 35:45] = 2
    lab[10:30, 80:110] = 3
    lab[70:76, 90:96] = 4
    return lab


@pytest.fixture
def label_folder(tmp_path):
    root = tmp_path / "labels"
    lab = labels()
    for name, seed in (("x", 10), ("y", 11)):
        write(root / "images" / f"{name}.png", image(seed)[:, :, 0])  # gray
        write(root / "labels" / f"{name}.png", lab)
        write(root / "masks" / f"{name}.png", (lab > 0).astype(np.uint8) * 255)
    (root / "train.txt").write_text("x\n")
    (root / "val.txt").write_text("y\n")
    return root
