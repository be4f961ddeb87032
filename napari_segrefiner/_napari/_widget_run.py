"""In-memory runs of the dock widget: start, the worker's slots, Cancel and stopping on close.

:class:`RunController` owns what a run needs besides the dock's controls (which it reads
from the :class:`~._widget_dock.Form`): the worker (:func:`~._widget_launch.launch`), the run's layers
(:class:`~._widget_preview.RunPreview`), the progress bar and the measured speed. It tells
the dock that a run starts or ends through its ``running`` signal; a re-run's result is
merged, and a full run's result remembered, by the :class:`~._widget_annotator.Annotator`
it is given.

* The status line speaks plain words: "refining 3 of 21 objects", then "done: 21 objects in
  24 s", "cancelled", or "failed: " and the error.
* Cancel sets the job's cancel flag (the worker stops within one network batch and raises
  :class:`~.worker.RefineCancelled`, which ends the run as "cancelled", not as an error)
  and quits the worker; :meth:`on_finished` resets the UI and the run's layers go.
* A run whose mask or image layer leaves the viewer stops the same way, says so, and adds
  no result.
* Closing the dock cancels the run, disconnects its slots, waits at most
  :data:`CLOSE_WAIT_S` for the worker's thread and removes the run's preview layers; the
  viewer being deleted does the same without touching any layer.
* Every slot is a :func:`~._widget_guard.qt_slot`: a no-op once the dock is closed.
"""

from __future__ import annotations

import time

from napari.utils.notifications import show_warning
from psygnal import Signal

from ..models.refiner import resolve_device
from ._napari_layers import StepProgress, notify_error
from ._widget_guard import qt_slot, quietly
from ._widget_launch import launch
from ._widget_preview import RunPreview, step_status, stop_timer
from .preflight import LARGE_RUN_OBJECTS, duration, estimate_seconds, estimate_text
from .worker import RefineCancelled, RefineJob, Update, iter_job

__all__ = ["CLOSE_WAIT_S", "SPEED_SMOOTHING", "RunController", "estimate_question", "on_cpu"]

CLOSE_WAIT_S = 1.5  # closing the dock or the viewer waits at most this long for the worker to stop
SPEED_SMOOTHING = 0.5  # weight of the newest run in the measured speed (an exponential moving average)


def on_cpu(device: str) -> bool:
    try:
        return resolve_device(device).type == "cpu"
    except (TypeError, ValueError):
        return False


