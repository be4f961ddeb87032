"""napari_segrefiner.engine.cleanup: specks, stray pieces and pinholes of refined objects."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segrefiner.engine.cleanup import clean_labels


def test_keeps_the_piece_on_the_coarse_object_and_drops_stray_ones():
    coarse = np.zeros((30, 40), np.int32)
    coarse[5:20, 5:20] = 1
    refined = np.zeros_like(coarse)
    refined[6:21, 6:21] = 1  # the refinement of object 1 (225 px)...
    refined[25:28, 30:33] = 1  # ...a stray 9-px piece with no coarse support
    refined[0, 39] = 1  # ...and a lone pixel
    out = clean_labels(refined, coarse, [1])
    expected = np.zeros_like(coarse)
    expected[6:21, 6:21] = 1
    np.testing.assert_array_equal(out, expected)
    assert refined[25, 30] == 1  # the input is not modified


def test_small_pieces_touching_the_object_go_large_ones_stay():
    coarse = np.zeros((40, 60), np.int32)
    coarse[5:35, 5:25] = 1  # 600 px
    coarse[5:35, 35:55] = 1
    refined = coarse.copy()
    refined[5:35, 24] = 0  # fine
    refined[30:32, 35:55] = 0  # object 1 is two pieces in the coarse mask: both stay
    refined[20, 26] = 0
    speck = np.zeros_like(coarse)
    speck[2, 10] = 1  # 1 px speck outside, no overlap
    refined |= speck
    refined[34, 35] = 1
    out = clean_labels(refined, coarse, [1])
    assert out[2, 10] == 0
    assert (out[5:35, 5:24] == 1).all() and (out[5:30, 35:55] == 1).all() and (out[32:35, 35:55] == 1).all()


def test_pinholes_are_filled_and_big_holes_kept():
    coarse = np.zeros((50, 50), np.int32)
    coarse[5:45, 5:45] = 3  # 1600 px
    refined = coarse.copy()
    refined[10, 10] = 0  # 1-px hole: filled (<= 1% = 16 px)
    refined[20:30, 20:30] = 0  # 100-px hole: kept
    out = clean_labels(refined, coarse, [3])
    assert out[10, 10] == 3 and (out[20:30, 20:30] == 0).all()
    out = clean_labels(refined, coarse, [3], hole=0)
    assert out[10, 10] == 0


def test_other_labels_are_never_touched_and_holes_never_steal_pixels():
    coarse = np.zeros((30, 30), np.int32)
    coarse[5:25, 5:25] = 1
    refined = coarse.copy()
    refined[14:16, 14:16] = 2  # another object inside a hole of object 1
    refined[0, 0] = 7  # an unrefined label's speck
    out = clean_labels(refined, coarse, [1])
    assert (out[14:16, 14:16] == 2).all() and out[0, 0] == 7


def test_an_object_with_no_overlap_keeps_its_main_body():
    coarse = np.zeros((20, 20), np.int32)
    coarse[0:3, 0:3] = 1
    refined = np.zeros_like(coarse)
    refined[10:18, 10:18] = 1
    refined[5, 5] = 1
    out = clean_labels(refined, coarse, [1])
    assert out.sum() == 64 and out[5, 5] == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="same shape"):
        clean_labels(np.zeros((3, 3), int), np.zeros((3, 4), int), [1])
    with pytest.raises(ValueError, match="speck must be a fraction"):
        clean_labels(np.zeros((3, 3), int), np.zeros((3, 3), int), [1], speck=2)


def test_caps_keep_real_gaps_and_parts_of_large_objects():
    coarse = np.zeros((220, 220), np.int32)
    coarse[10:210, 10:210] = 1  # 40,000 px: 2% would be 800 px
    refined = coarse.copy()
    refined[50:57, 50:57] = 0  # 49-px hole: a pinhole at this size (<= 64 px) -> filled
    refined[100:110, 100:110] = 0  # 100-px gap: real, kept although it is 0.25% of the object
    refined[2:5, 100:130] = 1  # a 90-px piece off the coarse object: dropped whatever its size
    out = clean_labels(refined, coarse, [1])
    assert (out[50:57, 50:57] == 1).all() and (out[100:110, 100:110] == 0).all() and (out[2:5] == 0).all()
