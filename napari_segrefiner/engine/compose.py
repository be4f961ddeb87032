"""Paste refined objects into a labels frame: the one definition of the overlap rule.

Instance mode refines every object in its own box (:func:`~.pipelines.instance_box`) and
pastes the network's answer back at native resolution. Where the boxes of two refined
objects overlap, a pixel goes to the object whose coarse mask held it (priority +0.5),
else to the more confident one, and objects are folded in in label order.

The rule is a fold over the objects *whose box covers the pixel*, pixel by pixel, so it can
be applied to any window of the frame given the objects whose boxes meet that window:
the in-memory pipeline folds every object into the whole frame, the lazy path
(:mod:`napari_segrefiner.lazy`) folds the neighbours of an output chunk into a window
around it, with the same functions and hence the same bits.

Pure numpy/torch; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .patches import Box, paste

__all__ = ["ObjectMap", "compose_window", "fold", "object_values"]


def object_values(
    values: torch.Tensor, box: Box, label: int, coarse_box: np.ndarray, changed: torch.Tensor | None = None
) -> np.ndarray:
    """One object's network answer pasted onto its box (float32, the box's shape).

    Parameters
    ----------
    values : Tensor of shape (S, S)
        The network's final soft mask of the object (on the CPU).
    box : tuple of int
        ``(y0, y1, x0, x1)``, the object's crop in the frame.
    label : int
        The object's label.
    coarse_box : ndarray
        The coarse labels over ``box``.
    changed : Tensor of shape (S, S), optional
        ``paste_changes_only``: 1 where the network changed the state at its resolution.
        Away from such pixels the native coarse mask stands (1 where ``coarse_box == label``).
    """
    v = paste(values, box).numpy()
    if changed is not None:  # away from network-resolution changes, the native coarse mask stands
        near = paste(changed, box).numpy() > 0
        v = np.where(near, v, (coarse_box == label).astype(np.float32))
    return v


def fold(
    out: np.ndarray, best: np.ndarray, origin: tuple[int, int], box: Box, label: int, v: np.ndarray, coarse: np.ndarray
) -> None:
    """Fold one object into the window ``out`` (labels) / ``best`` (priorities), in place.

    ``out``, ``best`` and ``coarse`` cover the same window of the frame, whose top-left
    pixel is ``origin``; ``v`` covers ``box``. Only the part of ``box`` inside the window is
    touched. A pixel goes to ``label`` where ``v >= 0.5`` and its priority
    ``v + 0.5 * (coarse == label)`` beats the one stored, unless an object that was not
    refined holds it (``out != 0`` with no priority).
    """
    oy, ox = origin
    wh, ww = out.shape
    y0, y1, x0, x1 = box
    iy0, iy1, ix0, ix1 = max(y0, oy), min(y1, oy + wh), max(x0, ox), min(x1, ox + ww)
    if iy0 >= iy1 or ix0 >= ix1:
        return
    vv = v[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    sl = (slice(iy0 - oy, iy1 - oy), slice(ix0 - ox, ix1 - ox))
    fg = vv >= 0.5
    own = coarse[sl] == label
    priority = vv + 0.5 * own
    region, region_best = out[sl], best[sl]
    win = fg & (priority > region_best) & ((region == 0) | (region_best > 0))
    region[win] = label
    region_best[win] = priority[win]


@dataclass(frozen=True)
class ObjectMap:
    """One refined object's pasted answer, kept compact (only its foreground is stored).

    The overlap rule looks at ``v`` only where ``v >= 0.5`` (:func:`fold`), so the
    foreground bits and the float values there are all it needs: :meth:`dense` rebuilds a
    ``v`` that folds to the same bits.

    Attributes
    ----------
    label : int
    box : tuple of int
        ``(y0, y1, x0, x1)`` in the frame (plane) it belongs to.
    bits : ndarray of uint8
        ``np.packbits`` of the foreground ``v >= 0.5`` over the box.
    values : ndarray of float32
        ``v`` at the foreground pixels, in row-major order.
    """

    label: int
    box: Box
    bits: np.ndarray
    values: np.ndarray

    @classmethod
    def from_values(cls, label: int, box: Box, v: np.ndarray) -> ObjectMap:
        fg = v >= 0.5
        return cls(int(label), tuple(int(b) for b in box), np.packbits(fg, axis=None), v[fg].astype(np.float32))

    @property
    def shape(self) -> tuple[int, int]:
        return self.box[1] - self.box[0], self.box[3] - self.box[2]

    def dense(self) -> np.ndarray:
        """``v`` over the box: the stored values on the foreground, 0 elsewhere."""
        h, w = self.shape
        fg = np.unpackbits(self.bits, count=h * w).reshape(h, w).astype(bool)
        v = np.zeros((h, w), dtype=np.float32)
        v[fg] = self.values
        return v

    @property
    def nbytes(self) -> int:
        return int(self.bits.nbytes + self.values.nbytes)


def compose_window(
    labels: np.ndarray, origin: tuple[int, int], maps: Iterable[ObjectMap], refined: Sequence[int]
) -> np.ndarray:
    """Fold objects into a window of the coarse labels, as instance mode does on the frame.

    Parameters
    ----------
    labels : ndarray of shape (h, w), int64
        The coarse labels over the window.
    origin : tuple of int
        The window's top-left pixel in the frame.
    maps : iterable of ObjectMap
        The refined objects whose boxes meet the window (any order: they are folded in
        label order).
    refined : sequence of int
        Every refined label that occurs in the window (their coarse pixels start as
        background; other objects are kept as they are).

    Returns
    -------
    ndarray of int64
        The composed window (before clean-up).
    """
    out = labels.copy()
    out[np.isin(out, np.asarray(list(refined), dtype=np.int64))] = 0
    best = np.zeros(out.shape, dtype=np.float32)
    for m in sorted(maps, key=lambda m: m.label):
        fold(out, best, origin, m.box, m.label, m.dense(), labels)
    return out
