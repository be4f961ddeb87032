"""The one mask rule, the one bounding box and the label table (napari_segrefiner.io.masks)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_segrefiner.io.masks import as_binary, as_labels, bounding_box, check_values, label_table


@pytest.mark.parametrize(
    "arr",
    [
        np.array([[True, False]]),
        np.array([[0, 7, 2**40]], np.int64),
        np.array([[0, 255]], np.uint8),
        np.array([[0.0, 1.0]], np.float32),
        np.array([[2**63 - 1, 0]], np.uint64),
        np.zeros((0, 3), np.float64),
    ],
)
def test_the_rule_accepts_bool_non_negative_integers_and_float_0_1(arr):
    check_values(arr)


@pytest.mark.parametrize(
    "arr, error, match",
    [
        (np.array([[0.0, 0.5]]), ValueError, r"values other than 0 and 1 \(e.g. \[0.5\]\)"),
        (np.array([[0.0, np.nan]]), ValueError, "values other than 0 and 1"),
        (np.array([[0.0, 255.0]]), ValueError, "values other than 0 and 1"),
        (np.array([[0, -1]], np.int16), ValueError, "negative"),
        (np.array([[0, 2**63]], np.uint64), ValueError, "above 2\\*\\*63-1"),
        (np.array([["a"]]), TypeError, "bool, integer or float"),
    ],
)
def test_the_rule_refuses_everything_else_naming_the_array(arr, error, match):
    with pytest.raises(error, match=match):
        check_values(arr, name="coarse")
    with pytest.raises(error, match="coarse"):
        check_values(arr, name="coarse")


def test_as_labels_returns_an_int64_copy_and_checks_shape():
    m = np.zeros((3, 4), np.uint8)
    m[1, 1] = 5
    lab = as_labels(m, shape=(3, 4))
    assert lab.dtype == np.int64 and lab[1, 1] == 5
    lab[1, 1] = 9
    assert m[1, 1] == 5  # never the caller's array
    assert not as_labels(np.zeros((3, 3), bool)).any()  # an empty mask is a valid mask
    with pytest.raises(ValueError, match="does not match the image"):
        as_labels(m, shape=(4, 3))
    with pytest.raises(ValueError, match="must be 2-D"):
        as_labels(m[None])
    assert as_labels(m[None], ndim=None).shape == (1, 3, 4)


def test_as_binary_single_refuses_labels_where_a_binary_mask_is_meant():
    m = np.zeros((4, 4), np.uint8)
    m[1:3, 1:3] = 255
    assert as_binary(m, single=True).sum() == 4
    m[0, 0] = 7
    assert as_binary(m).sum() == 5  # labels: every object is foreground
    with pytest.raises(ValueError, match="mask must be binary"):
        as_binary(m, single=True)
    with pytest.raises(ValueError, match="non-empty"):
        as_binary(np.zeros((0, 4), bool))
    with pytest.raises(ValueError, match="2-D"):
        as_binary(np.zeros(4, bool))


def test_bounding_box_padding_and_clamping():
    m = np.zeros((50, 60), bool)
    m[10:20, 30:41] = True  # rows 10..19, cols 30..40
    assert bounding_box(m) == (10, 20, 30, 41)
    assert bounding_box(m, pad=5) == (5, 25, 25, 46)  # end-exclusive: 19+1+5, 40+1+5
    m2 = np.zeros((50, 60), bool)
    m2[0:5, 0:5] = True
    assert bounding_box(m2, pad=20) == (0, 25, 0, 25)  # clamped at the borders
    m3 = np.zeros((50, 60), bool)
    m3[45:50, 55:60] = True
    assert bounding_box(m3, pad=20) == (25, 50, 35, 60)
    assert bounding_box(m3, pad=20, shape=(70, 80)) == (25, 70, 35, 80)  # clamped to a larger frame
    assert bounding_box(np.zeros((5, 5), bool)) is None


def test_label_table_matches_find_objects_and_bincount():
    rng = np.random.default_rng(0)
    lab = np.zeros((40, 50), np.int32)
    for v in (3, 8, 11, 40):
        y, x = rng.integers(0, 35), rng.integers(0, 45)
        lab[y : y + rng.integers(1, 6), x : x + rng.integers(1, 6)] = v
    table = label_table(lab, origin=(100, 7))
    slices = ndi.find_objects(lab)
    present = [v for v in range(1, lab.max() + 1) if slices[v - 1] is not None]
    assert table.labels.tolist() == present
    for v, b, a in zip(table.labels, table.bounds, table.area):
        s = slices[v - 1]
        assert tuple(b) == (s[0].start + 100, s[0].stop + 100, s[1].start + 7, s[1].stop + 7)
        assert a == np.count_nonzero(lab == v)
    assert len(label_table(np.zeros((3, 3), np.uint8))) == 0
    with pytest.raises(ValueError, match="negative"):
        label_table(-np.ones((2, 2), np.int8))
