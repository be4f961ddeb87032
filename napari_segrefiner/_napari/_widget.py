"""The "SegRefiner" dock widget: a thin napari front end over :func:`iter_refine`.

The widget gathers parameters into a :class:`~.worker.RefineJob`, runs :func:`~.worker.iter_job`
(the core generator, looped over the 2-D planes of a stack) in a napari ``thread_worker``
and shows what it yields: a preview layer per diffusion step, an optional uncertainty
layer, then a result layer. Intermediate steps are cached so a slider can scrub them.

Layers change only in main-thread slots. Errors inside the worker are re-raised as
:class:`~.worker.RefinementError` (not a ``RuntimeError``, which a generator worker would
swallow) and reach the user as napari notifications; UI state is reset in ``_on_finished``.
Everything that needs neither Qt nor napari lives in ``worker.py``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton, Slider, SpinBox
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.colormaps import Colormap, ensure_colormap
from napari.utils.notifications import notification_manager, show_info, show_warning
from qtpy.QtCore import QEvent, QObject, Qt, QTimer

from .. import registry
from .worker import (
    DownloadTracker,
    RefineJob,
    RefinementError,
    StepCache,
    Update,
    all_positions,
    assemble,
    iter_job,
    mask_copy,
    preview_dtype,
    to_uncertainty,
)
from ._reader import looks_like_mask
from ..refiner import available_devices
from ..api import MODES

# RefineJob, Update, RefinementError, assemble, iter_job and to_uncertainty are re-exported for
# _napari_menu.py and benchmarks/bench_preview.py, which import them from here.
__all__ = ["RefineJob", "RefinementError", "SegRefinerWidget", "Update", "assemble", "iter_job", "notify_error",
           "paint_plane", "to_uncertainty"]  # fmt: skip

CHECKPOINT = "checkpoint file"
MODEL_CHOICES = (*registry.MODELS, CHECKPOINT)
ROLE = "segrefiner"  # layer.metadata key marking the widget's own preview/uncertainty layers
FLUSH_MS = 50  # minimum time between two preview repaints (keeps the viewer responsive)
STEPS_TIP = "Reverse diffusion steps: 'all' = every timestep of the model (the HR global stage skips t=0); fewer is faster"


def notify_error(exc: BaseException) -> None:
    """Show a worker's exception as a napari error notification (its traceback one click away).

    Workers run with ``ignore_errors=True`` (no re-raise in the main thread), so nothing
    else would tell the user.
    """
    notification_manager.receive_error(type(exc), exc, exc.__traceback__)


# ----------------------------------------------------------------- layer helpers ---
def layer_array(layer):
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def spatial_shape(layer) -> tuple[int, ...]:
    shape = tuple(layer_array(layer).shape)
    return shape[:-1] if getattr(layer, "rgb", False) else shape


def mask_array(layer) -> np.ndarray:
    """A private integer copy of a Labels layer, or of an Image layer holding a mask."""
    return mask_copy(layer_array(layer), layer.name)


def is_image_mask(layer) -> bool:
    """An Image layer that holds a mask: bool, or integer and piecewise constant (in memory)."""
    if not isinstance(layer, Image) or layer.rgb or ROLE in layer.metadata:
        return False
    data = layer_array(layer)
    return data.dtype == bool or (isinstance(data, np.ndarray) and looks_like_mask(data))  # never load lazy data


def plane_axes(viewer, ndim: int) -> tuple[int, int]:
    """The layer axes on screen in a 2-D view (otherwise its last two)."""
    if viewer.dims.ndisplay == 2:
        shift = viewer.dims.ndim - ndim
        axes = sorted(a - shift for a in viewer.dims.displayed)
        if all(0 <= a < ndim for a in axes):
            return axes[0], axes[1]
    return ndim - 2, ndim - 1


def current_position(viewer, layer, axes: tuple[int, int]) -> tuple[int, ...]:
    """Indices, along the layer's non-plane axes, of the slice the viewer shows."""
    point = layer.world_to_data(viewer.dims.point)
    shape = spatial_shape(layer)
    return tuple(int(np.clip(np.round(point[a]), 0, shape[a] - 1)) for a in range(len(shape)) if a not in axes)


