"""Re-refine only what changed: the dock widget's memory of its result layers.

After a run over all objects that wrote a new result layer, :class:`Memories` keeps a
:class:`~napari_segrefiner.annotate.rerun.RefineMemory` per refined plane of that layer (with the
objects' scores and the coarse plane, for the review queue). The next Run with the same
image, mask, model and options, over one plane the layer remembers, refines only the
objects whose coarse mask or hints changed (:meth:`Memories.plan`; plus the mask's selected
label with "Re-refine selected") and :meth:`Memories.apply` merges the result into the
same layer as one undo step: unchanged objects keep their pixels bit for bit, removed
objects go. A memory is forgotten when its result layer leaves the viewer. Main thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..annotate.rerun import Changes, RefineMemory
from .worker import RefineJob

__all__ = ["Entry", "Memories", "Plan", "PlaneMemory", "plane_index"]


@dataclass
class PlaneMemory:
    """One refined plane of a result layer: its memory, its objects' scores and its coarse labels."""

    memory: RefineMemory
    scores: dict[int, float] | None
    coarse: np.ndarray


@dataclass(eq=False)
class Entry:
    """A result layer the widget can re-refine into."""

    layer: Any  # the result Labels layer
    image: Any
    mask: Any
    context: tuple  # model, cache, device, mode, steps, seed: another value means a full run
    axes: tuple[int, int]
    planes: dict[tuple[int, ...], PlaneMemory] = field(default_factory=dict)
    uncertainty: Any = None  # the uncertainty layer of the run that made it (merged on re-runs)


@dataclass(frozen=True)
class Plan:
    """A re-run: which objects of which plane, and the job that refines just them."""

    entry: Entry
    pos: tuple[int, ...]
    changes: Changes
    job: RefineJob


def context(job: RefineJob) -> tuple:
    return (
        job.request.model,
        job.request.cache,
        str(job.request.device),
        job.request.mode,
        job.request.steps,
        job.request.seed,
    )


def plane_index(axes: tuple[int, int], ndim: int, pos: tuple[int, ...], index: tuple[np.ndarray, ...]) -> tuple:
    """Full-array index (one int array per axis, as ``Labels.data_setitem`` takes) of the
    pixels ``index`` (row and column arrays) of the plane at ``pos`` (plane ``axes``)."""
    n = index[0].size
    it, rows_cols = iter(pos), iter(index)
    return tuple(next(rows_cols) if a in axes else np.full(n, next(it), dtype=np.intp) for a in range(ndim))


class Memories:
    """The result layers the widget remembers (see the module docstring)."""

    def __init__(self, viewer):
        self._viewer = viewer
        self.entries: list[Entry] = []
        viewer.layers.events.removed.connect(self._on_removed)

    def _on_removed(self, event) -> None:
        self.entries = [e for e in self.entries if e.layer is not event.value]

    def entry_for(self, layer) -> Entry | None:
        return next((e for e in self.entries if e.layer is layer), None)

    def find(self, job: RefineJob, image, mask) -> Entry | None:
        """The newest remembered result of ``image`` + ``mask`` with ``job``'s options, if any."""
        for entry in reversed(self.entries):
            if (
                entry.image is image
                and entry.mask is mask
                and entry.context == context(job)
                and entry.axes == job.axes
                and entry.layer in self._viewer.layers
            ):
                return entry
        return None

    def plan(self, job: RefineJob, image, mask, select=()) -> Plan | None:
        """A re-run of what changed in ``job``'s plane, or None when no memory applies (a full run).

        Raises ValueError (for the user) when a selected label is not in the plane.
        """
        entry = self.find(job, image, mask)
        if entry is None or job.request.labels is not None or len(job.positions) != 1:
            return None
        pos = job.positions[0]
        remembered = entry.planes.get(pos)
        if remembered is None or entry.layer.data.shape != job.mask.shape:
            return None
        index = job.index(pos)
        hints = None if job.request.hints is None else job.request.hints[index]
        changes = remembered.memory.changes(job.mask[index], hints, select=select)
        return Plan(entry, pos, changes, job.with_request(labels=changes.refine or None))

    def remember(self, layer, job: RefineJob, image, mask, finals: dict, meta: dict, uncertainty=None) -> Entry:
        """Remember ``layer``, the new result of ``job``: ``finals`` ``{pos: plane}``, ``meta``
        ``{pos: (mode, scores, ...)}`` of the final records."""
        entry = Entry(layer, image, mask, context(job), job.axes, uncertainty=uncertainty)
        for pos, plane in finals.items():
            mode, scores = meta.get(pos, ("instance", None))[:2]
            entry.planes[pos] = _plane(job, pos, plane, scores, {"frame": mode == "hr"})
        self.entries = [e for e in self.entries if e.layer is not layer] + [entry]
        return entry

    def apply(self, plan: Plan, partial: np.ndarray | None, scores: dict | None, mode: str | None = None) -> int:
        """Merge a re-run's plane into its result layer (one undo step); returns pixels changed.

        The plane's memory is renewed (its new mask, hints and result; ``mode``: the
        pipeline that ran), and the scores of the re-refined objects replace their old ones
        (removed objects drop out).
        """
        entry, pos, changes = plan.entry, plan.pos, plan.changes
        layer, index = entry.layer, plan.job.index(pos)
        old = entry.planes[pos]
        current = np.asarray(layer.data[index])
        merged = old.memory.merge(partial, changes, previous=current)
        diff = np.nonzero(merged != current)
        if diff[0].size:
            with layer.block_history():
                layer.data_setitem(plane_index(plan.job.axes, layer.data.ndim, pos, diff), merged[diff])
        new_scores = None
        if old.scores is not None or scores:
            new_scores = {k: v for k, v in (old.scores or {}).items() if k in changes.unchanged}
            new_scores.update({int(k): float(v) for k, v in (scores or {}).items() if k in changes.refine})
        options = dict(old.memory.options)
        if mode is not None:
            options["frame"] = mode == "hr"
        entry.planes[pos] = _plane(plan.job, pos, merged, new_scores, options)
        return int(diff[0].size)


def _plane(job: RefineJob, pos, result: np.ndarray, scores: dict | None, options: dict) -> PlaneMemory:
    index = job.index(pos)
    coarse = job.mask[index]
    hints = None if job.request.hints is None else job.request.hints[index]
    memory = RefineMemory(coarse, result, hints, **options)
    return PlaneMemory(memory, None if scores is None else dict(scores), coarse.copy())
