"""The "SegRefiner" dock widget: a thin napari front end over :func:`iter_refine`.

The widget gathers parameters into a :class:`~.worker.RefineJob`, runs :func:`~.worker.iter_job`
(the core generator, looped over the 2-D planes of a stack) in a napari worker and shows
what it yields: a preview layer per diffusion step, an optional uncertainty layer, then a
result layer (:class:`~._widget_preview.RunPreview`, which also caches the steps for the
step slider), a status line and a progress bar in the activity dock. The model widgets
and downloads live in :class:`~._widget_models.ModelChoice`. The annotator's tools: a hints
layer (:class:`~._widget_hints.HintsPanel`), re-runs of changed objects only
(``_widget_annotator.py`` over :class:`~._widget_rerun.Memories`) and the review queue
(:class:`~._widget_review.ReviewPanel`). A big or zarr/dask-backed mask is refined lazily,
object by object into a zarr store, with progress but no step previews
(``_widget_lazy.py`` over ``lazy_worker.py``).

Before any worker starts, Run checks on the main thread that there is something to
refine (:func:`~.preflight.check_job`: otherwise a warning and a status line, no worker)
and, for more than :data:`~.preflight.LARGE_RUN_OBJECTS` objects on a CPU, asks with a time
estimate (``confirm``, replaceable). The run's slots, Cancel and what closing the dock does
are in :class:`~._widget_run.RunSlots`. Everything that needs neither Qt nor napari lives
in ``worker.py``, ``tracking.py`` and ``preflight.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton, Slider, SpinBox
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox

from ..engine.request import MODES, RefineRequest
from ..models.cache import ModelCache
from ..models.refiner import available_devices
from ._napari_layers import ROLE, StepProgress, is_image_mask, layer_job, spatial_shape
from ._widget_annotator import AnnotatorSlots
from ._widget_guard import RemovalWatcher, ask_yes_no, qt_slot
from ._widget_hints import HintsPanel
from ._widget_lazy import LazySlots
from ._widget_models import ModelChoice
from ._widget_preview import RunPreview
from ._widget_rerun import Memories
from ._widget_review import ReviewPanel
from ._widget_run import CLOSE_WAIT_S, RunSlots
from .learn import LearnPanel
from .preflight import check_job
from .worker import RefineJob, iter_job

__all__ = ["CLOSE_WAIT_S", "MIN_WIDTH", "SegRefinerWidget"]

MIN_WIDTH = 340  # px: the dock title and the layer names in the combo boxes stay readable

ONLY_CHANGED_TIP = (
    "Run again over the last result of this image and mask: refine only the objects whose mask "
    "or hints changed; the others keep their result"
)
STEPS_TIP = (
    "Reverse diffusion steps: 'all' = every timestep of the model (the HR global stage skips t=0); fewer is faster"
)


class SegRefinerWidget(LazySlots, AnnotatorSlots, RunSlots, Container):
    """Dock widget: refine a coarse mask with SegRefiner and watch the diffusion steps."""

    def __init__(self, napari_viewer, *, confirm=None):
        self._viewer = napari_viewer
        self._models = ModelCache()  # (source, device, cache) -> loaded network; locked: workers load
        self._speed: dict = {}  # model -> measured CPU seconds per object-step
        self._worker = None
        self._lazy = None  # the running lazy run (_widget_lazy.LazyRun)
        self._bar: StepProgress | None = None
        self._slots: list = []
        self._closed = False
        self._choice = ModelChoice()
        #: ``confirm(text) -> bool`` asks before a long CPU run (default: a Yes/No dialog)
        self.confirm = confirm if confirm is not None else (lambda text: ask_yes_no(self.native, text))

        self._image = ComboBox(label="image", choices=self._image_choices)
        self._mask = ComboBox(label="coarse mask", choices=self._mask_choices)
        self._new_mask = PushButton(text="New coarse mask", tooltip="Empty Labels layer over the image, ready to paint")
        self._which = ComboBox(label="labels", choices=["all", "selected label"], value="all")
        self._slices = ComboBox(label="slices", choices=["displayed slice", "all slices"], value="displayed slice")
        self._mode = ComboBox(label="mode", choices=list(MODES), value="auto")
        # a combo box, not a spin box: magicgui's spin box cannot show "all" for 0
        steps = [("all", 0), *((str(n), n) for n in range(1, 33))]
        self._steps = ComboBox(label="steps", choices=steps, value=0, tooltip=STEPS_TIP)
        self._device = ComboBox(label="device", choices=available_devices(), value="auto")
        self._seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=0)
        self._replace = CheckBox(text="replace input (one undo step)", value=False)
        self._show_unc = CheckBox(text="show uncertainty map", value=True)
        self._hints = HintsPanel(napari_viewer, self._mask)
        self._only_changed = CheckBox(text="Only changed objects", value=True, tooltip=ONLY_CHANGED_TIP)
        self._rerefine = PushButton(
            text="Re-refine selected",
            tooltip="Refine the mask's selected label again (with whatever else changed), into the last result",
        )
        self._run_btn = PushButton(text="Run")
        self._step_slider = Slider(label="step", min=1, max=1, value=1, enabled=False)  # 1-based, as the status
        self._status = Label(label="", value="")
        options = [self._mode, self._steps, self._device, self._seed, self._replace, self._show_unc]
        rerun = [self._only_changed, self._rerefine]
        hints = self._hints.widgets
        self._params = [
            self._image,
            self._mask,
            self._new_mask,
            *hints,
            self._which,
            self._slices,
            *self._choice.inputs,
            *options,
            *rerun,
        ]
        super().__init__(
            widgets=[
                self._image,
                self._mask,
                self._new_mask,
                *hints,
                self._which,
                self._slices,
                *self._choice.widgets,
                *options,
                *rerun,
                self._run_btn,
                self._step_slider,
                self._status,
            ]
        )
        self._memories = Memories(napari_viewer)
        self._review = ReviewPanel(napari_viewer)
        self.native.layout().addWidget(self._review)
        self._learn = LearnPanel(napari_viewer, review=self._review, choice=self._choice, models=self._models)
        self.native.layout().addWidget(self._learn)

        self._preview = RunPreview(napari_viewer, parent=self.native)
        self.native.setMinimumWidth(MIN_WIDTH)
        for combo in (self._image, self._mask):
            combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.native.setMinimumContentsLength(12)
        self._run_btn.changed.connect(self._on_run_clicked)
        self._rerefine.changed.connect(self.rerefine_selected)
        self._new_mask.changed.connect(self.new_coarse_mask)
        self._mask.changed.connect(self._update_slices)
        self._mask.changed.connect(self._on_mask_changed)
        napari_viewer.layers.events.removed.connect(self._on_layer_removed)
        self._step_slider.changed.connect(self.show_step)
        self.native.destroyed.connect(self._on_destroyed)
        self._watcher = RemovalWatcher(self._on_removed)
        self.native.installEventFilter(self._watcher)
        self._update_slices()
        self._on_mask_changed()

    # -- choices and visibility ------------------------------------------------------
    def _image_choices(self, _widget=None) -> list:
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Image) and ROLE not in layer.metadata
        ]

    def _mask_choices(self, _widget=None) -> list:
        """Labels layers first (the default choice), then Image layers holding a mask."""
        labels = [layer for layer in self._viewer.layers if isinstance(layer, Labels) and ROLE not in layer.metadata]
        return [
            (layer.name, layer) for layer in labels + [layer for layer in self._viewer.layers if is_image_mask(layer)]
        ]

    @qt_slot
    def _update_slices(self, *_) -> None:
        mask = self._mask.value
        self._slices.visible = mask is not None and len(spatial_shape(mask)) > 2

    # -- public actions --------------------------------------------------------------
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
            np.zeros(shape, dtype=np.uint16),
            name="coarse mask",
            opacity=0.5,
            scale=image.scale[:n],
            translate=image.translate[:n],
            axis_labels=image.axis_labels[:n],
        )
        layer.brush_size = int(np.clip(min(shape[-2:]) // 20, 10, 80))
        layer.selected_label = 1
        layer.mode = "paint"
        self._mask.reset_choices()
        self._mask.value = layer
        return layer

    def request(self, *, hints: bool = True) -> RefineRequest:
        """The widget's parameters as the run's :class:`~napari_segrefiner.engine.request.RefineRequest`.

        The one place where the widget's values become a run: "all" steps (0) is None, the
        selected label the labels; ``hints=False`` leaves the hints out (lazy runs). Raises
        ValueError (for the user) when the layers are missing or do not fit together.
        """
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
        return RefineRequest(
            model=self._choice.source(),
            cache=self._choice.cache_folder(),
            device=self._device.value,
            mode=self._mode.value,
            steps=int(self._steps.value) or None,
            seed=int(self._seed.value),
            labels=labels,
            hints=self._hints.hints_for(mask) if hints else None,
        )

    def job(self) -> RefineJob:
        """The widget's parameters as a :class:`RefineJob` (raises ValueError when incomplete)."""
        request = self.request()
        return layer_job(
            self._viewer, self._image.value, self._mask.value, request, all_slices=self._slices.value == "all slices"
        )

    def start(self, select=()):
        """Start a run with the current parameters; returns its worker (None if refused).

        With "Only changed objects" (or ``select``: labels to refine again), a run over the
        last result of the same image and mask refines only what changed (see
        ``_widget_annotator.py``); nothing changed: no worker.
        """
        if self.busy:
            return self._refuse("a refinement is already running")
        reason = self.lazy_reason()
        if reason is not None:  # a big or zarr/dask-backed mask: nothing is read here (_widget_lazy.py)
            return self._start_lazy(reason, select)
        try:
            job = self.job()
            plan = self._plan(job, select)
        except ValueError as exc:
            return self._refuse(str(exc))
        if plan is not None:
            why = self._nothing_to_do(plan)
            if why is not None:
                return self._refuse(why) if why else None
            job = plan.job
        objects, why = check_job(job, self._mask.value.name)
        if why is not None:
            return self._refuse(why)
        if not self._confirm_large(job, objects):
            self._status.value = "not started"
            return None
        # the step count is known once the worker has loaded the model: the records carry it;
        # the bar and the run's layers appear just after this click (see RunPreview.begin)
        self._bar = None if plan is not None else StepProgress("SegRefiner", deferred=True)  # a re-run is short
        run = self._preview.begin(
            job, self._mask.value, uncertainty=self._show_unc.value, on_open=self._bar and self._bar.open, plan=plan
        )
        run.objects = objects
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
        self._status.value = f"re-refining: {plan.changes.summary()}" if plan else "starting (loading the model)"
        worker.start()
        return worker

    @qt_slot
    def show_step(self, index: int | None = None) -> None:
        """Show cached step ``index`` (1-based, as slider and status count) of the last run."""
        if self.busy:
            return
        status = self._preview.replay((self._step_slider.value if index is None else int(index)) - 1)
        if status is not None:
            self._status.value = status

    # -- main-thread slots -----------------------------------------------------------
    @qt_slot
    def _on_run_clicked(self, *_):
        if self.busy:
            self.cancel()
        else:
            self.start()
