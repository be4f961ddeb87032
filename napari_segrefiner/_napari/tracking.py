"""What the main thread keeps of a running refinement, without any GUI import (numpy only).

:class:`StepCache` keeps the yielded steps (for the widget's step slider) within a memory
budget; :class:`StepCounter` turns the records into a progress count and :func:`sync_bar`
brings a napari progress bar to it; :class:`DownloadTracker` counts a download's bytes in
its worker. Used by ``_widget_preview.py``, ``_widget_models.py`` and ``_napari_layers.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .worker import Update

__all__ = ["CACHE_BYTES", "DownloadTracker", "StepCache", "StepCounter", "sync_bar"]

CACHE_BYTES = 1 << 30  # budget of cached intermediate steps for the slider


@dataclass
class StepCache:
    """The steps of one run per plane, kept for scrubbing afterwards, within ``budget`` bytes.

    ``steps[pos]`` lists ``(mask, uncertainty_u8, timestep, stage)``; ``pending[pos]`` is
    the newest ``(mask, uncertainty_u8)`` of a plane not painted yet. Past the budget,
    intermediate steps are dropped (``truncated``), never a plane's first step or result.
    """

    budget: int = CACHE_BYTES
    steps: dict = field(default_factory=dict)
    pending: dict = field(default_factory=dict)
    nbytes: int = 0
    truncated: bool = False

    def add(self, update: Update) -> None:
        step = update.step
        if step.mask is None:
            return
        unc = update.uncertainty
        size = step.mask.nbytes + (0 if unc is None else unc.nbytes)
        entries = self.steps.setdefault(update.pos, [])
        if self.nbytes + size > self.budget and not step.done and entries:
            self.truncated = True  # keep memory bounded: drop intermediates, never the result
        else:
            entries.append((step.mask, unc, step.timestep, step.stage))
            self.nbytes += size
        self.pending[update.pos] = (step.mask, unc)

    def take_pending(self) -> dict:
        """The planes' newest unpainted steps, ``{pos: (mask, uncertainty_u8)}``; clears them."""
        pending, self.pending = self.pending, {}
        return pending

    def at(self, index: int) -> dict:
        """``{pos: (mask, uncertainty_u8, timestep, stage)}`` of step ``index`` (or a plane's last)."""
        return {pos: entries[min(index, len(entries) - 1)] for pos, entries in self.steps.items()}

    def n_steps(self) -> int:
        return max((len(v) for v in self.steps.values()), default=0)


@dataclass
class StepCounter:
    """Steps done and expected of a run, counted from the :class:`Update`s it yields.

    A plane's run yields ``step.total`` records (:func:`~napari_segrefiner.pipelines.count_steps`:
    it depends on the model's schedule, the mode and, for "hr", the objects), known only once
    the worker has loaded the model. Planes still to come are expected to take as many steps
    as the current one; planes skipped (nothing to refine) drop out when the next one starts.
    """

    before: int = 0  # records of the planes finished before the current one
    plane: int | None = None
    n: int = 0

    def advance(self, update: Update) -> tuple[int, int]:
        """``(steps done, steps expected)`` once ``update`` has arrived."""
        step = update.step
        if update.plane != self.plane:
            self.before, self.plane = self.n, update.plane
        self.n = self.before + step.index + 1
        return self.n, max(self.n, self.before + (update.planes - update.plane) * max(step.total, 1))


def sync_bar(bar, n: int, total: int | None) -> None:
    """Bring ``bar`` (a napari progress bar: main thread only) to ``n`` of ``total``."""
    if total and bar.total != int(total):
        bar.total = int(total)
    if n != bar.n:
        bar.update(n - bar.n)


class DownloadTracker:
    """tqdm-like object handed to pooch in the download worker; the main thread mirrors it
    into a napari progress bar (napari's bars update Qt widgets and must not be driven off-thread)."""

    def __init__(self):
        self.total = None
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def reset(self) -> None:
        self.n = 0

    def close(self) -> None:
        pass

    def sync(self, bar) -> None:
        """Bring ``bar`` (a napari progress bar, main thread only) up to date."""
        sync_bar(bar, self.n, self.total)
