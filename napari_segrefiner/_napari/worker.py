"""What the napari front ends run in a worker, without any GUI import (numpy/torch only).

A :class:`RefineJob` holds everything one refinement needs, gathered on the main thread;
:func:`iter_job` refines its 2-D planes with :func:`~napari_segrefiner.api.iter_refine`
and yields an :class:`Update` per core step, and :func:`assemble` builds the full result.
:class:`StepCache` keeps the yielded steps (for the widget's step slider) within a memory
budget; :class:`StepCounter` turns the records into a progress count; :class:`DownloadTracker`
counts a download's bytes in its worker.

Used by the napari modules (``_widget*.py``, ``_napari_layers.py``, ``_napari_menu.py``);
``tests/test_jobs.py`` checks that importing this module loads no napari, magicgui or Qt.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import registry
from ..api import RefineStep, iter_refine
from ..refiner import Refiner, load_refiner

__all__ = [
    "DownloadTracker",
    "RefineJob",
    "RefinementError",
    "StepCache",
    "StepCounter",
    "Update",
    "all_positions",
    "assemble",
    "cached_refiner",
    "explain",
    "iter_job",
    "mask_copy",
    "preview_dtype",
    "sync_bar",
    "to_uncertainty",
]

CACHE_BYTES = 1 << 30  # budget of cached intermediate steps for the slider


class RefinementError(Exception):
    """A refinement failed. Deliberately not a RuntimeError: generator workers swallow those."""


def explain(exc: BaseException, device: str) -> str:
    """A user-facing message for an exception raised while refining on ``device``."""
    text = str(exc)
    oom = isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or any(
        s in text.lower() for s in ("out of memory", "can't allocate memory")
    )
    if oom:
        detail = text.splitlines()[0] if text else type(exc).__name__
        return f"out of memory on {device}: try CPU or a smaller region ({detail})"
    if isinstance(exc, (ValueError, TypeError, FileNotFoundError, KeyError)):
        return text.strip("'\"")
    return f"{type(exc).__name__}: {text}"


@dataclass(frozen=True)
class RefineJob:
    """Everything one refinement run needs, gathered on the main thread.

    ``mask`` is a private copy of the coarse mask (any number of dimensions); ``axes`` are
    its two plane axes and ``positions`` the indices along the other axes of the planes to
    refine. ``image`` may be lazy (dask): only the needed planes are read, in the worker.
    """

    image: Any
    rgb: bool
    mask: np.ndarray
    axes: tuple[int, int]
    positions: tuple[tuple[int, ...], ...]
    model: str  # registry name or checkpoint path
    cache: str | None = None
    device: str = "auto"
    mode: str = "auto"
    steps: int | None = None
    seed: int | None = 0
    labels: tuple[int, ...] | None = None

    def index(self, pos: tuple[int, ...]) -> tuple:
        """Slicing tuple of the plane at ``pos`` (for the mask, or the image's spatial axes)."""
        it = iter(pos)
        return tuple(slice(None) if a in self.axes else next(it) for a in range(self.mask.ndim))


@dataclass(frozen=True)
class Update:
    """What the worker yields: one core step of one plane.

    ``uncertainty`` is ``1 - step.confidence`` as uint8 (0..255), computed in the worker so
    that the main thread only copies it into the uncertainty layer.
    """

    plane: int
    planes: int
    pos: tuple[int, ...]
    step: RefineStep
    uncertainty: np.ndarray | None = None


def to_uncertainty(confidence: np.ndarray | None) -> np.ndarray | None:
    """uint8 uncertainty ``255 * (1 - confidence)`` (what the uncertainty layer shows)."""
    if confidence is None:
        return None
    return np.rint((1.0 - confidence) * 255.0).astype(np.uint8)


def preview_dtype(mask: np.ndarray):
    """uint8/uint16 when the labels fit: napari then skips hashing labels on every refresh."""
    top = int(mask.max()) if mask.size else 0
    if mask.min(initial=0) >= 0:
        for dtype in (np.uint8, np.uint16):
            if top <= np.iinfo(dtype).max:
                return dtype
    return mask.dtype


def mask_copy(data, name: str) -> np.ndarray:
    """A private integer copy of mask data (labels, bool, or float 0/1) of layer ``name``."""
    data = np.array(data)
    if data.dtype == bool:
        return data.astype(np.uint8)
    if data.dtype.kind == "f":
        if not np.isin(data, (0.0, 1.0)).all():
            raise ValueError(f"layer {name!r} is not a mask: float values other than 0 and 1")
        return data.astype(np.uint8)
    return data


def all_positions(shape: Sequence[int], axes: tuple[int, int]) -> tuple[tuple[int, ...], ...]:
    """Indices, along the axes other than ``axes``, of every plane of an array of ``shape``."""
    return tuple(itertools.product(*(range(n) for a, n in enumerate(shape) if a not in axes)))


def assemble(job: RefineJob, finals: dict) -> np.ndarray:
    """The full result array: the job's mask with every refined plane replaced."""
    out = job.mask.copy()
    for pos, plane in finals.items():
        out[job.index(pos)] = plane
    return out


def cached_refiner(refiners: dict, source: str, device: str, cache: str | None) -> Refiner:
    """The :class:`~..refiner.Refiner` for ``source`` on ``device``, loaded once into ``refiners``.

    ``refiners`` is the caller's cache (the widget's), keyed by source, the device as
    asked for and, for registered models, the cache folder. :func:`load_refiner` resolves
    the device, once.
    """
    key = (source, str(device), cache if source in registry.MODELS else None)
    if key not in refiners:
        refiners[key] = load_refiner(source, device=device, cache=cache)
    return refiners[key]


def iter_job(job: RefineJob, refiners: dict | None = None) -> Generator[Update, None, dict]:
    """Refine every plane of ``job``; yields :class:`Update`s, returns ``{pos: result plane}``.

    The refiner is loaded here (in the worker) and kept in ``refiners`` (see
    :func:`cached_refiner`). Planes without any of the chosen labels are skipped. Any
    failure is re-raised as :class:`RefinementError` with a message for the user.
    """
    refiners = {} if refiners is None else refiners
    device = str(job.device)
    try:
        refiner = cached_refiner(refiners, job.model, job.device, job.cache)
        device = str(refiner.device)
        channel = (slice(None),) if job.rgb else ()
        finals: dict[tuple[int, ...], np.ndarray] = {}
        for n, pos in enumerate(job.positions):
            plane = job.mask[job.index(pos)]
            ids = None if job.labels is None else [v for v in job.labels if np.any(plane == v)]
            if not np.any(plane) or ids == []:
                continue  # nothing of the chosen labels in this plane
            image = np.asarray(job.image[job.index(pos) + channel])
            steps = iter_refine(
                image, plane, model=refiner, mode=job.mode, steps=job.steps, seed=job.seed, labels=ids
            )
            for step in steps:
                if step.done:
                    finals[pos] = step.mask
                yield Update(n, len(job.positions), pos, step, to_uncertainty(step.confidence))
        if not finals:
            raise ValueError("nothing to refine: the chosen labels do not occur in the chosen plane(s)")
        return finals
    except Exception as exc:
        raise RefinementError(explain(exc, device)) from exc


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
