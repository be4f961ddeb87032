"""Coarse-mask synthesis for training (numpy + OpenCV only).

A refinement network is trained on (image, coarse mask) -> fine mask triples, where the
coarse mask is synthesised on the fly from the ground truth. This module provides the
degradations:

``modify_boundary``
    The CascadePSP-style degradation used by SegRefiner (LR and HR): a coarse
    polygonisation of every contour followed by ``perturb_seg``, random rectangle-local
    dilations/erosions until the IoU with the polygon mask falls below ``iou_target``.
``modify_boundary_filled``
    The same after filling all holes (SegRefiner's "coarse_expand" masks, which
    simulate coarse masks that miss holes and thin interior structures).
``lowres_mask``
    A deterministic "mask-head" coarse mask: the object's box is sampled down to a
    small grid (e.g. 28 x 28) and bilinearly back up, thresholded at 0.5.
``dilate_erode``
    A uniform +-k pixel boundary shift with a disk.
``make_coarse``
    Dispatcher over all kinds, including a ``"mixed"`` training mixture.

Conventions: masks are 2-D arrays that are bool or numeric with exactly the values
``{0, v}`` for one ``v > 0`` (0/1 and 0/255 both work); inputs are never modified;
outputs are new bool arrays of the input's shape; every random choice is drawn from the
explicit ``rng`` (a :class:`numpy.random.Generator`), never from a global RNG.

Edge cases (every kind): an empty mask gives an empty mask; a mask without background
(all foreground) is returned unchanged (as a copy): there is no boundary inside the
image to degrade, and the morphology treats the image border as neutral, so the
algorithms could not create background there anyway.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

__all__ = [
    "COARSE_KINDS",
    "mask_bbox",
    "CAMPAIGN_PROBABILITIES",
    "MIXED_PROBABILITIES",
    "lowres_jitter",
    "near_perfect",
    "shift_mask",
    "dilate_erode",
    "fill_holes",
    "lowres_mask",
    "make_coarse",
    "modify_boundary",
    "modify_boundary_filled",
    "perturb_seg",
]

COARSE_KINDS = ("cascadepsp", "filled", "lowres", "dilate", "erode", "nearperfect", "lowres-jitter", "mixed", "campaign")

#: Probabilities of the concrete kinds chosen by ``kind="mixed"`` (they sum to 1).
MIXED_PROBABILITIES = {
    "cascadepsp": 0.60,
    "filled": 0.15,
    "lowres": 0.10,
    "dilate": 0.075,
    "erode": 0.075,
}

#: The segrefiner-lite v2 training mixture (``kind="campaign"``): a sizeable share of
#: near-perfect masks whose target is "keep it", segmenter-like blocky masks, and the
#: CascadePSP-style perturbations.
CAMPAIGN_PROBABILITIES = {
    "cascadepsp": 0.35,
    "filled": 0.10,
    "nearperfect": 0.30,
    "lowres-jitter": 0.15,
    "dilate": 0.05,
    "erode": 0.05,
}

# perturb_seg's random structuring elements: size s ~ U{3..9}, shape one of four equally
# likely ones. Index = (s - 3) * 4 + shape.
_MIN_SE, _MAX_SE = 3, 9
_N_SIZES = _MAX_SE - _MIN_SE + 1


def _build_kernels() -> list[np.ndarray]:
    kernels = []
    for s in range(_MIN_SE, _MAX_SE + 1):
        # OpenCV sizes are (width, height).
        kernels.append(cv2.getStructuringElement(cv2.MORPH_RECT, (s, s)))
        kernels.append(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (s, s)))
        kernels.append(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (s, s // 2)))
        kernels.append(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (s // 2, s)))
    return kernels


_KERNELS = _build_kernels()
# Largest distance (per axis) one dilation/erosion can reach: 9 // 2.
_REACH = _MAX_SE // 2
# Two foreground regions closer than 2 * _REACH (Chebyshev) can interact through one
# operation; regions are tracked separately only when they are farther apart than this.
_SEPARATION = 2 * _REACH + 2


# --------------------------------------------------------------------------- validation


def _as_bool(mask: Any, name: str = "mask") -> np.ndarray:
    """Validate a 2-D binary mask and return it as bool (a new array unless already bool)."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be bool or numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name} must not contain NaN or infinity")
    vmax = arr.max()
    if arr.min() < 0 or not np.all((arr == 0) | (arr == vmax)):
        raise ValueError(
            f"{name} must be binary: bool, or values {{0, v}} for one v > 0 (e.g. 0/1, 0/255)"
        )
    return arr != 0


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), "
            f"got {type(rng).__name__}"
        )
    return rng


