"""Argument checks and a box helper shared by the coarse-mask synthesis modules.

Masks are validated by :func:`napari_segrefiner.io.masks.as_binary` and boxed by
:func:`napari_segrefiner.io.masks.bounding_box`.

Used by :mod:`.perturb` (the CascadePSP-style degradation) and :mod:`.synthesis` (the
simple kinds and the dispatcher); they live here so that neither imports the other's
internals and there is no import cycle.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["check_rng", "check_unit", "padded"]


def check_rng(rng: Any) -> np.random.Generator:
    """Return ``rng`` if it is a :class:`numpy.random.Generator`, else raise TypeError."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), got {type(rng).__name__}"
        )
    return rng


def check_unit(value: Any, name: str, *, low_open: bool = True, high: float = 1.0) -> float:
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


def padded(box: tuple[int, int, int, int], pad: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` grown by ``pad`` pixels on every side, clipped to an image of ``shape``."""
    y0, y1, x0, x1 = box
    return max(0, y0 - pad), min(shape[0], y1 + pad), max(0, x0 - pad), min(shape[1], x1 + pad)
