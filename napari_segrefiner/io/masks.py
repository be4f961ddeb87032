"""What a mask is, in one place: the one validator, the one bounding box, the one table of labels.

**The rule.** A mask (binary) or labels array is accepted when its dtype is

* bool;
* an integer type with values in ``[0, 2**63 - 1]`` (0 = background, every other value
  one object; a single non-zero value is a binary mask, e.g. 0/1 or 0/255);
* a float type whose values are exactly 0 and 1 (a float mask holding anything else, a
  probability map say, must be thresholded by the caller: no rule here guesses where).

Every front end applies it through :func:`check_values`: :func:`as_labels` (the engine,
the lazy path's blocks), :func:`as_binary` (training's coarse-mask synthesis, the
metrics) and the napari worker's copies of layer data.

**Boxes.** :func:`bounding_box` is the tight (optionally padded) box of the non-zero
pixels of one mask; :func:`label_table` gives every label's box and area in one pass (a
table, linear in the pixels), for frames and for the blocks of the lazy path.

Boxes are ``(y0, y1, x0, x1)``, end-exclusive. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Box", "ObjectTable", "as_binary", "as_labels", "bounding_box", "check_values", "label_table"]

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (end-exclusive)

_INT64_MAX = np.iinfo(np.int64).max


def check_values(arr: np.ndarray, *, name: str = "mask") -> None:
    """Raise unless ``arr`` holds a mask or labels by the module's rule (dtype and values).

    Raises
    ------
    TypeError
        For a dtype other than bool, integer or float.
    ValueError
        For negative values, labels above 2**63-1, or floats other than 0 and 1 (NaN included).
    """
    kind = arr.dtype.kind
    if kind == "b":
        return
    if kind == "f":
        if arr.size and not ((arr == 0) | (arr == 1)).all():
            bad = arr[(arr != 0) & (arr != 1)][:3]
            raise ValueError(
                f"{name} is a float array with values other than 0 and 1 (e.g. {bad.tolist()}); "
                "pass a bool mask or integer labels (threshold probability maps first)"
            )
        return
    if kind not in "iu":
        raise TypeError(f"{name} must be a bool, integer or float (0/1) array, got dtype {arr.dtype}")
    if not arr.size:
        return
    if kind == "u" and arr.dtype.itemsize == 8 and int(arr.max()) > _INT64_MAX:
        raise ValueError(
            f"{name} holds labels above 2**63-1 (largest {int(arr.max())}), which are not supported; "
            "renumber them (e.g. skimage.segmentation.relabel_sequential)"
        )
    if kind == "i" and int(arr.min()) < 0:
        raise ValueError(f"{name} has negative values; labels must be >= 0")


def as_labels(mask, *, name: str = "mask", ndim: int | None = 2, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Validate a mask or labels array (:func:`check_values`) and return it as int64 labels (a copy).

    Parameters
    ----------
    mask : array-like
        Bool, non-negative integers, or floats holding only 0 and 1.
    name : str
        What to call it in messages.
    ndim : int or None
        The number of dimensions it must have (None: any).
    shape : tuple of int, optional
        The shape it must have (the image's).

    Raises
    ------
    TypeError, ValueError
        As :func:`check_values`, or for another number of dimensions or shape.
    """
    arr = np.asarray(mask)
    if ndim is not None and arr.ndim != ndim:
        hint = "; for 3-D or time stacks refine each slice (the napari plugin does this for you)" if ndim == 2 else ""
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}{hint}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} shape {arr.shape} does not match the image's {tuple(shape)}")
    check_values(arr, name=name)
    return arr.astype(np.int64)


