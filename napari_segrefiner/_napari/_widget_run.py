"""The run side of the dock widget: its main-thread slots, Cancel, and stopping on close.

:class:`RunSlots` is mixed into :class:`~._widget.SegRefinerWidget`, which owns the widgets
it uses (``_run_btn``, ``_status``, ``_step_slider``, ``_params``, ``_replace``) and the run
state (``_preview``, ``_worker``, ``_bar``, ``_slots``, ``_speed``, ``_closed``, ``confirm``).

* Cancel sets the job's cancel flag (the worker stops within one network batch and raises
  :class:`~.worker.RefineCancelled`, which ends the run as "cancelled", not as an error)
  and quits the worker; ``_on_finished`` resets the UI and the run's layers go.
* Closing the dock (napari unparents the widget) cancels the run, disconnects its slots,
  waits at most :data:`CLOSE_WAIT_S` for the worker's thread and removes the run's preview
  layers; the viewer being deleted does the same without touching any layer.
* A lazy run (a big or zarr/dask-backed mask, ``_widget_lazy.py``) has slots of its own;
  Cancel and closing only set its cancel flag (never ``quit()``): its worker ends within one
  network call and removes its partial store itself.
* A run's result goes to a new layer (then remembered for re-runs and reviewed) or, for a
  re-run of changed objects, is merged into its layer (``_widget_annotator.py``).
* Every slot is a :func:`~._widget_guard.qt_slot`: a no-op once the dock is closed.
"""

from __future__ import annotations

import time

from napari.utils.notifications import show_warning

from ..models.refiner import resolve_device
from ._napari_layers import notify_error
from ._widget_guard import qt_slot, quietly
from ._widget_preview import step_status, stop_timer
from .preflight import LARGE_RUN_OBJECTS, estimate_seconds, estimate_text
from .worker import RefineCancelled, RefineJob, Update

__all__ = ["CLOSE_WAIT_S", "RunSlots"]

CLOSE_WAIT_S = 1.5  # closing the dock or the viewer waits at most this long for the worker to stop


