"""Lazy runs of the dock widget: big or zarr/dask-backed masks, refined into a zarr store.

:class:`LazyController` reads the dock's controls from the :class:`~._widget_dock.Form` it is
given, owns the lazy run (``run``) and its worker, and tells the dock that a run starts or
ends through its ``running`` signal.

When the chosen mask layer is lazy (:func:`~.lazy_job.lazy_reason`: zarr, dask, a
multiscale layer, planes above 4096 x 4096 px), Run reads nothing on the main thread: a
worker (:func:`~.lazy_worker.iter_lazy_job`) scans the mask chunk by chunk, refines it
object by object and writes the result into a zarr store in a temporary folder. Progress
(objects, rate, time left, chunks) shows in the status line and the activity dock; once the
scan has counted more than :data:`~.preflight.LARGE_RUN_OBJECTS` objects on a CPU, the
dock asks (``ask``) whether to go on. No step previews, hints, re-runs or review queue
(those widgets are disabled). The result is a new Labels layer backed by the store (with
pyramid levels for big planes); its folder (``layer.metadata["segrefiner_store"]``) goes
with the layer. While the run goes the mask is not editable; Cancel, or removing an input
layer, stops it within one network call, adds no layer and removes the partial store.
Main thread only.
"""

from __future__ import annotations

import time

from napari.layers import Labels
from napari.utils import progress
from napari.utils.notifications import show_info, show_warning
from psygnal import Signal
from qtpy.QtCore import QTimer

from ._napari_layers import current_position, layer_array, notify_error, plane_axes, spatial_shape
from ._widget_guard import qt_slot, quietly
from ._widget_launch import launch
from .lazy_job import LAZY_NOTE, LazyJob, LazyProgress, LazyResult, LazyRun, lazy_reason, lazy_status
from .lazy_worker import iter_lazy_job, remove_store
from .preflight import duration
from .tracking import sync_bar
from .worker import RefineCancelled

__all__ = ["STORE_KEY", "LazyController", "LazyRun", "lazy_status"]

STORE_KEY = "segrefiner_store"  # metadata key of a lazy result layer: its store folder
LAZY_TIP = "Not for lazy runs (big or zarr/dask-backed masks: refined object by object into a zarr store)"
# status line and progress bar change at most this often (each change repaints the window: with a
# software OpenGL that costs a core's tenth at 4 Hz, taken from the refinement; a new phase shows at once)
UI_S = 1.0


