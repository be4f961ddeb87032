"""Tests of napari_segrefiner.training.folders (PairFolder, ObjectRef).

Everything runs on tiny synthetic folders written to tmp_path.
"""

import pickle

import numpy as np
import pytest
from _folder_helpers import H, W, binary_folder, label_folder, write  # noqa: F401  (fixtures)

from napari_segrefiner.io.images import as_rgb_uint8
from napari_segrefiner.training import data
from napari_segrefiner.training.folders import ObjectRef, PairFolder, as_folders

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
    write(root / "images" / "a.png", deep)
    write(root / "masks" / "a.png", mask)
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


def test_pair_folder_min_area(label_folder):
    # instance 4 (36 px) becomes an item below min_area 36; min_area 101 keeps 1 and 3 only
    assert [r.label for r in PairFolder(label_folder, min_area=36)] == [1, 2, 3, 4]
    assert [r.label for r in PairFolder(label_folder, min_area=101)] == [1, 3]


def test_pair_folder_pickles_without_cache(label_folder):
    f = PairFolder(label_folder)
    f.load(0)
    g = pickle.loads(pickle.dumps(f))
    assert len(g._cache._d) == 0 and len(f._cache._d) > 0
    assert np.array_equal(g.load(0)[1], f.load(0)[1])


def test_pair_folder_errors(tmp_path, binary_folder):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        PairFolder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        PairFolder(tmp_path / "empty")
    (binary_folder / "train.txt").write_text("a\nzz\n")
    with pytest.raises(FileNotFoundError, match="lack an image or mask"):
        PairFolder(binary_folder)


def test_as_folders(binary_folder):
    one = PairFolder(binary_folder)
    assert as_folders(one) == [one]
    opened = as_folders([str(binary_folder), one])
    assert opened[0].split == "train" and opened[1] is one
    with pytest.raises(ValueError, match="at least one"):
        as_folders([])


def test_data_reexports_the_folder_layer():
    # Importers of napari_segrefiner.training.data keep working.
    assert data.PairFolder is PairFolder and data.ObjectRef is ObjectRef
