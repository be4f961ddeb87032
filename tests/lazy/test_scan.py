"""Chunk-wise scans (napari_segrefiner.lazy.scan): the frame's label table and 8-bit scaling from blocks."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segrefiner.io.images import rgb_channels, scaling_of
from napari_segrefiner.io.masks import label_table
from napari_segrefiner.lazy.scan import (
    default_scaling,
    image_stats,
    merge_stats,
    merge_tables,
    needed_bins,
    plane_scaling,
    scan_block,
)


def _blocks(arr, side):
    for y in range(0, arr.shape[-2], side):
        for x in range(0, arr.shape[-1], side):
            yield arr[..., y : y + side, x : x + side], (*([0] * (arr.ndim - 2)), y, x)


@pytest.mark.parametrize("side", [7, 16, 50])
def test_merged_block_tables_equal_the_table_of_the_whole_plane(side):
    rng = np.random.default_rng(side)
    lab = (rng.integers(0, 6, (2, 40, 50)) * (rng.random((2, 40, 50)) > 0.7)).astype(np.uint16)
    tables = merge_tables([scan_block(b, off) for b, off in _blocks(lab, side)])
    for p in range(2):
        whole = label_table(lab[p])
        got = tables[(p,)]
        assert np.array_equal(got.labels, whole.labels) and np.array_equal(got.bounds, whole.bounds)
        assert np.array_equal(got.area, whole.area)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int32])
def test_chunked_scaling_equals_the_in_memory_percentile_stretch(dtype):
    rng = np.random.default_rng(0)
    img = (rng.gamma(2.0, 900.0, (1, 33, 47)) - (300 if dtype is np.int32 else 0)).astype(dtype)
    expected = scaling_of(rgb_channels(img[0]))
    p1 = None
    for b, off in _blocks(img, 16):
        s = image_stats(b, off, 1, False)
        p1 = s if p1 is None else merge_stats(p1, s)
    bins = needed_bins(p1)
    p2 = None
    for b, off in _blocks(img, 16):
        s = image_stats(b, off, 1, False, bins)
        p2 = s if p2 is None else merge_stats(p2, s)
    got = plane_scaling(img.dtype, p1, p2)[(0,)]
    assert got[0] == expected[0] == "stretch" and got[1] == expected[1] and got[2] == expected[2]


def test_default_scaling_for_dtypes_that_need_no_scan():
    assert default_scaling(np.uint8) == ("copy",) and default_scaling(bool) == ("bool",)
    assert default_scaling(np.uint16) is None
