"""RefineMemory (napari_segrefiner.annotate.rerun): what changed since a run, and merging a partial re-run.

Hand-made arrays with expected values written out; then the engine itself: a re-run of the
one edited object, merged, equals a full run on the edited mask, and runs the network on
one object only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_segrefiner.annotate.rerun import Changes, RefineMemory

# 20 x 20: object 1 rows 2-5 x cols 2-5, object 2 rows 2-5 x cols 12-15, object 3 rows 13-16 x cols 6-9
MASK = np.zeros((20, 20), dtype=np.uint16)
MASK[2:6, 2:6] = 1
MASK[2:6, 12:16] = 2
MASK[13:17, 6:10] = 3
RESULT = MASK.copy()
RESULT[2, 2:6] = 0  # 1 lost its top row
RESULT[6, 12:16] = 2  # 2 grew a row down
RESULT[13:17, 10] = 3  # 3 grew a column right
OPTS = {"margin": 1}  # regions: the box of the coarse mask and the result, grown by 1


def memory(hints=None, **kw):
    return RefineMemory(MASK, RESULT, hints, **{**OPTS, **kw})


def test_regions_cover_the_coarse_mask_and_the_result_with_a_margin():
    m = memory()
    assert m.labels == (1, 2, 3)
    assert m.objects[1].box == (2, 6, 2, 6) and m.objects[1].region == (1, 7, 1, 7)
    assert m.objects[2].region == (1, 8, 11, 17)  # its result grew to row 6
    assert m.objects[3].region == (12, 18, 5, 12)  # and to column 10
    assert RefineMemory(MASK, RESULT, margin=3).objects[1].region == (0, 9, 0, 9)  # clamped at the frame
    assert RefineMemory(MASK, RESULT, frame=True).objects[1].region == (0, 20, 0, 20)


def test_nothing_changed():
    changes = memory().changes(MASK.copy())
    assert changes == Changes(unchanged=(1, 2, 3)) and not changes and changes.refine == ()
    assert changes.summary() == "nothing changed"


def test_edited_new_removed_and_selected_objects():
    mask = MASK.copy()
    mask[6, 3] = 1  # 1: one more pixel
    mask[mask == 3] = 0
    mask[14:18, 6:10] = 3  # 3: moved one row down (same shape, other box)
    mask[mask == 2] = 0  # 2: removed
    mask[9:11, 15:18] = 4  # 4: new
    mask[0:2, 17:19] = 5  # 5: new
    changes = memory().changes(mask)
    assert (changes.edited, changes.new, changes.removed, changes.unchanged) == ((1, 3), (4, 5), (2,), ())
    assert changes.refine == (1, 3, 4, 5) and changes
    assert changes.summary() == "2 edited (1, 3), 2 new (4, 5), 1 removed (2), 0 unchanged"

    selected = memory().changes(MASK, select=[3])
    assert (selected.selected, selected.refine, selected.unchanged) == ((3,), (3,), (1, 2))
    assert selected.summary() == "1 selected (3), 2 unchanged"


def test_same_pixels_under_another_label_are_new_and_removed():
    mask = MASK.copy()
    mask[mask == 3] = 9
    changes = memory().changes(mask)
    assert (changes.new, changes.removed, changes.unchanged) == ((9,), (3,), (1, 2))


def test_hints_change_only_the_objects_whose_region_holds_them():
    m = memory()
    hints = np.zeros((20, 20), dtype=np.uint8)
    hints[10, 0] = 2  # far from every object: nothing to redo
    assert not m.changes(MASK, hints)
    hints[6, 6] = 2  # corner of object 1's region (1, 7, 1, 7)
    assert m.changes(MASK, hints).edited == (1,)
    hints[12, 11] = 2  # corner of object 3's region, which covers its result (column 10) + 1
    assert m.changes(MASK, hints).edited == (1, 3)
    # remembered with those hints: the same hints are no change, removing one is
    m2 = memory(hints)
    assert not m2.changes(MASK, hints)
    less = hints.copy()
    less[6, 6] = 0
    assert m2.changes(MASK, less).edited == (1,)
    assert m2.changes(MASK, None).edited == (1, 3)


def test_an_object_hint_far_from_every_object_belongs_to_the_nearest():
    m = memory()
    hints = np.zeros((20, 20), dtype=np.uint8)
    hints[10, 14] = 1  # outside every region; nearest coarse object: 2 (row 5, 5 rows up)
    assert m.changes(MASK, hints).edited == (2,)
    hints[10, 14] = 2  # a background hint there matters to nobody
    assert not m.changes(MASK, hints)
    hints[:] = 0
    hints[13, 7] = 1  # on object 3's coarse mask: its own
    assert m.changes(MASK, hints).edited == (3,)


def test_frame_regions_make_every_object_depend_on_every_hint():
    hints = np.zeros((20, 20), dtype=np.uint8)
    hints[19, 19] = 2
    assert memory(frame=True).changes(MASK, hints).edited == (1, 2, 3)


def test_bad_input():
    m = memory()
    with pytest.raises(ValueError, match="shape"):
        m.changes(MASK[:10])
    with pytest.raises(ValueError, match="only 0"):
        m.changes(MASK, np.full((20, 20), 3, dtype=np.uint8))
    with pytest.raises(ValueError, match="does not match"):
        m.changes(MASK, np.zeros((20, 21), dtype=np.uint8))
    with pytest.raises(ValueError, match="do not occur"):
        m.changes(MASK, select=[8])
    with pytest.raises(ValueError, match="2-D"):
        RefineMemory(MASK[None], RESULT[None])


def test_merge_keeps_unchanged_objects_and_lets_them_win():
    m = memory()
    mask = MASK.copy()
    mask[mask == 2] = 0  # 2 removed
    mask[6:8, 2:6] = 1  # 1 grew down
    changes = m.changes(mask)
    assert (changes.refine, changes.removed) == ((1,), (2,))
    partial = mask.copy()  # what a run over label 1 only returns: 3 is its coarse mask there
    partial[partial == 1] = 0
    partial[3:9, 3:12] = 1  # the refined 1 grew down and right
    partial[12:13, 5:12] = 1  # and into 3's crop (not its pixels)
    partial[13, 10] = 1  # and onto a pixel that 3's previous result holds: 3 keeps it
    before = (MASK.copy(), RESULT.copy(), mask.copy(), partial.copy())
    merged = m.merge(partial, changes)
    expected = np.zeros((20, 20), dtype=np.uint16)
    expected[13:17, 6:11] = 3  # 3's previous result, bit for bit
    expected[3:9, 3:12] = 1
    expected[12, 5:12] = 1
    np.testing.assert_array_equal(merged, expected)
    for a, b in zip(before, (MASK, RESULT, mask, partial)):
        np.testing.assert_array_equal(a, b)  # nothing modified


def test_merge_over_an_edited_previous_result_and_removals_only():
    m = memory()
    previous = RESULT.copy()
    previous[13:17, 6:11] = 0
    previous[13:17, 6:10] = 3  # a reviewer rejected 3: its coarse mask is back
    previous[0, 0] = 7  # and painted something into the result layer
    mask = MASK.copy()
    mask[mask == 1] = 0
    changes = m.changes(mask)
    assert changes.refine == () and changes.removed == (1,)
    merged = m.merge(None, changes, previous=previous)
    expected = previous.copy()
    expected[expected == 1] = 0
    np.testing.assert_array_equal(merged, expected)
    with pytest.raises(ValueError, match="no partial"):
        m.merge(None, Changes(edited=(1,)))


# -- with the engine -------------------------------------------------------------------------


class Counting(torch.nn.Module):
    """Counts the crops the wrapped network sees (batch sizes)."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.crops = []

    def forward(self, x, t):
        self.crops.append(int(x.shape[0]))
        return self.net(x, t)


