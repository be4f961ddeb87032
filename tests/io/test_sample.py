"""The shipped sample (napari_segrefiner.io.sample): a real micrograph, its truth, a seeded coarse mask."""

from __future__ import annotations

import numpy as np

from napari_segrefiner.io.sample import coarsen_labels, load_nuclei


def test_the_sample_and_its_labels():
    image, truth = load_nuclei()
    assert image.shape == (256, 320, 3) and image.dtype == np.uint8
    assert truth.shape == (256, 320) and truth.dtype.kind == "u" and len(np.unique(truth)) - 1 == 21


def test_coarse_labels_are_seeded_keep_the_objects_and_leave_the_input_alone():
    _, truth = load_nuclei()
    before = truth.copy()
    a, b, c = coarsen_labels(truth, seed=0), coarsen_labels(truth, seed=0), coarsen_labels(truth, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and np.array_equal(truth, before)
    assert a.dtype == truth.dtype and set(np.unique(a)) == set(np.unique(truth))
    inter = np.count_nonzero((a > 0) & (truth > 0))
    union = np.count_nonzero((a > 0) | (truth > 0))
    assert 0.6 < inter / union < 0.98  # coarse, but still about the same nuclei
