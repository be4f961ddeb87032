"""The dock widget's run layers: a live preview of the steps, then a replay of the cached ones.

A run's preview and uncertainty layers are added just after the Run click, one per event-
loop turn (napari needs a few hundred milliseconds for each), while the worker loads the
model (a re-run of changed objects adds none). While a run goes, every yielded
:class:`~.worker.Update` is cached (:class:`~.worker.StepCache`) and painted in place into
the run's preview (and uncertainty) layer, coalesced to at most one repaint every
``FLUSH_MS`` whatever the step rate, so the viewer stays responsive. A run that ends well
keeps its layers ("<mask> steps", "<mask> uncertainty") until the next one ends well, and
the widget's step slider replays its cached steps without recomputing anything; a cancelled,
failed or abandoned (dock closed) run leaves the layers as they were: its preview layers go
and the layer selection of before the run comes back. The repaint timer is a child of the
dock widget, so it dies with it and never fires into a closed dock. Main thread only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer

from ._napari_layers import ROLE, current_position, paint_plane, result_layer, uncertainty_colormap
from ._widget_guard import quietly
from .tracking import StepCache
from .worker import RefineJob, Update, assemble, preview_dtype

__all__ = ["DROP_MS", "FLUSH_MS", "Run", "RunPreview", "step_status", "stop_timer"]

FLUSH_MS = 50  # minimum time between two preview repaints (keeps the viewer responsive)
DROP_MS = 300  # a re-run's stale "steps" layer goes this long after its result was written


@dataclass
class Run:
    """State of one run: its job, its layers, its cached steps and how it ended."""

    job: RefineJob
    source: Any  # the mask layer
    preview: Labels | None = None  # None until opened (see RunPreview.begin)
    uncertainty: Image | None = None
    steps: StepCache = field(default_factory=StepCache)
    outcome: str = "running"  # -> "done", "error", "cancelled"
    done_event: threading.Event = field(default_factory=threading.Event)
    selection: tuple = ((), None)  # the viewer's selected layers and active layer before the run
    objects: int = 0  # objects it refines (counted before it started)
    opening: list[Callable[[], Any]] = field(default_factory=list)  # its layers still to add, in order
    on_open: Callable[[], Any] | None = None  # called once they are there (not when it ends before)
    first_step: float | None = None  # time.perf_counter() when its first step arrived
    plan: Any = None  # a re-run of changed objects (_widget_rerun.Plan): no layers of its own
    finals: dict = field(default_factory=dict)  # {pos: (mode, uncertainty scores)} of the final records


def stop_timer(timer: QTimer) -> None:
    """Stop ``timer``; nothing happens when Qt has deleted it already (a closing dock)."""
    quietly(timer.stop)


def step_status(update: Update) -> str:
    """The status line of a yielded record, e.g. "refining: 4 of 21 objects done"."""
    s = update.step
    where = f"slice {update.plane + 1}/{update.planes} · " if update.planes > 1 else ""
    return f"{where}refining: {s.done_objects} of {s.total_objects} objects done"


class RunPreview:
    """The layers of the running run (``run``) and of the last one that ended well (``last``)."""

    def __init__(self, viewer, parent=None):
        self._viewer = viewer
        self.run: Run | None = None
        self.last: Run | None = None
        self._last_flush = 0.0
        self.flush_timer = QTimer(parent)  # parented: deleted with the dock widget, never orphaned
        self.flush_timer.setSingleShot(True)
        self.flush_timer.timeout.connect(self.flush)
        self._dropped: list = []
        self.drop_timer = QTimer(parent)
        self.drop_timer.setSingleShot(True)
        self.drop_timer.timeout.connect(self._drop)

    def begin(self, job: RefineJob, source, *, uncertainty: bool, on_open=None, plan=None) -> Run:
        """Make the new run over ``source`` the ``run``; its layers come just after the click.

        Each layer costs napari a few hundred milliseconds (layer controls, vispy visuals):
        they are added after the Run click has returned, one per event-loop turn (0 ms
        timer), while the worker loads the model; then ``on_open()`` (the widget's progress
        bar). Steps are painted once the run is open. A re-run (``plan``) adds no layer.
        """
        selection = (tuple(self._viewer.layers.selection), self._viewer.layers.selection.active)
        run = self.run = Run(job, source, selection=selection, plan=plan)
        place = {"scale": source.scale, "translate": source.translate, "axis_labels": source.axis_labels}

        def add_preview():
            run.preview = self._viewer.add_labels(
                job.mask.astype(preview_dtype(job.mask)),
                name=f"{source.name} preview",
                opacity=0.7,
                metadata={ROLE: "preview"},
                **place,
            )

        def add_uncertainty():
            run.uncertainty = self._viewer.add_image(
                np.zeros(job.mask.shape, dtype=np.uint8),
                name=f"{source.name} uncertainty",
                colormap=uncertainty_colormap(),
                contrast_limits=(0, 255),
                blending="translucent",
                metadata={ROLE: "uncertainty"},
                **place,
            )

        layers = [] if plan is not None else [add_preview, *([add_uncertainty] if uncertainty else [])]
        run.opening, run.on_open = layers, on_open
        self.flush_timer.start(0)
        return run

    def open_now(self, run: Run) -> None:
        """Add the rest of ``run``'s layers at once (it is ending: no ``on_open``)."""
        run.on_open = None
        while run.opening:
            run.opening.pop(0)()

    def add(self, update: Update) -> None:
        """Cache a yielded step and schedule its (coalesced) repaint."""
        if self.run is None:
            return
        self.run.steps.add(update)
        if not self.flush_timer.isActive():
            wait = FLUSH_MS - (time.perf_counter() - self._last_flush) * 1000
            self.flush_timer.start(int(max(0, wait)))

    def flush(self) -> None:
        """Open the run one piece per call, then paint the newest unpainted step of every plane."""
        run = self.run
        if run is None:
            return
        if run.opening or run.on_open is not None:
            if run.opening:
                run.opening.pop(0)()
            else:
                on_open, run.on_open = run.on_open, None
                on_open()  # napari may process events in there (even end this run)
            if self.run is run:
                self.flush_timer.start(0)
            return
        for pos, (mask, unc) in run.steps.take_pending().items():
            self.paint(run, pos, mask, unc)
        self._last_flush = time.perf_counter()

    def paint(self, run: Run, pos, mask, unc) -> None:
        """Write one plane's step into the run's layers (refreshing only if that plane is shown)."""
        if run.preview is None:
            return
        axes, index = run.job.axes, run.job.index(pos)
        shown = len(pos) == 0 or current_position(self._viewer, run.preview, axes) == pos
        if run.preview in self._viewer.layers:
            paint_plane(run.preview, index, mask, refresh=shown)
        if unc is not None and run.uncertainty is not None and run.uncertainty in self._viewer.layers:
            paint_plane(run.uncertainty, index, unc, refresh=shown)

    def write_result(self, finals: dict, *, replace: bool) -> Labels | None:
        """The run ended well: its result into the input (one undo step) or a new layer (returned)."""
        run = self.run
        if run is None:  # abandoned already (the dock was closed)
            return None
        stop_timer(self.flush_timer)
        self.open_now(run)
        self.flush()
        result, source, layers = assemble(run.job, finals), run.source, self._viewer.layers
        if replace and isinstance(source, Labels) and source in layers:
            changed = np.nonzero(result != run.job.mask)
            if changed[0].size:
                with source.block_history():
                    source.data_setitem(changed, result[changed])
        else:
            if replace:
                show_info("SegRefiner: 'replace input' needs a Labels layer; the result is a new layer")
            ours = [layers.index(lay) for lay in (run.preview, run.uncertainty) if lay is not None and lay in layers]
            layer = result_layer(source, result, f"{source.name} refined")
            layers.insert(min(ours, default=len(layers)), layer)
            run.outcome = "done"
            return layer
        run.outcome = "done"
        return None

    def end(self) -> Run | None:
        """The run is over: it becomes ``last`` if it ended well, else its layers go."""
        run, self.run = self.run, None
        stop_timer(self.flush_timer)
        if run is None:
            return None
        if run.outcome != "done":
            self.remove(run)  # cancelled, failed or abandoned: every layer as it was
            self.restore_selection(run)
            return run
        if run.plan is not None:  # a re-run: the last run's steps no longer show the result
            self.drop_steps()
            return run
        if self.last is not None:
            self.remove(self.last)
        self.last = run
        run.preview.name = f"{run.source.name} steps"
        if run.uncertainty is not None:
            run.uncertainty.name = f"{run.source.name} uncertainty"
        run.preview.visible = False
        if run.steps.truncated:
            show_info("SegRefiner: some intermediate steps were not kept (memory budget)")
        return run

    def drop_steps(self) -> None:
        """Forget the last run's steps; its "steps" layer goes ``DROP_MS`` later, once the
        result is on screen (removing a layer blocks napari a few hundred ms)."""
        if self.last is not None:
            self._dropped += [self.last.preview] if self.last.preview is not None else []
            self.last.preview, self.last.steps = None, StepCache()
            self.drop_timer.start(DROP_MS)

    def _drop(self) -> None:
        for layer in [lay for lay in self._dropped if lay in self._viewer.layers]:
            self._viewer.layers.remove(layer)
        self._dropped = []

    def n_steps(self) -> int:
        """Steps of the last run that can be replayed."""
        return 0 if self.last is None else self.last.steps.n_steps()

    def replay(self, index: int) -> str | None:
        """Show cached step ``index`` of the last run; returns its status line (None: nothing shown)."""
        run = self.last
        if run is None or run.preview not in self._viewer.layers:
            return None
        last = run.steps.n_steps() - 1
        for pos, (mask, unc, timestep, stage) in run.steps.at(index).items():  # noqa: B007 (the last one is shown)
            self.paint(run, pos, mask, unc)
        run.preview.visible = index < last
        return f"step {index + 1}/{last + 1} (t={timestep})" + (" = result" if stage == "result" else "")

    def restore_selection(self, run: Run) -> None:
        """Select again the layers that were selected before ``run`` (those still there)."""
        layers = self._viewer.layers
        chosen, active = run.selection
        layers.selection.clear()
        layers.selection.update([layer for layer in chosen if layer in layers])
        if active is not None and active in layers:
            layers.selection.active = active

    def remove(self, run: Run) -> None:
        layers = self._viewer.layers
        with layers.batched_update():  # one scene-graph clean-up (a gc.collect) for both
            for layer in (run.preview, run.uncertainty):
                if layer is not None and layer in layers:
                    layers.remove(layer)
