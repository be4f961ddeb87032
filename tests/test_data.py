"""Tests of napari_segrefiner.training.data (PairFolder, ObjectCrops, NativePatches).

Everything runs on tiny synthetic folders written to tmp_path.
"""

import pickle

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from napari_segrefiner.imaging import as_rgb_uint8
from napari_segrefiner.training.data import (
    NativePatches,
    ObjectCrops,
    PairFolder,
)

H, W = 90, 120
# (y0, y1, x0, x1) of the foreground rectangle of each image of the binary folder.
RECTS = {"a": (20, 50, 30, 70), "b": (5, 25, 10, 40), "c": (40, 80, 60, 110), "d": (0, 30, 0, 25)}


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _image(seed):
    g = np.random.default_rng(seed)
    return g.integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture
def binary_folder(tmp_path):
    root = tmp_path / "binary"
    for k, (y0, y1, x0, x1) in enumerate(RECTS.values()):
        name = list(RECTS)[k]
        _write(root / "images" / f"{name}.png", _image(k))
        m = np.zeros((H, W), np.uint8)
        m[y0:y1, x0:x1] = 255
        _write(root / "masks" / f"{name}.png", m)
    (root / "train.txt").write_text("a\nb\nc\n")
    (root / "val.txt").write_text("d\n")
    return root


# Label image: instance 1 = a 40 x 40 square with a 10 x 10 hole that is instance 2,
# instance 3 = a 20 x 30 rectangle, instance 4 = 6 x 6 = 36 px (< 64: not an item).
def _labels():
    lab = np.zeros((H, W), np.uint16)
    lab[20:60, 20:60] = 1
    lab[35:45, 35:45] = 2
    lab[10:30, 80:110] = 3
    lab[70:76, 90:96] = 4
    return lab


@pytest.fixture
def label_folder(tmp_path):
    root = tmp_path / "labels"
    lab = _labels()
    for name, seed in (("x", 10), ("y", 11)):
        _write(root / "images" / f"{name}.png", _image(seed)[:, :, 0])  # gray
        _write(root / "labels" / f"{name}.png", lab)
        _write(root / "masks" / f"{name}.png", (lab > 0).astype(np.uint8) * 255)
    (root / "train.txt").write_text("x\n")
    (root / "val.txt").write_text("y\n")
    return root


# ------------------------------------------------------------------------------ readers


def test_sixteen_bit_images_are_scaled_as_at_inference(tmp_path):
    """Training sees a 16-bit micrograph exactly as refine() does (one normalisation)."""
    root = tmp_path / "deep"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(3)
    deep = (rng.gamma(2.0, 300.0, (40, 50)) + 1000).astype(np.uint16)  # low contrast, 16 bit
    mask = np.zeros((40, 50), np.uint8)
    mask[10:30, 10:30] = 255
    _write(root / "images" / "a.png", deep)
    _write(root / "masks" / "a.png", mask)
    seen = PairFolder(root, split=None).image("a")
    expected = as_rgb_uint8(deep)
    np.testing.assert_array_equal(seen, expected)
    assert seen.dtype == np.uint8 and seen.max() == 255 and seen.min() == 0  # stretched, not divided by the max


# ------------------------------------------------------------------------------ folders


def test_pair_folder_binary(binary_folder):
    train = PairFolder(binary_folder)
    assert len(train) == 3 and train.images == ["a", "b", "c"] and not train.has_labels
    image, fine = train.load(0)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert fine.dtype == bool and fine.sum() == 30 * 40
    val = PairFolder(binary_folder, split="val")
    assert val.images == ["d"]
    every = PairFolder(binary_folder, split=None)
    assert every.images == ["a", "b", "c", "d"]
    with pytest.raises(FileNotFoundError, match="split='test'"):
        PairFolder(binary_folder, split="test")


def test_pair_folder_plain_without_split_files(binary_folder):
    (binary_folder / "train.txt").unlink()
    (binary_folder / "val.txt").unlink()
    (binary_folder / "masks" / "d.png").unlink()  # an image without mask is not a pair
    f = PairFolder(binary_folder, split="val")  # split ignored
    assert f.images == ["a", "b", "c"] and f.split is None


def test_pair_folder_instances(label_folder):
    f = PairFolder(label_folder)
    assert f.has_labels and f.images == ["x"]
    assert [(r.label, r.area, r.bbox) for r in f] == [
        (1, 1600 - 100, (20, 60, 20, 60)),
        (2, 100, (35, 45, 35, 45)),
        (3, 600, (10, 30, 80, 110)),
    ]
    _, fine = f.load(0)
    assert fine.sum() == 1500 and not fine[40, 40]  # instance 1 only: its hole is instance 2
    assert f.mask("x").sum() == 1600 + 600 + 36  # union
    binary = PairFolder(label_folder, use_labels=False)
    assert len(binary) == 1 and binary[0].label is None


def test_pair_folder_pickles_without_cache(label_folder):
    f = PairFolder(label_folder)
    f.load(0)
    g = pickle.loads(pickle.dumps(f))
    assert len(g._cache._d) == 0 and len(f._cache._d) > 0
    assert np.array_equal(g.load(0)[1], f.load(0)[1])


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
    ds = ObjectCrops(label_folder, size=64, coarse_at="resized", coarse_kind="dilate",
                     coarse_options={"k": 1}, hflip=False, color_jitter=None)
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
