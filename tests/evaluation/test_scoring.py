"""The quality benchmark's inner loop (napari_segrefiner.evaluation.scoring) on a tiny synthetic set."""

from __future__ import annotations

import numpy as np
import pytest
from _folder_helpers import label_folder  # noqa: F401  (fixture)

from napari_segrefiner.evaluation.scoring import score_set
from napari_segrefiner.training.data import PairFolder


class Bar:
    def __init__(self):
        self.n = 0

    def update(self, k):
        self.n += k


def test_identity_scores_the_coarse_mask_itself(label_folder):  # noqa: F811
    folder = PairFolder(label_folder, "val")
    items, bar = [], Bar()
    entry = score_set(folder, "cells", range(len(folder)), ["erode-3"], ["identity"], [], {}, None, 0, bar, items)
    assert entry["used"] == len(folder) and bar.n == len(folder) and entry["instance"]
    for record in items:
        assert record["methods"]["identity"]["iou"] == pytest.approx(record["coarse_iou"])
    ious = [r["coarse_iou"] for r in items]
    acc = entry["kinds"]["erode-3"]["methods"]["identity"]
    assert acc["iou"] == pytest.approx(float(np.mean(ious)), abs=1e-4) and acc["worse"] == 0
