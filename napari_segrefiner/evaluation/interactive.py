"""Simulated annotators for the benchmark: clicks on the largest errors, and the review score.

:func:`click_curve` refines an object, then places ``clicks`` simulated clicks one after
the other, each on the largest remaining error region of the current result (a missed
piece of the object -> hint 1, a wrong piece of background -> hint 2), and refines again
with all hints so far. A click is a disk of radius up to ``radius`` px around the point
deepest inside that region (the most central of the deepest), cut to the region, so it always
agrees with the ground truth.
Clicks stay inside the crop the object is refined in (where a hint can belong to it).

:func:`spearman` is the rank correlation the benchmark prints between the review queue's
score (:func:`~napari_segrefiner.annotate.scores.review_score`) and the per-object IoU error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = ["click_curve", "place_click", "spearman"]


def place_click(
    pred: np.ndarray, gt: np.ndarray, hints: np.ndarray, allowed: np.ndarray, *, radius: int = 3
) -> np.ndarray | None:
    """Hints plus one click on the largest error region; None when no error is left.

    Parameters
    ----------
    pred, gt : ndarray of shape (H, W), bool
        Current result and ground truth.
    hints : ndarray of shape (H, W), uint8
        Hints so far (not modified).
    allowed : ndarray of shape (H, W), bool
        Where a click may go.
    radius : int
        Largest click radius in pixels.
    """
    best = None
    for wrong, value in ((gt & ~pred, 1), (pred & ~gt, 2)):
        regions, n = ndi.label(wrong & allowed & (hints == 0))
        if n == 0:
            continue
        sizes = np.bincount(regions.ravel())[1:]
        k = int(np.argmax(sizes)) + 1
        if best is None or sizes[k - 1] > best[0]:
            best = (int(sizes[k - 1]), regions == k, value)
    if best is None:
        return None
    _, region, value = best
    depth = ndi.distance_transform_edt(region)
    ys, xs = np.nonzero(depth == depth.max())  # the deepest pixels; of those the most central
    k = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    cy, cx = int(ys[k]), int(xs[k])
    yy, xx = np.ogrid[: region.shape[0], : region.shape[1]]
    disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    out = hints.copy()
    out[disk & region] = value
    return out


def click_curve(image: np.ndarray, coarse: np.ndarray, gt: np.ndarray, refiner: Any, clicks: int, *, seed: int = 0):
    """IoU after 0..``clicks`` simulated clicks, and the first result's uncertainty.

    Parameters
    ----------
    image : ndarray
        The object's region.
    coarse, gt : ndarray of shape (H, W), bool
        Coarse mask and ground truth.
    refiner : Refiner
        The loaded model.
    clicks : int
        Number of clicks (>= 0).
    seed : int
        Seed of every refinement.

    Returns
    -------
    masks : list of ndarray
        The result after 0, 1, ..., ``clicks`` clicks (when no error is left, the last
        result repeats).
    uncertainty : float
        The review score of the first result (:func:`~napari_segrefiner.annotate.scores.review_score`).
    seconds : float
        Wall time of the first refinement (what the speed figures report).
    """
    import time

    from ..api import iter_refine, refine
    from ..engine.pipelines import instance_box

    coarse = np.asarray(coarse, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    t0 = time.perf_counter()
    *_, last = iter_refine(image, coarse, model=refiner, seed=seed, previews=False)
    seconds = time.perf_counter() - t0
    pred = np.asarray(last.mask, dtype=bool)
    uncertainty = float(next(iter(last.uncertainty.values()))) if last.uncertainty else 1.0
    masks = [pred]
    y0, y1, x0, x1 = instance_box(coarse, refiner.config, coarse.shape)
    allowed = np.zeros(coarse.shape, dtype=bool)
    allowed[y0:y1, x0:x1] = True
    hints = np.zeros(coarse.shape, dtype=np.uint8)
    for _ in range(clicks):
        nxt = place_click(pred, gt, hints, allowed)
        if nxt is not None:
            hints = nxt
            pred = np.asarray(refine(image, coarse, model=refiner, seed=seed, hints=hints), dtype=bool)
        masks.append(pred)
    return masks, uncertainty, seconds


def spearman(x, y) -> float | None:
    """Spearman rank correlation (average ranks for ties); None for fewer than 3 pairs or no spread."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size < 3 or x.size != y.size:
        return None
    rx = _ranks(x)
    ry = _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(v.size, dtype=float)
    ranks[order] = np.arange(v.size, dtype=float)
    for value in np.unique(v):  # ties share their mean rank
        same = v == value
        if same.sum() > 1:
            ranks[same] = ranks[same].mean()
    return ranks
