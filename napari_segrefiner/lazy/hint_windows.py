"""Annotator hints on the lazy path: the same owners and maps as in memory, from a window.

Hints are sparse strokes. Per plane, the box of the hinted pixels is found chunk by chunk,
grown by the furthest any object's crop reaches past the object (``reach``) and read with
the coarse labels into memory; :func:`~.hints.owners` then decides which object each
hint-1 pixel belongs to there. That is the in-memory decision: a hint-1 pixel outside
every object belongs to the nearest object if it lies in that object's crop, and an object
whose crop holds the pixel is within ``reach`` of it, so the nearest object is inside the
window. Batches and output chunks then take their boxes' share of the window.

Pure numpy (plus dask for the scan).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..annotate.hints import check_hints, owners

__all__ = ["HintWindow", "hint_bounds", "merge_bounds", "plan_hints"]

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class HintWindow:
    """The hints of one plane: values and owners over ``box`` (y0, y1, x0, x1); zero elsewhere."""

    box: Box
    values: np.ndarray  # uint8
    owner: np.ndarray  # int64

    def over(self, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """``(values, owner)`` over ``box`` of the plane (zeros outside the window)."""
        y0, y1, x0, x1 = box
        wy0, wy1, wx0, wx1 = self.box
        values = np.zeros((y1 - y0, x1 - x0), np.uint8)
        owner = np.zeros((y1 - y0, x1 - x0), np.int64)
        iy0, iy1, ix0, ix1 = max(y0, wy0), min(y1, wy1), max(x0, wx0), min(x1, wx1)
        if iy0 < iy1 and ix0 < ix1:
            dst = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
            src = (slice(iy0 - wy0, iy1 - wy0), slice(ix0 - wx0, ix1 - wx0))
            values[dst] = self.values[src]
            owner[dst] = self.owner[src]
        return values, owner


def hint_bounds(block: np.ndarray, offset: tuple[int, ...]) -> dict[tuple[int, ...], Box]:
    """Box of the non-zero hints per plane of an nD block (planes = the last two axes)."""
    arr = np.asarray(block)
    lead = arr.ndim - 2
    out = {}
    for idx in np.ndindex(*arr.shape[:lead]):
        rows, cols = np.nonzero(arr[idx])
        if rows.size:
            oy, ox = offset[lead], offset[lead + 1]
            out[tuple(int(o + i) for o, i in zip(offset[:lead], idx))] = (
                oy + int(rows.min()),
                oy + int(rows.max()) + 1,
                ox + int(cols.min()),
                ox + int(cols.max()) + 1,
            )
    return out


def merge_bounds(parts: list[dict]) -> dict[tuple[int, ...], Box]:
    """Union of per-block hint boxes, per plane."""
    out: dict[tuple[int, ...], Box] = {}
    for part in parts:
        for pos, b in part.items():
            a = out.get(pos)
            out[pos] = b if a is None else (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))
    return out


def plan_hints(hints, mask, bounds: dict, boxes_of: dict, reach: int, shape: tuple[int, int]) -> dict:
    """Plane -> :class:`HintWindow` for every plane that holds hints.

    Parameters
    ----------
    hints, mask : array-like (numpy, zarr or dask) of one shape
        Hints (0 free, 1 object, 2 background) and coarse labels.
    bounds : dict
        Plane -> box of its hinted pixels (:func:`hint_bounds`, merged).
    boxes_of : dict
        Plane -> ``{label: crop box}`` of every object of the plane.
    reach : int
        How far any crop reaches past its object (pixels).

    Raises
    ------
    ValueError
        As :func:`~.hints.check_hints` and :func:`~.hints.owners` (bad values, an object
        hint far from every object).
    """
    from ..io.masks import as_labels

    h, w = shape
    out = {}
    for pos, (y0, y1, x0, x1) in bounds.items():
        win = (max(y0 - reach, 0), min(y1 + reach, h), max(x0 - reach, 0), min(x1 + reach, w))
        sl = (*pos, slice(win[0], win[1]), slice(win[2], win[3]))
        values = check_hints(np.asarray(hints[sl]), shape=(win[1] - win[0], win[3] - win[2]))
        if values is None:
            continue
        labels = as_labels(np.asarray(mask[sl]), name="mask", ndim=None)
        local = {
            lab: (b[0] - win[0], b[1] - win[0], b[2] - win[2], b[3] - win[2])
            for lab, b in boxes_of.get(pos, {}).items()
        }
        try:
            owner = owners(labels, values, lambda v, local=local: local[int(v)])
        except ValueError as exc:  # name the place in the plane, not in the window
            raise ValueError(f"{exc} (window at y={win[0]}, x={win[2]})") from None
        out[pos] = HintWindow(win, values, owner)
    return out
