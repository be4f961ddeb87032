"""AdaptResult and AdaptRecord: the summary says what the held-out IoU did and why a model was not kept."""

from __future__ import annotations

import pytest

from napari_segrefiner.adapt import AdaptRecord, AdaptResult


def _result(**kw):
    base = dict(refiner=None, base=None, kept=True, base_iou=0.80, adapted_iou=0.85, base_keep_iou=0.9,
                adapted_keep_iou=0.9, steps=10, seconds=5.0, train_keys=("a", "b"), holdout_keys=("c",))  # fmt: skip
    return AdaptResult(**{**base, **kw})


def test_summary_and_gain():
    r = _result()
    assert r.gain == pytest.approx(0.05) and "+5.00 points" in r.summary() and r.summary().endswith("kept")
    assert "spoils already-good masks" in _result(kept=False).summary()
    assert "no better than the base" in _result(kept=False, adapted_iou=0.7).summary()
    with pytest.raises(TypeError):
        r.provenance["x"] = 1  # read-only


def test_record_fraction():
    assert AdaptRecord("train", 3, None, 1.0).fraction is None
    assert AdaptRecord("train", 3, 6, 1.0).fraction == 0.5
    assert AdaptRecord("train", 9, 6, 1.0).fraction == 1.0
