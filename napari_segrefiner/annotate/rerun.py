"""Re-refine only what changed: remember each object's input and result after a run.

After a refinement, :class:`RefineMemory` keeps, per object (label) of a 2-D labels
mask, its input (its coarse mask inside its tight box, the hints in its region, the
hint-1 pixels it owns) and the result of the run. Given the mask and
hints of the next run, :meth:`RefineMemory.changes` says which objects must be refined
again (a :class:`Changes`); :meth:`RefineMemory.merge` puts the result of a run over
those objects only (``iter_refine(..., labels=changes.refine)``) into the previous
result: unchanged objects keep their previous pixels bit for bit and win where a
re-refined object reaches into them, removed objects disappear, and no pixel gets two
objects (it is a labels array).

What counts as an object's input
--------------------------------
* its coarse mask: any pixel of ``mask == label`` added, removed or moved;
* the hints (0 = free, 1 = object, 2 = background) inside its *region*: the box of its
  coarse mask and its previous result, grown by ``margin`` pixels. The engine holds a
  hinted pixel in every crop that contains it, but a hint changes an object's
  refinement only where the object's state would reach that pixel: on or near its coarse
  mask and its result (``margin`` covers the intermediate steps and the network's coarser
  grid). A hint painted for one object therefore re-refines that object, not every
  neighbour whose (larger) crop happens to contain it;
* the hint-1 pixels it owns, wherever they are: a hint 1 outside every coarse object
  belongs to the nearest one (as in :func:`napari_segrefiner.annotate.hints.owners`).

With ``frame=True`` (the HR pipeline, whose global pass sees the whole frame at a coarse
grid) every object's region is the whole frame: any hint change re-refines every object.

Pure numpy/scipy; inputs are never modified (the memory keeps copies).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..io.masks import Box, label_table
from .hints import check_hints

__all__ = ["Changes", "ObjectInput", "RefineMemory"]


def _union(a: Box, b: Box | None) -> Box:
    if b is None:
        return a
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def _crop(arr: np.ndarray, box: Box) -> np.ndarray:
    return arr[box[0] : box[1], box[2] : box[3]]


def _zeros(box: Box) -> np.ndarray:
    return np.zeros((box[1] - box[0], box[3] - box[2]), dtype=np.uint8)


@dataclass(frozen=True)
class ObjectInput:
    """What one object's refinement depended on, and where its result lies.

    Attributes
    ----------
    label : int
    box : tuple of int
        Tight box (y0, y1, x0, x1) of its coarse mask.
    coarse : ndarray of bool
        Its coarse mask inside ``box``.
    region : tuple of int
        The box of its coarse mask and result grown by the margin (or the frame): the
        hints that matter to it lie in here.
    hints : ndarray of uint8
        The hints inside ``region`` (zeros when the run had none).
    owned : ndarray of intp
        Flat indices of the hint-1 pixels it owns (sorted).
    """

    label: int
    box: Box
    coarse: np.ndarray
    region: Box
    hints: np.ndarray
    owned: np.ndarray


def _owned(mask: np.ndarray, hints: np.ndarray | None) -> dict[int, np.ndarray]:
    """Flat indices of the hint-1 pixels of each object: on its coarse mask, or outside
    every object nearest to it (Euclidean; ties as ``scipy.ndimage.distance_transform_edt``)."""
    if hints is None or not (hints == 1).any() or not mask.any():
        return {}
    ones = np.flatnonzero(hints == 1)
    owner = mask.ravel()[ones].astype(np.int64)
    outside = owner == 0
    if outside.any():
        _, (iy, ix) = ndi.distance_transform_edt(mask == 0, return_indices=True)
        flat = ones[outside]
        owner[outside] = mask[iy.ravel()[flat], ix.ravel()[flat]]
    order = np.argsort(owner, kind="stable")
    owner, ones = owner[order], ones[order]
    cuts = np.flatnonzero(np.diff(owner)) + 1
    return {int(group_owner[0]): np.sort(idx) for group_owner, idx in zip(np.split(owner, cuts), np.split(ones, cuts))}


@dataclass(frozen=True)
class Changes:
    """What differs between a remembered run and a new (mask, hints) pair.

    Attributes
    ----------
    edited : tuple of int
        Objects whose coarse mask or hints changed.
    new : tuple of int
        Labels of the new mask the run did not have.
    removed : tuple of int
        Labels of the run that the new mask no longer has.
    selected : tuple of int
        Labels asked for explicitly (present in the new mask), changed or not.
    unchanged : tuple of int
        Labels of the new mask that keep their previous result.
    """

    edited: tuple[int, ...] = ()
    new: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()
    selected: tuple[int, ...] = ()
    unchanged: tuple[int, ...] = ()

    @property
    def refine(self) -> tuple[int, ...]:
        """The labels to refine again (sorted): edited, new and selected ones."""
        return tuple(sorted(set(self.edited) | set(self.new) | set(self.selected)))

    def __bool__(self) -> bool:
        """True when anything is to be done (something to refine or to remove)."""
        return bool(self.refine or self.removed)

    def summary(self) -> str:
        """A short line for a status bar, e.g. "2 edited (3, 7), 1 new (12), 20 unchanged"."""

        def part(name: str, labels: tuple[int, ...]) -> str | None:
            if not labels:
                return None
            shown = ", ".join(str(v) for v in labels[:6]) + (", ..." if len(labels) > 6 else "")
            return f"{len(labels)} {name} ({shown})"

        parts = [
            part("edited", self.edited),
            part("new", self.new),
            part("removed", self.removed),
            part("selected", tuple(v for v in self.selected if v not in self.edited and v not in self.new)),
        ]
        text = ", ".join(p for p in parts if p)
        return f"{text}, {len(self.unchanged)} unchanged" if text else "nothing changed"


class RefineMemory:
    """One 2-D run remembered: each object's input and the run's result.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        The coarse labels the run refined (0 = background).
    result : ndarray of shape (H, W)
        Its result (labels).
    hints : ndarray of shape (H, W), optional
        The hints it ran with (0 = free, 1 = object, 2 = background).
    margin : int
        Pixels by which an object's region (where hints matter to it) extends past the
        box of its coarse mask and its result.
    frame : bool
        Every object's region is the whole frame (the HR pipeline).

    Notes
    -----
    Copies of what it keeps are made here; the arrays passed in are never modified.
    """

    def __init__(
        self,
        mask: np.ndarray,
        result: np.ndarray,
        hints: np.ndarray | None = None,
        *,
        margin: int = 8,
        frame: bool = False,
    ):
        mask, result = np.asarray(mask), np.asarray(result)
        if mask.ndim != 2 or result.shape != mask.shape:
            raise ValueError(f"mask and result must be 2-D of one shape, got {mask.shape} and {result.shape}")
        if int(margin) < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        hints = check_hints(hints, shape=mask.shape)
        self.shape: tuple[int, int] = (int(mask.shape[0]), int(mask.shape[1]))
        self.result = result.copy()
        self.options = {"margin": int(margin), "frame": bool(frame)}
        result_boxes = label_table(self.result).boxes()
        owned = _owned(mask, hints)
        self.objects: dict[int, ObjectInput] = {}
        for label, box in label_table(mask).boxes().items():
            region = self._region(_union(box, result_boxes.get(label)))
            local = _crop(hints, region).copy() if hints is not None else _zeros(region)
            mine = owned.get(label, np.zeros(0, dtype=np.intp))
            self.objects[label] = ObjectInput(label, box, _crop(mask, box) == label, region, local, mine)

    def _region(self, box: Box) -> Box:
        h, w = self.shape
        if self.options["frame"]:
            return 0, h, 0, w
        m = self.options["margin"]
        return max(box[0] - m, 0), min(box[1] + m, h), max(box[2] - m, 0), min(box[3] + m, w)

    @property
    def labels(self) -> tuple[int, ...]:
        """The labels the run refined (sorted)."""
        return tuple(sorted(self.objects))

    def changes(self, mask: np.ndarray, hints: np.ndarray | None = None, *, select: Iterable[int] = ()) -> Changes:
        """Which objects of ``mask`` (with ``hints``) must be refined again.

        Parameters
        ----------
        mask : ndarray of shape (H, W)
            The coarse labels of the next run.
        hints : ndarray of shape (H, W), optional
            Its hints (None = no hints: all zeros).
        select : iterable of int
            Labels to refine again whether they changed or not.

        Raises
        ------
        ValueError
            If ``mask`` or ``hints`` has another shape than the remembered run, bad hint
            values, or a selected label does not occur in ``mask``.
        """
        mask = np.asarray(mask)
        if mask.shape != self.shape:
            raise ValueError(f"the mask has shape {mask.shape}, the remembered run {self.shape}")
        hints = check_hints(hints, shape=self.shape)
        boxes = label_table(mask).boxes()
        select = tuple(sorted({int(v) for v in select}))
        missing = [v for v in select if v not in boxes]
        if missing:
            raise ValueError(f"selected label(s) {missing} do not occur in the mask")
        owned = _owned(mask, hints)
        edited, new, unchanged = [], [], []
        for label, box in boxes.items():
            old = self.objects.get(label)
            if old is None:
                new.append(label)
            elif not self._same_input(old, mask, hints, box, owned.get(label, old.owned[:0])):
                edited.append(label)
            elif label not in select:
                unchanged.append(label)
        removed = tuple(sorted(set(self.objects) - set(boxes)))
        return Changes(tuple(sorted(edited)), tuple(sorted(new)), removed, select, tuple(sorted(unchanged)))

    def _same_input(
        self, old: ObjectInput, mask: np.ndarray, hints: np.ndarray | None, box: Box, owned: np.ndarray
    ) -> bool:
        """Same coarse mask, same hints in its region, same hint-1 pixels of its own."""
        if box != old.box or not np.array_equal(_crop(mask, box) == old.label, old.coarse):
            return False
        here = _zeros(old.region) if hints is None else _crop(hints, old.region)
        return np.array_equal(here, old.hints) and np.array_equal(owned, old.owned)

    def merge(self, partial: np.ndarray | None, changes: Changes, *, previous: np.ndarray | None = None) -> np.ndarray:
        """The previous result with the objects of ``changes.refine`` taken from ``partial``.

        Parameters
        ----------
        partial : ndarray of shape (H, W) or None
            Result of a run over ``changes.refine`` only (its other labels are ignored);
            None when nothing is refined (only removals).
        changes : Changes
            From :meth:`changes`.
        previous : ndarray of shape (H, W), optional
            The previous result as it is now (e.g. after review edits); default the
            remembered result.

        Returns
        -------
        ndarray
            A new array (``previous``'s dtype): ``previous`` with the pixels of re-refined
            and removed labels cleared, then each re-refined object's pixels of
            ``partial`` where no remaining object is. Every other pixel is ``previous``'s.
        """
        base = self.result if previous is None else np.asarray(previous)
        if base.shape != self.shape:
            raise ValueError(f"previous has shape {base.shape}, the remembered run {self.shape}")
        if changes.refine and partial is None:
            raise ValueError(f"labels {list(changes.refine)} were to be refined but no partial result was given")
        out = base.copy()
        gone = np.array(sorted(set(changes.refine) | set(changes.removed)), dtype=np.int64)
        if gone.size:
            out[np.isin(out, gone)] = 0
        if changes.refine:
            partial = np.asarray(partial)
            if partial.shape != self.shape:
                raise ValueError(f"partial has shape {partial.shape}, the remembered run {self.shape}")
            free = out == 0
            for label in changes.refine:
                take = free & (partial == label)
                out[take] = label
                free &= ~take
        return out
