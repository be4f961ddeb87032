"""What the napari front ends run in a worker, without any GUI import (numpy/torch only).

A :class:`RefineJob` holds everything one refinement needs, gathered on the main thread,
and its cancel flag; :func:`iter_job` refines its 2-D planes with
:func:`~napari_segrefiner.engine.run.start` (on a CPU with :func:`~..threads.cpu_threads`
``("gui")`` torch threads: one core stays free for the event loop) and yields an
:class:`Update` per network batch of objects; :func:`assemble` builds the full result. What the main thread
keeps of a run (step cache, progress count) is in ``tracking.py``; the checks and the time
estimate made before a run in ``preflight.py``.

Used by the napari modules (``_widget*.py``, ``_napari_layers.py``, ``_napari_menu.py``);
``tests/test_import_boundaries.py`` checks that importing this module loads no napari,
magicgui or Qt.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Generator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ..diffusion.sampling import RefineCancelled
from ..engine.records import RefineStep, confidence_frame
from ..engine.request import RefineRequest
from ..engine.run import start
from ..io.masks import check_values
from ..models.cache import ModelCache
from ..models.refiner import Refiner, load_refiner
from ..models.threads import cpu_threads, use_threads

__all__ = [
    "CPU_BATCH_SIZE",
    "RefineCancelled",
    "RefineJob",
    "RefinementError",
    "Update",
    "all_positions",
    "assemble",
    "cached_refiner",
    "explain",
    "iter_job",
    "mask_copy",
    "preview_dtype",
    "to_uncertainty",
]


CPU_BATCH_SIZE = 1  # objects per network batch on a CPU: each object shows as soon as it is done


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
    ``request`` describes the run as every front end does
    (:class:`~napari_segrefiner.engine.request.RefineRequest`: model, device, mode, steps,
    seed, labels; its ``hints``, of the mask's shape, go plane by plane to the engine).
    Setting ``cancel`` stops the run within one network batch (:func:`iter_job` then raises
    :class:`RefineCancelled`); every job has its own (``dataclasses.replace`` makes a new
    one) and it takes no part in comparisons.
    """

    image: Any
    rgb: bool
    mask: np.ndarray
    axes: tuple[int, int]
    positions: tuple[tuple[int, ...], ...]
    request: RefineRequest
    cancel: threading.Event = field(default_factory=threading.Event, init=False, compare=False, repr=False)

    def with_request(self, **changes: Any) -> RefineJob:
        """The same job with some fields of its request changed (e.g. ``labels``); a new cancel flag."""
        return replace(self, request=self.request.replace(**changes))

    def index(self, pos: tuple[int, ...]) -> tuple:
        """Slicing tuple of the plane at ``pos`` (for the mask, or the image's spatial axes)."""
        it = iter(pos)
        return tuple(slice(None) if a in self.axes else next(it) for a in range(self.mask.ndim))


@dataclass(frozen=True)
class Update:
    """What the worker yields: one network batch of objects of one plane, done.

    ``frame`` is the plane with every object refined so far (the result on the last
    record); ``uncertainty`` (last record only) is ``1 - confidence`` as uint8 (0..255),
    computed in the worker so that the main thread only copies it into its layer.
    ``objects`` (last record only) are all the plane's :class:`~..records.ObjectResult`
    (for the step replay) and ``base`` the plane without them.
    """

    plane: int
    planes: int
    pos: tuple[int, ...]
    step: RefineStep
    frame: np.ndarray | None = None
    uncertainty: np.ndarray | None = None
    objects: tuple = ()
    base: np.ndarray | None = None


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
    check_values(data, name=f"layer {name!r}")  # the package's one rule for masks
    if data.dtype == bool or data.dtype.kind == "f":
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


