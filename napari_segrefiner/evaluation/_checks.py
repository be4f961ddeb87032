"""Validation of the metrics' mask and number arguments (masks by the package's one rule,
:func:`napari_segrefiner.io.masks.as_binary`)."""

from __future__ import annotations

import math
from numbers import Real

from ..io.masks import as_binary

__all__ = ["as_pair", "check_positive_real", "safe_ratio"]


def as_pair(pred, gt, pred_name: str = "pred", gt_name: str = "gt"):
    """Validate a (prediction, ground truth) pair of masks."""
    p = as_binary(pred, name=pred_name)
    g = as_binary(gt, name=gt_name)
    if p.shape != g.shape:
        raise ValueError(f"{pred_name} shape {p.shape} does not match {gt_name} shape {g.shape}")
    return p, g


def check_positive_real(value, name: str, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def safe_ratio(num: int, den: int) -> float:
    """num / den with the convention 0 / 0 = 1 (both sets empty agree)."""
    return 1.0 if den == 0 else num / den