class LazyController:
    """Lazy runs of the dock widget (see the module docstring)."""

    running = Signal(bool)  # True when a lazy run starts, False once it is over

    def __init__(self, viewer, form, models, review, request, ask):
        self._viewer = viewer
        self.form = form
        self.models = models
        self.review = review
        self._request = request  # () -> the dock's RefineRequest (without hints)
        self._ask = ask  # (objects, request) -> go on? (asked once the scan has counted them)
        self.run: LazyRun | None = None
        self.launched = None
        self._closed = False
        #: parent folder of new result stores (None: ``$SEGREFINER_LAZY_DIR`` or the temp folder)
        self.store_dir: str | None = None
        f = form
        self._lacking = [f.only_changed, f.rerefine, f.replace, f.keep, f.show_unc, *f.hints.widgets]
        self._tips = {id(w): w.tooltip for w in self._lacking}  # the tooltips the lazy-mode ones replace
        viewer.layers.events.removed.connect(self._on_layer_removed)

    def close(self) -> None:
        """The dock is being deleted: every slot becomes a no-op."""
        self._closed = True

    @property
    def busy(self) -> bool:
        return self.launched is not None

    def reason(self) -> str | None:
        """Why the chosen mask is refined lazily (None: in memory, or no mask chosen)."""
        mask = self.form.mask.value
        if mask is None:
            return None
        return lazy_reason(layer_array(mask), multiscale=bool(getattr(mask, "multiscale", False)))

    def apply_state(self, running: bool) -> str | None:
        """Disable what lazy runs do not have while a lazy mask is chosen; returns the reason."""
        reason = self.reason()
        lazy = reason is not None
        for w in self._lacking:
            w.enabled = not lazy and not running
            w.tooltip = LAZY_TIP if lazy else self._tips.get(id(w))
        self.review.setEnabled(not lazy and not running)
        return reason

    def on_mask_changed(self, running: bool) -> None:
        """A lazy mask was chosen (or not): widgets as they apply, and the status line says so."""
        reason = self.apply_state(running)
        if running:
            return
        if reason is not None:
            self.form.say(f"lazy mode ({reason}): refined object by object into a zarr store; {LAZY_NOTE}")
        elif str(self.form.status.value).startswith("lazy mode"):
            self.form.say("")

    def job(self) -> LazyJob:
        """The dock's parameters as a :class:`LazyJob` (raises ValueError when incomplete)."""
        request = self._request().check_lazy()  # one check of the layers and values for every run
        image, mask = self.form.image.value, self.form.mask.value
        shape = spatial_shape(mask)
        axes = plane_axes(self._viewer, len(shape))
        if tuple(axes) != (len(shape) - 2, len(shape) - 1):
            raise ValueError("lazy runs refine planes of the last two axes: show those axes (the default view)")
        position = None
        if len(shape) > 2 and self.form.slices.value != "all slices":
            position = current_position(self._viewer, mask, axes)
        return LazyJob(
            image=layer_array(image),
            mask=layer_array(mask),
            rgb=bool(image.rgb),
            request=request,
            position=position,
            store_dir=self.store_dir,
            pyramid=True if getattr(mask, "multiscale", False) else None,
        )

    def start(self, reason: str, select=()):
        """Start a lazy run (see the module docstring); returns its worker (None if refused)."""
        if select:
            raise ValueError(
                "re-runs of changed or selected objects are not available for lazy runs "
                f"({reason}): press Run to refine the mask again"
            )
        job = self.job()
        mask = self.form.mask.value
        run = self.run = LazyRun(job, mask, reason, image=self.form.image.value)
        if isinstance(mask, Labels):  # the run reads the mask: no painting into it meanwhile
            run.editable = bool(mask.editable)
            mask.editable = False
        slots = {
            "yielded": self.on_yielded,
            "returned": self.on_returned,
            "errored": self.on_errored,
            "finished": self.on_finished,
        }
        self.launched = launch(iter_lazy_job, job, self.models, slots=slots, done=run.done_event, start=False)
        self.running.emit(True)
        self.form.say(f"lazy run ({reason}): starting (loading the model) · {LAZY_NOTE}")
        # the progress bar first (napari processes events while it adds one: not inside the click),
        # then the worker: before its threads compete for the CPU and the GIL, the shortest pause
        QTimer.singleShot(0, self._launch)
        return self.launched.worker

    @qt_slot
    def _launch(self) -> None:
        run, launched = self.run, self.launched
        if run is None or launched is None or run.closed:
            return
        bar = progress(total=1, desc="SegRefiner (lazy): starting")  # determinate: a busy bar animates
        if run.closed or self.run is not run:  # (napari processed events in there)
            bar.close()
        else:
            run.bar = bar
        launched.worker.start()

    def _sync_bar(self, run: LazyRun, p: LazyProgress) -> None:
        """Bring the bar to ``p`` (never indeterminate: napari animates a busy bar, and with a
        software OpenGL every frame repaints the whole window)."""
        bar = run.bar
        if bar is None or p.total is None:  # (objects not counted yet: the scan's bar stays)
            return
        phase = "scanning the mask" if p.phase == "scanning" else "objects"
        if phase != run.phase:
            run.phase = phase
            bar.set_description(f"SegRefiner (lazy): {phase}")
        sync_bar(bar, p.done, p.total)

    # -- main-thread slots -----------------------------------------------------------
    @qt_slot
    def on_yielded(self, p: LazyProgress) -> None:
        run = self.run
        if run is None:
            return
        run.last = p
        if p.phase != "scanning" and p.total is not None and not run.asked:
            run.asked = True
            if not self._ask(p.total, run.job.request):
                self.cancel()
                return
        now = time.perf_counter()
        if p.phase == run.shown[0] and now - run.shown[1] < UI_S:
            return  # shown within the last second (see UI_S)
        run.shown = (p.phase, now)
        self.form.say(lazy_status(run.smooth(p)))
        self._sync_bar(run, p)

    @qt_slot
    def on_returned(self, result: LazyResult) -> None:
        run = self.run
        if run is None or run.removed is not None:  # abandoned (the dock was closed) or an input went
            remove_store(result.folder)
            return
        source = run.source
        layer = Labels(
            result.data,
            name=f"{source.name} refined",
            multiscale=len(result.levels) > 1,
            scale=source.scale,
            translate=source.translate,
            units=source.units,
            axis_labels=source.axis_labels,
            opacity=0.7,
            metadata={STORE_KEY: str(result.folder)},
        )
        self._viewer.add_layer(layer)
        run.outcome = "done"
        self.form.say(
            f"lazy run done: {result.objects:,} objects in {duration(result.seconds)}; "
            f"{layer.name!r} reads {result.store}"
        )
        show_info(
            f"SegRefiner: {layer.name!r} is stored in {result.folder} (removed with the layer; "
            "save the layer to keep it)"
        )

    @qt_slot
    def on_errored(self, exc: Exception) -> None:
        cancelled = isinstance(exc, RefineCancelled)
        if self.run is not None:
            self.run.outcome = "cancelled" if cancelled else "error"
        if not cancelled:
            notify_error(exc)

    @qt_slot
    def on_finished(self) -> None:
        """The one place where a lazy run's UI state is reset, whatever the outcome."""
        run = self.run
        if self.launched is not None:
            self.launched.disconnect()
        self.launched = None
        self.end()
        if run is not None and run.removed is not None:
            why = f"stopped: the layer {run.removed!r} was removed; no result"
            show_warning(f"SegRefiner: {why}")
            self.form.say(why)
        elif run is not None and run.outcome != "done":
            self.form.say("cancelled" if run.outcome == "cancelled" else "failed (see notification)")
        self.running.emit(False)

    def end(self) -> None:
        """Close the bar and give the mask its editability back (idempotent)."""
        run, self.run = self.run, None
        if run is None:
            return
        run.closed = True
        if run.bar is not None:
            quietly(run.bar.close)
        if run.editable is not None and run.source in self._viewer.layers:
            run.source.editable = run.editable

    def cancel(self) -> None:
        """Ask the lazy run to stop: within one network call the worker removes its partial store
        and ends (never ``quit()``: the generator must see its helper thread end)."""
        if self.run is None:
            return
        self.run.job.cancel.set()
        self.form.run_btn.text = "Cancelling..."
        self.form.run_btn.enabled = False

    def stop(self, *, touch_layers: bool, wait: float) -> None:
        """Cancel, disconnect and wait at most ``wait`` s for the worker (closing the dock)."""
        run, launched = self.run, self.launched
        if launched is None:
            return
        if run is not None:
            run.job.cancel.set()
        launched.disconnect()
        if run is not None:
            run.done_event.wait(timeout=wait)
            if run.outcome != "done":
                run.outcome = "cancelled"
        self.launched = None
        if touch_layers:
            self.end()
            self.running.emit(False)
        elif run is not None:
            run.closed = True
            self.run = None
            if run.bar is not None:
                quietly(run.bar.close)

    def _on_layer_removed(self, event) -> None:
        """A lazy result layer left the viewer: its store goes too; an input: the run stops."""
        run = self.run
        if run is not None and not self._closed and event.value in (run.source, run.image):
            run.removed = event.value.name
            self.cancel()
        folder = getattr(event.value, "metadata", {}).get(STORE_KEY)
        if folder and not any(lay.metadata.get(STORE_KEY) == folder for lay in self._viewer.layers):
            remove_store(folder)  # (a duplicated layer shares the store: it goes with the last one)
