"""CascadePSP-style boundary degradation, the coarse masks SegRefiner trains on.

``perturb_seg``
    Random rectangle-local dilations/erosions until the IoU with a reference falls
    below ``iou_target``.
``modify_boundary``
    A coarse polygonisation of every contour followed by ``perturb_seg`` against the
    polygon mask (SegRefiner's LR and HR training masks).
``modify_boundary_filled``
    The same after :func:`fill_holes` (SegRefiner's "coarse_expand" masks, which
    simulate coarse masks that miss holes and thin interior structures).

Conventions as in :mod:`.synthesis`: masks are 2-D bool or ``{0, v}`` arrays, inputs
are never modified, outputs are new bool arrays, all randomness comes from ``rng``.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from ..io.masks import as_binary, bounding_box
from ._masks import check_rng, check_unit, padded
from ._perturb_core import perturb_core

__all__ = ["fill_holes", "modify_boundary", "modify_boundary_filled", "perturb_seg"]


# ----------------------------------------------------------------------- perturb_seg


def perturb_seg(
    mask: Any,
    *,
    rng: np.random.Generator,
    iou_target: float = 0.8,
    reference: Any = None,
    max_rounds: int = 250,
) -> np.ndarray:
    """Randomly dilate/erode rectangles of a mask until its IoU with a reference is low.

    CascadePSP's ``perturb_seg`` (the exact algorithm: ``_perturb_core._perturb_inplace``):
    up to ``max_rounds`` rounds of 4 rectangle-local dilate/erode operations with random
    structuring elements (size U{3..9}: rectangle, ellipse, flat ellipse, tall ellipse),
    each preceded with probability 0.25 by setting the rectangle's centre pixel to 0 or 1
    (which seeds holes and blobs). The result equals that of the whole-image algorithm
    for the same random draws; the work is restricted to the neighbourhood of the
    foreground.

    Parameters
    ----------
    mask : array_like
        2-D binary mask (bool, or ``{0, v}`` for one ``v > 0``); not modified.
    rng : numpy.random.Generator
        Source of every random draw.
    iou_target : float, optional
        Stop after the first round with IoU(result, reference) < ``iou_target``; in (0, 1].
    reference : array_like, optional
        Binary mask of the mask's shape to measure the IoU against (default: ``mask``).
    max_rounds : int, optional
        At most this many rounds (>= 0).

    Returns
    -------
    numpy.ndarray
        A new bool array of the mask's shape. Images with a side <= 2 are returned
        unchanged; an empty mask gives an empty mask (the original could grow blobs from
        seed pixels).
    """
    m = as_binary(mask, single=True)
    rng = check_rng(rng)
    iou_target = check_unit(iou_target, "iou_target")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, (int, np.integer)) or max_rounds < 0:
        raise ValueError(f"max_rounds must be a non-negative integer, got {max_rounds!r}")
    if reference is None:
        ref = m
    else:
        ref = as_binary(reference, name="reference", single=True)
        if ref.shape != m.shape:
            raise ValueError(f"reference must have the mask's shape {m.shape}, got {ref.shape}")
    if not m.any():
        return np.zeros(m.shape, dtype=bool)
    seg = m.astype(np.uint8)
    perturb_core(seg, ref.astype(np.uint8), rng, iou_target, int(max_rounds))
    return seg.view(bool)


# ------------------------------------------------------------------- modify_boundary


def _polygonise(
    m: np.ndarray,
    window: tuple[int, int, int, int],
    rng: np.random.Generator,
    regional_sample_rate: float,
    sample_rate: float,
) -> np.ndarray | None:
    """Coarse polygons of all contours drawn filled into a full-size uint8 0/1 image.

    Returns None when no contour survives (then the caller falls back to the input).
    """
    wy0, wy1, wx0, wx1 = window
    crop = np.ascontiguousarray(m[wy0:wy1, wx0:wx1], dtype=np.uint8)
    contours, _ = cv2.findContours(crop, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    polygons = []
    for contour in contours:
        n = contour.shape[0]
        if n < 10:
            continue
        pts = contour.reshape(n, 2)
        # Cut out one contiguous run of `r` vertices. The start is drawn uniformly among
        # the 10 % of candidate starts (0 .. n-r-1, no wrap-around) whose cut endpoints
        # pts[i], pts[i + r] are closest (ties by index), i.e. cuts across narrow parts.
        r = int(n * regional_sample_rate)
        n_cand = n - r
        p64 = pts.astype(np.int64)
        d2 = ((p64[:n_cand] - p64[r : r + n_cand]) ** 2).sum(axis=1)
        order = np.argsort(d2, kind="stable")
        start = int(order[rng.integers(math.ceil(0.1 * n_cand))])
        kept = np.concatenate([pts[:start], pts[start + r :]], axis=0)
        # Keep a random `sample_rate` fraction of the remaining vertices, in order.
        m_left = kept.shape[0]
        k = int(m_left * sample_rate)
        if k == 0:
            continue
        idx = np.sort(rng.choice(m_left, size=k, replace=False))
        polygons.append(np.ascontiguousarray(kept[idx].reshape(k, 1, 2), dtype=np.int32))
    if not polygons:
        return None
    out = np.zeros(m.shape, dtype=np.uint8)
    # All polygons in one call: OpenCV fills them together with an even-odd rule, so the
    # polygonised hole contours stay holes.
    cv2.drawContours(out[wy0:wy1, wx0:wx1], polygons, -1, 1, thickness=-1)
    return out


def modify_boundary(
    mask: Any,
    *,
    rng: np.random.Generator,
    iou_target: float = 0.8,
    regional_sample_rate: float = 0.1,
    sample_rate: float = 0.1,
) -> np.ndarray:
    """CascadePSP / SegRefiner coarse-mask synthesis.

    1. Contours of the mask (``RETR_LIST``, every boundary pixel); contours with fewer
       than 10 points are ignored.
    2. Per contour: remove one contiguous run of ``int(n * regional_sample_rate)``
       vertices, starting at a start drawn uniformly among the 10 % of candidate starts
       whose cut endpoints are closest together; then keep a random ``sample_rate``
       fraction of the remaining vertices in order (coarse polygonisation; a contour left
       with no vertex is dropped). No radial vertex jitter (``move_rate = 0``).
    3. Draw all polygons filled (even-odd, holes survive); if no contour survived use the
       input mask instead.
    4. :func:`perturb_seg` until the IoU with the polygon mask (not the input) is below
       ``iou_target`` (at most 250 rounds). The IoU to the input is therefore usually a
       little below ``iou_target``; for tiny objects (a few dozen boundary pixels) the
       polygon can be a triangle or a segment and the IoU much lower.

    Speed: contours are traced on the object's bounding box plus one pixel (identical
    contours), and the perturbation is applied only around the tracked foreground
    regions while the rectangles are still drawn over the whole image, which gives
    exactly the whole-image algorithm's result for the same random draws (see
    :func:`perturb_seg`). Cost therefore scales with the object, not the image: a mean
    of about 1-7 ms per call (95th percentile < 20 ms) for 256 x 256 object crops of
    DAVIS / DSB2018 masks on one CPU thread (``benchmarks/bench_synthesis.py``).

    Parameters
    ----------
    mask : array_like
        2-D binary mask (bool, or ``{0, v}`` for one ``v > 0``); not modified.
    rng : numpy.random.Generator
        Source of every random draw.
    iou_target : float, optional
        Perturbation target, in (0, 1].
    regional_sample_rate : float, optional
        Fraction of each contour's vertices cut out as one run, in [0, 0.9].
    sample_rate : float, optional
        Fraction of the remaining vertices kept, in (0, 1].

    Returns
    -------
    numpy.ndarray
        A new bool array of the mask's shape: empty for an empty mask, a copy for a
        mask without background.
    """
    m = as_binary(mask, single=True)
    rng = check_rng(rng)
    iou_target = check_unit(iou_target, "iou_target")
    regional_sample_rate = check_unit(regional_sample_rate, "regional_sample_rate", low_open=False, high=0.9)
    sample_rate = check_unit(sample_rate, "sample_rate")
    box = bounding_box(m)
    if box is None:
        return np.zeros(m.shape, dtype=bool)
    if box == (0, m.shape[0], 0, m.shape[1]) and m.all():
        return m.copy()
    window = padded(box, 1, m.shape)
    poly = _polygonise(m, window, rng, regional_sample_rate, sample_rate)
    if poly is None:
        poly = m.astype(np.uint8)
    seg = poly.copy()
    perturb_core(seg, poly, rng, iou_target, 250, window=window)
    return seg.view(bool)


def fill_holes(mask: Any) -> np.ndarray:
    """Fill every hole of a mask: its external contours drawn filled.

    Background regions enclosed by foreground (8-connected boundaries, as OpenCV traces
    them) become foreground; the outline itself is unchanged.

    Parameters
    ----------
    mask : array_like
        2-D binary mask (bool, or ``{0, v}`` for one ``v > 0``); not modified.

    Returns
    -------
    numpy.ndarray
        A new bool array of the mask's shape: the input united with its filled holes.
    """
    m = as_binary(mask, single=True)
    out = m.copy()
    box = bounding_box(m)
    if box is None:
        return out
    wy0, wy1, wx0, wx1 = padded(box, 1, m.shape)
    crop = np.ascontiguousarray(m[wy0:wy1, wx0:wx1], dtype=np.uint8)
    contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(crop)
    cv2.drawContours(filled, contours, -1, 1, thickness=-1)
    out[wy0:wy1, wx0:wx1] |= filled.view(bool)
    return out


def modify_boundary_filled(mask: Any, *, rng: np.random.Generator, **options: Any) -> np.ndarray:
    """:func:`modify_boundary` of :func:`fill_holes` of the mask (SegRefiner's "coarse_expand").

    Parameters
    ----------
    mask : array_like
        2-D binary mask (bool, or ``{0, v}`` for one ``v > 0``); not modified.
    rng : numpy.random.Generator
        Source of every random draw.
    **options
        ``iou_target``, ``regional_sample_rate``, ``sample_rate``: as for
        :func:`modify_boundary`.

    Returns
    -------
    numpy.ndarray
        A new bool array of the mask's shape.
    """
    return modify_boundary(fill_holes(mask), rng=rng, **options)
