"""The dock widget's review queue: the refined objects, least certain first.

:class:`ReviewPanel` shows a :class:`~napari_segrefiner.annotate.review.ReviewQueue` of one plane of
a result layer: a list (label, uncertainty score, decision), Previous / Next (centre the
camera on the object at a zoom that shows it with some context, select its label in the
result layer and show the uncertainty layer), Accept / Reject (reject restores the object's
coarse mask in the result layer as one edit) and Undo (takes back the last accept or
reject, pixels included). The list has column headers (label, uncertainty, state). The
queue follows the result layer's own undo and redo (Ctrl+Z / Ctrl+Shift+Z): when the
pixels of the last reject are back to what they were before it, the reject is taken back
in the queue too, and a redo puts it back. The queue stays when the selected layer changes
and is cleared when its result layer leaves the viewer. Main thread only.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtGui import QFontDatabase
from qtpy.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
)

from ..annotate.review import Edit, ReviewQueue
from ._widget_guard import quietly
from ._widget_rerun import plane_index

__all__ = ["FILL", "HEADER", "ReviewPanel", "row_text"]

FILL = 0.3  # the object's box (at least MIN_SIDE px) fills this share of the canvas after Next/Previous
MIN_SIDE = 40
HEADER = f"{'label':>6}   {'uncertainty':>11}   state"


def row_text(item) -> str:
    """One row of the list, under :data:`HEADER`."""
    return f"{item.label:>6}   {item.score:>11.3f}   {item.status}"


def _camera(viewer):
    scene = getattr(viewer, "scene", None)  # napari >= 0.9 (viewer.camera is deprecated there)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def _canvas_size(viewer) -> tuple[int, int]:
    canvas = getattr(viewer, "canvas", None)
    size = getattr(canvas, "size", None) or getattr(viewer, "_canvas_size", None) or (600, 800)
    return int(size[0]), int(size[1])


class ReviewPanel(QGroupBox):
    """List and buttons of the review queue (see the module docstring)."""

    changed = Signal()  # after every change of the queue or its decisions (the Learn section listens)

    def __init__(self, viewer, parent=None):
        super().__init__("Review queue (least certain first)", parent)
        self._viewer = viewer
        self.queue: ReviewQueue | None = None
        self.layer = None  # the result layer
        self.uncertainty = None  # the uncertainty layer shown with each object
        self._where: tuple = ((0, 1), 2, ())  # plane axes, layer ndim, plane position
        self._redo: list = []  # rejects the layer's undo took back (its redo may put them back)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.header = QLabel(HEADER)
        self.list = QListWidget()
        self.list.setMaximumHeight(150)
        for w in (self.header, self.list):
            w.setFont(mono)
        self.info = QLabel("Refine a mask: its objects appear here, least certain first.")
        self.info.setWordWrap(True)
        self.buttons = {name: QPushButton(name) for name in ("Previous", "Next", "Accept", "Reject", "Undo")}
        grid = QGridLayout()
        for k, name in enumerate(self.buttons):
            grid.addWidget(self.buttons[name], k // 3, k % 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        for w in (self.header, self.list, self.info):
            layout.addWidget(w)
        layout.addLayout(grid)
        actions = (self.previous, self.next, self.accept, self.reject, self.undo)
        for button, action in zip(self.buttons.values(), actions):
            button.clicked.connect(lambda *_, act=action: act())
        self.list.itemClicked.connect(lambda item: self.go(self.queue.order[self.list.row(item)]))
        viewer.layers.events.removed.connect(self._on_removed)
        self._update()

    # -- the queue ------------------------------------------------------------------
    def show_queue(self, layer, queue: ReviewQueue, *, axes=(0, 1), pos=(), uncertainty=None, keep=None) -> None:
        """Review ``queue`` of the plane at ``pos`` of result ``layer``; ``keep``: decisions to carry over."""
        for label, status in (keep or {}).items():
            if label in queue.status:
                queue.status[label] = status
        self._watch(layer)
        self.queue, self.layer, self.uncertainty = queue, layer, uncertainty
        self._where = (tuple(axes), layer.data.ndim, tuple(pos))
        self._redo = []
        self._update()

    def clear(self) -> None:
        self._watch(None)
        self.queue = self.layer = self.uncertainty = None
        self._update()

    def _watch(self, layer) -> None:
        """Follow ``layer``'s data changes (its undo and redo) instead of the last result layer's."""
        if self.layer is not None and self.layer is not layer:
            self.layer.events.set_data.disconnect(self.follow)
        if layer is not None and layer is not self.layer:
            layer.events.set_data.connect(self.follow)

    def _pixels(self, edit: Edit) -> np.ndarray:
        axes, ndim, pos = self._where
        return np.asarray(self.layer.data[plane_index(axes, ndim, pos, edit.index)])

    def follow(self, *_) -> None:
        """Bring the queue to the layer's pixels after an undo or redo of the layer itself."""
        q, changed = self.queue, False
        if q is None or self.layer not in self._viewer.layers:
            return
        while (edit := q.last) is not None and edit.size and not np.array_equal(edit.old, edit.new):
            if not np.array_equal(self._pixels(edit), edit.old):
                break
            self._redo.append(q.undo())  # the layer's undo took the reject back
            changed = True
        while self._redo and np.array_equal(self._pixels(self._redo[-1]), self._redo[-1].new):
            q.redo(self._redo.pop())  # ... and its redo put it back
            changed = True
        if changed:
            self._update()

    def _on_removed(self, event) -> None:
        if event.value is self.uncertainty:
            self.uncertainty = None
        if event.value is self.layer:
            self._watch(None)
            self.queue = self.layer = self.uncertainty = None
            quietly(self._update)  # (the dock may be gone already)

    def _plane(self) -> np.ndarray:
        axes, _, pos = self._where
        it = iter(pos)
        return np.asarray(
            self.layer.data[tuple(slice(None) if a in axes else next(it) for a in range(self.layer.ndim))]
        )

    # -- moving -----------------------------------------------------------------------
    def next(self) -> int | None:
        return None if self.queue is None else self._focus(self.queue.next())

    def previous(self) -> int | None:
        return None if self.queue is None else self._focus(self.queue.previous())

    def go(self, label: int) -> int | None:
        return None if self.queue is None else self._focus(self.queue.go(label))

    def _focus(self, label: int | None) -> int | None:
        """Centre the camera on ``label``, select it in the result layer, show the uncertainty."""
        if label is None:
            return None
        item = self.queue.item(label)
        axes, ndim, pos = self._where
        layer = self.layer
        it = iter(pos)
        point = [item.centroid[axes.index(a)] if a in axes else next(it) for a in range(ndim)]
        world = np.asarray(layer.data_to_world(point), dtype=float)
        dims = self._viewer.dims
        shift = dims.ndim - ndim
        for a in range(ndim):
            if a not in axes and a + shift >= 0:
                dims.set_point(a + shift, world[a])  # the object's plane of a stack
        camera = _camera(self._viewer)
        shown = [d - shift for d in dims.displayed]
        if all(0 <= d < ndim for d in shown):
            camera.center = tuple(world[d] for d in shown)
        y0, y1, x0, x1 = item.box
        scale = np.abs(np.asarray(layer.scale, dtype=float))
        sides = [max(y1 - y0, MIN_SIDE) * scale[axes[0]], max(x1 - x0, MIN_SIDE) * scale[axes[1]]]
        height, width = _canvas_size(self._viewer)
        camera.zoom = FILL * min(height / sides[0], width / sides[1])
        layer.selected_label = int(label)
        if self.uncertainty is not None and self.uncertainty in self._viewer.layers:
            self.uncertainty.visible = True
        self._update()
        return label

    # -- deciding ---------------------------------------------------------------------
    def accept(self) -> int | None:
        """Mark the current object accepted and move on."""
        if self.queue is None or self.queue.current is None:
            return None
        self.queue.accept()
        self._redo = []
        return self._focus(self.queue.next())

    def reject(self) -> int | None:
        """Restore the current object's coarse mask in the result layer (one edit) and move on."""
        if self.queue is None or self.queue.current is None or self.layer not in self._viewer.layers:
            return None
        edit = self.queue.reject(self._plane())
        self._redo = []
        self._write(edit, edit.new)
        return self._focus(self.queue.next())

    def undo(self) -> int | None:
        """Take back the last accept or reject (its pixels too) and go back to that object."""
        if self.queue is None or self.layer not in self._viewer.layers:
            return None
        edit = self.queue.undo()
        if edit is None:
            return None
        self._write(edit, edit.old)
        return self._focus(edit.label)

    def _write(self, edit: Edit, values: np.ndarray) -> None:
        if edit.size:
            axes, ndim, pos = self._where
            with self.layer.block_history():
                self.layer.data_setitem(plane_index(axes, ndim, pos, edit.index), values)

    # -- display ----------------------------------------------------------------------
    def _update(self) -> None:
        q = self.queue
        self.list.blockSignals(True)
        self.list.clear()
        if q is not None:
            self.list.addItems([row_text(i) for i in q.items()])
            if q.cursor >= 0:
                self.list.setCurrentRow(q.cursor)
        self.list.blockSignals(False)
        if q is None:
            self.info.setText("Refine a mask: its objects appear here, least certain first.")
        elif not len(q):
            self.info.setText(f"{self.layer.name}: no object scores (uncertainty) to review")
        else:
            c = q.counts()
            self.info.setText(
                f"{self.layer.name}: {len(q)} objects; "
                f"{c['pending']} pending, {c['accepted']} accepted, {c['rejected']} rejected"
            )
        has, current = q is not None and len(q) > 0, q is not None and q.current is not None
        for name, on in (
            ("Previous", has),
            ("Next", has),
            ("Accept", current),
            ("Reject", current),
            ("Undo", q is not None and q.can_undo),
        ):
            self.buttons[name].setEnabled(on)
        self.changed.emit()
