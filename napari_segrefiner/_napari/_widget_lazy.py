"""Lazy runs of the dock widget: big or zarr/dask-backed masks, refined into a zarr store.

:class:`LazySlots` is mixed into :class:`~._widget.SegRefinerWidget`, which owns the widgets
and state it uses (``_viewer``, ``_image``, ``_mask``, ``_which``, ``_slices``, ``_choice``,
``_device``, ``_mode``, ``_steps``, ``_seed``, ``_status``, ``_run_btn``, ``_models``,
``_worker``, ``_slots``, ``_review``, ``_hints``, ``_only_changed``, ``_rerefine``,
``_replace``, ``_show_unc``).

When the chosen mask layer is lazy (:func:`~.lazy_worker.lazy_reason`: zarr, dask or other
non-numpy data, a multiscale layer, or planes above 4096 x 4096 px), Run reads nothing on
the main thread: it gathers a :class:`~.lazy_worker.LazyJob` and runs
:func:`~.lazy_worker.iter_lazy_job` in a worker, which scans the mask chunk by chunk,
refines it object by object (instance mode) and writes the result chunk by chunk into a
zarr store in a temporary folder. The widget shows progress (objects done / total, rate,
time left, chunks written) in the status line and the activity dock; there are no step
previews, hints, re-runs or review queue for such a run (those widgets are disabled while
a lazy mask is chosen, and the status line says so). The result is a new Labels layer
backed by the store (with pyramid levels for planes above 4096 px: napari then reads only
the tiles it shows); its folder is in ``layer.metadata["segrefiner_store"]`` and goes when
the layer leaves the viewer. While the run goes the mask layer is not editable (the run
reads it); Cancel stops it within one network call; a cancelled or failed run adds no
layer, gives the mask its editability back and removes its partial store. Main thread only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from napari.layers import Labels
from napari.utils import progress
from napari.utils.notifications import show_info
from qtpy.QtCore import Qt, QTimer

from ._napari_layers import layer_array, notify_error, plane_axes, spatial_shape
from ._widget_guard import qt_slot, quietly
from .lazy_worker import LazyJob, LazyProgress, LazyResult, iter_lazy_job, lazy_reason, remove_store
from .tracking import sync_bar
from .worker import RefineCancelled

__all__ = ["STORE_KEY", "LazyRun", "LazySlots", "lazy_status"]

STORE_KEY = "segrefiner_store"  # metadata key of a lazy result layer: its store folder
LAZY_NOTE = "no step previews, hints, re-runs or review queue"
LAZY_TIP = "Not for lazy runs (big or zarr/dask-backed masks: refined object by object into a zarr store)"
# status line and progress bar change at most this often (each change repaints the window: with a
# software OpenGL that costs a core's tenth at 4 Hz, taken from the refinement; a new phase shows at once)
UI_S = 1.0


@dataclass
class LazyRun:
    """State of one lazy run (main thread)."""

    job: LazyJob
    source: Any  # the mask layer
    reason: str
    editable: bool | None = None  # the mask layer's editability before the run
    bar: Any = None  # the napari progress bar (opened just after the click, before the worker starts)
    phase: str = ""
    outcome: str = "running"  # -> "done", "error", "cancelled"
    done_event: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.perf_counter)
    last: LazyProgress | None = None
    shown: tuple[str, float] = ("", 0.0)  # phase and time of the last record shown
    closed: bool = False


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def lazy_status(p: LazyProgress) -> str:
    """The status line of a lazy run's progress record."""
    if p.phase == "scanning":
        total = f"/{p.total}" if p.total else ""
        return f"lazy run: scanning the mask, chunk {p.done}{total} · {LAZY_NOTE}"
    if p.total is None:
        return f"lazy run: refining (first batch of objects) · {LAZY_NOTE}"
    text = f"lazy run: {p.done:,}/{p.total:,} objects"
    if p.rate:
        text += f" · {p.rate:.2f}/s, about {_duration(max(p.total - p.done, 0) / p.rate)} left"
    if p.chunks_total:
        text += f" · {p.chunks_done}/{p.chunks_total} chunks written"
    return f"{text} · {LAZY_NOTE}"


