"""The annotator loop of the dock widget: re-runs of changed objects and the review queue.

:class:`Annotator` is given what it works with: the viewer, the dock's
:class:`~._widget_dock.Form` (it reads the image, the mask and "Only changed objects", and writes
the status line), the :class:`~._widget_rerun.Memories` of result layers and the
:class:`~._widget_review.ReviewPanel`.

* Before a run, :meth:`_plan` asks the memory of the last result of the same image and
  mask (same model and options) which objects changed: only those are refined and the
  result is merged into that layer (:meth:`_finish_rerun`); nothing changed: no run.
* After a full run that made a new result layer, :meth:`_remember` keeps its memory and
  the review queue shows its objects (:meth:`_review_plane`).
Main thread only.
"""

from __future__ import annotations

import numpy as np

from ..annotate.review import ReviewQueue
from ._widget_rerun import Plan
from .worker import RefineJob

__all__ = ["Annotator"]


class Annotator:
    """Re-run planning and merging, memories and the review queue (see the module docstring)."""

    def __init__(self, viewer, form, memories, review):
        self._viewer = viewer
        self.form = form
        self.memories = memories
        self.review = review
        self.learn = None  # the Learn section (learn.LearnPanel), told of re-runs and shown planes

    def plan(self, job: RefineJob, select=()) -> Plan | None:
        """The re-run of what changed, or None for a full run (raises ValueError for the user)."""
        if not self.form.only_changed.value and not select:
            return None
        plan = self.memories.plan(job, self.form.image.value, self.form.mask.value, select=select)
        if plan is None and select:
            raise ValueError(
                "no earlier result of this image and mask (with these options) to re-refine into: press Run first"
            )
        return plan

    def nothing_to_do(self, plan: Plan) -> str | None:
        """Why no worker starts for ``plan`` (None: it needs one); removals are merged at once."""
        if not plan.changes:
            return f"nothing changed since {plan.entry.layer.name!r} was refined: edit the mask or hints first"
        if plan.changes.refine:
            return None
        self.memories.apply(plan, None, None)
        self.review_plane(plan.entry, plan.pos, plan.changes.unchanged)
        self.form.say(f"{plan.changes.summary()}: {plan.entry.layer.name!r} updated, nothing to refine")
        return ""

    def finish_rerun(self, run, finals: dict) -> None:
        """Merge a re-run's plane into its result layer, its uncertainty map too; renew the queue."""
        plan: Plan = run.plan
        mode, scores, unc = run.finals.get(plan.pos, (None, None, None))
        old = plan.entry.planes[plan.pos].memory
        self.memories.apply(plan, finals.get(plan.pos), scores, mode)
        run.outcome = "done"
        self._merge_uncertainty(plan, old, unc)
        self.review_plane(plan.entry, plan.pos, plan.changes.unchanged)
        if self.learn is not None:  # learnt from if kept
            self.learn.rerefined(plan.entry, plan.pos, plan.changes.refine)
        self.form.say(f"re-refined: {plan.changes.summary()}")

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

    def remember(self, run, finals: dict, layer) -> None:
        """Keep the memory of a full run's new result layer (runs over all labels only)."""
        job = run.job
        if job.request.labels is not None or not finals:
            return
        entry = self.memories.remember(
            layer, job, self.form.image.value, run.source, finals, run.finals, uncertainty=run.uncertainty
        )
        shown = [pos for pos in job.positions if pos in entry.planes]
        if shown:
            self.review_plane(entry, shown[0])

    def review_plane(self, entry, pos, unchanged=()) -> None:
        """Show the review queue of plane ``pos`` of ``entry``'s result; the decisions of the
        ``unchanged`` objects stay as they were."""
        plane = entry.planes[pos]
        keep = None
        panel = self.review
        if panel.queue is not None and panel.layer is entry.layer:
            keep = {k: v for k, v in panel.queue.status.items() if k in unchanged}
        result = np.asarray(entry.layer.data[_index(entry.axes, entry.layer.data.ndim, pos)])
        queue = ReviewQueue(result, plane.coarse, plane.scores or {})
        panel.show_queue(entry.layer, queue, axes=entry.axes, pos=pos, uncertainty=entry.uncertainty, keep=keep)
        if self.learn is not None:
            self.learn.watch(entry, pos)


def _index(axes, ndim: int, pos) -> tuple:
    it = iter(pos)
    return tuple(slice(None) if a in axes else next(it) for a in range(ndim))