def as_binary(mask, *, name: str = "mask", single: bool = False) -> np.ndarray:
    """A 2-D, non-empty mask as a new bool array (foreground: every non-zero pixel).

    ``single=True`` also refuses more than one non-zero value (labels, where a binary mask
    is meant: bool, 0/1, 0/255...).

    Raises
    ------
    TypeError, ValueError
        As :func:`check_values`, for another number of dimensions than 2, no pixels, or
        (``single``) several non-zero values.
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    check_values(arr, name=name)
    out = arr != 0
    if single and arr.dtype.kind in "iu" and out.any():
        top = arr.max()
        if not np.all(out <= (arr == top)):
            raise ValueError(f"{name} must be binary: bool, or values {{0, v}} for one v > 0 (e.g. 0/1, 0/255)")
    return out


def bounding_box(mask: np.ndarray, *, pad: int = 0, shape: tuple[int, int] | None = None) -> Box | None:
    """Tight box of the non-zero pixels of a 2-D ``mask``, grown by ``pad`` and clamped to ``shape``.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        Any non-zero value counts.
    pad : int
        Margin added on every side.
    shape : tuple of int, optional
        The (H, W) to clamp to (default ``mask.shape``).

    Returns
    -------
    tuple of int or None
        ``(y0, y1, x0, x1)`` (end-exclusive), or None when no pixel is set.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = shape or mask.shape
    return (
        max(int(rows[0]) - pad, 0),
        min(int(rows[-1]) + 1 + pad, h),
        max(int(cols[0]) - pad, 0),
        min(int(cols[-1]) + 1 + pad, w),
    )


@dataclass(frozen=True)
class ObjectTable:
    """Objects of one plane: label, tight bounds ``[y0, y1) x [x0, x1)`` and pixel count.

    All arrays have one entry per object, sorted by label.
    """

    labels: np.ndarray  # int64
    bounds: np.ndarray  # int64 (N, 4): y0, y1, x0, x1
    area: np.ndarray  # int64

    @classmethod
    def empty(cls) -> ObjectTable:
        return cls(np.zeros(0, np.int64), np.zeros((0, 4), np.int64), np.zeros(0, np.int64))

    @classmethod
    def grouped(
        cls,
        values: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        counts: np.ndarray | None = None,
        rows_hi: np.ndarray | None = None,
        cols_hi: np.ndarray | None = None,
    ) -> ObjectTable:
        """Group (label, row, col[, count]) records by label: min/max bounds and summed counts.

        Pixels (``counts`` None: one each, ``rows_hi``/``cols_hi`` None: the pixel's own row and
        column) or pieces of objects (their counts and their upper bounds, end-exclusive).
        """
        if values.size == 0:
            return cls.empty()
        order = np.argsort(values, kind="stable")
        v = values[order]
        starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
        r, c = rows[order], cols[order]
        rh = r + 1 if rows_hi is None else rows_hi[order]
        ch = c + 1 if cols_hi is None else cols_hi[order]
        bounds = np.stack(
            [
                np.minimum.reduceat(r, starts),
                np.maximum.reduceat(rh, starts),
                np.minimum.reduceat(c, starts),
                np.maximum.reduceat(ch, starts),
            ],
            axis=1,
        )
        area = np.add.reduceat(np.ones_like(v) if counts is None else counts[order], starts)
        return cls(v[starts].astype(np.int64), bounds.astype(np.int64), area.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def boxes(self) -> dict[int, Box]:
        """``{label: (y0, y1, x0, x1)}``."""
        return {int(v): tuple(int(c) for c in b) for v, b in zip(self.labels, self.bounds)}


def label_table(labels: np.ndarray, origin: tuple[int, int] = (0, 0)) -> ObjectTable:
    """Every label of a 2-D labels block (validated by :func:`check_values`): its box and area.

    ``origin`` is the block's top-left pixel in its plane (bounds are given in the plane).
    One pass over the non-zero pixels and one sort of them.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {lab.shape}")
    check_values(lab, name="labels")
    lab = lab.astype(np.int64, copy=False)
    w = lab.shape[1]
    flat = lab.ravel()
    nz = np.flatnonzero(flat)
    rows, cols = np.divmod(nz, w)
    table = ObjectTable.grouped(flat[nz], rows, cols)
    if len(table) and origin != (0, 0):
        table.bounds[:, :2] += origin[0]
        table.bounds[:, 2:] += origin[1]
    return table
