"""Validation and conversion of user images to 8-bit RGB, the network's input (numpy only).

Masks are validated by :mod:`.masks`."""

from __future__ import annotations

import numpy as np

__all__ = ["apply_scaling", "as_rgb_uint8", "rgb_channels", "scaling_of"]


def rgb_channels(image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Validate an image and give its (H, W, 3) RGB channels, dtype kept (alpha dropped,
    gray repeated); a view where possible.

    Raises
    ------
    TypeError
        If the dtype is not numeric.
    ValueError
        If the shape is not (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), or it is smaller than 2 x 2.
    """
    arr = np.asarray(image)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(
            f"{name} must have shape (H, W), (H, W, 3) or (H, W, 4), got {np.shape(image)}; "
            "for stacks, refine one 2-D slice at a time"
        )
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ValueError(f"{name} is too small: shape {np.shape(image)}")
    return arr


def scaling_of(rgb: np.ndarray, *, name: str = "image") -> tuple:
    """How :func:`as_rgb_uint8` maps the RGB channels ``rgb`` to 8 bits.

    Returns ``("copy",)`` for uint8, ``("bool",)``, ``("unit",)`` for floats within
    [0, 1], or ``("stretch", lo, hi)`` with the 0.5 and 99.5 percentiles of all three
    channels (``hi = lo + 1`` when they are equal). The lazy path computes the same tuple
    chunk by chunk (:mod:`napari_segrefiner.lazy.scan`).

    Raises
    ------
    ValueError
        If a float image holds NaN or infinite values.
    """
    if rgb.dtype == np.uint8:
        return ("copy",)
    if rgb.dtype == bool:
        return ("bool",)
    f = rgb.astype(np.float32)
    if rgb.dtype.kind == "f" and not np.isfinite(f).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if rgb.dtype.kind == "f" and f.min() >= 0.0 and f.max() <= 1.0:
        return ("unit",)
    lo, hi = np.percentile(f, (0.5, 99.5))
    if hi <= lo:
        hi = lo + 1.0
    return ("stretch", lo, hi)


def apply_scaling(rgb: np.ndarray, scaling: tuple) -> np.ndarray:
    """(H, W, 3) RGB channels -> uint8 with a :func:`scaling_of` tuple (pixel by pixel,
    so a crop gives the crop of the whole image's result)."""
    kind = scaling[0]
    if kind == "copy":
        return np.ascontiguousarray(rgb)
    if kind == "bool":
        return rgb.astype(np.uint8) * 255
    f = rgb.astype(np.float32)
    if kind == "unit":
        return np.rint(f * 255.0).astype(np.uint8)
    _, lo, hi = scaling
    return np.rint(np.clip((f - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


def as_rgb_uint8(image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Convert a gray, RGB or RGBA image of any numeric dtype to (H, W, 3) uint8 RGB.

    uint8 is kept; bool becomes 0/255; floats within [0, 1] are scaled by 255; any other
    range (uint16 microscopy, floats) is stretched between its 0.5 and 99.5 percentiles.
    The input is never modified.

    Raises
    ------
    TypeError
        If the dtype is not numeric.
    ValueError
        If the shape is not (H, W), (H, W, 3) or (H, W, 4), or the image holds NaN/inf.
    """
    rgb = rgb_channels(image, name=name)
    return apply_scaling(rgb, scaling_of(rgb, name=name))