def cached_refiner(refiners: ModelCache, request: RefineRequest) -> Refiner:
    """The :class:`~napari_segrefiner.models.refiner.Refiner` of ``request``, loaded once into ``refiners``.

    ``refiners`` is the caller's cache (the widget's :class:`~napari_segrefiner.models.cache.ModelCache`,
    locked: runs load models in worker threads). :func:`load_refiner` resolves the device, once.
    """
    device = "auto" if request.device is None else request.device
    return refiners.get(request.model, device=device, cache=request.cache, load=load_refiner)


def iter_job(job: RefineJob, refiners: ModelCache | None = None) -> Generator[Update, None, dict]:
    """Refine every plane of ``job``; yields :class:`Update`s, returns ``{pos: result plane}``.

    The refiner is loaded here (in the worker) and kept in ``refiners`` (see
    :func:`cached_refiner`) with ``cpu_threads("gui")`` torch threads, and so is a run on
    the CPU (a thread pool that oversubscribes a loaded machine is many times slower), in
    batches of at most :data:`CPU_BATCH_SIZE` crops (results do not depend on the batch
    size; on a CPU small batches are as fast per object, and Cancel waits for one batch).
    Planes without any of the chosen labels are skipped. ``job.cancel`` is looked at before
    every network batch and between planes: once set, :class:`RefineCancelled` is raised
    (as it is). Any other failure is re-raised as :class:`RefinementError` with a message
    for the user.
    """
    refiners = ModelCache() if refiners is None else refiners
    device = str(job.request.device or "auto")
    try:
        with use_threads(cpu_threads("gui")):  # loading runs on the CPU whatever the device
            refiner = cached_refiner(refiners, job.request)
        device = str(refiner.device)
        threads = nullcontext()
        if refiner.device.type == "cpu":
            threads = use_threads(cpu_threads("gui"))
            if refiner.config.batch_size > CPU_BATCH_SIZE:  # Cancel waits for one batch at most
                refiner = refiner.with_options(batch_size=CPU_BATCH_SIZE)
        with threads:
            finals = yield from _refine_planes(job, refiner)
        if not finals:
            raise ValueError("nothing to refine: the chosen labels do not occur in the chosen plane(s)")
        return finals
    except RefineCancelled:
        raise
    except Exception as exc:
        raise RefinementError(explain(exc, device)) from exc


def _refine_planes(job: RefineJob, refiner: Refiner) -> Generator[Update, None, dict]:
    channel = (slice(None),) if job.rgb else ()
    finals: dict[tuple[int, ...], np.ndarray] = {}
    for n, pos in enumerate(job.positions):
        if job.cancel.is_set():
            raise RefineCancelled("the refinement was cancelled")
        plane = job.mask[job.index(pos)]
        labels = job.request.labels
        ids = None if labels is None else [v for v in labels if np.any(plane == v)]
        if not np.any(plane) or ids == []:
            continue  # nothing of the chosen labels in this plane
        image = np.asarray(job.image[job.index(pos) + channel])
        hints = None if job.request.hints is None else job.request.hints[job.index(pos)]
        request = job.request.replace(model=refiner, device=None, labels=ids, hints=hints, previews=True)
        records = start(image, plane, request, cancel=job.cancel.is_set)
        frame, done = plane.copy(), []
        for step in records:
            done.extend(step.objects)
            if step.done:
                finals[pos] = step.mask
                unc = to_uncertainty(confidence_frame(plane.shape, done))
                base = plane.copy()
                base[np.isin(base, [o.label for o in done])] = 0
                yield Update(n, len(job.positions), pos, step, step.mask, unc, tuple(done), base)
            else:
                for obj in step.objects:  # paint each finished object over its coarse pixels
                    y0, y1, x0, x1 = obj.answer.box
                    fg = obj.answer.dense() >= 0.5
                    region = frame[y0:y1, x0:x1]
                    region[region == obj.label] = 0
                    region[fg & (region == 0)] = obj.label
                yield Update(n, len(job.positions), pos, step, frame.copy())
    return finals
