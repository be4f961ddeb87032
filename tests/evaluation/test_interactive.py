"""Simulated clicks and the rank correlation of the benchmark, on hand-made masks."""

import numpy as np
import pytest

from napari_segrefiner.evaluation.interactive import place_click, spearman


def _case():
    gt = np.zeros((30, 30), bool)
    gt[5:25, 5:25] = True
    pred = gt.copy()
    pred[5:25, 5:11] = False  # a 20 x 6 missed strip (120 px): the largest error
    pred[0:3, 0:3] = True  # a 9 px false positive
    return pred, gt


def test_a_click_goes_on_the_largest_error_and_agrees_with_the_truth():
    pred, gt = _case()
    hints = np.zeros(gt.shape, np.uint8)
    out = place_click(pred, gt, hints, np.ones(gt.shape, bool), radius=2)
    assert hints.max() == 0  # input untouched
    clicked = out != 0
    assert set(np.unique(out[clicked])) == {1}  # the miss is object: hint 1
    assert (gt[clicked]).all() and not pred[clicked].any()  # inside the missed strip only
    assert clicked.sum() == 13  # a radius-2 disk (13 px) fits the 6 px wide strip
    ys, xs = np.nonzero(clicked)
    assert 12 <= ys.mean() <= 17 and 7 <= xs.mean() <= 8.5  # near the strip's deepest point


def test_next_click_skips_hinted_pixels_and_respects_allowed():
    pred, gt = _case()
    allowed = np.zeros(gt.shape, bool)
    allowed[:4, :4] = True  # only the false positive is reachable
    out = place_click(pred, gt, np.zeros(gt.shape, np.uint8), allowed, radius=3)
    assert set(np.unique(out[out != 0])) == {2}
    assert ((out == 2) == (pred & ~gt)).all()  # the whole 3 x 3 false positive, nothing else
    assert place_click(pred, gt, out, allowed) is None  # nothing left where clicks may go
    assert place_click(gt, gt, np.zeros(gt.shape, np.uint8), np.ones(gt.shape, bool)) is None


def test_spearman_matches_definitions():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties get their mean rank: x ranks (0.5, 0.5, 2, 3), y ranks (0, 1, 2, 3); Pearson of those
    rx, ry = np.array([0.5, 0.5, 2, 3]), np.array([0, 1, 2, 3])
    assert spearman([5, 5, 6, 7], [1, 2, 3, 4]) == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    assert spearman([1, 2], [1, 2]) is None and spearman([1, 1, 1], [1, 2, 3]) is None
