"""Sample data for napari's File > Open Sample menu: a real micrograph and a coarse mask.

The sample and its coarse mask are :mod:`napari_segrefiner.io.sample`'s (also used by the
demo). numpy, scipy and scikit-image only: no torch, napari or Qt import.
"""

from __future__ import annotations

from ..io.sample import coarsen_labels, load_nuclei

__all__ = ["make_sample_data"]


def make_sample_data() -> list[tuple]:
    """napari sample: the H&E image and a coarse mask of its nuclei (LayerDataTuples)."""
    image, truth = load_nuclei()
    coarse = coarsen_labels(truth, seed=0)
    return [
        (image, {"name": "nuclei (DSB 2018)"}, "image"),
        (coarse, {"name": "coarse mask", "opacity": 0.5}, "labels"),
    ]