class RunController:
    """In-memory runs (see the module docstring)."""

    running = Signal(bool)  # True when a run starts, False once it is over (whatever the outcome)

    def __init__(self, viewer, form, models, annotator, parent=None):
        self._viewer = viewer
        self.form = form
        self.models = models  # (source, device, cache) -> loaded network; locked: workers load
        self.annotator = annotator
        self.preview = RunPreview(viewer, parent=parent)
        self.speed: dict = {}  # model -> CPU seconds per object-step, smoothed over runs
        self.bar: StepProgress | None = None
        self.launched = None
        self._closed = False
        viewer.layers.events.removed.connect(self._on_layer_removed)

    @property
    def worker(self):
        return None if self.launched is None else self.launched.worker

    def close(self) -> None:
        """The dock is being deleted: every slot becomes a no-op."""
        self._closed = True

    @property
    def busy(self) -> bool:
        return self.launched is not None

    def confirm_text(self, request, objects: int) -> str | None:
        """The question before a long CPU run of ``request`` (None: no need to ask)."""
        if objects <= LARGE_RUN_OBJECTS or request.mode == "whole" or not on_cpu(request.device):
            return None  # ("whole" refines the frame at once; a bad device: the worker says so)
        return estimate_question(objects, request.model, request.steps, self.speed.get(request.model))

    def start(self, job: RefineJob, plan, objects: int, image=None):
        """Start refining ``job`` (``plan``: a re-run of changed objects); returns the worker."""
        form = self.form
        # the step count is known once the worker has loaded the model: the records carry it;
        # the bar and the run's layers appear just after this click (see RunPreview.begin)
        self.bar = None if plan is not None else StepProgress("SegRefiner", deferred=True)  # a re-run is short
        run = self.preview.begin(
            job, form.mask.value, uncertainty=form.show_unc.value, on_open=self.bar and self.bar.open, plan=plan
        )
        run.objects, run.image, run.started = objects, image, time.perf_counter()
        slots = {
            "yielded": self.on_yielded,
            "returned": self.on_returned,
            "errored": self.on_errored,
            "aborted": self.on_aborted,
            "finished": self.on_finished,
        }
        self.launched = launch(iter_job, job, self.models, slots=slots, done=run.done_event, start=False)
        self.running.emit(True)
        form.say(f"re-refining: {plan.changes.summary()}" if plan else f"starting: {objects} objects to refine")
        self.launched.worker.start()
        return self.launched.worker

    def cancel(self) -> None:
        """Stop the running refinement within one network batch (its layers go)."""
        if self.launched is None:
            return
        if self.preview.run is not None:
            self.preview.run.job.cancel.set()
        self.launched.worker.quit()
        self.form.run_btn.text = "Cancelling..."
        self.form.run_btn.enabled = False

    def _on_layer_removed(self, event) -> None:
        run = self.preview.run
        if run is None or self._closed or event.value not in (run.source, run.image):
            return
        run.removed = event.value.name
        self.cancel()

    # -- main-thread slots -----------------------------------------------------------
    @qt_slot
    def on_yielded(self, update: Update) -> None:
        run = self.preview.run
        if run is None:
            return
        if run.first_step is None:
            run.first_step = time.perf_counter()
        if update.step.done:  # its pipeline, its objects' scores, its uncertainty map
            run.finals[update.pos] = (update.step.mode, update.step.uncertainty, update.uncertainty)
        self.preview.add(update)
        if run.plan is None and run.removed is None:
            self.form.say(step_status(update))
        if self.bar is not None:
            self.bar.update(update)

    @qt_slot
    def on_returned(self, finals: dict) -> None:
        run = self.preview.run
        if run is None or run.removed is not None:
            return
        if run.plan is not None:  # a re-run of changed objects: merged into its layer
            self.annotator.finish_rerun(run, finals)
            return
        layer = self.preview.write_result(finals, replace=self.form.replace.value, keep=self.form.keep.value)
        if layer is not None:
            self.annotator.remember(run, finals, layer)

    @qt_slot
    def on_errored(self, exc: Exception) -> None:
        cancelled = isinstance(exc, RefineCancelled)  # Cancel took effect inside a step: no error
        run = self.preview.run
        if run is not None:
            run.outcome = "cancelled" if cancelled else "error"
            run.error = str(exc)
        if not cancelled:
            notify_error(exc)

    @qt_slot
    def on_aborted(self) -> None:
        if self.preview.run is not None:
            self.preview.run.outcome = "cancelled"

    @qt_slot
    def on_finished(self) -> None:
        """The one place where UI state is reset, whatever the outcome."""
        if self.launched is not None:
            self.launched.disconnect()
        self.launched = None
        self._close_bar()
        run = self.preview.end()
        if run is not None and run.removed is not None:
            why = f"stopped: the layer {run.removed!r} was removed; no result"
            show_warning(f"SegRefiner: {why}")
            self.form.say(why)
        elif run is not None and run.outcome == "done":
            top = max(run.steps.n_steps(), 1)
            self.form.step_slider.max = top
            with self.form.step_slider.changed.blocked():
                self.form.step_slider.value = top
            self._measure(run)
            if run.plan is None:
                self.form.say(f"done: {run.objects} objects in {duration(time.perf_counter() - run.started)}")
        elif run is not None:
            self.form.say("cancelled" if run.outcome == "cancelled" else f"failed: {run.error or 'see notification'}")
        self.running.emit(False)

    def _measure(self, run) -> None:
        """Fold the CPU seconds per object-step of a finished instance run into ``speed``.

        Timed from its first step (the model is loaded then) to its end: ``steps - 1``
        steps; an exponential moving average (:data:`SPEED_SMOOTHING`) over runs.
        """
        steps = run.steps.n_steps()
        request = run.job.request
        if run.objects >= 10 and steps > 1 and run.first_step is not None and on_cpu(request.device):
            if request.mode in ("auto", "instance") and not run.steps.truncated:
                new = (time.perf_counter() - run.first_step) / (run.objects * (steps - 1))
                old = self.speed.get(request.model)
                self.speed[request.model] = new if old is None else old + SPEED_SMOOTHING * (new - old)

    def _close_bar(self) -> None:
        bar, self.bar = self.bar, None
        if bar is not None:
            quietly(bar.close)

    def stop(self, *, touch_layers: bool) -> None:
        """Cancel the running worker and wait (at most ``CLOSE_WAIT_S``) until its thread left.

        Its slots are disconnected first: the run is over for the widget whatever the worker
        still sends. With ``touch_layers`` the run's preview layers go (its result too, if
        it had not arrived); without, the viewer is being deleted and nothing is touched.
        """
        stop_timer(self.preview.flush_timer)
        run, launched = self.preview.run, self.launched
        if launched is None:
            return
        if run is not None:
            run.job.cancel.set()
        launched.disconnect()
        launched.worker.quit()
        if run is not None:
            run.done_event.wait(timeout=CLOSE_WAIT_S)
            if run.outcome != "done":
                run.outcome = "cancelled"
        self.launched = None
        self._close_bar()
        if touch_layers:
            self.preview.end()
            self.running.emit(False)
        else:
            self.preview.run = None


def estimate_question(objects: int, model, steps, measured: float | None) -> str:
    """The question asked before a run of ``objects`` objects on the CPU."""
    text = estimate_text(objects, estimate_seconds(objects, model, steps, measured), measured=bool(measured))
    tip = "Refining the selected label or the displayed slice first is quicker."
    return f"{text}. {tip} Start anyway?"
