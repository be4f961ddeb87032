"""Coarse-mask synthesis for training (numpy + OpenCV only).

A refinement network is trained on (image, coarse mask) -> fine mask triples, where the
coarse mask is synthesised on the fly from the ground truth. This module holds the
simple degradations, the kind tables and the dispatcher; the CascadePSP-style boundary
degradation lives in :mod:`.perturb` (re-exported here):

``modify_boundary``, ``modify_boundary_filled``, ``perturb_seg``, ``fill_holes``
    See :mod:`.perturb`.
``lowres_mask``
    A deterministic "mask-head" coarse mask: the object's box is sampled down to a
    small grid (e.g. 28 x 28) and bilinearly back up, thresholded at 0.5.
``dilate_erode``
    A uniform +-k pixel boundary shift with a disk.
``shift_mask``
    A translation by whole pixels.
``near_perfect``, ``lowres_jitter``
    An already-good mask (keep it) and a segmenter-like blocky, shifted mask.
``make_coarse``
    Dispatcher over all kinds, including the ``"mixed"`` and ``"campaign"`` mixtures.

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

from ..io.masks import as_binary, bounding_box
from ._masks import check_rng, padded
from .perturb import fill_holes, modify_boundary, modify_boundary_filled, perturb_seg

__all__ = [
    "COARSE_KINDS",
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

COARSE_KINDS = (
    "cascadepsp",
    "filled",
    "lowres",
    "dilate",
    "erode",
    "nearperfect",
    "lowres-jitter",
    "mixed",
    "campaign",
)

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

_CASCADE_OPTIONS = ("iou_target", "regional_sample_rate", "sample_rate")
# The options make_coarse accepts per kind.
_KIND_OPTIONS = {
    "cascadepsp": _CASCADE_OPTIONS,
    "filled": _CASCADE_OPTIONS,
    "mixed": _CASCADE_OPTIONS,
    "lowres": ("factor", "size"),
    "dilate": ("k",),
    "erode": ("k",),
    "nearperfect": (),
    "lowres-jitter": ("size", "shift"),
    "campaign": _CASCADE_OPTIONS,
}


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
    and thresholded at >= 0.5. The result stays inside the box.

    Parameters
    ----------
    mask : array_like
        2-D binary mask (bool, or ``{0, v}`` for one ``v > 0``); not modified.
    factor : float, optional
        Downsampling factor (>= 1) relative to the box. Exclusive with ``size``.
    size : int, optional
        Side of the low-resolution grid (>= 1); ``28`` when neither option is given.
    rng : numpy.random.Generator, optional
        Accepted for interface uniformity and ignored (the result is deterministic).

    Returns
    -------
    numpy.ndarray
        A new bool array of the mask's shape.
    """
    m = as_binary(mask, single=True)
    if rng is not None:
        check_rng(rng)
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
    box = bounding_box(m)
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
    3 x 3 cross). The image border is neutral: erosion does not eat into an object from
    outside the image.

    Parameters
    ----------
    mask : array_like
        2-D binary mask (bool, or ``{0, v}`` for one ``v > 0``); not modified.
    k : int
        Signed boundary shift in pixels; ``0`` gives a copy.

    Returns
    -------
    numpy.ndarray
        A new bool array of the mask's shape.
    """
    m = as_binary(mask, single=True)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, got {k!r}")
    k = int(k)
    box = bounding_box(m)
    if k == 0 or box is None:
        return m.copy()
    wy0, wy1, wx0, wx1 = padded(box, abs(k) + 1, m.shape)
    crop = np.ascontiguousarray(m[wy0:wy1, wx0:wx1], dtype=np.uint8)
    op = cv2.dilate if k > 0 else cv2.erode
    out = np.zeros(m.shape, dtype=bool)
    out[wy0:wy1, wx0:wx1] = op(crop, _disk(abs(k))).view(bool)
    return out


def shift_mask(mask: Any, *, dy: int, dx: int) -> np.ndarray:
    """Translate a mask by whole pixels; what leaves the frame is lost, what enters is 0.

    Parameters
    ----------
    mask : array_like
        2-D binary mask (bool, or ``{0, v}`` for one ``v > 0``); not modified.
    dy, dx : int
        Shift down (rows) and right (columns); negative values shift up / left.

    Returns
    -------
    numpy.ndarray
        A new bool array of the mask's shape with ``out[y + dy, x + dx] = mask[y, x]``.
    """
    m = as_binary(mask, single=True)
    out = np.zeros_like(m)
    h, w = m.shape
    dy, dx = int(dy), int(dx)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src = m[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = src
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

    Parameters
    ----------
    mask : array_like
        2-D binary mask (bool, or ``{0, v}`` for one ``v > 0``); not modified.
    rng : numpy.random.Generator
        Source of every random draw.

    Returns
    -------
    numpy.ndarray
        A new bool array of the mask's shape (a copy for an all-foreground mask).
    """
    m = as_binary(mask, single=True)
    rng = check_rng(rng)
    if m.all():  # no background: nothing to degrade (a shift would cut a strip off)
        return m.copy()
    choice = int(rng.integers(3))
    if choice == 0:
        return _random_shift(m, rng, 0, 2)
    if choice == 1:
        return lowres_mask(m, size=int(rng.integers(28, 65)))
    return dilate_erode(m, k=1 if rng.random() < 0.5 else -1)


