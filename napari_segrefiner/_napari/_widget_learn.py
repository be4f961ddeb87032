"""The dock widget's "Learn from accepted" section: the annotator's corrections adapt the model.

:class:`LearnPanel` keeps the final mask of every object accepted in the review queue (an undone
or re-refined object drops it) and of every object re-refined and then kept (not rejected; taken
when Learn is pressed), per plane of each result layer, forgotten with the layer. **Learn from
accepted** (from :data:`MIN_LEARN` objects) makes their training pairs (:mod:`napari_segrefiner.adapt`)
and fine-tunes the chosen model's decoder in a worker (:func:`learn_job`, at most :data:`SECONDS`),
with progress and Cancel (within one training step). The result line gives the held-out IoU before
and after and whether the adapted model was kept; a kept model is saved to the model folder and
listed as ``adapted:<name>``; **Use shipped model** goes back. Main thread only, but :func:`learn_job`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QGridLayout, QGroupBox, QLabel, QProgressBar, QPushButton, QVBoxLayout

from ..adapt import accepted_labels, iter_adapt, pairs_from_review
from ..io.masks import bounding_box
from ..models import registry
from ..models.adapted import ADAPTED_PREFIX, adapted_folder, list_adapted
from ..models.threads import cpu_threads
from ._widget_models import MODEL_CHOICES

__all__ = ["MIN_LEARN", "SECONDS", "LearnError", "LearnPanel", "Source", "build_pairs", "learn_job"]

MIN_LEARN = 8  # pairs before Learn is offered (adapt itself needs 2: one to learn from, one to judge by)
SECONDS = 60.0  # time budget of one adaptation


class LearnError(Exception):
    """An adaptation failed in its worker (any error, re-raised as this: a generator worker would
    swallow a RuntimeError, leaving the section "running")."""


def learn_job(models, source, cache, jobs, **options):
    """The worker: make the pairs of ``jobs`` (:func:`build_pairs`), load ``source`` (CPU) and yield the
    records of :func:`~napari_segrefiner.adapt.iter_adapt` ``(base, pairs, save=True, cache=cache, **options)``."""
    try:
        pairs = build_pairs(jobs, models)
        base = models.get(source, device="cpu", cache=cache)
        yield from iter_adapt(base, pairs, save=True, cache=cache, **options)
    except Exception as exc:
        raise LearnError(f"{type(exc).__name__}: {exc}") from exc


def _plane(data, axes, pos) -> np.ndarray:
    it = iter(pos)
    return np.asarray(data[tuple(slice(None) if a in axes else next(it) for a in range(len(axes) + len(pos)))])


@dataclass(eq=False)
class Source:
    """The corrected objects of one plane of one result layer (an ``Entry`` of the widget's memories).

    An object's final mask is copied (its box) when it is accepted; its pair is made in the worker
    (:func:`build_pairs`), so that an Accept costs milliseconds on a big image.
    """

    entry: Any
    pos: tuple
    model: tuple  # (source, device, cache) of the model that refined the layer: its crop options
    finals: dict = field(default_factory=dict)  # label -> (y0, x0, mask of its box) as accepted or kept
    accepted: set = field(default_factory=set)  # labels whose final mask came from an Accept
    rerefined: set = field(default_factory=set)  # labels re-refined since: taken as they are when Learn starts

    def snapshot(self, labels) -> None:
        result = _plane(self.entry.layer.data, self.entry.axes, self.pos)
        for label in labels:
            box = bounding_box(m := result == label)
            if box is not None:
                self.finals[label] = (box[0], box[2], m[box[0] : box[1], box[2] : box[3]].copy())

    def job(self) -> tuple:
        """What :func:`build_pairs` takes: (image, coarse, final planes, labels, model, source)."""
        e, final = self.entry, np.zeros(self.entry.planes[self.pos].coarse.shape, np.int64)
        for label, (y0, x0, m) in self.finals.items():
            final[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]][m] = label
        name = e.layer.name + "".join(f"-{p}" for p in self.pos)
        image, coarse = _plane(e.image.data, e.axes, self.pos), e.planes[self.pos].coarse
        return image, coarse, final, sorted(self.finals), self.model, name


def build_pairs(jobs, models) -> list:
    """The training pairs of :meth:`Source.job` tuples (objects that give none are left out); the
    crop options are the refining model's (from ``models``, a ModelCache: held since its run)."""
    out = []
    for image, coarse, final, labels, (model, device, cache), name in jobs:
        config = models.get(model, device=device, cache=cache).config
        out += list(pairs_from_review(image, coarse, final, None, kept=labels, config=config, source=name).store)
    return out


class LearnPanel(QGroupBox):
    """The section (see the module docstring) over the dock's ``review`` (ReviewPanel: its ``changed``
    signal), model ``choice`` (ModelChoice: the list and the model folder) and ``models`` (ModelCache)."""

    finished = Signal()  # a learning run ended (done, not kept, cancelled or failed)

    def __init__(self, viewer, *, review, choice, models, parent=None):
        super().__init__("Learn from my corrections", parent)
        self._viewer, self.review, self.choice, self.models = viewer, review, choice, models
        self.min_pairs, self.seconds, self.seed = MIN_LEARN, SECONDS, 0
        self.max_steps = None  # a fixed number of steps (reproducible weights), else as many as the time allows
        self.sources: list[Source] = []
        self._current: tuple | None = None  # (entry, pos) the review queue shows
        self.worker = None
        self.result = None  # the last AdaptResult
        self._cancel = threading.Event()
        self._listed: tuple = (None, [])  # (folder state, adapted sources)
        self.count, self.bar, self.message = QLabel(), QProgressBar(), QLabel("")
        self.count.setWordWrap(True)
        self.message.setWordWrap(True)
        self.buttons = {n: QPushButton(n) for n in ("Learn from accepted", "Cancel", "Use shipped model")}
        grid = QGridLayout()
        for k, button in enumerate(self.buttons.values()):
            grid.addWidget(button, k // 2, k % 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        for w in (self.count, self.bar, self.message):
            layout.addWidget(w)
        layout.addLayout(grid)
        actions = (self.learn, self.cancel, self.use_shipped)
        for button, action in zip(self.buttons.values(), actions):
            button.clicked.connect(lambda *_, act=action: act())
        review.changed.connect(self.collect)
        choice.model.changed.connect(self._update)
        viewer.layers.events.removed.connect(self._on_removed)
        self.destroyed.connect(self._cancel.set)  # closing the dock stops a run
        self.refresh_models()

    # -- pairs --------------------------------------------------------------------------
    def watch(self, entry, pos) -> None:
        """The review queue now shows plane ``pos`` of ``entry`` (the widget's memory of a result)."""
        self._current = (entry, tuple(pos))
        self.collect()

    def rerefined(self, entry, pos, labels) -> None:
        """``labels`` of plane ``pos`` of ``entry`` were refined again: they are learnt from if kept."""
        src = self._source(entry, tuple(pos))
        for label in labels:
            src.finals.pop(int(label), None)
            src.accepted.discard(int(label))
            src.rerefined.add(int(label))
        self._update()

    def _source(self, entry, pos) -> Source:
        for src in self.sources:
            if src.entry is entry and src.pos == pos:
                return src
        model, cache, device = entry.context[:3]
        self.sources.append(Source(entry, pos, (model, device, cache)))
        return self.sources[-1]

    def collect(self, *_) -> None:
        """Follow the review queue's decisions: accepted objects become pairs, undone ones go."""
        queue, cur = self.review.queue, self._current
        if queue is not None and cur is not None and self.review.layer is cur[0].layer and cur[1] in cur[0].planes:
            src = self._source(*cur)
            accepted = set(accepted_labels(queue))
            rejected = {k for k, v in queue.status.items() if v == "rejected"}
            for label in (src.accepted - accepted) | (rejected & src.rerefined):
                src.finals.pop(label, None)
            src.rerefined -= rejected
            src.snapshot([k for k in queue.order if k in accepted and k not in src.accepted])
            src.accepted = accepted & set(src.finals)
        self._update()

    def _on_removed(self, event) -> None:
        self.sources = [s for s in self.sources if s.entry.layer is not event.value]
        if self._current is not None and self._current[0].layer is event.value:
            self._current = None
        self._update()

    def jobs(self) -> list:
        """The re-refined objects kept so far taken as they are, then every source's :meth:`Source.job`."""
        for src in self.sources:
            src.snapshot(sorted(src.rerefined - set(src.finals)))
        return [src.job() for src in self.sources if src.finals]

    def number(self) -> int:
        return sum(len(src.finals) + len(src.rerefined - set(src.finals)) for src in self.sources)

    # -- learning -----------------------------------------------------------------------
    def learn(self):
        """Start adapting the chosen model to the pairs; returns the worker (None if refused)."""
        if self.worker is not None or self.number() < self.min_pairs:
            return None
        try:
            source, cache = self.choice.source(), self.choice.cache_folder()
            jobs, n = self.jobs(), self.number()
        except ValueError as exc:
            self.message.setText(f"not started: {exc}")
            return None
        self._cancel.clear()
        worker = create_worker(
            learn_job,
            self.models,
            source,
            cache,
            jobs,
            **dict(seconds=self.seconds, max_steps=self.max_steps, seed=self.seed, threads=cpu_threads("gui")),
            cancel=self._cancel.is_set,
            _ignore_errors=True,
        )
        worker.yielded.connect(self._on_record)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker, self.result = worker, None
        self.bar.setValue(0)
        self.message.setText(f"learning from {n} objects (at most {self.seconds:.0f} s)...")
        self._update()
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running adaptation (within one step); nothing is saved."""
        if self.worker is not None:
            self._cancel.set()
            self.message.setText("cancelling...")

    def use_shipped(self) -> None:
        """Back to the shipped model in the model list."""
        self.choice.model.value = registry.DEFAULT_MODEL

    def refresh_models(self) -> None:
        """The model list: the registered models, the checkpoint entry and the usable adapted models."""
        combo = self.choice.model
        current = combo.value
        with combo.changed.blocked():  # a callable: napari's reset_choices (any layer change) keeps them
            combo.choices = self.model_choices
            combo.value = current if current in combo.choices else registry.DEFAULT_MODEL
        if combo.value != current:
            combo.changed.emit(combo.value)
        self._update()

    def model_choices(self, *_) -> list:
        """Registered names, the checkpoint entry, ``adapted:<name>`` of the usable adapted models."""
        cache = self.choice.cache_folder()
        try:
            folder = adapted_folder(cache)
            key = (cache, *sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob("*.pt")))
            if key != self._listed[0]:  # headers are read again only when the folder changed
                self._listed = (key, [m.source for m in list_adapted(cache) if m.error is None])
        except OSError:
            self._listed = (None, [])
        return [*MODEL_CHOICES, *self._listed[1]]

    def _on_record(self, rec) -> None:
        if rec.fraction is not None:
            self.bar.setValue(int(round(100 * rec.fraction)))
        if rec.stage == "done":
            self._done(rec.result)
        elif rec.stage == "cancelled":
            self.message.setText("cancelled: nothing was saved; the model in use stays")
        elif rec.message:
            self.message.setText(rec.message)

    def _done(self, res) -> None:
        self.result = res
        self.bar.setValue(100)
        held = f"held-out IoU {res.base_iou:.3f} -> {res.adapted_iou:.3f} ({100 * res.gain:+.1f} points)"
        held += f" on {len(res.holdout_keys)} pairs"
        if res.kept and res.path is not None:
            text = f"{held}: kept, saved as {ADAPTED_PREFIX}{res.path.stem} (choose it in the model list)"
            self.refresh_models()
        else:
            why = "it spoils already-good masks" if res.adapted_iou > res.base_iou else "no better than the model"
            text = f"{held}: not kept ({why}); the model in use stays"
        self.message.setText(text)

    def _on_error(self, exc) -> None:
        self.message.setText(f"learning failed: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        try:
            self._update()
        except RuntimeError:  # the dock was closed meanwhile
            return
        self.finished.emit()

    def _update(self, *_) -> None:
        n, running = self.number(), self.worker is not None
        need = "" if n >= self.min_pairs else f" (Learn needs {self.min_pairs})"
        self.count.setText(f"{n} accepted or re-refined objects to learn from{need}")
        self.buttons["Learn from accepted"].setEnabled(n >= self.min_pairs and not running)
        self.buttons["Cancel"].setEnabled(running)
        self.buttons["Use shipped model"].setEnabled(self.choice.model.value != registry.DEFAULT_MODEL)
        self.bar.setVisible(running or self.result is not None)
