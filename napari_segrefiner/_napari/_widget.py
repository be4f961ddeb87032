"""The "SegRefiner" dock widget: a thin napari front end over the engine, made of controllers.

The dock is composed, not inherited: every part gets the explicit objects it works with
and tells the others what happened through signals.

* :class:`~._widget_dock.Form` holds the controls, laid out in sections (the run on top, then
  "Hints", "Review", any extra section added with :meth:`SegRefinerWidget.add_section`, and
  a collapsed "Advanced");
* :class:`~._widget_run.RunController` runs in-memory refinements (its worker, preview
  layers, progress bar, measured speed);
* :class:`~._widget_lazy.LazyController` runs big or zarr/dask-backed masks lazily;
* :class:`~._widget_annotator.Annotator` plans re-runs of changed objects, merges them and
  fills the review queue (:class:`~._widget_review.ReviewPanel`), which the Learn section
  (:class:`~._widget_learn.LearnPanel`) learns from;
* :class:`~._widget_clicks.ClickHints` turns clicks into hint disks and re-refines the
  clicked object.

Both run controllers emit ``running(bool)``; the widget then enables or disables the
controls. Run first checks on the main thread that there is something to refine
(:func:`~.preflight.check_job`) and, for more than :data:`~.preflight.LARGE_RUN_OBJECTS`
objects on a CPU, asks with a time estimate (``confirm``). What needs neither Qt nor
napari lives in ``worker.py``, ``tracking.py`` and ``preflight.py``.
"""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import Container
from napari.layers import Labels
from napari.utils.notifications import show_warning

from ..engine.request import RefineRequest
from ..models.cache import ModelCache
from ._napari_layers import layer_job, spatial_shape, view_order
from ._widget_annotator import Annotator
from ._widget_clicks import ClickHints
from ._widget_dock import MIN_WIDTH, Form
from ._widget_guard import RemovalWatcher, ask_yes_no, qt_slot
from ._widget_launch import launch
from ._widget_lazy import LazyController
from ._widget_learn import LearnPanel
from ._widget_rerun import Memories
from ._widget_review import ReviewPanel
from ._widget_run import CLOSE_WAIT_S, RunController
from .preflight import check_job
from .worker import RefineJob, warm

__all__ = ["CLOSE_WAIT_S", "MIN_WIDTH", "SegRefinerWidget"]