def paint_plane(layer, index: tuple, values: np.ndarray, *, refresh: bool = True) -> bool:
    """Write ``values`` into ``layer.data[index]`` in place, only within the changed box.

    The layer's data must be a numpy array the caller owns. Returns False when nothing
    changed (and then does not refresh). Much cheaper than ``layer.data = new`` on large
    layers: no new array, no dims update, no per-step colour hashing for small dtypes.
    """
    plane = layer.data[index]
    diff = plane != values
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return False
    cols = np.flatnonzero(diff.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    np.copyto(plane[box], values[box], casting="unsafe")
    if refresh:
        layer.refresh(extent=False, highlight=False, thumbnail=False)
    return True


def uncertainty_colormap() -> Colormap:
    """magma whose dark (confident) end is transparent, so only unsure pixels show."""
    ramp = np.linspace(0.0, 1.0, 64)
    colors = np.asarray(ensure_colormap("magma").map(ramp), dtype=np.float32)
    colors[:, 3] = 0.85 * np.clip(ramp * 1.5, 0.0, 1.0)
    return Colormap(colors, name="segrefiner-uncertainty", display_name="uncertainty (magma)")


def result_layer(source, data: np.ndarray, name: str) -> Labels:
    """A Labels layer for ``data`` with ``source``'s scale, translate, units and axis labels."""
    return Labels(data, name=name, scale=source.scale, translate=source.translate, units=source.units,
                  axis_labels=source.axis_labels, opacity=0.7)  # fmt: skip


@dataclass
class _Run:
    """State of one run: its job, its layers, its cached steps and how it ended."""

    job: RefineJob
    source: Any  # the mask layer
    preview: Labels
    uncertainty: Image | None
    steps: StepCache = field(default_factory=StepCache)
    outcome: str = "running"  # -> "done", "error", "cancelled"
    done_event: threading.Event = field(default_factory=threading.Event)


# ------------------------------------------------------------------------ widget ---
class SegRefinerWidget(Container):
    """Dock widget: refine a coarse mask with SegRefiner and watch the diffusion steps."""

    def __init__(self, napari_viewer):
        self._viewer = napari_viewer
        self._models: dict = {}  # (source, device, cache) -> loaded network
        self._worker = None
        self._run: _Run | None = None
        self._last: _Run | None = None
        self._download = None
        self._slots: list = []
        self._last_flush = 0.0

        self._image = ComboBox(label="image", choices=self._image_choices)
        self._mask = ComboBox(label="coarse mask", choices=self._mask_choices)
        self._new_mask = PushButton(text="New coarse mask", tooltip="Empty Labels layer over the image, ready to paint")
        self._which = ComboBox(label="labels", choices=["all", "selected label"], value="all")
        self._slices = ComboBox(label="slices", choices=["displayed slice", "all slices"], value="displayed slice")
        self._model = ComboBox(label="model", choices=MODEL_CHOICES, value=registry.DEFAULT_MODEL)
        self._checkpoint = FileEdit(label="checkpoint", mode="r", filter="*.pt *.pth *.ckpt")
        self._cache = FileEdit(label="cache folder", mode="d", value=registry.cache_dir())
        self._model_status = Label(label="")
        self._download_btn = PushButton(text="Download")
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
        self._params = [
            self._image, self._mask, self._new_mask, self._which, self._slices, self._model, self._checkpoint,
            self._cache, self._download_btn, self._mode, self._steps, self._device, self._seed, self._replace,
            self._show_unc,
        ]  # fmt: skip
        super().__init__(widgets=[*self._params[:8], self._model_status, *self._params[8:], self._run_btn,
                                  self._step_slider, self._status])  # fmt: skip

        self._flush_timer = QTimer()
        self._flush_timer.setSingleShot(True)
        self._flush_timer.timeout.connect(self._flush)
        self._run_btn.changed.connect(self._on_run_clicked)
        self._new_mask.changed.connect(self.new_coarse_mask)
        self._download_btn.changed.connect(self.download)
        for w in (self._mask, self._model, self._cache, self._checkpoint):
            w.changed.connect(self._update_visibility)
        self._step_slider.changed.connect(self.show_step)
        self.native.destroyed.connect(self._on_destroyed)
        self._watcher = _RemovalWatcher(self._on_removed)
        self.native.installEventFilter(self._watcher)
        self._update_visibility()

    # -- choices and visibility ------------------------------------------------------
    def _image_choices(self, _widget=None) -> list:
        return [(l.name, l) for l in self._viewer.layers if isinstance(l, Image) and ROLE not in l.metadata]

    def _mask_choices(self, _widget=None) -> list:
        """Labels layers first (the default choice), then Image layers holding a mask."""
        labels = [l for l in self._viewer.layers if isinstance(l, Labels) and ROLE not in l.metadata]
        return [(l.name, l) for l in labels + [l for l in self._viewer.layers if is_image_mask(l)]]

    def _update_visibility(self, *_):
        mask, choice = self._mask.value, self._model.value
        self._slices.visible = mask is not None and len(spatial_shape(mask)) > 2
        self._checkpoint.visible = choice == CHECKPOINT
        official = choice in registry.MODELS and not registry.MODELS[choice].shipped
        self._cache.visible = official
        missing = False
        if choice == CHECKPOINT:
            path = Path(self._checkpoint.value)
            text = f"file: {path.name}" if path.is_file() else "choose a checkpoint file (.pt/.pth)"
        else:
            try:
                registry.resolve(choice, cache=self._cache_folder())
                text = "shipped with the plugin" if not official else "downloaded"
            except FileNotFoundError:
                missing = official
                text = "not downloaded yet" if official else "shipped model missing: choose a checkpoint file"
        self._model_status.value = text
        self._download_btn.visible = missing
        unsigned = missing and registry.MODELS[choice].sha256 is None
        self._download_btn.text = "Download (no published checksum)" if unsigned else "Download"

    def _cache_folder(self) -> str | None:
        value = self._cache.value
        return str(value) if value and str(value) != "." else None

    # -- public actions --------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a refinement runs (the guard against a second run)."""
        return self._worker is not None

    def set_model(self, source: str | Path) -> None:
        """Choose a registered model by name, or a checkpoint file by path."""
        if str(source) in registry.MODELS:
            self._model.value = str(source)
        else:
            self._model.value = CHECKPOINT
            self._checkpoint.value = Path(source)

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
        model = self._model.value
        if model == CHECKPOINT:
            if not Path(self._checkpoint.value).is_file():
                raise ValueError("choose a checkpoint file for the model")
            model = str(self._checkpoint.value)
        axes = plane_axes(self._viewer, len(shape))
        if len(shape) == 2 or self._slices.value == "all slices":
            positions = all_positions(shape, axes)
        else:
            positions = (current_position(self._viewer, mask, axes),)
        steps = int(self._steps.value) or None
        return RefineJob(
            image=layer_array(image), rgb=bool(image.rgb), mask=mask_array(mask), axes=axes, positions=positions,
            model=model, cache=self._cache_folder(), device=self._device.value, mode=self._mode.value,
            steps=steps, seed=int(self._seed.value), labels=labels,
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
        self._run = self._new_run(job, self._mask.value)
        # the step count is known once the worker has loaded the model: records carry it
        worker = create_worker(iter_job, job, self._models, _progress={"total": 0, "desc": "SegRefiner"},
                               _ignore_errors=True)  # fmt: skip
        # set from the worker thread itself, so that closing can wait for it without deadlock
        worker.finished.connect(self._run.done_event.set, type=Qt.ConnectionType.DirectConnection)
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

    def _new_run(self, job: RefineJob, source) -> _Run:
        """Add this run's preview (and uncertainty) layer over ``source``."""
        place = {"scale": source.scale, "translate": source.translate, "axis_labels": source.axis_labels}
        preview = self._viewer.add_labels(
            job.mask.astype(preview_dtype(job.mask)),
            name=f"{source.name} preview", opacity=0.7, metadata={ROLE: "preview"}, **place,
        )  # fmt: skip
        uncertainty = None
        if self._show_unc.value:
            uncertainty = self._viewer.add_image(
                np.zeros(job.mask.shape, dtype=np.uint8),
                name=f"{source.name} uncertainty", colormap=uncertainty_colormap(), contrast_limits=(0, 255),
                blending="translucent", metadata={ROLE: "uncertainty"}, **place,
            )  # fmt: skip
        return _Run(job, source, preview, uncertainty)

    def cancel(self) -> None:
        """Ask the running refinement to stop after its current step."""
        if self._worker is not None:
            self._worker.quit()
            self._run_btn.text = "Cancelling..."
            self._run_btn.enabled = False

    def show_step(self, index: int | None = None) -> None:
        """Show cached step ``index`` of the last run in its preview layer (no recomputing)."""
        run = self._last
        if run is None or self.busy or run.preview not in self._viewer.layers:
            return
        index = self._step_slider.value if index is None else int(index)
        last = run.steps.n_steps() - 1
        for pos, (mask, unc, timestep, stage) in run.steps.at(index).items():
            self._paint(run, pos, mask, unc)
        run.preview.visible = index < last
        self._status.value = f"step {index + 1}/{last + 1} (t={timestep}, {stage})"

    def download(self, *_):
        """Download the chosen official model into the cache folder (in a worker)."""
        name = self._model.value
        if name not in registry.MODELS or self._download is not None:
            return None
        tracker = DownloadTracker()
        bar = progress(total=0, desc=f"Downloading {name}")
        timer = QTimer()
        timer.timeout.connect(lambda: tracker.sync(bar))
        worker = create_worker(
            registry.fetch, name, cache=self._cache_folder(), progressbar=tracker,
            trust_unknown_hash=registry.MODELS[name].sha256 is None, _ignore_errors=True,
        )  # fmt: skip
        worker.returned.connect(lambda path: show_info(f"SegRefiner: {name} saved to {path}"))
        worker.errored.connect(notify_error)

        def done():
            timer.stop()
            tracker.sync(bar)
            bar.close()
            self._download = None
            self._download_btn.enabled = True
            self._update_visibility()

        worker.finished.connect(done)
        self._download = worker
        self._download_btn.enabled = False
        timer.start(200)
        worker.start()
        return worker

    # -- main-thread slots -----------------------------------------------------------
    def _on_run_clicked(self, *_):
        if self.busy:
            self.cancel()
        else:
            self.start()

    def _set_running(self, running: bool) -> None:
        for w in self._params:
            w.enabled = not running
        self._step_slider.enabled = not running and self._last is not None and self._last.steps.n_steps() > 1
        self._run_btn.text = "Cancel" if running else "Run"
        self._run_btn.enabled = True

    def _on_yielded(self, update: Update) -> None:
        run = self._run
        if run is None:
            return
        run.steps.add(update)
        s = update.step
        where = f"slice {update.plane + 1}/{update.planes} · " if update.planes > 1 else ""
        self._status.value = f"{where}step {s.index + 1}/{max(s.total, 1)} (t={s.timestep}, {s.stage}, {s.mode})"
        if not self._flush_timer.isActive():
            wait = FLUSH_MS - (time.perf_counter() - self._last_flush) * 1000
            self._flush_timer.start(int(max(0, wait)))

    def _flush(self) -> None:
        if self._run is None:
            return
        for pos, (mask, unc) in self._run.steps.take_pending().items():
            self._paint(self._run, pos, mask, unc)
        self._last_flush = time.perf_counter()

    def _paint(self, run: _Run, pos, mask, unc) -> None:
        axes, index = run.job.axes, run.job.index(pos)
        shown = len(pos) == 0 or current_position(self._viewer, run.preview, axes) == pos
        if run.preview in self._viewer.layers:
            paint_plane(run.preview, index, mask, refresh=shown)
        if unc is not None and run.uncertainty is not None and run.uncertainty in self._viewer.layers:
            paint_plane(run.uncertainty, index, unc, refresh=shown)

    def _on_returned(self, finals: dict) -> None:
        run = self._run
        self._flush_timer.stop()
        self._flush()
        result, source, layers = assemble(run.job, finals), run.source, self._viewer.layers
        if self._replace.value and isinstance(source, Labels) and source in layers:
            changed = np.nonzero(result != run.job.mask)
            if changed[0].size:
                with source.block_history():
                    source.data_setitem(changed, result[changed])
        else:
            if self._replace.value:
                show_info("SegRefiner: 'replace input' needs a Labels layer; the result is a new layer")
            ours = [layers.index(layer) for layer in (run.preview, run.uncertainty) if layer in layers]
            layers.insert(min(ours, default=len(layers)), result_layer(source, result, f"{source.name} refined"))
        run.outcome = "done"

    def _on_errored(self, exc: Exception) -> None:
        if self._run is not None:
            self._run.outcome = "error"
        notify_error(exc)

    def _on_aborted(self) -> None:
        if self._run is not None:
            self._run.outcome = "cancelled"

    def _on_finished(self) -> None:
        """The one place where UI state is reset, whatever the outcome."""
        run, self._run, self._worker = self._run, None, None
        self._flush_timer.stop()
        if run is not None and run.outcome == "done":
            if self._last is not None:
                self._remove_layers(self._last)
            self._last = run
            run.preview.name = f"{run.source.name} steps"
            if run.uncertainty is not None:
                run.uncertainty.name = f"{run.source.name} uncertainty"
            run.preview.visible = False
            top = max(run.steps.n_steps() - 1, 0)
            self._step_slider.max = top
            with self._step_slider.changed.blocked():
                self._step_slider.value = top
            if run.steps.truncated:
                show_info("SegRefiner: some intermediate steps were not kept (memory budget)")
        elif run is not None:
            self._remove_layers(run)  # cancelled or failed: every layer as it was
            self._status.value = "cancelled" if run.outcome == "cancelled" else "failed (see notification)"
        self._set_running(False)

    def _remove_layers(self, run: _Run) -> None:
        layers = self._viewer.layers
        with layers.batched_update():  # one scene-graph clean-up (a gc.collect) for both
            for layer in (run.preview, run.uncertainty):
                if layer is not None and layer in layers:
                    layers.remove(layer)

    def _stop(self, *, disconnect: bool) -> None:
        """Quit the running worker and wait (bounded) until its thread has left."""
        self._flush_timer.stop()
        run, worker = self._run, self._worker
        if worker is None:
            return
        if disconnect:  # the widgets are being deleted: no slot may touch them later
            for signal, slot in self._slots:
                try:
                    signal.disconnect(slot)
                except (TypeError, RuntimeError):
                    pass
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
