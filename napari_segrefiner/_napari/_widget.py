"""The "SegRefiner" dock widget: a thin napari front end over :func:`iter_refine`.

The widget gathers parameters into a :class:`~.worker.RefineJob`, runs :func:`~.worker.iter_job`
(the core generator, looped over the 2-D planes of a stack) in a napari worker and shows
what it yields: a preview layer per diffusion step, an optional uncertainty layer, then a
result layer (:class:`~._widget_preview.RunPreview`, which also caches the steps for the
step slider), a status line and a progress bar in the activity dock. The model widgets
and downloads live in :class:`~._widget_models.ModelChoice`.

Layers change only in main-thread slots. Errors inside the worker are re-raised as
:class:`~.worker.RefinementError` (not a ``RuntimeError``, which a generator worker would
swallow) and reach the user as napari notifications; UI state is reset in ``_on_finished``.
Everything that needs neither Qt nor napari lives in ``worker.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton, Slider, SpinBox
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_warning
from qtpy.QtCore import QEvent, QObject, Qt

from ..api import MODES
from ..refiner import available_devices
from ._napari_layers import ROLE, StepProgress, is_image_mask, layer_job, notify_error, spatial_shape
from ._widget_models import ModelChoice
from ._widget_preview import RunPreview, step_status
from .worker import RefineJob, Update, iter_job

__all__ = ["SegRefinerWidget"]

STEPS_TIP = ("Reverse diffusion steps: 'all' = every timestep of the model (the HR global stage skips t=0); "
             "fewer is faster")


class SegRefinerWidget(Container):
    """Dock widget: refine a coarse mask with SegRefiner and watch the diffusion steps."""

    def __init__(self, napari_viewer):
        self._viewer = napari_viewer
        self._models: dict = {}  # (source, device, cache) -> loaded network
        self._worker = None
        self._bar: StepProgress | None = None
        self._slots: list = []
        self._preview = RunPreview(napari_viewer)
        self._choice = ModelChoice()

        self._image = ComboBox(label="image", choices=self._image_choices)
        self._mask = ComboBox(label="coarse mask", choices=self._mask_choices)
        self._new_mask = PushButton(text="New coarse mask", tooltip="Empty Labels layer over the image, ready to paint")
        self._which = ComboBox(label="labels", choices=["all", "selected label"], value="all")
        self._slices = ComboBox(label="slices", choices=["displayed slice", "all slices"], value="displayed slice")
        self._mode = ComboBox(label="mode", choices=list(MODES), value="auto")
        self._steps = SpinBox(label="steps", min=0, max=32, value=0, tooltip=STEPS_TIP)
        self._steps.native.setSpecialValueText("all")  # 0 = every timestep of the loaded model
        self._device = ComboBox(label="device", choices=available_devices(), value="auto")
        self._seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=0)
        self._replace = CheckBox(text="replace input (one undo step)", value=False)
        self._show_unc = CheckBox(text="show uncertainty map", value=True)
        self._run_btn = PushButton(text="Run")
        self._step_slider = Slider(label="step", min=0, max=0, value=0, enabled=False)
        self._status = Label(label="", value="")
        options = [self._mode, self._steps, self._device, self._seed, self._replace, self._show_unc]
        self._params = [self._image, self._mask, self._new_mask, self._which, self._slices, *self._choice.inputs,
                        *options]  # fmt: skip
        super().__init__(widgets=[self._image, self._mask, self._new_mask, self._which, self._slices,
                                  *self._choice.widgets, *options, self._run_btn, self._step_slider,
                                  self._status])  # fmt: skip

        self._run_btn.changed.connect(self._on_run_clicked)
        self._new_mask.changed.connect(self.new_coarse_mask)
        self._mask.changed.connect(self._update_slices)
        self._step_slider.changed.connect(self.show_step)
        self.native.destroyed.connect(self._on_destroyed)
        self._watcher = _RemovalWatcher(self._on_removed)
        self.native.installEventFilter(self._watcher)
        self._update_slices()

    # -- choices and visibility ------------------------------------------------------
    def _image_choices(self, _widget=None) -> list:
        return [(l.name, l) for l in self._viewer.layers if isinstance(l, Image) and ROLE not in l.metadata]

    def _mask_choices(self, _widget=None) -> list:
        """Labels layers first (the default choice), then Image layers holding a mask."""
        labels = [l for l in self._viewer.layers if isinstance(l, Labels) and ROLE not in l.metadata]
        return [(l.name, l) for l in labels + [l for l in self._viewer.layers if is_image_mask(l)]]

    def _update_slices(self, *_) -> None:
        mask = self._mask.value
        self._slices.visible = mask is not None and len(spatial_shape(mask)) > 2

    # -- public actions --------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a refinement runs (the guard against a second run)."""
        return self._worker is not None

    def set_model(self, source: str | Path) -> None:
        """Choose a registered model by name, or a checkpoint file by path."""
        self._choice.set(source)

    def download(self, *_):
        """Download the chosen official model into the cache folder (in a worker)."""
        return self._choice.download()

    def new_coarse_mask(self, *_) -> Labels | None:
        """Add an empty Labels layer over the chosen image, in paint mode with a big brush."""
        image = self._image.value
        if image is None:
            show_warning("SegRefiner: choose or open an image first")
            return None
        shape = spatial_shape(image)
        n = len(shape)  # an RGB image's transforms cover its spatial axes only
        layer = self._viewer.add_labels(
            np.zeros(shape, dtype=np.uint16), name="coarse mask", opacity=0.5,
            scale=image.scale[:n], translate=image.translate[:n], axis_labels=image.axis_labels[:n],
        )  # fmt: skip
        layer.brush_size = int(np.clip(min(shape[-2:]) // 20, 10, 80))
        layer.selected_label = 1
        layer.mode = "paint"
        self._mask.reset_choices()
        self._mask.value = layer
        return layer

    def job(self) -> RefineJob:
        """The widget's parameters as a :class:`RefineJob` (raises ValueError when incomplete)."""
        image, mask = self._image.value, self._mask.value
        if image is None or mask is None:
            raise ValueError("choose an image layer and a coarse mask layer")
        shape, image_shape = spatial_shape(mask), spatial_shape(image)
        if image_shape != shape:
            raise ValueError(f"image {image.name!r} {image_shape} and mask {mask.name!r} {shape} differ in shape")
        if len(shape) < 2:
            raise ValueError(f"mask {mask.name!r} must have at least 2 dimensions")
        labels = None
        if self._which.value == "selected label":
            if not isinstance(mask, Labels):
                raise ValueError("'selected label' needs a Labels layer as the coarse mask")
            labels = (int(mask.selected_label),)
        return layer_job(
            self._viewer, image, mask, all_slices=self._slices.value == "all slices",
            model=self._choice.source(), cache=self._choice.cache_folder(), device=self._device.value,
            mode=self._mode.value, steps=int(self._steps.value) or None, seed=int(self._seed.value), labels=labels,
        )  # fmt: skip

    def start(self):
        """Start a run with the current parameters; returns its worker (None if refused)."""
        if self.busy:
            show_warning("SegRefiner: a refinement is already running")
            return None
        try:
            job = self.job()
        except ValueError as exc:
            show_warning(f"SegRefiner: {exc}")
            return None
        run = self._preview.begin(job, self._mask.value, uncertainty=self._show_unc.value)
        # the step count is known once the worker has loaded the model: the records carry it
        self._bar = StepProgress("SegRefiner")
        worker = create_worker(iter_job, job, self._models, _ignore_errors=True)
        # set from the worker thread itself, so that closing can wait for it without deadlock
        worker.finished.connect(run.done_event.set, type=Qt.ConnectionType.DirectConnection)
        self._slots = [
            (worker.yielded, self._on_yielded),
            (worker.returned, self._on_returned),
            (worker.errored, self._on_errored),
            (worker.aborted, self._on_aborted),
            (worker.finished, self._on_finished),
        ]
        for signal, slot in self._slots:
            signal.connect(slot)
        self._worker = worker
        self._set_running(True)
        worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the running refinement to stop after its current step."""
        if self._worker is not None:
            self._worker.quit()
            self._run_btn.text = "Cancelling..."
            self._run_btn.enabled = False

    def show_step(self, index: int | None = None) -> None:
        """Show cached step ``index`` of the last run in its preview layer (no recomputing)."""
        if self.busy:
            return
        status = self._preview.replay(self._step_slider.value if index is None else int(index))
        if status is not None:
            self._status.value = status

    # -- main-thread slots -----------------------------------------------------------
    def _on_run_clicked(self, *_):
        if self.busy:
            self.cancel()
        else:
            self.start()

    def _set_running(self, running: bool) -> None:
        for w in self._params:
            w.enabled = not running
        self._step_slider.enabled = not running and self._preview.n_steps() > 1
        self._run_btn.text = "Cancel" if running else "Run"
        self._run_btn.enabled = True

    def _on_yielded(self, update: Update) -> None:
        if self._preview.run is None:
            return
        self._preview.add(update)
        self._status.value = step_status(update)
        if self._bar is not None:
            self._bar.update(update)

    def _on_returned(self, finals: dict) -> None:
        self._preview.write_result(finals, replace=self._replace.value)

    def _on_errored(self, exc: Exception) -> None:
        if self._preview.run is not None:
            self._preview.run.outcome = "error"
        notify_error(exc)

    def _on_aborted(self) -> None:
        if self._preview.run is not None:
            self._preview.run.outcome = "cancelled"

    def _on_finished(self) -> None:
        """The one place where UI state is reset, whatever the outcome."""
        self._worker = None
        self._close_bar()
        run = self._preview.end()
        if run is not None and run.outcome == "done":
            top = max(run.steps.n_steps() - 1, 0)
            self._step_slider.max = top
            with self._step_slider.changed.blocked():
                self._step_slider.value = top
        elif run is not None:
            self._status.value = "cancelled" if run.outcome == "cancelled" else "failed (see notification)"
        self._set_running(False)

    def _close_bar(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()

    def _stop(self, *, disconnect: bool) -> None:
        """Quit the running worker and wait (bounded) until its thread has left."""
        self._preview.flush_timer.stop()
        run, worker = self._preview.run, self._worker
        if worker is None:
            return
        if disconnect:  # the widgets are being deleted: no slot may touch them later
            for signal, slot in self._slots:
                try:
                    signal.disconnect(slot)
                except (TypeError, RuntimeError):
                    pass
            self._close_bar()  # _on_finished will not run
        worker.quit()
        run.done_event.wait(timeout=10)

    def _on_removed(self) -> None:
        """The dock widget was closed (napari unparents it): cancel and wait."""
        self._stop(disconnect=False)

    def _on_destroyed(self, *_) -> None:
        """The widget or the viewer window is being deleted: stop the worker first."""
        self._stop(disconnect=True)


class _RemovalWatcher(QObject):
    """Calls back when the watched widget loses its parent (napari's "close dock widget")."""

    def __init__(self, callback):
        super().__init__()
        self._callback = callback

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.ParentChange and obj.parent() is None:
            self._callback()
        return False
