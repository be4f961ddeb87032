"""The high-resolution pipeline (napari_segrefiner.engine.hr): one record per object, compact answers."""

from __future__ import annotations

from _refine_helpers import Oracle, rect, rgb_from_truth

from napari_segrefiner.api import iter_refine
from napari_segrefiner.io.masks import bounding_box


def test_each_object_is_one_record_with_a_compact_answer_and_the_local_step_last():
    truth = rect((300, 300), 40, 200, 30, 230, 1) + rect((300, 300), 240, 290, 240, 290, 2)
    coarse = rect((300, 300), 45, 205, 35, 225, 1) + rect((300, 300), 238, 292, 238, 292, 2)
    records = list(
        iter_refine(rgb_from_truth(truth), coarse, model=Oracle(), mode="hr", seed=0, device="cpu", hr_min_pixels=10)
    )
    assert [r.mode for r in records] == ["hr", "hr"] and [r.total for r in records] == [2, 2]
    assert all(r.steps[-1] == 0 for r in records) and records[-1].done and not records[0].done
    final = records[-1].mask
    for r in records:
        (obj,) = r.objects
        mine = (final == obj.label) | (coarse == obj.label)
        assert obj.answer.box == bounding_box(mine)  # not the whole frame: 2,000 objects stay small
        assert obj.box == (0, 300, 0, 300)  # the network saw the whole frame
