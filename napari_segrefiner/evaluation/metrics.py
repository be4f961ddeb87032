"""Segmentation-refinement metrics: IoU, Boundary IoU, mBA and boundary F.

The definitions follow the evaluation protocol used by the SegRefiner paper
and its predecessors:

* :func:`iou` / :func:`pooled_iou` -- mask IoU. The BIG and DIS numbers in the
  paper are *pooled* over a dataset (sum of intersections divided by the sum of
  unions), not the mean of per-image IoUs; :func:`pooled_iou` computes that.
* :func:`boundary_iou` -- Boundary IoU (Cheng et al. 2021) as implemented in
  ``lvis-api``: IoU of the inner boundary bands ``mask - erode(mask)``.
* :func:`mba` -- mean boundary accuracy as in CascadePSP's evaluation script.
* :func:`boundary_f` -- boundary F-measure in the style of the DAVIS benchmark.

Binarisation rule (applied to every mask argument)
--------------------------------------------------
The package's one rule for masks (:func:`napari_segrefiner.io.masks.as_binary`):

* ``bool`` arrays are used as they are.
* Integer arrays (non-negative): foreground is every non-zero value. This covers
  ``{0, 1}`` and ``{0, 255}`` masks and labels alike. A *soft* 8-bit mask (any grey
  level in 0..255, e.g. a refiner output saved as PNG) must be thresholded by the
  caller; the official evaluation scripts use ``mask >= 128``.
* Floating-point arrays must hold only 0 and 1; soft maps (probabilities) must be
  thresholded by the caller. Other values (NaN included) raise :class:`ValueError`.

All masks must be 2-D, non-empty and, for two-argument metrics, of identical
shape. Inputs are never modified.

This module depends on numpy, scipy and OpenCV only (no torch, no napari).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
from scipy import ndimage

from ._checks import as_pair, check_positive_real, safe_ratio

__all__ = [
    "boundary_f",
    "boundary_iou",
    "evaluate",
    "iou",
    "mba",
    "pooled_iou",
]

# 3x3 square structuring element used for the Boundary IoU erosion and for the
# 1-pixel contours of the boundary F-measure.
_SQUARE3 = np.ones((3, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- #
# mask IoU
# --------------------------------------------------------------------------- #
def _inter_union(p: np.ndarray, g: np.ndarray) -> tuple[int, int]:
    return int(np.count_nonzero(p & g)), int(np.count_nonzero(p | g))


def iou(pred, gt) -> float:
    """Intersection over union of two binary masks.

    Parameters
    ----------
    pred : array_like, shape (H, W)
        Predicted mask (bool, integer or float in [0, 1]; see the module
        docstring for the binarisation rule).
    gt : array_like, shape (H, W)
        Ground-truth mask, same shape and rules as `pred`.

    Returns
    -------
    float
        ``|pred & gt| / |pred | gt|`` in [0, 1]. When both masks are empty the
        union is empty and the result is 1.0 (the masks agree).

    Raises
    ------
    ValueError
        If a mask is not 2-D, is empty, contains NaN or float values outside
        [0, 1], or if the shapes differ.
    TypeError
        If a mask has a non-numeric dtype.
    """
    p, g = as_pair(pred, gt)
    inter, union = _inter_union(p, g)
    return safe_ratio(inter, union)


def pooled_iou(preds: Sequence, gts: Sequence) -> float:
    """Dataset-level IoU: total intersection divided by total union.

    This is the IoU reported for the BIG and DIS benchmarks (CascadePSP /
    SegRefiner evaluation scripts). It weights images by their object size and
    generally differs from the mean of per-image :func:`iou` values.

    Parameters
    ----------
    preds : sequence of array_like
        Predicted masks, one per image; each is validated like in :func:`iou`.
    gts : sequence of array_like
        Ground-truth masks, same length as `preds`; ``gts[i]`` must have the
        shape of ``preds[i]`` (different images may have different shapes).

    Returns
    -------
    float
        ``sum_i |pred_i & gt_i| / sum_i |pred_i | gt_i|``; 1.0 if every union is
        empty.

    Raises
    ------
    ValueError
        If the sequences are empty or of different lengths, or if any pair
        fails the checks of :func:`iou` (the message names the index).
    """
    preds = list(preds)
    gts = list(gts)
    if len(preds) != len(gts):
        raise ValueError(f"preds has {len(preds)} masks but gts has {len(gts)}")
    if not preds:
        raise ValueError("preds and gts must contain at least one mask")
    total_inter = total_union = 0
    for i, (pred, gt) in enumerate(zip(preds, gts)):
        p, g = as_pair(pred, gt, f"preds[{i}]", f"gts[{i}]")
        inter, union = _inter_union(p, g)
        total_inter += inter
        total_union += union
    return safe_ratio(total_inter, total_union)


# --------------------------------------------------------------------------- #
# Boundary IoU
# --------------------------------------------------------------------------- #
def _boundary_band(mask: np.ndarray, width: int) -> np.ndarray:
    """Inner boundary band ``mask - erode(mask)`` of the given width.

    The mask is padded with one row/column of zeros before eroding so that the
    image border counts as boundary. Iterating a 3x3 erosion ``width`` times is
    the same as one erosion with a ``(2 * width + 1)`` square.
    """
    padded = np.pad(mask.astype(np.uint8), 1, mode="constant", constant_values=0)
    eroded = cv2.erode(padded, _SQUARE3, iterations=width)[1:-1, 1:-1].astype(bool)
    return mask & ~eroded


def _band_width(shape: tuple[int, int], dilation_ratio: float) -> int:
    diagonal = math.hypot(shape[0], shape[1])
    # Python's round() (round-half-to-even), as in lvis-api.
    return max(1, int(round(dilation_ratio * diagonal)))


def boundary_iou(pred, gt, *, dilation_ratio: float = 0.02) -> float:
    """Boundary IoU (Cheng et al. 2021), as computed by ``lvis-api``.

    Each mask is reduced to its inner boundary band ``M - erode(M)``, where the
    erosion uses a 3x3 square applied ``d`` times with
    ``d = max(1, round(dilation_ratio * sqrt(H**2 + W**2)))``; the image border
    is treated as boundary (the mask is zero-padded before eroding). The result
    is the IoU of the two bands.

    Parameters
    ----------
    pred : array_like, shape (H, W)
        Predicted mask (see the module docstring for the binarisation rule).
    gt : array_like, shape (H, W)
        Ground-truth mask.
    dilation_ratio : float, optional
        Band width as a fraction of the image diagonal (default 0.02, the
        value used by Boundary AP).

    Returns
    -------
    float
        Boundary IoU in [0, 1]; 1.0 when both bands are empty (both masks are
        empty).

    Raises
    ------
    ValueError
        On invalid masks (see :func:`iou`) or a negative / non-finite
        `dilation_ratio`.

    Notes
    -----
    The Boundary AP metric of ``lvis-api`` uses ``min(mask IoU, Boundary IoU)``
    for matching; this function returns the Boundary IoU term alone.
    """
    ratio = check_positive_real(dilation_ratio, "dilation_ratio", allow_zero=True)
    p, g = as_pair(pred, gt)
    width = _band_width(p.shape, ratio)
    inter, union = _inter_union(_boundary_band(p, width), _boundary_band(g, width))
    return safe_ratio(inter, union)


# --------------------------------------------------------------------------- #
# mBA
# --------------------------------------------------------------------------- #
def _mba_radii(height: int, width: int, num_steps: int = 5) -> list[int]:
    """Kernel radii of the mBA bands: ``1 + int((R - 1) / 5 * i)``, R = (h + w) / 300."""
    max_radius = (height + width) / 300.0
    # int() truncates towards zero, so for R < 1 the radii are already 1; the
    # clamp only guards the definition.
    return [max(1, 1 + int((max_radius - 1.0) / num_steps * i)) for i in range(num_steps)]


def mba(pred, gt) -> float:
    """Mean boundary accuracy (mBA) as defined by CascadePSP.

    With ``R = (H + W) / 300`` the radii are ``r_i = 1 + int((R - 1) / 5 * i)``
    for ``i = 0..4`` (at least 1). For each radius the band is the set of pixels
    where the morphological gradient (dilation minus erosion) of the ground
    truth with an elliptical ``(2r + 1) x (2r + 1)`` kernel is non-zero; the
    accuracy is the fraction of band pixels where `pred` equals `gt`. mBA is the
    mean of the five accuracies.

    Parameters
    ----------
    pred : array_like, shape (H, W)
        Predicted mask (see the module docstring for the binarisation rule).
    gt : array_like, shape (H, W)
        Ground-truth mask; the bands are derived from it.

    Returns
    -------
    float
        mBA in [0, 1].

    Raises
    ------
    ValueError
        On invalid masks (see :func:`iou`).

    Notes
    -----
    OpenCV's morphology ignores pixels outside the image, so the image border
    is *not* part of the band (this matches the reference script).

    If the ground truth has no boundary at all (an empty or a full mask), every
    band is empty and the reference script divides by zero. Here the plain
    pixel accuracy ``mean(pred == gt)`` is returned instead: 1.0 when the
    prediction matches, and lower the more pixels it gets wrong.
    """
    p, g = as_pair(pred, gt)
    if not g.any() or g.all():
        return float(np.count_nonzero(p == g)) / p.size
    g_u8 = g.astype(np.uint8)
    correct = p == g
    accuracies = []
    for radius in _mba_radii(*g.shape):
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        band = cv2.morphologyEx(g_u8, cv2.MORPH_GRADIENT, kernel) > 0
        n_band = int(np.count_nonzero(band))
        accuracies.append(int(np.count_nonzero(correct & band)) / n_band)
    return float(np.mean(accuracies))


# --------------------------------------------------------------------------- #
# boundary F-measure
# --------------------------------------------------------------------------- #
def _contour(mask: np.ndarray) -> np.ndarray:
    """1-pixel inner contour: mask XOR its 3x3 erosion (image border = boundary)."""
    return _boundary_band(mask, 1)


def _default_tolerance(shape: tuple[int, int]) -> int:
    return max(1, int(round(0.008 * math.hypot(shape[0], shape[1]))))


def boundary_f(pred, gt, *, tolerance: float | None = None) -> float:
    """Boundary F-measure (DAVIS-style contour accuracy F).

    The boundary of a mask is its 1-pixel inner contour (the mask minus its
    3x3 erosion, with the image border treated as boundary). A predicted
    boundary pixel is a true positive if a ground-truth boundary pixel lies
    within Euclidean distance `tolerance`; precision is the fraction of such
    predicted pixels, recall the symmetric fraction of ground-truth boundary
    pixels, and ``F = 2 P R / (P + R)``.

    Parameters
    ----------
    pred : array_like, shape (H, W)
        Predicted mask (see the module docstring for the binarisation rule).
    gt : array_like, shape (H, W)
        Ground-truth mask.
    tolerance : float, optional
        Matching distance in pixels. Default ``max(1, round(0.008 * diag))``
        with ``diag = sqrt(H**2 + W**2)``, the relative threshold of the DAVIS
        benchmark. 0 means exact pixel matches only.

    Returns
    -------
    float
        F in [0, 1]; 1.0 if both boundaries are empty (both masks empty), 0.0 if
        exactly one is empty.

    Raises
    ------
    ValueError
        On invalid masks (see :func:`iou`) or a negative / non-finite
        `tolerance`.

    Notes
    -----
    Differences from the DAVIS code: DAVIS uses ``ceil`` for the default
    tolerance and a one-sided boundary map that does not mark the frame edge.
    Treating the frame edge as boundary keeps a full mask from having an empty
    boundary, so an all-foreground prediction against an empty ground truth
    scores 0 rather than 1.
    """
    p, g = as_pair(pred, gt)
    if tolerance is None:
        tol = float(_default_tolerance(p.shape))
    else:
        tol = check_positive_real(tolerance, "tolerance", allow_zero=True)
    pb, gb = _contour(p), _contour(g)
    n_pred, n_gt = int(np.count_nonzero(pb)), int(np.count_nonzero(gb))
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0
    # distance from every pixel to the nearest boundary pixel of the other mask
    dist_to_gt = ndimage.distance_transform_edt(~gb)
    dist_to_pred = ndimage.distance_transform_edt(~pb)
    precision = np.count_nonzero(dist_to_gt[pb] <= tol) / n_pred
    recall = np.count_nonzero(dist_to_pred[gb] <= tol) / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2.0 * precision * recall / (precision + recall))


# --------------------------------------------------------------------------- #
# all at once
# --------------------------------------------------------------------------- #
def evaluate(pred, gt, *, dilation_ratio: float = 0.02, tolerance: float | None = None) -> dict:
    """Compute every metric of this module for one image.

    Parameters
    ----------
    pred : array_like, shape (H, W)
        Predicted mask (see the module docstring for the binarisation rule).
    gt : array_like, shape (H, W)
        Ground-truth mask.
    dilation_ratio : float, optional
        Passed to :func:`boundary_iou`.
    tolerance : float, optional
        Passed to :func:`boundary_f`.

    Returns
    -------
    dict
        ``"iou"``, ``"biou"``, ``"mba"``, ``"bf"`` (floats in [0, 1]) and the
        raw pixel counts ``"intersection"`` and ``"union"`` (ints), so that a
        caller can pool IoU over a dataset as
        ``sum(intersection) / sum(union)``.

    Raises
    ------
    ValueError
        On invalid masks or parameters (see the individual metrics).
    """
    p, g = as_pair(pred, gt)
    inter, union = _inter_union(p, g)
    return {
        "iou": safe_ratio(inter, union),
        "biou": boundary_iou(p, g, dilation_ratio=dilation_ratio),
        "mba": mba(p, g),
        "bf": boundary_f(p, g, tolerance=tolerance),
        "intersection": inter,
        "union": union,
    }
