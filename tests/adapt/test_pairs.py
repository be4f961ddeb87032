"""Training pairs and their store: what the network saw, validated, saved as a training folder."""

from __future__ import annotations

import numpy as np
import pytest
from _adapt_helpers import TINY, scene

from napari_segrefiner.adapt import Pair, make_pair
from napari_segrefiner.engine.batch import object_crop
from napari_segrefiner.engine.pipelines import instance_box


def test_pair_is_the_network_input_of_the_coarse_object():
    image, coarse, final = scene(3)
    before = (image.copy(), coarse.copy(), final.copy())
    pair = make_pair(image, coarse, final, 2, config=TINY)
    for a, b in zip(before, (image, coarse, final)):
        assert np.array_equal(a, b)  # inputs untouched
    y0, y1, x0, x1 = instance_box(coarse == 2, TINY, coarse.shape)
    crop, cm = object_crop(image[y0:y1, x0:x1], coarse[y0:y1, x0:x1], 2, full_width=False, size=64, device="cpu")
    assert pair.image.shape == (64, 64, 3) and pair.image.dtype == np.uint8
    assert np.array_equal(pair.coarse, cm[0, 0].numpy() >= 0.5)
    assert np.abs(pair.image.astype(float) - crop[0].permute(1, 2, 0).numpy()).max() <= 0.5
    assert pair.final.dtype == bool and pair.final.any() and not np.array_equal(pair.final, pair.coarse)
    assert pair.info["label"] == 2 and pair.info["box"] == [y0, y1, x0, x1] and pair.key == "label2"
    with pytest.raises(ValueError):
        pair.final[0, 0] = True  # read-only


def test_bool_coarse_mask_is_the_object():
    image, coarse, final = scene(1)
    pair = make_pair(image, coarse > 0, final, 1, config=TINY)
    assert pair.coarse.any()


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda im, c, f: (im, c[:-1], f, 1), "coarse shape"),
        (lambda im, c, f: (im, c, f[:, :-1], 1), "final shape"),
        (lambda im, c, f: (im, c, np.zeros_like(f), 1), "final is empty"),
        (lambda im, c, f: (im, c, f, 9), "label 9 does not occur in coarse"),
        (lambda im, c, f: (im, c, np.where(f == 2, 0, f), 2), "does not occur in final"),
        (lambda im, c, f: (im, c * 0.5, f, 1), "coarse is a float array"),
        (lambda im, c, f: (im, c, f, 0), "label must be a positive integer"),
        (lambda im, c, f: (im, c, f, True), "label must be a positive integer"),
    ],
)
def test_make_pair_refuses_bad_input_naming_it(change, match):
    image, coarse, final = scene(2)
    with pytest.raises(ValueError, match=match):
        make_pair(*change(image, coarse, final), config=TINY)


def test_make_pair_refuses_wrong_dtypes_and_keys():
    image, coarse, final = scene(1)
    with pytest.raises(TypeError, match="coarse must be a bool, integer"):
        make_pair(image, coarse.astype(str), final, 1, config=TINY)
    with pytest.raises(ValueError, match="key"):
        make_pair(image, coarse, final, 1, config=TINY, key="../x")
    with pytest.raises(TypeError, match="image must be uint8"):
        Pair("p", np.zeros((8, 8, 3), np.float32), np.ones((8, 8), bool), np.ones((8, 8), bool))
    with pytest.raises(TypeError, match="final must be a bool mask"):
        Pair("p", np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), bool), np.ones((8, 8), np.uint8))


def test_final_object_outside_the_coarse_crop_is_refused():
    image, coarse, final = scene(1)
    far = np.zeros_like(final)
    far[100:110, 0:10] = 1  # nowhere near the coarse square
    with pytest.raises(ValueError, match="outside the crop"):
        make_pair(image, coarse, far, 1, config=TINY)
