"""Tests of napari_segrefiner.training.data (the ObjectCrops and NativePatches recipes).

Everything runs on tiny synthetic folders written to tmp_path (``_folder_helpers``); the
folder layer itself is tested in ``test_folders.py``.
"""

import cv2
import numpy as np
import pytest
import torch
from _folder_helpers import RECTS, H, W, binary_folder, label_folder  # noqa: F401  (fixtures)
from torch.utils.data import DataLoader

from napari_segrefiner.training.data import NativePatches, ObjectCrops, PairFolder

# ----------------------------------------------------------------------------- datasets


def _check_item(item, size):
    assert set(item) == {"image", "fine", "coarse"}
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, size, size)
    for key in ("fine", "coarse"):
        t = item[key]
        assert t.dtype == torch.float32 and t.shape == (1, size, size)
        assert set(torch.unique(t).tolist()) <= {0.0, 1.0}


def test_object_crops_items(binary_folder, label_folder):
    ds = ObjectCrops([PairFolder(binary_folder), PairFolder(label_folder)], size=64, rng_seed=3)
    assert len(ds) == 3 + 3
    for i in range(len(ds)):
        item = ds[i]
        _check_item(item, 64)
        assert item["fine"].sum() > 0
    with pytest.raises(IndexError):
        ds[len(ds)]
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["coarse"].shape == (4, 1, 64, 64)


def test_object_crop_box_contains_object(binary_folder):
    ds = ObjectCrops(binary_folder, size=64, pad=40)
    for seed in range(40):
        g = np.random.default_rng(seed)
        for bbox in RECTS.values():
            y0, y1, x0, x1 = ds.crop_box(bbox, (H, W), g)
            assert 0 <= y0 <= bbox[0] and bbox[1] <= y1 <= H
            assert 0 <= x0 <= bbox[2] and bbox[3] <= x1 <= W
    # A tiny object gets context: at least ~3x its size (5 px -> 45 px with pad 40; here
    # pad 0 shows the context rule alone).
    ds0 = ObjectCrops(binary_folder, size=64, pad=0, scale_jitter=None)
    y0, y1, x0, x1 = ds0.crop_box((40, 45, 50, 55), (H, W), np.random.default_rng(0))
    assert y1 - y0 == 15 and x1 - x0 == 15


def test_object_crop_without_padding_is_the_box(binary_folder, label_folder):
    kw = dict(size=80, pad=0, context=0, scale_jitter=None, color_jitter=None, hflip=False, coarse_kind="lowres")
    ds = ObjectCrops(binary_folder, **kw)
    for i in range(len(ds)):
        assert ds[i]["fine"].min() == 1.0  # the crop is exactly the rectangle
    inst = ObjectCrops(label_folder, **kw)
    first = inst[0]["fine"][0]  # instance 1: a 40 x 40 box -> 80 x 80, its hole 20 x 20
    assert first.sum() == 80 * 80 - 20 * 20 and first[40, 40] == 0
    assert inst[1]["fine"].min() == 1.0 and inst[2]["fine"].min() == 1.0


def test_object_crops_image_matches_crop(binary_folder):
    # No jitter, no flip, pad 0: the image tensor is the resized crop of the image.
    ds = ObjectCrops(binary_folder, size=40, pad=0, context=0, scale_jitter=None, color_jitter=None, hflip=False)
    image, _ = PairFolder(binary_folder).load(1)
    y0, y1, x0, x1 = RECTS["b"]
    expected = cv2.resize(image[y0:y1, x0:x1], (40, 40), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(ds[1]["image"].permute(1, 2, 0).numpy(), expected)


def test_object_crops_determinism(binary_folder):
    def items(seed, epoch=0):
        ds = ObjectCrops(binary_folder, size=48, rng_seed=seed, coarse_kind="cascadepsp")
        ds.set_epoch(epoch)
        return [ds[i] for i in range(len(ds))]

    a, b, c, d = items(1), items(1), items(2), items(1, epoch=1)
    same = all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)
    assert same
    assert any(not torch.equal(x["coarse"], y["coarse"]) for x, y in zip(a, c))
    assert any(not torch.equal(x["coarse"], y["coarse"]) for x, y in zip(a, d))


def test_epoch_length_and_weights(binary_folder, label_folder):
    folders = [PairFolder(binary_folder), PairFolder(label_folder)]
    ds = ObjectCrops(folders, size=32, epoch_length=50, folder_weights=[0.0, 1.0])
    assert len(ds) == 50
    assert {ds.locate(i)[0] for i in range(50)} == {1}
    ds2 = ObjectCrops(folders, size=32, epoch_length=50)
    assert {ds2.locate(i)[0] for i in range(50)} == {0, 1}
    with pytest.raises(ValueError, match="folder_weights"):
        ObjectCrops(folders, size=32, epoch_length=5, folder_weights=[1.0])
    with pytest.raises(ValueError, match="coarse_kind"):
        ObjectCrops(folders, coarse_kind="blur")
    with pytest.raises(ValueError, match="coarse_at"):
        ObjectCrops(folders, coarse_at="later")


def test_coarse_at_resized(label_folder):
    ds = ObjectCrops(
        label_folder,
        size=64,
        coarse_at="resized",
        coarse_kind="dilate",
        coarse_options={"k": 1},
        hflip=False,
        color_jitter=None,
    )
    item = ds[2]
    _check_item(item, 64)
    assert item["coarse"].sum() > item["fine"].sum()


def test_native_patches(binary_folder, label_folder):
    ds = NativePatches([PairFolder(binary_folder), PairFolder(label_folder)], size=32, rng_seed=5)
    assert len(ds) == 3 + 1  # one item per image, union masks
    for i in range(len(ds)):
        item = ds[i]
        _check_item(item, 32)
        assert 0 < item["fine"].mean() < 1  # both foreground and background
    again = NativePatches([PairFolder(binary_folder), PairFolder(label_folder)], size=32, rng_seed=5)
    assert all(torch.equal(again[i][k], ds[i][k]) for i in range(len(ds)) for k in ("image", "fine", "coarse"))
    # Images smaller than the patch: half the shorter side, resized up.
    small = NativePatches(binary_folder, size=128)
    _check_item(small[0], 128)
    assert 0 < small[0]["fine"].mean() < 1


def test_shared_options_and_their_defaults(binary_folder):
    for cls in (ObjectCrops, NativePatches):
        ds = cls(binary_folder)
        assert (ds.size, ds.rng_seed, ds.coarse_kind, ds.hflip) == (256, 0, "mixed", True)
        assert ds.color_jitter == (0.9, 1.1) and ds.epoch_length is None and ds.coarse_options == {}
        with pytest.raises(TypeError):
            cls(binary_folder, bogus=1)
        with pytest.raises(ValueError, match="size"):
            cls(binary_folder, size=4)
    assert NativePatches(binary_folder, size=32, max_tries=3).max_tries == 3
