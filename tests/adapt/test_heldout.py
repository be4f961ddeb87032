"""Held-out IoU runs the pipeline's batch step: seeded, one figure per pair, cancellable."""

from __future__ import annotations

import pytest
from _adapt_helpers import store, tiny_refiner

from napari_segrefiner.adapt.heldout import heldout_ious
from napari_segrefiner.adapt.samples import encode_pairs
from napari_segrefiner.diffusion.sampling import RefineCancelled


def test_one_seeded_iou_per_pair_and_cancel():
    ref = tiny_refiner()
    data = encode_pairs(ref.network, store(3).pairs)
    a = heldout_ious(ref.network, ref.config, ref.schedule, data, [0, 2], seed=1)
    b = heldout_ious(ref.network, ref.config, ref.schedule, data, [0, 2], seed=1)
    assert a == b and len(a) == 2 and all(0.0 <= v <= 1.0 for v in a)
    perfect = heldout_ious(ref.network, ref.config, ref.schedule, data, [1], coarse=data.final[[1]])
    assert len(perfect) == 1
    with pytest.raises(RefineCancelled):
        heldout_ious(ref.network, ref.config, ref.schedule, data, [0], cancel=lambda: True)
