"""Hints on the lazy path (napari_segrefiner.lazy.hint_windows): the in-memory owners, from a window."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_segrefiner.annotate.hints import owners
from napari_segrefiner.lazy.hint_windows import HintWindow, hint_bounds, merge_bounds, plan_hints


def test_bounds_per_plane_merge_across_blocks():
    hints = np.zeros((2, 10, 12), np.uint8)
    hints[0, 2, 3] = 1
    hints[0, 8, 11] = 2
    hints[1, 5, 5] = 2
    parts = [hint_bounds(hints[:, :, :6], (0, 0, 0)), hint_bounds(hints[:, :, 6:], (0, 0, 6))]
    assert merge_bounds(parts) == {(0,): (2, 9, 3, 12), (1,): (5, 6, 5, 6)}


def test_a_window_reads_zeros_outside_itself():
    w = HintWindow((2, 4, 3, 6), np.full((2, 3), 2, np.uint8), np.full((2, 3), 7, np.int64))
    values, owner = w.over((0, 5, 0, 5))
    assert values.shape == (5, 5) and values[2:4, 3:5].tolist() == [[2, 2], [2, 2]] and values.sum() == 8
    assert owner[3, 4] == 7 and owner[0, 0] == 0


def test_owners_in_the_window_are_the_in_memory_owners():
    lab = np.zeros((40, 40), np.int32)
    lab[5:10, 5:10] = 1
    lab[20:30, 20:30] = 2
    hints = np.zeros((40, 40), np.uint8)
    hints[11, 7] = 1  # just below object 1: belongs to it
    hints[25, 25] = 2
    boxes = {1: (0, 20, 0, 20), 2: (12, 38, 12, 38)}
    expected = owners(lab, hints, lambda v: boxes[int(v)])
    bounds = merge_bounds([hint_bounds(hints, (0, 0))])
    (win,) = plan_hints(da.from_array(hints), da.from_array(lab), bounds, {(): boxes}, 9, (40, 40)).values()
    assert np.array_equal(win.over((0, 40, 0, 40))[1], expected)


def test_an_object_hint_far_from_every_object_is_refused_with_its_place():
    lab = np.zeros((40, 40), np.int32)
    lab[5:10, 5:10] = 1
    hints = np.zeros((40, 40), np.uint8)
    hints[35, 35] = 1
    bounds = merge_bounds([hint_bounds(hints, (0, 0))])
    with pytest.raises(ValueError, match=r"object hints \(1\).*\(window at y=30, x=30\)"):
        plan_hints(hints, lab, bounds, {(): {1: (0, 15, 0, 15)}}, 5, (40, 40))
