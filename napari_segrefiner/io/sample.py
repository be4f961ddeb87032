"""The shipped sample: a real micrograph, its ground truth and a seeded coarse mask of it.

The image is ``0d3640c1f1b8...`` from the 2018 Data Science Bowl (stage 1 training set,
Broad Bioimage Benchmark Collection BBBC038, CC0): an H&E-stained tissue section with 21
annotated nuclei, 256 x 320 px. Its ground-truth annotation ships beside it; the coarse
mask is computed from it at load time by a seeded perturbation of every nucleus (a
simplified polygon outline, then a dilation or an erosion, sometimes a small shift), so it
looks like a quick hand-drawn annotation that SegRefiner can then refine.

Used by the demo (``napari-segrefiner demo``), the benchmarks and napari's sample menu.
numpy, scipy and scikit-image only: no torch, napari or Qt import.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import polygon2mask
from skimage.measure import approximate_polygon, find_contours

__all__ = ["coarsen_labels", "load_nuclei"]

_IMAGE = "dsb2018_0d3640c1.png"
_LABELS = "dsb2018_0d3640c1_labels.png"


def _read_png(name: str) -> np.ndarray:
    from PIL import Image

    with resources.as_file(resources.files("napari_segrefiner") / "samples" / name) as path:
        with Image.open(path) as im:
            return np.asarray(im).copy()


def load_nuclei() -> tuple[np.ndarray, np.ndarray]:
    """The sample image ((H, W, 3) uint8 RGB) and its ground-truth labels ((H, W) uint16)."""
    return _read_png(_IMAGE), _read_png(_LABELS)


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2


def _coarse_object(obj: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One object's coarse version (bool, same shape as the padded crop ``obj``)."""
    out = obj
    contours = find_contours(np.pad(obj, 1).astype(np.float32), 0.5)
    if contours:
        outline = approximate_polygon(max(contours, key=len) - 1, tolerance=rng.uniform(3.0, 6.0))
        if len(outline) >= 4:
            out = polygon2mask(obj.shape, outline) | (obj & ~ndi.binary_erosion(obj, iterations=2))
    if rng.random() < 0.6:
        out = ndi.binary_dilation(out, _disk(int(rng.integers(2, 5))))
    else:
        shrunk = ndi.binary_erosion(out, _disk(int(rng.integers(1, 3))))
        out = shrunk if shrunk.sum() > 0.4 * obj.sum() else out
    if rng.random() < 0.35:
        out = ndi.shift(out, rng.integers(-3, 4, size=2), order=0, mode="constant")
    return out


def coarsen_labels(labels: np.ndarray, *, seed: int = 0, pad: int = 8) -> np.ndarray:
    """Perturb every object of a labels image into a coarse, hand-drawn-looking version.

    Parameters
    ----------
    labels : ndarray of shape (H, W)
        Integer labels, 0 = background.
    seed : int
        Seed of the perturbation (the same seed gives the same mask).
    pad : int
        Margin around each object's box within which it may grow.

    Returns
    -------
    ndarray of shape (H, W)
        Coarse labels of the same dtype; where two coarse objects overlap, the first keeps
        the pixel.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros_like(labels)
    h, w = labels.shape
    for value, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        y0, y1 = max(box[0].start - pad, 0), min(box[0].stop + pad, h)
        x0, x1 = max(box[1].start - pad, 0), min(box[1].stop + pad, w)
        coarse = _coarse_object(labels[y0:y1, x0:x1] == value, rng)
        region = out[y0:y1, x0:x1]
        region[coarse & (region == 0)] = value
    return out
