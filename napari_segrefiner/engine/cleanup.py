"""Clean refined objects: no stray specks, no pinholes, no piece far from the coarse object.

A diffusion refiner decides pixel by pixel, so its output can hold a few isolated pixels
away from the object, an object split into a main body and crumbs, or one-pixel holes.
Annotators then have to erase them by hand. Per object, :func:`clean_labels`

1. keeps the connected pieces (8-connectivity) that overlap the object's coarse mask, and
   drops the others (a piece with no support in the input is not a refinement of it);
2. drops kept pieces smaller than ``speck`` x the object's area (at least 4 px, at most
   ``cap`` px), unless that would drop the whole object;
3. fills holes up to ``hole`` x the object's area (at least 9 px, at most ``cap`` px)
   with the object's label (only pixels that belong to no other object).

The caps keep the rules to specks and pinholes on large objects: a person's detached hand
or the gap between an arm and the body is real, however small a share of the object.

Objects that were not refined (not in ``ids``) are never touched. Pure numpy/scipy.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage as ndi

from ..io.masks import label_table

__all__ = ["clean_labels", "overlapping_pieces"]

_EIGHT = np.ones((3, 3), dtype=bool)


def overlapping_pieces(fg: np.ndarray, support: np.ndarray) -> np.ndarray:
    """The 8-connected pieces of bool ``fg`` that share a pixel with bool ``support``."""
    pieces, n = ndi.label(fg, structure=_EIGHT)
    if n == 0:
        return fg.copy()
    keep = np.zeros(n + 1, dtype=bool)
    keep[pieces[support]] = True
    keep[0] = False
    return keep[pieces]


def _boxes(refined: np.ndarray, coarse: np.ndarray, ids, margin: int = 1) -> dict[int, tuple[slice, slice]]:
    """Per label of ``ids``: the box of its refined and coarse pixels, grown by ``margin`` (slices).

    From one table of each frame (linear in the pixels), not one full-frame comparison per label.
    """
    h, w = refined.shape
    tables = [label_table(refined).boxes(), label_table(coarse).boxes()]
    out = {}
    for lab in ids:
        found = [t[int(lab)] for t in tables if int(lab) in t]
        if not found:
            continue
        y0, y1 = min(b[0] for b in found), max(b[1] for b in found)
        x0, x1 = min(b[2] for b in found), max(b[3] for b in found)
        out[int(lab)] = (
            slice(max(y0 - margin, 0), min(y1 + margin, h)),
            slice(max(x0 - margin, 0), min(x1 + margin, w)),
        )
    return out


def _clean_one(obj: np.ndarray, support: np.ndarray, speck: float, hole: float, cap: int) -> np.ndarray:
    """Clean one object's bool crop given its coarse-mask crop; returns a new bool crop."""
    pieces, n = ndi.label(obj, structure=_EIGHT)
    if n == 0:
        return obj.copy()
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)
    touched = np.bincount(pieces[support].ravel(), minlength=n + 1) > 0
    touched[0] = False
    if not touched.any():
        touched[int(np.argmax(sizes[1:])) + 1] = True  # nothing overlaps: keep the main body
    area = int(sizes[touched].sum())
    big = sizes >= max(4.0, min(speck * area, cap))
    keep = touched & big
    if not keep.any():
        keep = touched
    out = keep[pieces]
    if hole > 0:
        holes, m = ndi.label(ndi.binary_fill_holes(out) & ~out)
        if m:
            hole_sizes = np.bincount(holes.ravel(), minlength=m + 1)
            small = hole_sizes <= max(9.0, min(hole * area, cap))
            small[0] = False
            out = out | small[holes]
    return out


def clean_labels(
    refined: np.ndarray,
    coarse: np.ndarray,
    ids: Iterable[int],
    *,
    speck: float = 0.02,
    hole: float = 0.02,
    cap: int = 64,
) -> np.ndarray:
    """Clean every refined object of a labels frame (see the module docstring).

    Parameters
    ----------
    refined : ndarray of shape (H, W), integer
        The refined labels frame.
    coarse : ndarray of shape (H, W), integer
        The coarse labels the refinement started from.
    ids : iterable of int
        The labels that were refined (others are left exactly as they are).
    speck : float
        Kept pieces smaller than this fraction of the object's area (4 to ``cap`` px) are
        dropped.
    hole : float
        Holes up to this fraction of the object's area (9 to ``cap`` px) are filled (0
        turns it off).
    cap : int
        The largest speck dropped and the largest hole filled, in pixels.

    Returns
    -------
    ndarray
        A new array of ``refined``'s shape and dtype.

    Raises
    ------
    ValueError
        If the shapes differ or a fraction is outside [0, 1].
    """
    refined = np.asarray(refined)
    coarse = np.asarray(coarse)
    if refined.shape != coarse.shape or refined.ndim != 2:
        raise ValueError(f"refined {refined.shape} and coarse {coarse.shape} must be 2-D of the same shape")
    for name, value in (("speck", speck), ("hole", hole)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1], got {value}")
    out = refined.copy()
    for lab, box in _boxes(refined, coarse, ids).items():
        obj = refined[box] == lab
        cleaned = _clean_one(obj, coarse[box] == lab, float(speck), float(hole), int(cap))
        region = out[box]
        region[obj & ~cleaned] = 0
        region[cleaned & (region == 0)] = lab
    return out
