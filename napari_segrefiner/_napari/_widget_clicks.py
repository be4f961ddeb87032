"""Clicks as hints: a Points layer where a click says "object here" or "background here".

"Click hints" adds (or chooses again) a Points layer ``"<mask> clicks"`` over the mask (and
a hints layer when none is chosen: :class:`~._widget_hints.HintsPanel`) and selects it. A
left click on it marks *object* (green point); a click with Alt or Shift held marks
*background* (magenta). Each click becomes a hint disk in the hints layer, sized to the
object it belongs to (:func:`disk_radius`), and re-refines that object (and a neighbour
whose crop the disk falls in) into the last result (the dock's "Re-refine selected" path:
:meth:`~._widget.SegRefinerWidget.start` with ``select``). The object is the label under an
object click, or the object nearest to a background click (within :data:`NEAR_PX` of its
coarse pixels); a click that belongs to no object is refused with a message, and so is a
click while a run goes. Main thread only.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Labels, Points
from napari.utils.notifications import show_warning
from qtpy.QtCore import QTimer

from ..annotate.hints import BACKGROUND, OBJECT
from ._napari_layers import ROLE, layer_array

__all__ = ["BACKGROUND_KEYS", "NEAR_PX", "ClickHints", "disk_radius"]

BACKGROUND_KEYS = ("Alt", "Shift")  # a click with one of these held marks background
NEAR_PX = 12  # a background click this close to an object's coarse pixels belongs to it
COLORS = {OBJECT: "#00e000", BACKGROUND: "#ff00ff"}


def disk_radius(area: int) -> int:
    """The radius of a click's hint disk for an object of ``area`` px: a fifth of its own
    radius (so that it says "here" without painting the object), 1 to 8 px."""
    return int(np.clip(round(0.2 * np.sqrt(max(area, 1) / np.pi)), 1, 8))


def owner(plane: np.ndarray, y: int, x: int, background: bool) -> int:
    """The object a click at ``(y, x)`` of ``plane`` belongs to (0: none)."""
    h, w = plane.shape
    if not (0 <= y < h and 0 <= x < w):
        return 0
    if plane[y, x] or not background:
        return int(plane[y, x])
    y0, y1, x0, x1 = max(y - NEAR_PX, 0), min(y + NEAR_PX + 1, h), max(x - NEAR_PX, 0), min(x + NEAR_PX + 1, w)
    rows, cols = np.nonzero(plane[y0:y1, x0:x1])
    if rows.size == 0:
        return 0
    near = np.argmin((rows + y0 - y) ** 2 + (cols + x0 - x) ** 2)
    return int(plane[rows[near] + y0, cols[near] + x0])


class ClickHints:
    """The "Click hints" button and what a click does (see the module docstring)."""

    def __init__(self, viewer, form, start, busy):
        self._viewer = viewer
        self.form = form
        self._start = start  # start(select=(label,)) -> worker or None: the dock's re-run
        self._busy = busy  # () -> True while a run goes
        self.layer: Points | None = None
        self._closed = False
        form.clicks_btn.changed.connect(self.points_layer)

    def close(self) -> None:
        self._closed = True

    def points_layer(self, *_) -> Points | None:
        """Add (or choose again) the clicks layer of the chosen mask and select it."""
        mask = self.form.mask.value
        if mask is None:
            show_warning("SegRefiner: choose or make a coarse mask first")
            return None
        if self.layer is None or self.layer not in self._viewer.layers:
            self.layer = self._viewer.add_points(
                np.zeros((0, mask.ndim)),
                name=f"{mask.name} clicks",
                size=6,
                border_width=0,
                scale=mask.scale,
                translate=mask.translate,
                metadata={ROLE: "clicks"},
            )
            self.layer.mouse_drag_callbacks.append(self._on_mouse)
        self.layer.mode = "pan_zoom"  # the clicks are ours: napari's add mode would add its own point
        self._viewer.layers.selection.active = self.layer
        # the hints layer now, not at the first click, but 0.1 s later: adding a layer takes napari
        # ~0.2 s, and two back to back froze the viewer for 0.32-0.36 s (0.22 s with a paint between)
        QTimer.singleShot(100, self._hints_layer)
        return self.layer

    def _hints_layer(self) -> None:
        hints = self.form.hints.layer.value
        if self._closed or self.layer is None or (hints is not None and hints in self._viewer.layers):
            return
        self.form.hints.new_layer()
        if self.layer in self._viewer.layers:
            self._viewer.layers.selection.active = self.layer

    def _on_mouse(self, layer, event):
        if self._closed or event.type != "mouse_press" or event.button != 1:
            return
        background = any(key in BACKGROUND_KEYS for key in getattr(event, "modifiers", ()))
        self.click(event.position, background=background)

    def click(self, world, *, background: bool = False):
        """One click at ``world`` (viewer coordinates): its hint disk, then the re-run of its
        object; returns the worker (None when refused)."""
        mask = self.form.mask.value
        if self._busy():
            return self._refuse("a refinement is running: click again once it is done")
        if not isinstance(mask, Labels):
            return self._refuse("click hints need a Labels layer as the coarse mask")
        data = np.asarray(layer_array(mask))
        point = np.round(np.asarray(mask.world_to_data(world), dtype=float)).astype(int)
        lead, (y, x) = tuple(point[:-2]), (int(point[-2]), int(point[-1]))
        if any(not 0 <= p < n for p, n in zip(lead, data.shape[:-2])):
            return self._refuse("the click is outside the mask")
        plane = data[lead]
        label = owner(plane, y, x, background)
        if not label:
            where = f"within {NEAR_PX} px of" if background else "on"
            return self._refuse(f"the click at ({y}, {x}) is not {where} an object of {mask.name!r}")
        hints = self.form.hints.layer.value
        if hints is None or hints not in self._viewer.layers:
            hints = self.form.hints.new_layer()
            self._viewer.layers.selection.active = self.layer
        value = BACKGROUND if background else OBJECT
        radius = disk_radius(int(np.count_nonzero(plane == label)))
        h, w = plane.shape
        yy, xx = np.ogrid[:h, :w]
        disk = (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
        if value == OBJECT:
            disk &= plane == label  # an object click paints inside its object only
        index = tuple(np.full(int(disk.sum()), p) for p in lead) + tuple(np.nonzero(disk))
        with hints.block_history():
            hints.data_setitem(index, value)
        if self.layer is not None and self.layer in self._viewer.layers:
            self.layer.current_face_color = COLORS[value]
            self.layer.add(np.asarray(mask.data_to_world(point), dtype=float))
        return self._start(select=(label,))

    def _refuse(self, why: str) -> None:
        show_warning(f"SegRefiner: {why}")
        self.form.say(why)
        return None