def _check_unit(value: Any, name: str, *, low_open: bool = True, high: float = 1.0) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    ok = (v > 0.0 if low_open else v >= 0.0) and v <= high and math.isfinite(v)
    if not ok:
        interval = f"{'(' if low_open else '['}0, {high}]"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return v


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box (y0, y1, x0, x1), half-open, of the non-zero pixels; None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _padded(box: tuple[int, int, int, int], pad: int, shape: tuple[int, int]):
    y0, y1, x0, x1 = box
    return max(0, y0 - pad), min(shape[0], y1 + pad), max(0, x0 - pad), min(shape[1], x1 + pad)


# ----------------------------------------------------------------------- perturb_seg


def _boxes_close(a: list[int], b: list[int]) -> bool:
    # Chebyshev gap between the nearest pixels of two half-open boxes <= _SEPARATION.
    return (
        b[0] - a[1] < _SEPARATION
        and a[0] - b[1] < _SEPARATION
        and b[2] - a[3] < _SEPARATION
        and a[2] - b[3] < _SEPARATION
    )


def _merge_boxes(boxes: list[list[int]]) -> list[list[int]]:
    changed = True
    while changed and len(boxes) > 1:
        changed = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if _boxes_close(a, b):
                    boxes[i] = [min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    changed = True
                    break
            if changed:
                break
    return boxes


def _perturb_inplace(
    seg: np.ndarray,
    ref_box: tuple[int, int, int, int] | None,
    ref_sub: np.ndarray | None,
    boxes: list[list[int]],
    rng: np.random.Generator,
    iou_target: float,
    max_rounds: int,
) -> None:
    """CascadePSP's perturb_seg on a uint8 0/1 image, modified in place.

    Algorithm (per round, 4 operations, at most ``max_rounds`` rounds): a rectangle with
    x0 ~ U{0..W-1}, x1 ~ U{x0+1..W} (same for y) over the WHOLE image; with probability
    0.25 its centre pixel is set to 0 or 1 (equally likely); then with probability 0.5 a
    dilation, else an erosion, of the rectangle's content only (the rectangle border is
    neutral) with a random structuring element. After each round stop once
    IoU(seg, reference) < iou_target, with IoU = (I + 1e-6) / (U + 1e-6).

    Speed: instead of filtering whole rectangles, the foreground is tracked as a few
    mutually distant boxes ("regions"; the object, and blobs grown from far seed pixels),
    and each operation is applied only to (rectangle) x (region expanded by the kernel
    reach). Pixels farther than the kernel reach from any foreground are background and
    stay background under both operations, and regions farther apart than twice the
    reach cannot interact, so this gives exactly the same result as filtering whole
    rectangles (tests compare against a whole-image implementation), at a cost that
    scales with the object, not with the image.
    """
    h, w = seg.shape
    ref_area = int(cv2.countNonZero(ref_sub)) if ref_sub is not None else 0
    kernels = _KERNELS
    reach = _REACH
    for _ in range(max_rounds):
        draws = rng.random((4, 9)).tolist()
        for a0, a1, a2, a3, a4, a5, a6, a7, a8 in draws:
            lx = int(a0 * w)
            ly = int(a1 * h)
            rx = lx + 1 + int(a2 * (w - lx))
            ry = ly + 1 + int(a3 * (h - ly))
            if a4 < 0.25:
                cy = (ly + ry) // 2
                cx = (lx + rx) // 2
                if a5 < 0.5:
                    seg[cy, cx] = 0  # outside every region this pixel is 0 already
                else:
                    seg[cy, cx] = 1
                    boxes.append([cy, cy + 1, cx, cx + 1])
                    boxes = _merge_boxes(boxes)
            dilate = a6 < 0.5
            kernel = kernels[min(int(a7 * _N_SIZES), _N_SIZES - 1) * 4 + min(int(a8 * 4), 3)]
            grown = False
            new_boxes = []
            for box in boxes:
                by0, by1, bx0, bx1 = box
                # No foreground of this region inside the rectangle: nothing can change.
                if ly >= by1 or ry <= by0 or lx >= bx1 or rx <= bx0:
                    new_boxes.append(box)
                    continue
                y0 = max(ly, by0 - reach)
                y1 = min(ry, by1 + reach)
                x0 = max(lx, bx0 - reach)
                x1 = min(rx, bx1 + reach)
                sub = seg[y0:y1, x0:x1]
                if dilate:
                    seg[y0:y1, x0:x1] = cv2.dilate(sub, kernel)
                    if y0 < by0 or y1 > by1 or x0 < bx0 or x1 > bx1:
                        box = [min(y0, by0), max(y1, by1), min(x0, bx0), max(x1, bx1)]
                        grown = True
                else:
                    seg[y0:y1, x0:x1] = cv2.erode(sub, kernel)
                new_boxes.append(box)
            boxes = _merge_boxes(new_boxes) if grown else new_boxes

        # Tighten the regions, drop empty ones, count the foreground, test the IoU.
        tight = []
        seg_area = 0
        for by0, by1, bx0, bx1 in boxes:
            sub = seg[by0:by1, bx0:bx1]
            n = int(cv2.countNonZero(sub))
            if n == 0:
                continue
            seg_area += n
            x, y, bw, bh = cv2.boundingRect(sub)
            tight.append([by0 + y, by0 + y + bh, bx0 + x, bx0 + x + bw])
        boxes = tight
        if ref_sub is not None:
            ry0, ry1, rx0, rx1 = ref_box
            inter = int(cv2.countNonZero(cv2.bitwise_and(seg[ry0:ry1, rx0:rx1], ref_sub)))
        else:
            inter = 0
        union = ref_area + seg_area - inter
        if (inter + 1e-6) / (union + 1e-6) < iou_target:
            break


def _perturb(
    seg: np.ndarray,
    reference: np.ndarray,
    rng: np.random.Generator,
    iou_target: float,
    max_rounds: int,
    window: tuple[int, int, int, int] | None = None,
) -> None:
    """Run perturb_seg on the uint8 0/1 ``seg`` in place against uint8 0/1 ``reference``.

    ``window`` optionally bounds both foregrounds (saves whole-image scans).
    """
    h, w = seg.shape
    if h <= 2 or w <= 2:  # as in CascadePSP: too small to perturb
        return
    if window is None:
        window = (0, h, 0, w)
    wy0, wy1, wx0, wx1 = window
    seg_box = mask_bbox(seg[wy0:wy1, wx0:wx1])
    boxes = []
    if seg_box is not None:
        boxes.append([seg_box[0] + wy0, seg_box[1] + wy0, seg_box[2] + wx0, seg_box[3] + wx0])
    ref_box = mask_bbox(reference[wy0:wy1, wx0:wx1])
    ref_sub = None
    if ref_box is not None:
        ref_box = (ref_box[0] + wy0, ref_box[1] + wy0, ref_box[2] + wx0, ref_box[3] + wx0)
        ref_sub = np.ascontiguousarray(reference[ref_box[0] : ref_box[1], ref_box[2] : ref_box[3]])
    _perturb_inplace(seg, ref_box, ref_sub, boxes, rng, iou_target, max_rounds)


def perturb_seg(
    mask: Any,
    *,
    rng: np.random.Generator,
    iou_target: float = 0.8,
    reference: Any = None,
    max_rounds: int = 250,
) -> np.ndarray:
    """Randomly dilate/erode rectangles of ``mask`` until IoU(result, reference) < iou_target.

    CascadePSP's ``perturb_seg`` (see :func:`_perturb_inplace` for the exact algorithm):
    up to ``max_rounds`` rounds of 4 rectangle-local dilate/erode operations with random
    structuring elements (size U{3..9}: rectangle, ellipse, flat ellipse, tall ellipse),
    each preceded with probability 0.25 by setting the rectangle's centre pixel to 0 or 1
    (which seeds holes and blobs). ``reference`` defaults to ``mask``. The result equals
    that of the whole-image algorithm for the same random draws; the work is restricted
    to the neighbourhood of the foreground. Images with a side <= 2 are returned as is.
    An empty mask is returned empty (the original could grow blobs from seed pixels).
    """
    m = _as_bool(mask)
    rng = _check_rng(rng)
    iou_target = _check_unit(iou_target, "iou_target")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, (int, np.integer)) or max_rounds < 0:
        raise ValueError(f"max_rounds must be a non-negative integer, got {max_rounds!r}")
    if reference is None:
        ref = m
    else:
        ref = _as_bool(reference, "reference")
        if ref.shape != m.shape:
            raise ValueError(f"reference must have the mask's shape {m.shape}, got {ref.shape}")
    if not m.any():
        return np.zeros(m.shape, dtype=bool)
    seg = m.astype(np.uint8)
    _perturb(seg, ref.astype(np.uint8), rng, iou_target, int(max_rounds))
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

    Empty masks give empty masks, masks with no background are returned as a copy.
    """
    m = _as_bool(mask)
    rng = _check_rng(rng)
    iou_target = _check_unit(iou_target, "iou_target")
    regional_sample_rate = _check_unit(
        regional_sample_rate, "regional_sample_rate", low_open=False, high=0.9
    )
    sample_rate = _check_unit(sample_rate, "sample_rate")
    box = mask_bbox(m)
    if box is None:
        return np.zeros(m.shape, dtype=bool)
    if box == (0, m.shape[0], 0, m.shape[1]) and m.all():
        return m.copy()
    window = _padded(box, 1, m.shape)
    poly = _polygonise(m, window, rng, regional_sample_rate, sample_rate)
    if poly is None:
        poly = m.astype(np.uint8)
    seg = poly.copy()
    _perturb(seg, poly, rng, iou_target, 250, window=window)
    return seg.view(bool)


def fill_holes(mask: Any) -> np.ndarray:
    """Fill every hole: the external contours drawn filled (united with the input).

    Background regions enclosed by foreground (8-connected boundaries, as OpenCV traces
    them) become foreground; the outline itself is unchanged.
    """
    m = _as_bool(mask)
    out = m.copy()
    box = mask_bbox(m)
    if box is None:
        return out
    wy0, wy1, wx0, wx1 = _padded(box, 1, m.shape)
    crop = np.ascontiguousarray(m[wy0:wy1, wx0:wx1], dtype=np.uint8)
    contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(crop)
    cv2.drawContours(filled, contours, -1, 1, thickness=-1)
    out[wy0:wy1, wx0:wx1] |= filled.view(bool)
    return out


def modify_boundary_filled(
    mask: Any,
    *,
    rng: np.random.Generator,
    iou_target: float = 0.8,
    regional_sample_rate: float = 0.1,
    sample_rate: float = 0.1,
) -> np.ndarray:
    """:func:`modify_boundary` of :func:`fill_holes` of the mask (SegRefiner's "coarse_expand")."""
    return modify_boundary(
        fill_holes(mask),
        rng=rng,
        iou_target=iou_target,
        regional_sample_rate=regional_sample_rate,
        sample_rate=sample_rate,
    )


# ------------------------------------------------------------------------ the others


def lowres_mask(
    mask: Any,
    *,
    factor: float | None = None,
    size: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A deterministic low-resolution coarse mask, like a Mask R-CNN mask head's.

    The tight box of the foreground is area-averaged down to ``size`` x ``size`` (e.g.
    28) or, with ``factor``, to ``round(box_h / factor)`` x ``round(box_w / factor)``
    (each side at least ``min(3, box side)``), then bilinearly resized back up to the box
    and thresholded at >= 0.5. The result stays inside the box. If neither option is
    given ``size=28``; giving both is an error. ``rng`` is accepted for interface
    uniformity and ignored (the result is deterministic).
    """
    m = _as_bool(mask)
    if rng is not None:
        _check_rng(rng)
    if factor is not None and size is not None:
        raise ValueError("give either factor or size, not both")
    if factor is not None:
        try:
            f = float(factor)
        except (TypeError, ValueError):
            raise ValueError(f"factor must be a number >= 1, got {factor!r}") from None
        if not (math.isfinite(f) and f >= 1.0):
            raise ValueError(f"factor must be a number >= 1, got {factor!r}")
    else:
        if size is None:
            size = 28
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
    box = mask_bbox(m)
    if box is None:
        return np.zeros(m.shape, dtype=bool)
    y0, y1, x0, x1 = box
    bh, bw = y1 - y0, x1 - x0
    if factor is not None:
        lh = max(min(3, bh), int(round(bh / f)))
        lw = max(min(3, bw), int(round(bw / f)))
    else:
        lh = lw = int(size)
    crop = m[y0:y1, x0:x1].astype(np.float32)
    small = cv2.resize(crop, (lw, lh), interpolation=cv2.INTER_AREA)
    back = cv2.resize(small, (bw, bh), interpolation=cv2.INTER_LINEAR)
    out = np.zeros(m.shape, dtype=bool)
    out[y0:y1, x0:x1] = back.reshape(bh, bw) >= 0.5
    return out


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return ((r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius).astype(np.uint8)


def dilate_erode(mask: Any, *, k: int) -> np.ndarray:
    """Shift the boundary by ``k`` pixels: dilate (k > 0) or erode (k < 0) with a disk.

    The disk of radius ``|k|`` is {(dy, dx): dy^2 + dx^2 <= k^2} (radius 1 is the
    3 x 3 cross). ``k = 0`` returns a copy. The image border is neutral: erosion does not
    eat into an object from outside the image.
    """
    m = _as_bool(mask)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, got {k!r}")
    k = int(k)
    box = mask_bbox(m)
    if k == 0 or box is None:
        return m.copy()
    wy0, wy1, wx0, wx1 = _padded(box, abs(k) + 1, m.shape)
    crop = np.ascontiguousarray(m[wy0:wy1, wx0:wx1], dtype=np.uint8)
    op = cv2.dilate if k > 0 else cv2.erode
    out = np.zeros(m.shape, dtype=bool)
    out[wy0:wy1, wx0:wx1] = op(crop, _disk(abs(k))).view(bool)
    return out


def shift_mask(mask: Any, *, dy: int, dx: int) -> np.ndarray:
    """Translate a mask by ``(dy, dx)`` pixels; what leaves the frame is lost, what enters is 0."""
    m = _as_bool(mask)
    out = np.zeros_like(m)
    h, w = m.shape
    dy, dx = int(dy), int(dx)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = m[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    return out


def _random_shift(m: np.ndarray, rng: np.random.Generator, low: int, high: int) -> np.ndarray:
    """Shift by a length ~ U{low..high} in a random direction (rounded to whole pixels)."""
    r = int(rng.integers(low, high + 1))
    if r == 0:
        return m.copy()
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    return shift_mask(m, dy=int(round(r * math.sin(angle))), dx=int(round(r * math.cos(angle))))


def near_perfect(mask: Any, *, rng: np.random.Generator) -> np.ndarray:
    """An already-good coarse mask: the refiner's right answer is to keep it.

    One of, equally likely: the ground truth shifted by 0-2 px; a low-resolution mask of
    ``size`` ~ U{28..64} (a mask head's output); a 1-px dilation or erosion.
    """
    m = _as_bool(mask)
    rng = _check_rng(rng)
    choice = int(rng.integers(3))
    if choice == 0:
        return _random_shift(m, rng, 0, 2)
    if choice == 1:
        return lowres_mask(m, size=int(rng.integers(28, 65)))
    return dilate_erode(m, k=1 if rng.random() < 0.5 else -1)


def lowres_jitter(
    mask: Any, *, rng: np.random.Generator, size: tuple[int, int] = (8, 32), shift: tuple[int, int] = (1, 4)
) -> np.ndarray:
    """A segmenter-like blocky mask: the object's box at ``size`` px, upsampled, shifted.

    The tight box is area-averaged down so that its longer side is ~ U{size} px, resized
    back with nearest or bilinear interpolation (equally likely; thresholded at 0.5), then
    shifted by ~ U{shift} px in a random direction.
    """
    m = _as_bool(mask)
    rng = _check_rng(rng)
    box = mask_bbox(m)
    if box is None or m.all():
        return m.copy()
    y0, y1, x0, x1 = box
    bh, bw = y1 - y0, x1 - x0
    side = int(rng.integers(size[0], size[1] + 1))
    f = max(bh, bw) / side
    lh, lw = max(1, int(round(bh / f))), max(1, int(round(bw / f)))
    small = cv2.resize(m[y0:y1, x0:x1].astype(np.float32), (lw, lh), interpolation=cv2.INTER_AREA)
    interp = cv2.INTER_NEAREST if rng.random() < 0.5 else cv2.INTER_LINEAR
    back = cv2.resize(small, (bw, bh), interpolation=interp).reshape(bh, bw) >= 0.5
    out = np.zeros(m.shape, dtype=bool)
    out[y0:y1, x0:x1] = back
    return _random_shift(out, rng, shift[0], shift[1])


_CASCADE_OPTIONS = ("iou_target", "regional_sample_rate", "sample_rate")


def make_coarse(
    mask: Any, *, rng: np.random.Generator, kind: str = "cascadepsp", **options: Any
) -> np.ndarray:
    """Synthesise a coarse mask of the given kind.

    Kinds and their options:

    ``"cascadepsp"``, ``"filled"``
        :func:`modify_boundary` / :func:`modify_boundary_filled`; options
        ``iou_target``, ``regional_sample_rate``, ``sample_rate``.
    ``"lowres"``
        :func:`lowres_mask`; options ``factor`` or ``size`` (default ``size=28``).
    ``"dilate"``, ``"erode"``
        :func:`dilate_erode` by ``k`` pixels (option ``k`` >= 1; default drawn from
        U{1..6}).
    ``"mixed"``
        one kind per call, drawn with :data:`MIXED_PROBABILITIES` (60 % cascadepsp,
        15 % filled, 10 % lowres with ``factor`` ~ U(4, 16) relative to the object's box,
        7.5 % dilate and 7.5 % erode by k ~ U{1..6}); options: those of cascadepsp, passed
        on to the two boundary kinds.
    ``"nearperfect"``, ``"lowres-jitter"``
        :func:`near_perfect` / :func:`lowres_jitter`.
    ``"campaign"``
        like ``"mixed"`` with :data:`CAMPAIGN_PROBABILITIES` (the lite v2 training mix).
    """
    rng = _check_rng(rng)
    if kind not in COARSE_KINDS:
        raise ValueError(f"kind must be one of {COARSE_KINDS}, got {kind!r}")
    allowed = {
        "cascadepsp": _CASCADE_OPTIONS,
        "filled": _CASCADE_OPTIONS,
        "mixed": _CASCADE_OPTIONS,
        "lowres": ("factor", "size"),
        "dilate": ("k",),
        "erode": ("k",),
        "nearperfect": (),
        "lowres-jitter": ("size", "shift"),
        "campaign": _CASCADE_OPTIONS,
    }[kind]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for kind {kind!r}; allowed: {list(allowed)}")

    if kind in ("mixed", "campaign"):
        m = _as_bool(mask)  # validate before drawing
        table = MIXED_PROBABILITIES if kind == "mixed" else CAMPAIGN_PROBABILITIES
        names = list(table)
        kind = names[int(rng.choice(len(names), p=list(table.values())))]
        if kind in ("nearperfect", "lowres-jitter"):
            options = {}
        if kind == "lowres":
            return lowres_mask(m, factor=float(rng.uniform(4.0, 16.0)))
        if kind in ("dilate", "erode"):
            options = {}
        mask = m

    if kind == "cascadepsp":
        return modify_boundary(mask, rng=rng, **options)
    if kind == "filled":
        return modify_boundary_filled(mask, rng=rng, **options)
    if kind == "lowres":
        return lowres_mask(mask, **options)
    if kind == "nearperfect":
        return near_perfect(mask, rng=rng)
    if kind == "lowres-jitter":
        return lowres_jitter(mask, rng=rng, **options)
    # dilate / erode
    k = options.get("k")
    if k is None:
        k = int(rng.integers(1, 7))
    elif isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer for kind {kind!r}, got {k!r}")
    return dilate_erode(mask, k=int(k) if kind == "dilate" else -int(k))
