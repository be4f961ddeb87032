"""Checks of what :func:`~napari_segrefiner.lazy.refine.refine_lazy` is given, before any work.

The arrays and the lazy path's own options (``chunks``, ``progress``) are validated here,
with a message that names them; everything else describes the run and is validated by
:class:`~napari_segrefiner.engine.request.RefineRequest`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_CHUNK", "check_arrays", "check_options"]

MIN_CHUNK = 16


def check_options(*, chunks, progress) -> None:
    """Check ``chunks`` (None, or ints of at least :data:`MIN_CHUNK` px) and ``progress``
    (None or callable).

    Raises
    ------
    TypeError, ValueError
        Naming the option and what it got.
    """
    if chunks is not None:
        sides = (chunks, chunks) if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool) else chunks
        try:
            ok = len(sides) == 2 and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in sides)
        except TypeError:
            ok = False
        if not ok:
            raise TypeError(f"chunks must be None, an int or a pair of ints (rows, cols), got {chunks!r}")
        if min(int(c) for c in sides) < MIN_CHUNK:
            raise ValueError(f"chunks must be at least {MIN_CHUNK} px along each axis, got {chunks!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable progress(done, total), got {type(progress).__name__}")


def check_arrays(image, mask) -> bool:
    """Check the shapes and dtypes of ``image`` and ``mask``; returns whether the image has a channel axis.

    Raises
    ------
    TypeError, ValueError
        Naming the array and what is wrong with it.
    """
    for arr, what in ((image, "image"), (mask, "mask")):
        if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
            raise TypeError(f"{what} must be a numpy, zarr or dask array, got {type(arr).__name__}")
    if np.dtype(mask.dtype).kind not in "biuf":
        raise TypeError(f"mask must be a bool or integer array, got dtype {mask.dtype}")
    if np.dtype(image.dtype).kind not in "biuf":
        raise TypeError(f"image must be a numeric array, got dtype {image.dtype}")
    if mask.ndim < 2:
        raise ValueError(f"mask must have at least 2 dimensions, got shape {mask.shape}")
    if image.ndim == mask.ndim + 1:
        if tuple(image.shape[:-1]) != tuple(mask.shape) or image.shape[-1] not in (1, 3, 4):
            raise ValueError(f"image shape {image.shape} does not match the mask's {mask.shape} (+ 1, 3 or 4 channels)")
        return True
    if tuple(image.shape) != tuple(mask.shape):
        raise ValueError(f"image shape {image.shape} does not match the mask's {mask.shape}")
    return False