class LazySlots:
    """Lazy runs of the dock widget (see the module docstring)."""

    #: parent folder of new result stores (None: ``$SEGREFINER_LAZY_DIR`` or the temp folder)
    lazy_store_dir: str | None = None

    def _lazy_widgets(self) -> list:
        return [self._only_changed, self._rerefine, self._replace, self._show_unc, *self._hints.widgets]

    def _lazy_tooltips(self) -> dict:
        """The tooltips the lazy-mode ones replace (kept on first use)."""
        if getattr(self, "_tips", None) is None:
            self._tips = {id(w): w.tooltip for w in self._lazy_widgets()}
        return self._tips

    def lazy_reason(self) -> str | None:
        """Why the chosen mask is refined lazily (None: in memory, or no mask chosen)."""
        mask = self._mask.value
        if mask is None:
            return None
        return lazy_reason(layer_array(mask), multiscale=bool(getattr(mask, "multiscale", False)))

    def _apply_lazy_state(self) -> str | None:
        """Disable what lazy runs do not have while a lazy mask is chosen; returns the reason."""
        reason = self.lazy_reason()
        lazy, running, tips = reason is not None, self.busy, self._lazy_tooltips()
        for w in self._lazy_widgets():
            w.enabled = not lazy and not running
            w.tooltip = LAZY_TIP if lazy else tips.get(id(w))
        self._review.setEnabled(not lazy and not running)
        return reason

    @qt_slot
    def _on_mask_changed(self, *_) -> None:
        """A lazy mask was chosen (or not): widgets as they apply, and the status line says so."""
        reason = self._apply_lazy_state()
        if self.busy:
            return
        if reason is not None:
            self._status.value = f"lazy mode ({reason}): refined object by object into a zarr store; {LAZY_NOTE}"
        elif str(self._status.value).startswith("lazy mode"):
            self._status.value = ""

    def lazy_job(self) -> LazyJob:
        """The widget's parameters as a :class:`LazyJob` (raises ValueError when incomplete)."""
        request = self.request(hints=False).check_lazy()  # one check of the layers and values for every run
        image, mask = self._image.value, self._mask.value
        shape = spatial_shape(mask)
        axes = plane_axes(self._viewer, len(shape))
        if tuple(axes) != (len(shape) - 2, len(shape) - 1):
            raise ValueError("lazy runs refine planes of the last two axes: show those axes (the default view)")
        position = None
        if len(shape) > 2 and self._slices.value != "all slices":
            from ._napari_layers import current_position

            position = current_position(self._viewer, mask, axes)
        return LazyJob(
            image=layer_array(image),
            mask=layer_array(mask),
            rgb=bool(image.rgb),
            request=request,
            position=position,
            store_dir=self.lazy_store_dir,
            pyramid=True if getattr(mask, "multiscale", False) else None,
        )

    def _start_lazy(self, reason: str, select=()):
        """Start a lazy run (see the module docstring); returns its worker (None if refused)."""
        from napari.qt.threading import create_worker

        if select:
            return self._refuse(
                "re-runs of changed or selected objects are not available for lazy runs "
                f"({reason}): press Run to refine the mask again"
            )
        try:
            job = self.lazy_job()
        except ValueError as exc:
            return self._refuse(str(exc))
        mask = self._mask.value
        run = self._lazy = LazyRun(job, mask, reason)
        if isinstance(mask, Labels):  # the run reads the mask: no painting into it meanwhile
            run.editable = bool(mask.editable)
            mask.editable = False
        worker = create_worker(iter_lazy_job, job, self._models, _ignore_errors=True)
        worker.finished.connect(run.done_event.set, type=Qt.ConnectionType.DirectConnection)
        self._slots = [
            (worker.yielded, self._on_lazy_yielded),
            (worker.returned, self._on_lazy_returned),
            (worker.errored, self._on_lazy_errored),
            (worker.finished, self._on_lazy_finished),
        ]
        for signal, slot in self._slots:
            signal.connect(slot)
        self._worker = worker
        self._set_running(True)
        self._status.value = f"lazy run ({reason}): starting (loading the model) · {LAZY_NOTE}"
        # the progress bar first, then the worker: napari takes a while to add a bar (and processes
        # events meanwhile, which must not happen inside the click); done before the worker's threads
        # compete with it for the CPU and the GIL, that is the shortest pause of the event loop
        QTimer.singleShot(0, self._launch_lazy)
        return worker

    @qt_slot
    def _launch_lazy(self) -> None:
        run, worker = self._lazy, self._worker
        if run is None or worker is None or run.closed:
            return
        bar = progress(total=1, desc="SegRefiner (lazy): starting")  # determinate: a busy bar animates
        if run.closed or self._lazy is not run:  # (napari processed events in there)
            bar.close()
        else:
            run.bar = bar
        worker.start()

    def _sync_lazy_bar(self, run: LazyRun, p: LazyProgress) -> None:
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
    def _on_lazy_yielded(self, p: LazyProgress) -> None:
        run = self._lazy
        if run is None:
            return
        run.last = p
        now = time.perf_counter()
        if p.phase == run.shown[0] and now - run.shown[1] < UI_S:
            return  # shown within the last second (see UI_S)
        run.shown = (p.phase, now)
        self._status.value = lazy_status(p)
        self._sync_lazy_bar(run, p)

    @qt_slot
    def _on_lazy_returned(self, result: LazyResult) -> None:
        run = self._lazy
        if run is None:  # abandoned (the dock was closed)
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
        self._status.value = (
            f"lazy run done: {result.objects:,} objects in {_duration(result.seconds)}; "
            f"{layer.name!r} reads {result.store}"
        )
        show_info(
            f"SegRefiner: {layer.name!r} is stored in {result.folder} (removed with the layer; "
            "save the layer to keep it)"
        )

    @qt_slot
    def _on_lazy_errored(self, exc: Exception) -> None:
        cancelled = isinstance(exc, RefineCancelled)
        if self._lazy is not None:
            self._lazy.outcome = "cancelled" if cancelled else "error"
        if not cancelled:
            notify_error(exc)

    @qt_slot
    def _on_lazy_finished(self) -> None:
        """The one place where a lazy run's UI state is reset, whatever the outcome."""
        run = self._lazy
        self._worker = None
        self._slots = []
        self._end_lazy()
        if run is not None and run.outcome != "done":
            self._status.value = "cancelled" if run.outcome == "cancelled" else "failed (see notification)"
        self._set_running(False)

    def _end_lazy(self) -> None:
        """Close the bar and give the mask its editability back (idempotent)."""
        run, self._lazy = self._lazy, None
        if run is None:
            return
        run.closed = True
        if run.bar is not None:
            quietly(run.bar.close)
        if run.editable is not None and run.source in self._viewer.layers:
            run.source.editable = run.editable

    def _cancel_lazy(self) -> None:
        """Ask the lazy run to stop: within one network call the worker removes its partial store
        and ends (never ``quit()``: the generator must see its helper thread end)."""
        self._lazy.job.cancel.set()
        self._run_btn.text = "Cancelling..."
        self._run_btn.enabled = False

    def _on_layer_removed(self, event) -> None:
        """A lazy result layer left the viewer: its store goes too."""
        folder = getattr(event.value, "metadata", {}).get(STORE_KEY)
        if folder and not any(lay.metadata.get(STORE_KEY) == folder for lay in self._viewer.layers):
            remove_store(folder)  # (a duplicated layer shares the store: it goes with the last one)
