"""A review queue over the objects of a refined result, least certain first.

:class:`ReviewQueue` is built from a 2-D result labels array, the coarse labels it was
refined from and a score per object (the final :class:`~.pipelines.RefineStep`'s
``uncertainty``: 1 - mean network confidence on the object's boundary band; higher =
less certain). It keeps the order (most uncertain first, ties by label), a cursor
(:meth:`~ReviewQueue.next`, :meth:`~ReviewQueue.previous`, :meth:`~ReviewQueue.go`),
each object's decision (``"pending"``, ``"accepted"``, ``"rejected"``), its centroid and
box for a camera, and an undo stack.

The queue never holds the result array: :meth:`~ReviewQueue.reject` returns an
:class:`Edit` (the pixels to write, with their old and new values) for the caller to apply
to its array (:meth:`Edit.apply`), or to a napari layer as one undoable edit;
:meth:`~ReviewQueue.undo` returns the edit to take back (:meth:`Edit.revert` restores the
old values exactly). Each accept and reject is one undo step.

Pure numpy/python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["Edit", "Item", "ReviewQueue"]

PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"


@dataclass(frozen=True)
class Edit:
    """One accept or reject: the decision it changed and the pixels it wrote.

    Attributes
    ----------
    label : int
    action : str
        ``"accept"`` or ``"reject"``.
    before : str
        The object's decision before (restored by undo).
    cursor : int
        The queue's cursor before (restored by undo).
    index : tuple of ndarray
        Pixel indices (as ``np.nonzero`` gives them) the edit writes; empty for an accept.
    old, new : ndarray
        Their values before and after.
    """

    label: int
    action: str
    before: str
    cursor: int
    index: tuple[np.ndarray, ...]
    old: np.ndarray
    new: np.ndarray

    @property
    def size(self) -> int:
        """Number of pixels written."""
        return int(self.old.size)

    def apply(self, array: np.ndarray) -> None:
        """Write the new values into ``array`` (in place)."""
        if self.size:
            array[self.index] = self.new

    def revert(self, array: np.ndarray) -> None:
        """Write the old values back into ``array`` (in place)."""
        if self.size:
            array[self.index] = self.old


@dataclass(frozen=True)
class Item:
    """One object of the queue: its label, score, decision, centroid (y, x) and box (y0, y1, x0, x1)."""

    label: int
    score: float
    status: str
    centroid: tuple[float, float]
    box: tuple[int, int, int, int]


class ReviewQueue:
    """Objects of a refined result in review order (see the module docstring).

    Parameters
    ----------
    result : ndarray of shape (H, W)
        Refined labels (read once, for geometry; not kept).
    coarse : ndarray of shape (H, W)
        The coarse labels the result was refined from (a copy is kept: reject restores from it).
    uncertainty : mapping of int to float
        Score per refined label (higher = less certain). Labels found neither in
        ``result`` nor in ``coarse`` are left out.

    Raises
    ------
    ValueError
        If the arrays are not 2-D of one shape or a score is not finite.
    """

    def __init__(self, result: np.ndarray, coarse: np.ndarray, uncertainty: Mapping[int, float]):
        result, coarse = np.asarray(result), np.asarray(coarse)
        if result.ndim != 2 or coarse.shape != result.shape:
            raise ValueError(f"result and coarse must be 2-D of one shape, got {result.shape} and {coarse.shape}")
        scores = {int(k): float(v) for k, v in uncertainty.items()}
        bad = [k for k, v in scores.items() if not np.isfinite(v)]
        if bad:
            raise ValueError(f"uncertainty of label(s) {bad} is not finite")
        self._coarse = coarse.copy()
        self.shape = result.shape
        geometry = {}
        for label in scores:
            rows, cols = np.nonzero((result == label) | (coarse == label))
            if rows.size:
                box = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
                geometry[label] = ((float(rows.mean()), float(cols.mean())), box)
        self.order: tuple[int, ...] = tuple(sorted(geometry, key=lambda k: (-scores[k], k)))
        self.scores = {k: scores[k] for k in self.order}
        self._geometry = geometry
        self.status = {k: PENDING for k in self.order}
        self.cursor = -1  # nothing chosen yet; next() goes to the first (least certain) object
        self._undo: list[Edit] = []

    # -- reading ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.order)

    def item(self, label: int) -> Item:
        """The :class:`Item` of ``label`` (KeyError if it is not in the queue)."""
        centroid, box = self._geometry[label]
        return Item(label, self.scores[label], self.status[label], centroid, box)

    def items(self) -> list[Item]:
        """Every object in review order (least certain first)."""
        return [self.item(k) for k in self.order]

    @property
    def current(self) -> int | None:
        """The label under the cursor (None before the first :meth:`next`)."""
        return self.order[self.cursor] if 0 <= self.cursor < len(self.order) else None

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def counts(self) -> dict[str, int]:
        """How many objects are pending, accepted and rejected."""
        out = {PENDING: 0, ACCEPTED: 0, REJECTED: 0}
        for status in self.status.values():
            out[status] += 1
        return out

    # -- moving -----------------------------------------------------------------------
    def next(self) -> int | None:
        """Move to the next object (stays on the last one); returns its label."""
        if self.order:
            self.cursor = min(self.cursor + 1, len(self.order) - 1)
        return self.current

    def previous(self) -> int | None:
        """Move to the previous object (stays on the first one); returns its label."""
        if self.order:
            self.cursor = max(self.cursor - 1, 0)
        return self.current

    def go(self, label: int) -> int:
        """Move to ``label`` (KeyError if it is not in the queue); returns it."""
        label = int(label)
        if label not in self.status:
            raise KeyError(f"label {label} is not in the review queue")
        self.cursor = self.order.index(label)
        return label

    # -- deciding ---------------------------------------------------------------------
    def _label(self, label: int | None) -> int:
        label = self.current if label is None else int(label)
        if label is None:
            raise ValueError("no object chosen: call next() first or pass a label")
        if label not in self.status:
            raise KeyError(f"label {label} is not in the review queue")
        return label

    def accept(self, label: int | None = None) -> Edit:
        """Mark ``label`` (default: the current one) accepted; returns the (pixel-free) edit."""
        label = self._label(label)
        empty = np.zeros(0, dtype=np.int64)
        edit = Edit(label, "accept", self.status[label], self.cursor, (empty, empty), empty, empty)
        self.status[label] = ACCEPTED
        self._undo.append(edit)
        return edit

    def reject(self, result: np.ndarray, label: int | None = None) -> Edit:
        """Restore ``label``'s coarse mask in ``result``: the edit to apply, and marks it rejected.

        Its refined pixels outside its coarse mask become 0, and every pixel of its coarse
        mask gets the label (also where another object took it). ``result`` is read, not
        modified: apply the returned :class:`Edit` (``edit.apply(result)``).
        """
        label = self._label(label)
        result = np.asarray(result)
        if result.shape != self.shape:
            raise ValueError(f"result has shape {result.shape}, the queue {self.shape}")
        own = self._coarse == label
        target = np.where(own, label, np.where(result == label, 0, result)).astype(result.dtype)
        index = np.nonzero(target != result)
        edit = Edit(label, "reject", self.status[label], self.cursor, index, result[index].copy(), target[index])
        self.status[label] = REJECTED
        self._undo.append(edit)
        return edit

    def undo(self) -> Edit | None:
        """Take back the last accept or reject: its decision and cursor come back.

        Returns the edit (revert its pixels with ``edit.revert(array)``), or None when
        there is nothing to undo.
        """
        if not self._undo:
            return None
        edit = self._undo.pop()
        self.status[edit.label] = edit.before
        self.cursor = edit.cursor
        return edit
