"""The overlap rule (napari_segrefiner.engine.compose): the same bits on the frame and in any window."""

from __future__ import annotations

import numpy as np

from napari_segrefiner.engine.compose import ObjectMap, compose_window, fold


def test_fold_gives_a_pixel_to_its_coarse_owner_then_to_the_more_confident():
    coarse = np.zeros((4, 6), np.int64)
    coarse[:, :3] = 1
    coarse[:, 3:] = 2
    out = coarse.copy()
    out[coarse > 0] = 0
    best = np.zeros(out.shape, np.float32)
    v1 = np.full((4, 6), 0.9, np.float32)  # label 1 wants everything, confidently
    v2 = np.full((4, 6), 0.6, np.float32)  # label 2 too, less so
    fold(out, best, (0, 0), (0, 4, 0, 6), 1, v1, coarse)
    fold(out, best, (0, 0), (0, 4, 0, 6), 2, v2, coarse)
    # on 2's coarse pixels: 0.6 + 0.5 (owner bonus) = 1.1 beats 0.9; on 1's: 0.9 + 0.5 beats 0.6
    assert (out[:, :3] == 1).all() and (out[:, 3:] == 2).all()


def test_fold_never_takes_a_pixel_of_an_object_that_was_not_refined():
    coarse = np.array([[0, 5]], np.int64)
    out, best = coarse.copy(), np.zeros((1, 2), np.float32)
    fold(out, best, (0, 0), (0, 1, 0, 2), 1, np.ones((1, 2), np.float32), coarse)
    assert out.tolist() == [[1, 5]]


def test_object_map_keeps_only_the_foreground_and_folds_to_the_same_bits():
    v = np.array([[0.1, 0.7], [0.5, 0.49]], np.float32)
    m = ObjectMap.from_values(3, (2, 4, 5, 7), v)
    assert m.shape == (2, 2) and m.values.tolist() == [np.float32(0.7), 0.5]
    assert np.array_equal(m.dense() >= 0.5, v >= 0.5) and m.nbytes == m.bits.nbytes + 8


def test_a_window_composes_like_the_whole_frame():
    rng = np.random.default_rng(1)
    coarse = np.zeros((30, 40), np.int64)
    coarse[5:15, 5:20] = 1
    coarse[10:25, 15:35] = 2
    maps = [
        ObjectMap.from_values(lab, box, rng.random((box[1] - box[0], box[3] - box[2])).astype(np.float32))
        for lab, box in ((1, (2, 18, 2, 24)), (2, (7, 28, 12, 38)))
    ]
    whole = compose_window(coarse, (0, 0), maps, [1, 2])
    y0, y1, x0, x1 = 8, 20, 10, 30
    window = compose_window(coarse[y0:y1, x0:x1], (y0, x0), maps, [1, 2])
    assert np.array_equal(window, whole[y0:y1, x0:x1])
