"""Validation and box helpers shared by the coarse-mask synthesis modules.

Used by :mod:`.perturb` (the CascadePSP-style degradation) and :mod:`.synthesis` (the
simple kinds and the dispatcher); they live here so that neither imports the other's
internals and there is no import cycle.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["mask_bbox"]


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
    """Return ``rng`` if it is a :class:`numpy.random.Generator`, else raise TypeError."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), "
            f"got {type(rng).__name__}"
        )
    return rng


def _check_unit(value: Any, name: str, *, low_open: bool = True, high: float = 1.0) -> float:
    """``value`` as a float in (0, high] (or [0, high] when not ``low_open``)."""
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
    """Tight half-open box of the non-zero pixels of a 2-D array.

    Parameters
    ----------
    mask : numpy.ndarray
        A 2-D array; any non-zero value counts as foreground.

    Returns
    -------
    tuple of int or None
        ``(y0, y1, x0, x1)`` with ``mask[y0:y1, x0:x1]`` holding every non-zero pixel,
        or None when the mask has none.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _padded(box: tuple[int, int, int, int], pad: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` grown by ``pad`` pixels on every side, clipped to an image of ``shape``."""
    y0, y1, x0, x1 = box
    return max(0, y0 - pad), min(shape[0], y1 + pad), max(0, x0 - pad), min(shape[1], x1 + pad)
