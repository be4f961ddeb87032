"""What refine_lazy checks itself (napari_segrefiner.lazy.checks): the arrays, chunks and progress."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segrefiner.lazy.checks import check_arrays, check_options


def test_arrays_with_and_without_a_channel_axis():
    mask = np.zeros((2, 8, 9), np.uint16)
    assert check_arrays(np.zeros((2, 8, 9, 3), np.uint8), mask) is True
    assert check_arrays(np.zeros((2, 8, 9), np.float32), mask) is False


@pytest.mark.parametrize(
    "image, mask, error, match",
    [
        ([[1]], np.zeros((4, 4), np.uint8), TypeError, "image must be a numpy, zarr or dask array"),
        (np.zeros((4, 4)), np.zeros((4, 4), "U1"), TypeError, "mask must be a bool or integer array"),
        (np.zeros((4, 4), "U1"), np.zeros((4, 4), np.uint8), TypeError, "image must be a numeric array"),
        (np.zeros(4), np.zeros(4, np.uint8), ValueError, "mask must have at least 2 dimensions"),
        (np.zeros((4, 4, 2)), np.zeros((4, 4), np.uint8), ValueError, r"\(\+ 1, 3 or 4 channels\)"),
        (np.zeros((4, 5)), np.zeros((4, 4), np.uint8), ValueError, "does not match the mask's"),
    ],
)
def test_bad_arrays_are_named(image, mask, error, match):
    with pytest.raises(error, match=match):
        check_arrays(image, mask)


@pytest.mark.parametrize(
    "chunks, progress, error, match",
    [
        (8, None, ValueError, "at least 16 px"),
        ((32, 8), None, ValueError, "at least 16 px"),
        ("32", None, TypeError, "chunks must be None, an int or a pair"),
        (True, None, TypeError, "chunks must be None, an int or a pair"),
        (None, 3, TypeError, "progress must be None or a callable"),
    ],
)
def test_bad_options_are_named(chunks, progress, error, match):
    with pytest.raises(error, match=match):
        check_options(chunks=chunks, progress=progress)
    check_options(chunks=(16, 64), progress=print)
