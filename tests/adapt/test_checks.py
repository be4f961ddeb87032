"""Input checks and the seeded split: no pairs, one pair, pairs of another shape; held out by source."""

from __future__ import annotations

import numpy as np
import pytest
from _adapt_helpers import TINY, store, tiny_refiner

from napari_segrefiner.adapt import PairStore, adapt, split_pairs


def test_split_is_seeded_and_holds_out_at_least_one():
    assert split_pairs(10, 0.25, 0) == split_pairs(10, 0.25, 0)
    assert split_pairs(10, 0.25, 0) != split_pairs(10, 0.25, 1)
    train, held = split_pairs(2, 0.25, 0)
    assert len(train) == 1 and len(held) == 1
    train, held = split_pairs(4, 0.99, 0)
    assert len(train) == 1 and len(held) == 3
    assert sorted(train + held) == [0, 1, 2, 3]


def test_refuses_no_pair_one_pair_and_mixed_sides():
    base = tiny_refiner()
    with pytest.raises(ValueError, match="at least 2 pairs.*got 0"):
        adapt(base, PairStore(TINY))
    with pytest.raises(ValueError, match="at least 2 pairs.*got 1"):
        adapt(base, store(1))
    big = PairStore(TINY.replace(size=96))
    from _adapt_helpers import scene

    image, coarse, final = scene(1)
    mixed = list(store(2)) + [big.add(image, coarse, final, 1, key="big")]
    with pytest.raises(ValueError, match="different sides"):
        adapt(base, mixed)
    with pytest.raises(ValueError, match="96-px crops but the base model refines 64-px"):
        adapt(base, big.pairs + big.pairs[:0] + (big.add(image, coarse, final, 1, key="big2"),))
    with pytest.raises(TypeError, match="Pair objects"):
        adapt(base, [np.zeros((64, 64, 3))] * 2)


def test_pairs_of_several_sources_are_held_out_by_source():
    groups = ["a"] * 5 + ["b"] * 3 + ["c"] * 4
    train, held = split_pairs(12, 0.25, 0, groups)
    held_groups = {groups[i] for i in held}
    assert held and train and not held_groups & {groups[i] for i in train}
    assert split_pairs(12, 0.25, 0, groups) == (train, held)
    assert split_pairs(4, 0.25, 0, ["x"] * 4) == split_pairs(4, 0.25, 0)  # one source: a plain split
    train, held = split_pairs(4, 0.9, 0, ["a", "a", "b", "b"])
    assert len(train) == 2 and len(held) == 2  # one source is always left to learn from