class RunSlots:
    """Slots and stop logic of a run (see the module docstring)."""

    @property
    def busy(self) -> bool:
        """True while a refinement runs (the guard against a second run)."""
        return self._worker is not None

    def _refuse(self, why: str) -> None:
        """Nothing starts: a warning notification (no traceback) and the status line say why."""
        show_warning(f"SegRefiner: {why}")
        self._status.value = why

    def _confirm_large(self, job: RefineJob, objects: int) -> bool:
        """True unless a long CPU run (many objects) is declined in ``confirm``."""
        if objects <= LARGE_RUN_OBJECTS or job.request.mode == "whole" or not _on_cpu(job.request.device):
            return True  # ("whole" refines the frame at once; a bad device: the worker says so)
        measured = self._speed.get(job.request.model)
        text = estimate_text(
            objects, estimate_seconds(objects, job.request.model, job.request.steps, measured), measured=bool(measured)
        )
        tip = "Refining the selected label or the displayed slice first is quicker."
        return bool(self.confirm(f"{text}. {tip} Start anyway?"))

    def cancel(self) -> None:
        """Stop the running refinement within one network batch (its layers go)."""
        if self._lazy is not None:  # a lazy run (_widget_lazy.py): its worker ends by itself
            self._cancel_lazy()
        elif self._worker is not None:
            if self._preview.run is not None:
                self._preview.run.job.cancel.set()
            self._worker.quit()
            self._run_btn.text = "Cancelling..."
            self._run_btn.enabled = False

    def _set_running(self, running: bool) -> None:
        for w in self._params:
            w.enabled = not running
        self._review.setEnabled(not running)
        self._step_slider.enabled = not running and self._preview.n_steps() > 1
        self._run_btn.text = "Cancel" if running else "Run"
        self._run_btn.enabled = True
        self._apply_lazy_state()  # what a lazy mask does not have stays disabled

    @qt_slot
    def _on_yielded(self, update: Update) -> None:
        run = self._preview.run
        if run is None:
            return
        if run.first_step is None:
            run.first_step = time.perf_counter()
        if update.step.done:  # its pipeline, its objects' scores, its uncertainty map
            run.finals[update.pos] = (update.step.mode, update.step.uncertainty, update.uncertainty)
        self._preview.add(update)
        self._status.value = step_status(update)
        if self._bar is not None:
            self._bar.update(update)

    @qt_slot
    def _on_returned(self, finals: dict) -> None:
        run = self._preview.run
        if run is not None and run.plan is not None:  # a re-run of changed objects: merged into its layer
            self._finish_rerun(run, finals)
            return
        layer = self._preview.write_result(finals, replace=self._replace.value)
        if layer is not None:
            self._remember(run, finals, layer)

    @qt_slot
    def _on_errored(self, exc: Exception) -> None:
        cancelled = isinstance(exc, RefineCancelled)  # Cancel took effect inside a step: no error
        if self._preview.run is not None:
            self._preview.run.outcome = "cancelled" if cancelled else "error"
        if not cancelled:
            notify_error(exc)

    @qt_slot
    def _on_aborted(self) -> None:
        if self._preview.run is not None:
            self._preview.run.outcome = "cancelled"

    @qt_slot
    def _on_finished(self) -> None:
        """The one place where UI state is reset, whatever the outcome."""
        self._worker = None
        self._close_bar()
        run = self._preview.end()
        if run is not None and run.outcome == "done":
            top = max(run.steps.n_steps(), 1)
            self._step_slider.max = top
            with self._step_slider.changed.blocked():
                self._step_slider.value = top
            self._measure(run)
        elif run is not None:
            self._status.value = "cancelled" if run.outcome == "cancelled" else "failed (see notification)"
        self._set_running(False)

    def _measure(self, run) -> None:
        """Keep the CPU seconds per object-step of a finished instance run (for the next estimate).

        Timed from its first step (the model is loaded then) to its end: ``steps - 1`` steps.
        """
        steps = run.steps.n_steps()
        if run.objects >= 10 and steps > 1 and run.first_step is not None and _on_cpu(run.job.request.device):
            if run.job.request.mode in ("auto", "instance") and not run.steps.truncated:
                self._speed[run.job.request.model] = (time.perf_counter() - run.first_step) / (
                    run.objects * (steps - 1)
                )

    def _close_bar(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            quietly(bar.close)

    def _stop(self, *, touch_layers: bool) -> None:
        """Cancel the running worker and wait (at most ``CLOSE_WAIT_S``) until its thread left.

        Its slots are disconnected first: the run is over for the widget whatever the worker
        still sends. With ``touch_layers`` the run's preview layers go (its result too, if
        it had not arrived); without, the viewer is being deleted and nothing is touched.
        """
        stop_timer(self._preview.flush_timer)
        run, worker, lazy = self._preview.run, self._worker, self._lazy
        if worker is None:
            return
        if run is not None:
            run.job.cancel.set()
        if lazy is not None:
            lazy.job.cancel.set()
        for signal, slot in self._slots:
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        self._slots = []
        if lazy is None:  # (a lazy run's generator ends by itself: it removes its partial store)
            worker.quit()
        for state in (run, lazy):
            if state is not None:
                state.done_event.wait(timeout=CLOSE_WAIT_S)
                if state.outcome != "done":
                    state.outcome = "cancelled"
        self._worker = None
        self._close_bar()
        if touch_layers:
            self._end_lazy()
            self._preview.end()
            self._set_running(False)
        else:
            if lazy is not None:
                lazy.closed = True
                self._lazy = None
                if lazy.bar is not None:
                    quietly(lazy.bar.close)
            self._preview.run = None

    def _on_removed(self) -> None:
        """The dock widget was closed (napari unparents it): cancel, wait, remove the run's layers."""
        if not self._closed:
            self._stop(touch_layers=True)

    def _on_destroyed(self, *_) -> None:
        """The widget or the viewer window is being deleted: stop the worker, touch nothing."""
        self._closed = True
        self._stop(touch_layers=False)


def _on_cpu(device: str) -> bool:
    try:
        return resolve_device(device).type == "cpu"
    except (TypeError, ValueError):
        return False
