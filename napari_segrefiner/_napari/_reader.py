"""npe2 reader: open integer mask files (.png, .tif/.tiff, .npy) as Labels layers.

Files are read by :func:`napari_segrefiner.io.files.read_mask`, as everywhere in the package
(a binary 0/255 file opens as label 1; a colour-label PNG as one label per colour).

The manifest offers this reader only for file names that say they hold a mask ("mask",
"label", "seg", "refined"). Even then a file is accepted only if its content looks like a
mask: integer or bool values, no colour channel, and piecewise constant (few neighbouring
pixels differ, unlike a grey-level micrograph). For anything else ``get_reader`` returns
None, so napari uses another reader.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..io.files import read_mask

__all__ = ["get_reader", "looks_like_mask"]

_EXTENSIONS = (".png", ".tif", ".tiff", ".npy")
_MAX_EDGE_FRACTION = 0.1  # label images: only object borders differ from their neighbour


def looks_like_mask(data: np.ndarray) -> bool:
    """True for bool/integer arrays without a colour axis whose values are piecewise constant."""
    if data.dtype == bool:
        return data.ndim >= 2
    if data.dtype.kind not in "iu" or data.ndim < 2 or data.size == 0:
        return False
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        return False  # RGB(A) picture, not a label stack
    step = max(1, int(np.ceil(data.size / 4_000_000)))  # look at <= ~4 Mpx of rows
    rows = data.reshape(-1, data.shape[-1])[::step]
    if rows.min() < 0:
        return False
    if rows.shape[-1] < 2:
        return True
    edges = np.count_nonzero(rows[:, 1:] != rows[:, :-1]) / rows[:, 1:].size
    return edges <= _MAX_EDGE_FRACTION


def get_reader(path: str | list[str]) -> Callable[[str], list[tuple]] | None:
    """npe2 ``get_reader`` hook: a reader function for integer masks, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if Path(path).suffix.lower() not in _EXTENSIONS or not Path(path).is_file():
        return None
    try:
        data = read_mask(path, stack=True)  # the package's one mask reader (binary 0/255 -> 1)
    except Exception:  # unreadable, not a mask, or not what the extension says: let napari try others
        return None
    if not looks_like_mask(data):
        return None
    name = Path(path).stem

    def reader(_path: str) -> list[tuple]:
        labels = data.astype(np.uint8) if data.dtype == bool else data
        return [(labels, {"name": name}, "labels")]

    return reader
