"""Patch geometry (napari_segrefiner.engine.patches): boxes, crop/paste round trips, HR patch selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_segrefiner.engine.patches import crop_resize, grow_box, nms_same_size, paste, select_patches
from napari_segrefiner.io.masks import bounding_box


# --------------------------------------------------------------------------- #
# patches: crop / paste / boxes / HR patch selection
# --------------------------------------------------------------------------- #
def test_grow_box_hand_cases():
    # 10 x 10 box grown to 30: start = (10 + 20 - 30) // 2 = 0 -> rows/cols [0, 30)
    assert grow_box((10, 20, 10, 20), 30, (100, 100)) == (0, 30, 0, 30)
    # centred growth: (40 + 50 - 30) // 2 = 30 -> [30, 60)
    assert grow_box((40, 50, 40, 50), 30, (100, 100)) == (30, 60, 30, 60)
    # at the far border the grown box is shifted inside: (90 + 100 - 30) // 2 = 80 -> 70
    assert grow_box((0, 10, 90, 100), 30, (100, 100)) == (0, 30, 70, 100)
    # never larger than the image, never smaller than the box; min_side 0 is the identity
    assert grow_box((10, 20, 10, 20), 500, (100, 80)) == (0, 100, 0, 80)
    assert grow_box((10, 60, 5, 70), 30, (100, 100)) == (10, 60, 5, 70)
    assert grow_box((10, 20, 30, 45), 0, (100, 100)) == (10, 20, 30, 45)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 8-neighbourhood contains both values."""
    p = np.pad(mask, 1, mode="edge")
    h, w = mask.shape
    nb = [p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return np.any([n != mask for n in nb], axis=0)


def test_crop_resize_then_paste_round_trip():
    yy, xx = np.mgrid[:120, :150]
    disc = (yy - 60) ** 2 + (xx - 70) ** 2 < 35**2
    box = bounding_box(disc, pad=20)
    t = torch.from_numpy(disc)[None, None]
    crop = crop_resize(t, box, 256) >= 0.5
    assert crop.shape == (1, 1, 256, 256)
    back = paste(crop[0, 0].float(), box).numpy() >= 0.5
    y0, y1, x0, x1 = box
    assert back.shape == (y1 - y0, x1 - x0)
    orig = disc[y0:y1, x0:x1]
    wrong = back != orig
    assert not (wrong & ~_boundary(orig)).any()  # only boundary pixels may differ
    assert wrong.sum() <= 0.05 * _boundary(orig).sum()


def test_crop_resize_same_size_is_identity():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, 80, 90, generator=g) * 255
    box = (10, 74, 20, 84)  # 64 x 64
    out = crop_resize(img, box, 64)
    assert torch.equal(out, img[:, :, 10:74, 20:84])
    assert torch.equal(paste(out[0, 0], box), img[0, 0, 10:74, 20:84])
    near = crop_resize(img, (0, 80, 0, 90), 40, mode="nearest")
    assert near.shape == (1, 3, 40, 40)


def test_nms_same_size_hand_cases():
    corners = np.array([[0, 0], [0, 10], [0, 200]])
    # box 0 vs 1: overlap 100 x 90 = 9000, IoU = 9000 / (20000 - 9000) = 0.818 > 0.3 -> drop 1
    # box 2 is 200 px away: no overlap -> kept
    assert nms_same_size(corners, np.array([0.9, 0.8, 0.7]), 100, 0.3).tolist() == [0, 2]
    # best first: box 1 (0.8) kept, box 2 kept, box 0 suppressed by box 1
    assert nms_same_size(corners, np.array([0.1, 0.8, 0.7]), 100, 0.3).tolist() == [1, 2]
    # IoU exactly at the threshold is kept (suppression needs IoU > thr):
    # side 10, dx 5: 50 / (200 - 50) = 1/3
    assert nms_same_size(np.array([[0, 0], [0, 5]]), np.array([1.0, 0.5]), 10, 1 / 3).tolist() == [0, 1]
    assert nms_same_size(np.array([[0, 0], [0, 4]]), np.array([1.0, 0.5]), 10, 1 / 3).tolist() == [0]


def test_select_patches_hand_cases():
    f = np.ones((4, 4), np.float32)
    f[0, 0] = 0.5
    f[3, 3] = 0.2
    # thr = 0.9 * 1 -> candidates (0,0), (3,3); image 512x512 from a 4x4 map: scale 128.
    # (0,0) -> centre (0,0) -> box corner clipped to (0,0); (3,3) -> centre (384,384) ->
    # corner (256,256). No overlap; least confident (F = 0.2) first.
    out = select_patches(f, (512, 512), patch=256)
    assert out.tolist() == [[256, 256], [0, 0]]
    # nothing below 0.9 max -> no patch
    assert select_patches(np.ones((4, 4)), (512, 512)).shape == (0, 2)
    # two centres whose boxes overlap heavily -> one survives
    f2 = np.ones((4, 4), np.float32)
    f2[1, 1] = 0.1
    f2[1, 2] = 0.3
    out2 = select_patches(f2, (512, 512), patch=256)
    assert out2.tolist() == [[0, 0]]  # (128,128)->(0,0), (128,256)->(0,128): IoU 128/384 = 1/3 > 0.3
    with pytest.raises(ValueError, match="smaller than the patch"):
        select_patches(f, (200, 512), patch=256)
