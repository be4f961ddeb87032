"""The dock widget's run layers: a live preview of the steps, then a replay of the cached ones.

While a run goes, every yielded :class:`~.worker.Update` is cached (:class:`~.worker.StepCache`)
and painted in place into the run's preview (and uncertainty) layer, coalesced to at most one
repaint every ``FLUSH_MS`` whatever the step rate, so the viewer stays responsive. A run that
ends well keeps its layers ("<mask> steps", "<mask> uncertainty") until the next one ends
well, and the widget's step slider replays its cached steps without recomputing anything;
a cancelled or failed run leaves the layers as they were. Main thread only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer

from ._napari_layers import ROLE, current_position, paint_plane, result_layer, uncertainty_colormap
from .worker import RefineJob, StepCache, Update, assemble, preview_dtype

__all__ = ["FLUSH_MS", "Run", "RunPreview", "step_status"]

FLUSH_MS = 50  # minimum time between two preview repaints (keeps the viewer responsive)


@dataclass
class Run:
    """State of one run: its job, its layers, its cached steps and how it ended."""

    job: RefineJob
    source: Any  # the mask layer
    preview: Labels
    uncertainty: Image | None
    steps: StepCache = field(default_factory=StepCache)
    outcome: str = "running"  # -> "done", "error", "cancelled"
    done_event: threading.Event = field(default_factory=threading.Event)


def step_status(update: Update) -> str:
    """The status line of a yielded step, e.g. "step 2/6 (t=4, instance)" or "(t=5, global, hr)"."""
    s = update.step
    where = f"slice {update.plane + 1}/{update.planes} · " if update.planes > 1 else ""
    kind = s.stage if s.stage == s.mode else f"{s.stage}, {s.mode}"
    return f"{where}step {s.index + 1}/{max(s.total, 1)} (t={s.timestep}, {kind})"


class RunPreview:
    """The layers of the running run (``run``) and of the last one that ended well (``last``)."""

    def __init__(self, viewer):
        self._viewer = viewer
        self.run: Run | None = None
        self.last: Run | None = None
        self._last_flush = 0.0
        self.flush_timer = QTimer()
        self.flush_timer.setSingleShot(True)
        self.flush_timer.timeout.connect(self.flush)

    def begin(self, job: RefineJob, source, *, uncertainty: bool) -> Run:
        """Add the new run's preview (and uncertainty) layer over ``source``; it becomes ``run``."""
        place = {"scale": source.scale, "translate": source.translate, "axis_labels": source.axis_labels}
        preview = self._viewer.add_labels(
            job.mask.astype(preview_dtype(job.mask)),
            name=f"{source.name} preview", opacity=0.7, metadata={ROLE: "preview"}, **place,
        )  # fmt: skip
        unc = None
        if uncertainty:
            unc = self._viewer.add_image(
                np.zeros(job.mask.shape, dtype=np.uint8),
                name=f"{source.name} uncertainty", colormap=uncertainty_colormap(), contrast_limits=(0, 255),
                blending="translucent", metadata={ROLE: "uncertainty"}, **place,
            )  # fmt: skip
        self.run = Run(job, source, preview, unc)
        return self.run

    def add(self, update: Update) -> None:
        """Cache a yielded step and schedule its (coalesced) repaint."""
        if self.run is None:
            return
        self.run.steps.add(update)
        if not self.flush_timer.isActive():
            wait = FLUSH_MS - (time.perf_counter() - self._last_flush) * 1000
            self.flush_timer.start(int(max(0, wait)))

    def flush(self) -> None:
        """Paint the newest unpainted step of every plane."""
        if self.run is None:
            return
        for pos, (mask, unc) in self.run.steps.take_pending().items():
            self.paint(self.run, pos, mask, unc)
        self._last_flush = time.perf_counter()

    def paint(self, run: Run, pos, mask, unc) -> None:
        """Write one plane's step into the run's layers (refreshing only if that plane is shown)."""
        axes, index = run.job.axes, run.job.index(pos)
        shown = len(pos) == 0 or current_position(self._viewer, run.preview, axes) == pos
        if run.preview in self._viewer.layers:
            paint_plane(run.preview, index, mask, refresh=shown)
        if unc is not None and run.uncertainty is not None and run.uncertainty in self._viewer.layers:
            paint_plane(run.uncertainty, index, unc, refresh=shown)

    def write_result(self, finals: dict, *, replace: bool) -> None:
        """The run ended well: its result into the input (one undo step) or a new layer."""
        run = self.run
        self.flush_timer.stop()
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
            ours = [layers.index(layer) for layer in (run.preview, run.uncertainty) if layer in layers]
            layers.insert(min(ours, default=len(layers)), result_layer(source, result, f"{source.name} refined"))
        run.outcome = "done"

    def end(self) -> Run | None:
        """The run is over: it becomes ``last`` if it ended well, else its layers go."""
        run, self.run = self.run, None
        self.flush_timer.stop()
        if run is None:
            return None
        if run.outcome != "done":
            self.remove(run)  # cancelled or failed: every layer as it was
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

    def n_steps(self) -> int:
        """Steps of the last run that can be replayed."""
        return 0 if self.last is None else self.last.steps.n_steps()

    def replay(self, index: int) -> str | None:
        """Show cached step ``index`` of the last run; returns its status line (None: nothing shown)."""
        run = self.last
        if run is None or run.preview not in self._viewer.layers:
            return None
        last = run.steps.n_steps() - 1
        for pos, (mask, unc, timestep, stage) in run.steps.at(index).items():
            self.paint(run, pos, mask, unc)
        run.preview.visible = index < last
        return f"step {index + 1}/{last + 1} (t={timestep}, {stage})"

    def remove(self, run: Run) -> None:
        layers = self._viewer.layers
        with layers.batched_update():  # one scene-graph clean-up (a gc.collect) for both
            for layer in (run.preview, run.uncertainty):
                if layer is not None and layer in layers:
                    layers.remove(layer)
