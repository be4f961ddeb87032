"""What the main thread keeps of a running refinement, without any GUI import (numpy only).

:class:`StepCache` keeps the newest frames and the finished objects (for the widget's step
slider); :class:`StepCounter` turns the records into a progress count and :func:`sync_bar`
brings a napari progress bar to it; :class:`DownloadTracker` counts a download's bytes in
its worker. Used by ``_widget_preview.py``, ``_widget_models.py`` and ``_napari_layers.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine.records import replay
from .worker import Update

__all__ = ["CACHE_BYTES", "DownloadTracker", "StepCache", "StepCounter", "sync_bar"]

CACHE_BYTES = 1 << 30  # budget of cached intermediate steps for the slider


@dataclass
class StepCache:
    """A run's planes: the newest frame to paint, and the finished objects for the step replay.

    ``pending[pos]`` is the newest ``(frame, uncertainty_u8)`` of a plane not painted yet;
    ``finished[pos]`` = ``(base, objects, result, uncertainty_u8, timesteps)`` of a plane whose
    last record arrived: :meth:`at` composes the frame of any reverse step from its objects'
    kept states (:func:`~..records.replay`), the last step being the result.
    """

    budget: int = CACHE_BYTES
    pending: dict = field(default_factory=dict)
    finished: dict = field(default_factory=dict)
    truncated: bool = False

    def add(self, update: Update) -> None:
        if update.frame is None:
            return
        self.pending[update.pos] = (update.frame, update.uncertainty)
        if update.step.done:
            steps = tuple(update.step.steps)
            self.finished[update.pos] = (update.base, update.objects, update.frame, update.uncertainty, steps)

    def take_pending(self) -> dict:
        """The planes' newest unpainted frames, ``{pos: (mask, uncertainty_u8)}``; clears them."""
        pending, self.pending = self.pending, {}
        return pending

    def at(self, index: int) -> dict:
        """``{pos: (mask, uncertainty_u8, timestep, stage)}`` after reverse step ``index``."""
        out = {}
        for pos, (base, objects, result, unc, steps) in self.finished.items():
            k = min(index, len(steps) - 1)
            if k == len(steps) - 1 or base is None or not objects or objects[0].states is None:
                out[pos] = (result, unc, steps[k] if steps else 0, "result")
            else:
                out[pos] = (replay(base, objects, k).astype(result.dtype, copy=False), unc, steps[k], "step")
        return out

    def n_steps(self) -> int:
        return max((len(v[4]) for v in self.finished.values()), default=0)


@dataclass
class StepCounter:
    """Objects done and expected of a run, counted from the :class:`Update`s it yields.

    Planes still to come are expected to hold as many objects as the current one.
    """

    before: int = 0  # objects of the planes finished before the current one
    plane: int | None = None
    n: int = 0

    def advance(self, update: Update) -> tuple[int, int]:
        """``(objects done, objects expected)`` once ``update`` has arrived."""
        step = update.step
        if update.plane != self.plane:
            self.before, self.plane = self.n, update.plane
        self.n = self.before + step.done_objects
        return self.n, max(self.n, self.before + (update.planes - update.plane) * max(step.total_objects, 1))


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
