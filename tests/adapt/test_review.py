"""Pairs from a review queue: accepted and kept objects become pairs, the others do not."""

from __future__ import annotations

import numpy as np
import pytest
from _adapt_helpers import TINY, scene

from napari_segrefiner.adapt import PairStore, accepted_labels, pairs_from_review
from napari_segrefiner.annotate.review import ReviewQueue


def _queue(result, coarse):
    return ReviewQueue(result, coarse, {1: 0.9, 2: 0.5, 3: 0.7, 4: 0.1})


def test_accepted_and_kept_objects_become_pairs():
    image, coarse, result = scene(4)
    before = (image.copy(), coarse.copy(), result.copy())
    queue = _queue(result, coarse)
    queue.accept(1)
    queue.accept(3)
    queue.reject(result, 2)  # rejected: not learned from (the edit is not applied here: it does not matter)
    assert accepted_labels(queue) == (1, 3)
    got = pairs_from_review(image, coarse, result, queue, kept=[4, 3], config=TINY, source="layer")
    assert got.added == (1, 3, 4) and got.skipped == {}
    assert got.store.keys == ("label1", "label3", "label4") and got.store["label3"].info["source"] == "layer"
    for a, b in zip(before, (image, coarse, result)):
        assert np.array_equal(a, b)


def test_an_accepted_object_again_replaces_its_pair_and_gone_objects_are_skipped():
    image, coarse, result = scene(3)
    queue = _queue(result, coarse)
    queue.accept(2)
    store = PairStore(TINY)
    first = pairs_from_review(image, coarse, result, queue, store=store).store["label2"]
    edited = np.where(result == 2, 0, result)
    edited[55:66, 65:76] = 2  # the annotator redrew it
    again = pairs_from_review(image, coarse, edited, queue, store=store, kept=[1])
    assert len(store) == 2 and not np.array_equal(store["label2"].final, first.final) and again.added == (2, 1)
    deleted = np.where(result == 1, 0, result)
    drawn = coarse.copy()
    drawn[coarse == 3] = 0
    got = pairs_from_review(image, drawn, deleted, None, kept=[1, 3], config=TINY)
    assert got.added == () and set(got.skipped) == {1, 3}
    assert "not in the result" in got.skipped[1] and "not in the coarse" in got.skipped[3]


def test_bad_arrays_are_named():
    image, coarse, result = scene(2)
    with pytest.raises(ValueError, match="result shape"):
        pairs_from_review(image, coarse, result[:, :-1], kept=[1], config=TINY)
    with pytest.raises(ValueError, match="kept must hold positive integer labels"):
        pairs_from_review(image, coarse, result, kept=[0], config=TINY)
    with pytest.raises(TypeError, match="queue must be a ReviewQueue"):
        pairs_from_review(image, coarse, result, queue=[1, 2], config=TINY)
    with pytest.raises(TypeError, match="store must be a PairStore"):
        pairs_from_review(image, coarse, result, kept=[1], store={}, config=TINY)