def lowres_jitter(
    mask: Any, *, rng: np.random.Generator, size: tuple[int, int] = (8, 32), shift: tuple[int, int] = (1, 4)
) -> np.ndarray:
    """A segmenter-like blocky mask: the object's box at a few pixels, upsampled, shifted.

    The tight box is area-averaged down so that its longer side is ~ U{size} px, resized
    back with nearest or bilinear interpolation (equally likely; thresholded at 0.5), then
    shifted by ~ U{shift} px in a random direction.

    Parameters
    ----------
    mask : array_like
        2-D binary mask (bool, or ``{0, v}`` for one ``v > 0``); not modified.
    rng : numpy.random.Generator
        Source of every random draw.
    size : (int, int), optional
        Inclusive range of the low-resolution longer side in pixels.
    shift : (int, int), optional
        Inclusive range of the shift length in pixels.

    Returns
    -------
    numpy.ndarray
        A new bool array of the mask's shape (a copy for empty or all-foreground masks).
    """
    m = as_binary(mask, single=True)
    rng = check_rng(rng)
    box = bounding_box(m)
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


def make_coarse(mask: Any, *, rng: np.random.Generator, kind: str = "cascadepsp", **options: Any) -> np.ndarray:
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
        :func:`near_perfect` / :func:`lowres_jitter` (options ``size``, ``shift``).
    ``"campaign"``
        like ``"mixed"`` with :data:`CAMPAIGN_PROBABILITIES` (the lite v2 training mix).

    Parameters
    ----------
    mask : array_like
        2-D binary mask (bool, or ``{0, v}`` for one ``v > 0``); not modified.
    rng : numpy.random.Generator
        Source of every random draw.
    kind : str, optional
        One of :data:`COARSE_KINDS`.
    **options
        The options of ``kind`` listed above; others raise ValueError.

    Returns
    -------
    numpy.ndarray
        A new bool array of the mask's shape.
    """
    rng = check_rng(rng)
    if kind not in COARSE_KINDS:
        raise ValueError(f"kind must be one of {COARSE_KINDS}, got {kind!r}")
    allowed = _KIND_OPTIONS[kind]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for kind {kind!r}; allowed: {list(allowed)}")

    if kind in ("mixed", "campaign"):
        mask = as_binary(mask, single=True)  # validate before drawing
        table = MIXED_PROBABILITIES if kind == "mixed" else CAMPAIGN_PROBABILITIES
        names = list(table)
        kind = names[int(rng.choice(len(names), p=list(table.values())))]
        if kind == "lowres":
            return lowres_mask(mask, factor=float(rng.uniform(4.0, 16.0)))
        if kind not in ("cascadepsp", "filled"):
            options = {}  # the cascadepsp options go to the two boundary kinds only

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
