"""ReviewQueue (napari_segrefiner.annotate.review) on hand-made arrays: order, cursor, accept, reject, undo."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segrefiner.annotate.review import ReviewQueue

# 8 x 10 frames. Coarse: object 1 rows 0-2 x cols 0-2, object 2 rows 4-6 x cols 1-4,
# object 3 rows 5-7 x cols 7-9. Refined: 1 shrank to rows 0-1 x cols 0-1, 2 grew by a
# column to the right (col 5) and lost row 6, 3 took (5, 6) and lost nothing.
COARSE = np.zeros((8, 10), dtype=np.uint16)
COARSE[0:3, 0:3] = 1
COARSE[4:7, 1:5] = 2
COARSE[5:8, 7:10] = 3
RESULT = np.zeros((8, 10), dtype=np.uint16)
RESULT[0:2, 0:2] = 1
RESULT[4:6, 1:6] = 2
RESULT[5:8, 7:10] = 3
RESULT[5, 6] = 3
SCORES = {1: 0.2, 2: 0.9, 3: 0.5, 7: 0.4}  # 7 occurs nowhere: left out


def queue():
    return ReviewQueue(RESULT, COARSE, SCORES)


def test_order_is_most_uncertain_first_and_absent_labels_are_left_out():
    q = queue()
    assert q.order == (2, 3, 1)
    assert [(i.label, i.score, i.status) for i in q.items()] == [
        (2, 0.9, "pending"),
        (3, 0.5, "pending"),
        (1, 0.2, "pending"),
    ]
    assert len(q) == 3 and q.current is None


def test_ties_are_broken_by_label():
    q = ReviewQueue(RESULT, COARSE, {3: 0.5, 1: 0.5, 2: 0.5})
    assert q.order == (1, 2, 3)


def test_cursor_moves_and_stops_at_both_ends():
    q = queue()
    assert [q.next(), q.next(), q.next(), q.next()] == [2, 3, 1, 1]
    assert [q.previous(), q.previous(), q.previous()] == [3, 2, 2]
    assert q.go(1) == 1 and q.current == 1
    with pytest.raises(KeyError):
        q.go(7)


def test_geometry_covers_the_refined_and_the_coarse_object():
    item = queue().item(2)
    # union of refined (rows 4-5, cols 1-5) and coarse (rows 4-6, cols 1-4) pixels
    union = [(r, c) for r in range(4, 6) for c in range(1, 6)] + [(6, c) for c in range(1, 5)]
    assert item.box == (4, 7, 1, 6)
    assert item.centroid == pytest.approx((np.mean([r for r, _ in union]), np.mean([c for _, c in union])))


def test_reject_restores_the_coarse_object_and_undo_restores_every_pixel():
    q = queue()
    q.next()  # object 2
    result = RESULT.copy()
    edit = q.reject(result)
    np.testing.assert_array_equal(result, RESULT)  # reject only computes the edit
    edit.apply(result)
    expected = RESULT.copy()
    expected[4:6, 5] = 0  # its refined pixels outside the coarse mask go
    expected[6, 1:5] = 2  # its coarse pixels come back
    np.testing.assert_array_equal(result, expected)
    assert edit.size == 2 + 4 and q.status[2] == "rejected"
    assert q.counts() == {"pending": 2, "accepted": 0, "rejected": 1}

    assert q.undo() is edit
    edit.revert(result)
    np.testing.assert_array_equal(result, RESULT)
    assert q.status[2] == "pending" and q.undo() is None


def test_reject_takes_its_coarse_pixels_back_from_a_neighbour():
    coarse = COARSE.copy()
    coarse[5, 6] = 2  # object 3's refined pixel (5, 6) was object 2's in the coarse mask
    q = ReviewQueue(RESULT, coarse, SCORES)
    result = RESULT.copy()
    q.reject(result, 2).apply(result)
    assert result[5, 6] == 2 and (result == 3).sum() == (RESULT == 3).sum() - 1


def test_accept_reject_undo_are_one_step_each_in_reverse_order():
    q = queue()
    result = RESULT.copy()
    q.next()
    a = q.accept()  # 2
    q.next()
    r = q.reject(result)  # 3: nothing to restore but its pixel (5, 6)
    r.apply(result)
    assert (a.size, r.size) == (0, 1) and result[5, 6] == 0
    q.next()
    r1 = q.reject(result, 1)
    r1.apply(result)
    assert q.status == {2: "accepted", 3: "rejected", 1: "rejected"}

    for edit, label, cursor in ((r1, 1, 2), (r, 3, 1), (a, 2, 0)):
        undone = q.undo()
        assert undone is edit and undone.label == label
        undone.revert(result)
        assert q.status[label] == "pending" and q.cursor == cursor
    np.testing.assert_array_equal(result, RESULT)
    assert not q.can_undo


def test_undo_restores_the_previous_decision_not_pending():
    q = queue()
    q.accept(3)
    result = RESULT.copy()
    q.reject(result, 3).apply(result)
    q.undo().revert(result)
    assert q.status[3] == "accepted"


def test_errors():
    q = queue()
    with pytest.raises(ValueError, match="no object chosen"):
        q.accept()
    with pytest.raises(KeyError):
        q.reject(RESULT, 7)
    with pytest.raises(ValueError, match="shape"):
        q.reject(RESULT[:4], 1)
    with pytest.raises(ValueError, match="not finite"):
        ReviewQueue(RESULT, COARSE, {1: float("nan")})
    with pytest.raises(ValueError, match="2-D"):
        ReviewQueue(RESULT[None], COARSE[None], SCORES)


def test_inputs_are_not_modified():
    result, coarse = RESULT.copy(), COARSE.copy()
    q = ReviewQueue(result, coarse, SCORES)
    coarse[:] = 0  # the queue kept its own copy of the coarse mask
    out = RESULT.copy()
    q.reject(out, 1).apply(out)
    assert (out == 1).sum() == 9
    np.testing.assert_array_equal(result, RESULT)
