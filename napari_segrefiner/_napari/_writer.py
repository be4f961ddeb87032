"""npe2 writer: save a Labels layer as .tif/.tiff, .png (8 or 16 bit) or .npy.

Written by :func:`napari_segrefiner.io.files.write_mask` (atomically; labels keep their values
and dtype width), as everywhere in the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..io.files import MASK_EXTENSIONS, write_mask

__all__ = ["EXTENSIONS", "write_labels"]

EXTENSIONS = MASK_EXTENSIONS


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write one Labels layer's data to ``path``; the extension picks the format.

    Parameters
    ----------
    path : str
        Target file ending in .tif, .tiff, .png or .npy.
    data : array-like
        Integer labels of any dimensionality (.png: 2-D, labels 0..65535); of a multiscale
        layer (``meta["multiscale"]``, e.g. a lazy run's result), the list of levels: the
        full-resolution one is written.
    meta : dict
        Layer metadata from napari (only ``multiscale`` is looked at: the formats store
        the array only).

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
    if target.suffix.lower() not in EXTENSIONS:
        raise ValueError(f"cannot save {target.name}: use one of {', '.join(EXTENSIONS)}")
    if meta.get("multiscale"):
        data = data[0]
    arr = np.asarray(data)
    if arr.dtype.kind not in "biu":
        raise ValueError(f"cannot save {target.name}: labels must be integers, got dtype {arr.dtype}")
    return [str(write_mask(target, arr))]
