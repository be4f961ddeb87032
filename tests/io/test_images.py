"""napari_segrefiner.io.images: images of any dtype and layout to 8-bit RGB, validated."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segrefiner.io.images import as_rgb_uint8


def test_uint8_rgb_is_kept_and_gray_is_repeated():
    rgb = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    assert np.array_equal(as_rgb_uint8(rgb), rgb)
    gray = np.array([[0, 10], [200, 255]], np.uint8)
    out = as_rgb_uint8(gray)
    assert out.shape == (2, 2, 3) and all(np.array_equal(out[..., c], gray) for c in range(3))
    rgba = np.dstack([rgb, np.full((2, 4), 7, np.uint8)])
    assert np.array_equal(as_rgb_uint8(rgba), rgb)


def test_float_unit_range_is_scaled_by_255():
    f = np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)
    assert np.array_equal(as_rgb_uint8(f)[..., 0], np.array([[0, 128], [255, 64]], np.uint8))


def test_sixteen_bit_is_stretched_between_percentiles():
    img = np.zeros((10, 20), np.uint16)
    img[:, 10:] = 4000  # half dark (0), half bright (4000): percentiles 0.5 / 99.5 are 0 / 4000
    img[0, 0] = 2000
    out = as_rgb_uint8(img)[..., 0]
    assert out[5, 5] == 0 and out[5, 15] == 255 and out[0, 0] == 128


def test_bool_and_constant_images():
    assert as_rgb_uint8(np.eye(3, dtype=bool))[..., 0].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    assert (as_rgb_uint8(np.full((4, 4), 3000, np.uint16)) == 0).all()  # no division by zero


@pytest.mark.parametrize(
    "image, error, match",
    [
        (np.zeros((4, 4), np.complex64), TypeError, "numeric"),
        (np.zeros((4, 4, 2), np.uint8), ValueError, "must have shape"),
        (np.zeros((1, 4), np.uint8), ValueError, "too small"),
        (np.full((4, 4), np.nan, np.float32), ValueError, "NaN"),
    ],
)
def test_bad_images(image, error, match):
    with pytest.raises(error, match=match):
        as_rgb_uint8(image, name="image")