class SegRefinerWidget(Container):
    """Dock widget: refine a coarse mask with SegRefiner and watch the objects come in."""

    def __init__(self, napari_viewer, *, confirm=None):
        self.viewer = napari_viewer
        self._closed = False
        self.models = ModelCache()  # (source, device, cache) -> loaded network; locked: workers load
        #: ``confirm(text) -> bool`` asks before a long CPU run (default: a Yes/No dialog)
        self.confirm = confirm if confirm is not None else (lambda text: ask_yes_no(self.native, text))
        self.form = form = Form(napari_viewer)
        super().__init__(widgets=[form.container], labels=False)
        self.native.layout().setContentsMargins(0, 0, 0, 0)
        self.review = ReviewPanel(napari_viewer)
        form.add_section(self.review, title=None)
        self.annotator = Annotator(napari_viewer, form, Memories(napari_viewer), self.review)
        self.learn = self.annotator.learn = LearnPanel(
            napari_viewer, review=self.review, choice=form.choice, models=self.models
        )  # noqa: E501
        form.add_section(self.learn, title=None)
        self.runs = RunController(napari_viewer, form, self.models, self.annotator, parent=self.native)
        self.lazy = LazyController(
            napari_viewer, form, self.models, self.review, lambda: self.request(hints=False), self._ask
        )
        self.clicks = ClickHints(napari_viewer, form, self.start, lambda: self.busy)
        for controller in (self.runs, self.lazy):
            controller.running.connect(self._set_running)
        self.native.setMinimumWidth(MIN_WIDTH)
        form.run_btn.changed.connect(self.on_run_clicked)
        form.rerefine.changed.connect(self.rerefine_selected)
        form.new_mask.changed.connect(self.new_coarse_mask)
        form.mask.changed.connect(self._on_mask_changed)
        form.step_slider.changed.connect(self.show_step)
        self.native.destroyed.connect(self.on_destroyed)
        self._watcher = RemovalWatcher(self._on_removed, on_show=self.warm)
        self.native.installEventFilter(self._watcher)
        self._on_mask_changed()

    def add_section(self, widget, *, title: str | None = None):
        """Add a section to the dock, above "Advanced" (a QWidget, or magicgui widgets under ``title``)."""
        return self.form.add_section(widget, title=title)

    def reset_choices(self, *_) -> None:
        super().reset_choices()  # napari calls this when layers change: every combo box follows
        self.form.reset_choices()

    @property
    def busy(self) -> bool:
        """True while a refinement runs (the guard against a second run)."""
        return self.runs.busy or self.lazy.busy

    @property
    def worker(self):
        """The running worker (None when idle)."""
        launched = self.runs.launched or self.lazy.launched
        return None if launched is None else launched.worker

    @property
    def lazy_store_dir(self) -> str | None:  # noqa: D102 (the lazy controller's store_dir)
        return self.lazy.store_dir

    @lazy_store_dir.setter
    def lazy_store_dir(self, value: str | None) -> None:
        self.lazy.store_dir = value

    @qt_slot
    def _on_mask_changed(self, *_) -> None:
        mask = self.form.mask.value
        self.form.slices.visible = mask is not None and len(spatial_shape(mask)) > 2
        self.lazy.on_mask_changed(self.busy)

    def _set_running(self, running: bool) -> None:
        form = self.form
        for w in form.params:
            w.enabled = not running
        self.review.setEnabled(not running)
        form.step_slider.enabled = not running and self.runs.preview.n_steps() > 1
        form.run_btn.text = "Cancel" if running else "Run"
        form.run_btn.enabled = True
        self.lazy.apply_state(running)  # what a lazy mask does not have stays disabled

    def _ask(self, objects: int, request) -> bool:
        """True unless a long CPU run (many objects) is declined in ``confirm``."""
        question = self.runs.confirm_text(request, objects)
        return question is None or bool(self.confirm(question))

    def _refuse(self, why: str) -> None:
        """Nothing starts: a warning notification (no traceback) and the status line say why."""
        show_warning(f"SegRefiner: {why}")
        self.form.say(why)

    # -- public actions --------------------------------------------------------------
    def warm(self, *_):
        """Load the chosen model and time one probe object in a worker, when the dock is first
        shown (the first Run then waits for the network only). Returns the worker."""
        try:
            form = self.form
            request = RefineRequest(
                model=form.choice.source(), cache=form.choice.cache_folder(), device=form.device.value
            )
        except ValueError:
            return None  # (no checkpoint chosen yet: nothing to load)
        probed = lambda seconds: self._probed(request.model, seconds)  # noqa: E731 (Qt holds it)
        return launch(warm, self.models, request, slots={"returned": probed}).worker

    @qt_slot
    def _probed(self, model, seconds: float | None) -> None:
        """The warm-up's probe: this computer's speed, until a run measures it (estimates)."""
        if seconds and model not in self.runs.speed:
            self.runs.speed[model] = seconds

    def set_model(self, source: str | Path) -> None:
        """Choose a registered model by name, or a checkpoint file by path."""
        self.form.choice.set(source)

    def download(self, *_):
        """Download the chosen official model into the cache folder (in a worker)."""
        return self.form.choice.download()

    def new_coarse_mask(self, *_) -> Labels | None:
        """Add an empty Labels layer over the chosen image, in paint mode with a big brush."""
        return self.form.new_coarse_mask()

    def request(self, *, hints: bool = True) -> RefineRequest:
        """The widget's parameters as the run's :class:`~napari_segrefiner.engine.request.RefineRequest`.

        The one place where the widget's values become a run: "all" steps (0) is None; an
        in-memory run refines the selected label first, then the objects in view from the
        centre out; ``hints=False`` (lazy runs) leaves hints and order out. Raises ValueError
        (for the user) when the layers are missing or do not fit together.
        """
        form = self.form
        image, mask = form.image.value, form.mask.value
        if image is None or mask is None:
            raise ValueError("choose an image layer and a coarse mask layer")
        shape, image_shape = spatial_shape(mask), spatial_shape(image)
        if image_shape != shape:
            raise ValueError(f"image {image.name!r} {image_shape} and mask {mask.name!r} {shape} differ in shape")
        if len(shape) < 2:
            raise ValueError(f"mask {mask.name!r} must have at least 2 dimensions")
        labels = None
        if form.which.value == "selected label":
            if not isinstance(mask, Labels):
                raise ValueError("'selected label' needs a Labels layer as the coarse mask")
            labels = (int(mask.selected_label),)
        return RefineRequest(
            model=form.choice.source(),
            cache=form.choice.cache_folder(),
            device=form.device.value,
            mode=form.mode.value,
            steps=int(form.steps.value) or None,
            seed=int(form.seed.value),
            labels=labels,
            hints=form.hints.hints_for(mask) if hints else None,
        )

    def job(self) -> RefineJob:
        """The widget's parameters as a :class:`RefineJob` (raises ValueError when incomplete)."""
        form = self.form
        all_slices = form.slices.value == "all slices"
        job = layer_job(self.viewer, form.image.value, form.mask.value, self.request(), all_slices=all_slices)
        if len(job.positions) == 1:  # the objects the annotator looks at come first
            return job.with_request(order=view_order(self.viewer, form.mask.value, job))
        return job

    def lazy_job(self):
        """The widget's parameters as a :class:`~.lazy_worker.LazyJob` (raises ValueError when incomplete)."""
        return self.lazy.job()

    def lazy_reason(self) -> str | None:
        """Why the chosen mask is refined lazily (None: in memory, or no mask chosen)."""
        return self.lazy.reason()

    def start(self, select=()):
        """Start a run with the current parameters; returns its worker (None if refused).

        With "Only changed objects" (or ``select``: labels to refine again), a run over the
        last result of the same image and mask refines only what changed (see
        ``_widget_annotator.py``); nothing changed: no worker.
        """
        if self.busy:
            return self._refuse("a refinement is already running")
        try:
            reason = self.lazy.reason()
            if reason is not None:  # a big or zarr/dask-backed mask: nothing is read here
                return self.lazy.start(reason, select)
            job = self.job()
            plan = self.annotator.plan(job, select)
        except ValueError as exc:
            return self._refuse(str(exc))
        if plan is not None:
            why = self.annotator.nothing_to_do(plan)
            if why is not None:
                return self._refuse(why) if why else None
            job = plan.job
        objects, why = check_job(job, self.form.mask.value.name)
        if why is not None:
            return self._refuse(why)
        if not self._ask(objects, job.request):
            self.form.say("not started")
            return None
        return self.runs.start(job, plan, objects, image=self.form.image.value)

    def rerefine_selected(self, *_):
        """Refine the mask layer's selected label again (and whatever else changed); returns the worker."""
        mask = self.form.mask.value
        if not isinstance(mask, Labels):
            return self._refuse("'Re-refine selected' needs a Labels layer as the coarse mask")
        return self.start(select=(int(mask.selected_label),))

    def cancel(self) -> None:
        """Stop the running refinement within one network batch (its layers go)."""
        if self.lazy.busy:
            self.lazy.cancel()
        else:
            self.runs.cancel()

    @qt_slot
    def show_step(self, index: int | None = None) -> None:
        """Show cached step ``index`` (1-based, as slider and status count) of the last run."""
        if self.busy:
            return
        slider = self.form.step_slider
        status = self.runs.preview.replay((slider.value if index is None else int(index)) - 1)
        if status is not None:
            self.form.say(status)

    @qt_slot
    def on_run_clicked(self, *_):
        if self.busy:
            self.cancel()
        else:
            self.start()

    # -- closing ---------------------------------------------------------------------
    def _close_controllers(self, *, touch_layers: bool) -> None:
        self.runs.stop(touch_layers=touch_layers)
        self.lazy.stop(touch_layers=touch_layers, wait=CLOSE_WAIT_S)

    def _on_removed(self) -> None:
        """The dock widget was closed (napari unparents it): cancel, wait, remove the run's layers."""
        if not self._closed:
            self._close_controllers(touch_layers=True)

    def on_destroyed(self, *_) -> None:
        """The widget or the viewer window is being deleted: stop the worker, touch nothing."""
        self._closed = True
        for controller in (self.runs, self.lazy, self.clicks):
            controller.close()
        self._close_controllers(touch_layers=False)
