"""Annotator hints: pixels the refinement must hold, whatever the network says.

A hints array has the mask's shape: 0 = free, 1 = "this pixel belongs to the object here",
2 = "this pixel is background". :func:`owners` decides which object a 1 belongs to:

* the object whose coarse mask holds the pixel;
* outside every coarse object, the nearest object (Euclidean distance to its coarse
  pixels), if the pixel lies inside the crop instance mode refines that object in;
  otherwise the hint is refused (a click far from every object cannot say which object
  it means).

Hinted pixels are set before the first step and held in every reverse step at network
resolution (:func:`crop_hints` gives the per-crop maps, :func:`~.scheduler.clamp` holds
them), and the final and every intermediate frame is forced to the hints at native
resolution (:func:`apply_hints`): the output equals the hints on every hinted pixel, by
construction. Hints are honoured for every object, also those not refined in a run
(``labels=``) or too small to refine. Pure numpy/torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from ..io.masks import Box

__all__ = ["BACKGROUND", "FREE", "OBJECT", "Hints", "apply_hints", "check_hints", "crop_hints", "hint_maps", "owners"]

FREE, OBJECT, BACKGROUND = 0, 1, 2


def check_hints(hints, *, shape: tuple[int, int], name: str = "hints") -> np.ndarray | None:
    """Validate a hints array; returns a uint8 copy, or None when it holds no hint.

    Raises
    ------
    TypeError
        For a dtype other than bool or integer.
    ValueError
        For a shape other than ``shape`` or values other than 0, 1 and 2.
    """
    if hints is None:
        return None
    arr = np.asarray(hints)
    if arr.dtype.kind not in "biu":
        raise TypeError(f"{name} must be an integer array (0 free, 1 object, 2 background), got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} shape {arr.shape} does not match the mask's shape {tuple(shape)}")
    values = np.unique(arr)
    bad = values[(values < 0) | (values > 2)] if arr.dtype.kind != "b" else values[:0]
    if bad.size:
        raise ValueError(f"{name} may hold only 0 (free), 1 (object) and 2 (background), got {bad[:5].tolist()}")
    if not arr.any():
        return None
    return arr.astype(np.uint8)


def owners(labels: np.ndarray, hints: np.ndarray, box_of: Callable[[int], Box], *, name: str = "hints") -> np.ndarray:
    """The object each hint-1 pixel belongs to (int64 frame, 0 where there is no hint 1).

    Parameters
    ----------
    labels : ndarray of shape (H, W), int64
        Coarse labels.
    hints : ndarray of shape (H, W), uint8
        Validated hints.
    box_of : callable
        ``box_of(label) -> (y0, y1, x0, x1)``, the crop the label is refined in.

    Raises
    ------
    ValueError
        If a hint-1 pixel lies outside every coarse object and outside the crop of the
        nearest one, or if the mask holds no object.
    """
    own = np.zeros(labels.shape, dtype=np.int64)
    ones = hints == OBJECT
    if not ones.any():
        return own
    inside = ones & (labels != 0)
    own[inside] = labels[inside]
    outside = ones & (labels == 0)
    if not outside.any():
        return own
    if not labels.any():
        raise ValueError(f"{name}: object hints (1) need an object in the mask to belong to")
    _, (iy, ix) = ndi.distance_transform_edt(labels == 0, return_indices=True)
    ys, xs = np.nonzero(outside)
    near = labels[iy[ys, xs], ix[ys, xs]]
    far = []
    for lab in np.unique(near):
        y0, y1, x0, x1 = box_of(int(lab))
        sel = near == lab
        ok = (ys[sel] >= y0) & (ys[sel] < y1) & (xs[sel] >= x0) & (xs[sel] < x1)
        if not ok.all():
            far.append((int(ys[sel][~ok][0]), int(xs[sel][~ok][0])))
    if far:
        raise ValueError(
            f"{name}: object hints (1) at (y, x) = {far[0]} (and {len(far) - 1} other places) lie outside the crop of "
            "the nearest object; paint them on or next to the object they belong to"
        )
    own[ys, xs] = near
    return own


def crop_hints(
    hints: np.ndarray, own: np.ndarray, boxes: Sequence[Box], ids: Sequence[int], size: int, device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Per-crop hint maps at network resolution: ``(fixed, value)``, bool (N, 1, S, S).

    ``hints`` and ``own`` are frames; each crop is cut out at its box (see
    :func:`hint_maps`). Returns None when no crop holds a hint.
    """
    pairs = [(hints[y0:y1, x0:x1], own[y0:y1, x0:x1]) for y0, y1, x0, x1 in boxes]
    return hint_maps(pairs, ids, size, device)


def hint_maps(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], ids: Sequence[int], size: int, device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Hint maps at network resolution from each crop's ``(hints, owner)`` arrays.

    For object ``k`` a pixel is "object" where its hint-1 pixels are and "background" where
    the hints say background or give the pixel to another object. A network pixel is held
    where any hinted native pixel falls in it (area resampling, so a one-pixel stroke is
    not lost when a large crop is shrunk), with the value that covers more of it.
    Returns None when no crop holds a hint.
    """
    fixed, value = [], []
    any_hint = False
    for (h, o), lab in zip(pairs, ids):
        obj = o == lab
        bg = (h == BACKGROUND) | ((o != 0) & ~obj)
        if obj.any() or bg.any():
            any_hint = True
        maps = torch.from_numpy(np.stack([obj, bg]).astype(np.float32))[None]
        cov = F.interpolate(maps, size=(size, size), mode="area")[0]
        fixed.append((cov[0] + cov[1]) > 0)
        value.append(cov[0] >= cov[1])
    if not any_hint:
        return None
    return torch.stack(fixed)[:, None].to(device), torch.stack(value)[:, None].to(device)


def apply_hints(frame: np.ndarray, hints: np.ndarray | None, own: np.ndarray | None) -> np.ndarray:
    """Force a labels frame to the hints (in place, returns it): 2 -> 0, 1 -> its owner."""
    if hints is None:
        return frame
    frame[hints == BACKGROUND] = 0
    ones = own != 0
    frame[ones] = own[ones]
    return frame


@dataclass(frozen=True)
class Hints:
    """The validated hints of a run: the 0/1/2 frame and the owner of every hint-1 pixel.

    Attributes
    ----------
    values : ndarray of uint8, shape (H, W)
        0 free, 1 object, 2 background (:func:`check_hints`).
    owner : ndarray of int64, shape (H, W)
        The label a hint-1 pixel belongs to (:func:`owners`), else 0.
    """

    values: np.ndarray
    owner: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray, values: np.ndarray | None, box_of: Callable[[int], Box]) -> Hints | None:
        """The hints of ``labels`` (None without any), owners decided by :func:`owners`."""
        if values is None:
            return None
        return cls(values, owners(labels, values, box_of))

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Force ``frame`` (in place) to the hints; returns it."""
        return apply_hints(frame, self.values, self.owner)

    def crop(self, box: Box) -> Hints:
        """The hints over ``box``."""
        y0, y1, x0, x1 = box
        return Hints(self.values[y0:y1, x0:x1], self.owner[y0:y1, x0:x1])

    def maps(
        self, boxes: Sequence[Box], ids: Sequence[int], size: int, device
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-crop ``(fixed, value)`` maps at network resolution (:func:`crop_hints`)."""
        return crop_hints(self.values, self.owner, boxes, ids, size, device)
