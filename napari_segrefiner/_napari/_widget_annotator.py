"""The annotator loop of the dock widget: re-runs of changed objects and the review queue.

:class:`AnnotatorSlots` is mixed into :class:`~._widget.SegRefinerWidget`, which owns the
widgets and state it uses (``_viewer``, ``_image``, ``_mask``, ``_only_changed``,
``_status``, ``_preview``, ``_models``, ``_memories``: :class:`~._widget_rerun.Memories`,
``_review``: :class:`~._widget_review.ReviewPanel`).

* Before a run, :meth:`_plan` asks the memory of the last result of the same image and
  mask (same model and options) which objects changed: only those are refined and the
  result is merged into that layer (:meth:`_finish_rerun`); nothing changed: no run.
* After a full run that made a new result layer, :meth:`_remember` keeps its memory and
  the review queue shows its objects (:meth:`_review_plane`).
Main thread only.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Labels

from ..annotate.review import ReviewQueue
from ._widget_rerun import Plan
from .worker import RefineJob

__all__ = ["AnnotatorSlots"]


class AnnotatorSlots:
    """Re-run planning and merging, memories and the review queue (see the module docstring)."""

    def _plan(self, job: RefineJob, select=()) -> Plan | None:
        """The re-run of what changed, or None for a full run (raises ValueError for the user)."""
        if not self._only_changed.value and not select:
            return None
        plan = self._memories.plan(job, self._image.value, self._mask.value, select=select)
        if plan is None and select:
            raise ValueError(
                "no earlier result of this image and mask (with these options) to re-refine into: press Run first"
            )
        return plan

    def rerefine_selected(self, *_):
        """Refine the mask layer's selected label again (and whatever else changed); returns the worker."""
        mask = self._mask.value
        if not isinstance(mask, Labels):
            return self._refuse("'Re-refine selected' needs a Labels layer as the coarse mask")
        return self.start(select=(int(mask.selected_label),))

    def _nothing_to_do(self, plan: Plan) -> str | None:
        """Why no worker starts for ``plan`` (None: it needs one); removals are merged at once."""
        if not plan.changes:
            return f"nothing changed since {plan.entry.layer.name!r} was refined: edit the mask or hints first"
        if plan.changes.refine:
            return None
        self._memories.apply(plan, None, None)
        self._review_plane(plan.entry, plan.pos, plan.changes.unchanged)
        self._status.value = f"{plan.changes.summary()}: {plan.entry.layer.name!r} updated, nothing to refine"
        return ""

    def _finish_rerun(self, run, finals: dict) -> None:
        """Merge a re-run's plane into its result layer, its uncertainty map too; renew the queue."""
        plan: Plan = run.plan
        mode, scores, unc = run.finals.get(plan.pos, (None, None, None))
        old = plan.entry.planes[plan.pos].memory
        self._memories.apply(plan, finals.get(plan.pos), scores, mode)
        run.outcome = "done"
        self._merge_uncertainty(plan, old, unc)
        self._review_plane(plan.entry, plan.pos, plan.changes.unchanged)
        self._learn.rerefined(plan.entry, plan.pos, plan.changes.refine)  # learnt from if kept (learn.py)
        self._status.value = f"re-refined: {plan.changes.summary()}"

    def _merge_uncertainty(self, plan: Plan, old, unc: np.ndarray | None) -> None:
        layer = plan.entry.uncertainty
        if unc is None or layer is None or layer not in self._viewer.layers:
            return
        new = plan.entry.planes[plan.pos].memory
        region = np.zeros(unc.shape, dtype=bool)
        for memory in (old, new):
            for label in plan.changes.refine:
                if label in memory.objects:
                    y0, y1, x0, x1 = memory.objects[label].region
                    region[y0:y1, x0:x1] = True
        plane = layer.data[plan.job.index(plan.pos)]
        plane[region] = unc[region]
        layer.refresh()

    def _remember(self, run, finals: dict, layer) -> None:
        """Keep the memory of a full run's new result layer (runs over all labels only)."""
        job = run.job
        if job.request.labels is not None or not finals:
            return
        entry = self._memories.remember(
            layer, job, self._image.value, run.source, finals, run.finals, uncertainty=run.uncertainty
        )
        shown = [pos for pos in job.positions if pos in entry.planes]
        if shown:
            self._review_plane(entry, shown[0])

    def _review_plane(self, entry, pos, unchanged=()) -> None:
        """Show the review queue of plane ``pos`` of ``entry``'s result; the decisions of the
        ``unchanged`` objects stay as they were."""
        plane = entry.planes[pos]
        keep = None
        panel = self._review
        if panel.queue is not None and panel.layer is entry.layer:
            keep = {k: v for k, v in panel.queue.status.items() if k in unchanged}
        result = np.asarray(entry.layer.data[_index(entry.axes, entry.layer.data.ndim, pos)])
        queue = ReviewQueue(result, plane.coarse, plane.scores or {})
        panel.show_queue(entry.layer, queue, axes=entry.axes, pos=pos, uncertainty=entry.uncertainty, keep=keep)
        self._learn.watch(entry, pos)


def _index(axes, ndim: int, pos) -> tuple:
    it = iter(pos)
    return tuple(slice(None) if a in axes else next(it) for a in range(ndim))