def far_apart():
    """128 x 128: three discs far apart (their crops do not overlap), coarse squares over them."""
    yy, xx = np.mgrid[:128, :128]
    image = np.zeros((128, 128, 3), dtype=np.uint8)
    mask = np.zeros((128, 128), dtype=np.uint16)
    for value, (cy, cx) in enumerate([(20, 20), (20, 105), (100, 60)], start=1):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 64] = (220, 120, 200)
        mask[cy - 10 : cy + 10, cx - 10 : cx + 10] = value
    return image, mask


def test_a_partial_rerun_merged_equals_a_full_run_and_refines_one_object(tiny_model):
    from dataclasses import replace

    from napari_segrefiner import refine

    counting = Counting(tiny_model.network)
    refiner = replace(tiny_model, network=counting).with_options(pad=8, batch_size=4)
    image, mask = far_apart()
    first = refine(image, mask, model=refiner, seed=3)
    m = RefineMemory(mask, first)
    edited = mask.copy()
    edited[90:110, 48:52] = 3  # object 3 grows to the left
    changes = m.changes(edited)
    assert changes.refine == (3,) and changes.unchanged == (1, 2)
    counting.crops.clear()
    partial = refine(image, edited, model=refiner, seed=3, labels=changes.refine)
    assert sum(counting.crops) == len(counting.crops)  # one crop per network call: one object
    merged = m.merge(partial, changes)
    for label in (1, 2):
        np.testing.assert_array_equal(merged == label, first == label)  # bit for bit
    np.testing.assert_array_equal(merged, refine(image, edited, model=refiner, seed=3))
