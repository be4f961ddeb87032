"""Planning a lazy run (napari_segrefiner.lazy.plan): the in-memory batches, the chunks that need them."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_segrefiner.engine.pipelines import box_from_bounds
from napari_segrefiner.io.masks import label_table
from napari_segrefiner.lazy.plan import plan_lazy
from napari_segrefiner.models.config import RefineConfig


def _case():
    lab = np.zeros((60, 80), np.int32)
    lab[5:15, 5:15] = 4
    lab[5:12, 40:70] = 2
    lab[30:55, 10:30] = 9
    lab[50:52, 70:72] = 7  # below min_area: not refined
    img = np.zeros((60, 80, 3), np.uint8)
    return da.from_array(img, chunks=(32, 32, 3)), da.from_array(lab, chunks=(32, 32)), lab


def test_batches_are_the_in_memory_batches_in_label_order():
    image, mask, lab = _case()
    config = RefineConfig(size=32, min_area=10, batch_size=2)
    plan = plan_lazy(image, mask, config=config, seed=3, steps=(5, 0))
    assert [b.labels for b in plan.batches] == [(2, 4), (9,)] and plan.objects == 3
    bounds = label_table(lab).boxes()
    for b in plan.batches:
        assert b.boxes == tuple(box_from_bounds(bounds[v], config, lab.shape) for v in b.labels)
        assert b.seed == 3 and b.steps == (5, 0) and b.pos == ()
    assert set(plan.chunks) == {(i, j) for i in range(2) for j in range(3)}  # the mask's 32 px chunks
    for (
        idx,
        task,
    ) in plan.chunks.items():  # a chunk needs exactly the batches of the objects whose boxes meet its window
        y0, y1, x0, x1 = task.window
        meeting = {
            k for k, b in enumerate(plan.batches) for (a, c, e, f) in b.boxes if a < y1 and c > y0 and e < x1 and f > x0
        }
        assert set(plan.deps[idx]) == meeting


def test_labels_and_an_empty_mask():
    image, mask, lab = _case()
    config = RefineConfig(size=32, min_area=10)
    plan = plan_lazy(image, mask, config=config, seed=0, steps=(0,), labels=(9,))
    assert [b.labels for b in plan.batches] == [(9,)]
    with pytest.raises(ValueError, match=r"labels \[3\] do not occur"):
        plan_lazy(image, mask, config=config, seed=0, steps=(0,), labels=(3,))
    with pytest.warns(UserWarning, match="mask is empty"):
        empty = plan_lazy(image, da.zeros_like(mask), config=config, seed=0, steps=(0,))
    assert empty.batches == [] and empty.objects == 0 and all(t.refined == () for t in empty.chunks.values())
