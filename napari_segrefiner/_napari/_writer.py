"""npe2 writer: save a Labels layer as .tif/.tiff (tifffile), .png (8 or 16 bit) or .npy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EXTENSIONS", "write_labels"]

EXTENSIONS = (".tif", ".tiff", ".png", ".npy")


def _compact(data: np.ndarray) -> np.ndarray:
    """The smallest unsigned dtype that holds non-negative labels (bool -> uint8)."""
    if data.dtype == bool:
        return data.astype(np.uint8)
    if data.size == 0 or data.min() < 0:
        return data
    top = int(data.max())
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return data.astype(dtype, copy=False)
    return data


def _png_array(data: np.ndarray, path: Path) -> np.ndarray:
    if data.ndim != 2:
        raise ValueError(
            f"cannot save {path.name}: PNG holds one 2-D image but this layer has shape {data.shape}; "
            "save stacks as .tif or .npy"
        )
    if data.size and data.min() < 0:
        raise ValueError(f"cannot save {path.name}: PNG cannot store negative labels; use .tif or .npy")
    top = int(data.max()) if data.size else 0
    if top > 65535:
        raise ValueError(
            f"cannot save {path.name}: PNG stores labels up to 65535 (16 bit) but this layer's "
            f"largest label is {top}; save it as .tif or .npy instead"
        )
    return data.astype(np.uint8 if top <= 255 else np.uint16)


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write one Labels layer's data to ``path``; the extension picks the format.

    Parameters
    ----------
    path : str
        Target file ending in .tif, .tiff, .png or .npy.
    data : array-like
        Integer labels of any dimensionality (.png: 2-D, labels 0..65535).
    meta : dict
        Layer metadata from napari (unused: the formats store the array only).

    Returns
    -------
    list of str
        The path written.

    Raises
    ------
    ValueError
        For an unsupported extension, or data that PNG cannot hold.
    """
    target = Path(path)
    ext = target.suffix.lower()
    if ext not in EXTENSIONS:
        raise ValueError(f"cannot save {target.name}: use one of {', '.join(EXTENSIONS)}")
    arr = np.asarray(data)
    if arr.dtype.kind not in "biu":
        raise ValueError(f"cannot save {target.name}: labels must be integers, got dtype {arr.dtype}")
    if ext == ".npy":
        np.save(target, arr)
    elif ext == ".png":
        from PIL import Image

        Image.fromarray(_png_array(arr, target)).save(target)
    else:
        import tifffile

        tifffile.imwrite(target, _compact(arr), compression="zlib")
    return [str(target)]
