"""Validation of the metrics' mask and number arguments (the binarisation rule of :mod:`.metrics`)."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np


def _as_mask(array, name: str) -> np.ndarray:
    """Validate one mask argument and return a new boolean array."""
    arr = np.asarray(array)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind == "b":
        return arr.copy()
    if kind in "iu":
        return arr > 0
    if kind == "f":
        if np.isnan(arr).any():
            raise ValueError(f"{name} contains NaN")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name} has float values outside [0, 1] (min {lo:g}, max {hi:g}); "
                "threshold it to a binary mask first"
            )
        return arr >= 0.5
    raise TypeError(f"{name} must be a bool, integer or float array, got dtype {arr.dtype}")


def _as_pair(pred, gt, pred_name: str = "pred", gt_name: str = "gt"):
    """Validate a (prediction, ground truth) pair of masks."""
    p = _as_mask(pred, pred_name)
    g = _as_mask(gt, gt_name)
    if p.shape != g.shape:
        raise ValueError(f"{pred_name} shape {p.shape} does not match {gt_name} shape {g.shape}")
    return p, g


def _check_positive_real(value, name: str, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def _ratio(num: int, den: int) -> float:
    """num / den with the convention 0 / 0 = 1 (both sets empty agree)."""
    return 1.0 if den == 0 else num / den


