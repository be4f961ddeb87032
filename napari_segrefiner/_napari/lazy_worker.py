"""Lazy runs of the napari front end: big or zarr/dask-backed masks, refined into a zarr store.

Without any GUI import (numpy, torch, dask, zarr only). The dock widget refines a mask
layer lazily when :func:`lazy_reason` says so (its data is not an in-memory numpy array:
zarr, dask or another array-like; a multiscale layer; or planes above
:data:`LAZY_PIXELS`): nothing is copied or materialised. :func:`iter_lazy_job` runs in
the napari worker and

1. loads the refiner (as :func:`~.worker.iter_job` does: ``cpu_threads("gui")`` torch
   threads, batches of :data:`~.worker.CPU_BATCH_SIZE` on a CPU);
2. starts a helper thread that calls :func:`~napari_segrefiner.lazy.refine.refine_lazy` (the mask
   is scanned chunk by chunk), creates a zarr store in a new temporary folder and computes
   the result into it chunk by chunk on dask's threaded scheduler with one worker thread
   (with a pyramid of nearest-neighbour levels for planes larger than
   :data:`PYRAMID_SIDE`, so that napari reads only what it shows);
3. yields a :class:`LazyProgress` every :data:`POLL_S` (objects done / total, chunks
   written), and returns a :class:`LazyResult` (the store and its opened arrays).

The viewer stays responsive: the scans use one dask thread, batches and chunks one more
(torch gets the GUI's thread count), and while the run goes automatic full garbage
collections wait and the interpreter switches threads more often
(:func:`gui_friendly_interpreter`), so the event loop's thread gets the GIL quickly.

The result is bit-identical to ``refine(image, mask, mode="instance", seed=seed)`` with
the same batch size (that is ``refine_lazy``'s promise).

**Cancel**: setting ``job.cancel`` stops the run within one network call: the network is
wrapped (:class:`CancellableNetwork`) so that it raises :class:`RefineCancelled` before
its next evaluation, and a dask callback refuses to start another task (scan, batch,
chunk). The generator then removes the partial store and raises ``RefineCancelled``; a
failure removes it too and raises :class:`~.worker.RefinementError`. Never call the
worker's ``quit()`` for a lazy run: the generator must see the end of its helper thread.

Where the result goes: a new folder ``segrefiner-result-*`` under ``job.store_dir`` (default
``$SEGREFINER_LAZY_DIR``, else the system's temporary folder), never next to or inside the
user's data (which may be read-only, on a network share, or a store another program
writes). The widget removes it when its result layer leaves the viewer.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..diffusion.sampling import RefineCancelled
from ..engine.request import RefineRequest
from ..lazy.store import block_regions, pyramid_factors, write_levels
from ..models.cache import ModelCache
from ..models.threads import cpu_threads, use_threads
from .worker import CPU_BATCH_SIZE, RefinementError, cached_refiner, explain

__all__ = [
    "ENV_DIR",
    "LAZY_PIXELS",
    "POLL_S",
    "PYRAMID_MIN",
    "PYRAMID_SIDE",
    "STORE_PREFIX",
    "SWITCH_S",
    "CancellableNetwork",
    "LazyJob",
    "LazyProgress",
    "LazyResult",
    "gui_friendly_interpreter",
    "is_store",
    "iter_lazy_job",
    "lazy_reason",
    "remove_store",
    "store_parent",
]

LAZY_PIXELS = 4096 * 4096  # numpy masks with larger planes are refined lazily too (bounded memory)
PYRAMID_SIDE = 4096  # results with a larger plane side get pyramid levels (napari reads tiles, not the plane)
PYRAMID_MIN = 1024  # ... halved until the largest side is at most this
POLL_S = 0.25  # the worker yields a progress record this often
STORE_PREFIX = "segrefiner-result-"
ENV_DIR = "SEGREFINER_LAZY_DIR"


def lazy_reason(data: Any, *, multiscale: bool = False) -> str | None:
    """Why a mask layer's ``data`` (its full-resolution array) is refined lazily, or None.

    Lazy: not an in-memory numpy array (zarr, dask, any other array-like), a multiscale
    layer, or planes of more than :data:`LAZY_PIXELS` pixels.
    """
    if multiscale:
        return "multiscale layer"
    if not isinstance(data, np.ndarray):
        kind = type(data).__module__.split(".")[0]
        return f"{kind}-backed" if kind in ("zarr", "dask") else f"{type(data).__name__} data (not numpy)"
    if data.ndim >= 2 and data.shape[-1] * data.shape[-2] > LAZY_PIXELS:
        return f"{data.shape[-2]} x {data.shape[-1]} px planes"
    return None


def store_parent(store_dir: str | os.PathLike | None = None) -> Path:
    """Where new stores go: ``store_dir``, else ``$SEGREFINER_LAZY_DIR``, else the temp folder."""
    return Path(store_dir or os.environ.get(ENV_DIR) or tempfile.gettempdir())


def is_store(path: str | os.PathLike) -> bool:
    """True for a folder this module made (its name starts with :data:`STORE_PREFIX`)."""
    return Path(path).name.startswith(STORE_PREFIX)


def remove_store(path: str | os.PathLike | None) -> None:
    """Remove a folder made by a lazy run (nothing else: other paths are left alone)."""
    if path is not None and is_store(path):
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class LazyJob:
    """One lazy refinement, gathered on the main thread (no data is read there).

    ``image`` and ``mask`` are the layers' full-resolution arrays as they are (numpy, zarr,
    dask...); the planes are their last two axes (with a trailing channel axis for an RGB
    image); ``request`` describes the run as every front end does
    (:class:`~napari_segrefiner.engine.request.RefineRequest`, instance mode);
    ``position`` is the index along the leading axes of the one plane to refine (None:
    every plane); the other planes of the result are copies of the mask's.
    """

    image: Any
    mask: Any
    rgb: bool
    request: RefineRequest
    position: tuple[int, ...] | None = None
    chunks: int | None = None  # output chunk side (default: the mask's chunks, 1024 for numpy)
    store_dir: str | None = None
    pyramid: bool | None = None  # None: when a plane side exceeds PYRAMID_SIDE
    cancel: threading.Event = field(default_factory=threading.Event, init=False, compare=False, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.mask.shape)


@dataclass(frozen=True)
class LazyProgress:
    """What the worker yields: the phase and its counts so far.

    ``phase``: "scanning" (``done``/``total``: mask chunks scanned), "refining"
    (``done``/``total``: objects refined; ``total`` None until the scan is over) and "done".
    ``rate``: objects per second since the first batch started.
    """

    phase: str
    done: int = 0
    total: int | None = None
    chunks_done: int = 0
    chunks_total: int = 0
    rate: float | None = None
    elapsed: float = 0.0


@dataclass(frozen=True)
class LazyResult:
    """A finished lazy run: its folder, the zarr group in it and the opened levels (finest first)."""

    folder: Path
    store: Path
    levels: list
    objects: int
    seconds: float

    @property
    def data(self):
        """What a Labels layer shows: the array, or the list of levels (multiscale)."""
        return self.levels if len(self.levels) > 1 else self.levels[0]


class CancellableNetwork(torch.nn.Module):
    """``network`` that raises :class:`RefineCancelled` before an evaluation once ``cancel`` is set.

    Numerically the network itself (``forward`` delegates); it shares its weights.
    """

    def __init__(self, network: torch.nn.Module, cancel: threading.Event):
        super().__init__()
        self.inner = network
        self.cancel = cancel
        self.config = getattr(network, "config", None)
        self.train(network.training)

    def forward(self, *args, **kwargs):
        if self.cancel.is_set():
            raise RefineCancelled("the refinement was cancelled")
        return self.inner(*args, **kwargs)


def _as_dask(array, lead: int):
    """``array`` as a dask array (zarr and other array-likes are read chunk by chunk).

    ``lead``: the number of axes before the plane; a generic array-like gets chunks of one
    plane along them, 1024 px in the plane and whole along the rest (channels).
    """
    import dask.array as da

    if hasattr(array, "dask"):
        return array
    if type(array).__module__.startswith("zarr"):
        return da.from_zarr(array)
    shape = tuple(int(n) for n in array.shape)
    chunks = (1,) * lead + tuple(min(n, 1024) for n in shape[lead : lead + 2]) + shape[lead + 2 :]
    return da.from_array(array, chunks=chunks, asarray=True)


def _scan_blocks(mask, chunks: int | None) -> int:
    """How many blocks the scan of ``mask`` reads (refine_lazy chunks numpy masks itself)."""
    blocks = getattr(mask, "numblocks", None)
    if blocks:
        return int(np.prod(blocks))
    side = int(chunks or 1024)
    lead = int(np.prod(mask.shape[:-2], dtype=np.int64))
    return lead * -(-int(mask.shape[-2]) // side) * -(-int(mask.shape[-1]) // side)


SWITCH_S = 0.001  # the interpreter's thread switch interval while a lazy run goes (Python's default: 0.005)
_lock = threading.Lock()
_runs = 0
_saved: tuple | None = None


@contextmanager
def gui_friendly_interpreter() -> Iterator[None]:
    """While the body runs: no automatic full garbage collection, a short thread switch interval.

    Both keep the event loop's thread from waiting on the GIL while a lazy run's own
    Python code (graph building, scans, dask's scheduler) runs:

    * with napari, Qt and torch loaded, one full (generation 2) collection walks millions
      of objects and holds the GIL for about half a second; started by the allocations of
      a lazy run it froze the viewer that long. Young collections still run, and so do
      explicit ``gc.collect()`` calls (napari makes one when a layer is removed).
    * every time Qt calls into Python (slots, event filters, size hints: many per repaint)
      the event loop's thread must take the GIL back from a busy thread, which gives it up
      only after the switch interval: 5 ms by default, 1 ms here.

    Process-wide settings, restored when the last run that changed them ends.
    """
    global _runs, _saved
    with _lock:
        if _runs == 0:
            _saved = (gc.get_threshold(), sys.getswitchinterval())
            threshold = _saved[0]
            gc.set_threshold(threshold[0], threshold[1], 2**31 - 1)
            sys.setswitchinterval(min(SWITCH_S, _saved[1]))
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0 and _saved is not None:
                gc.set_threshold(*_saved[0])
                sys.setswitchinterval(_saved[1])
                _saved = None


def _write_block(block: np.ndarray, arrays: list, factors: list[int], region: tuple, cancel: threading.Event) -> int:
    """Write ``block`` (at ``region``: one ``(start, stop)`` per axis) into every level (:func:`write_levels`)."""
    if cancel.is_set():
        raise RefineCancelled("the refinement was cancelled")
    return write_levels(block, arrays, factors, region)


class _Helper:
    """The helper thread's state: it computes, the generator reads the counts."""

    def __init__(self, job: LazyJob):
        self.job = job
        self.phase = "scanning"
        self.scanned = 0
        self.scan_total = 0
        self.done = 0
        self.total: int | None = None
        self.chunks_done = 0
        self.chunks_total = 0
        self.first_batch: float | None = None
        self.t0 = time.perf_counter()
        self.folder: Path | None = None
        self.result: LazyResult | None = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self.ident: int | None = None
        self._lock = threading.Lock()
        self._discarded = False

    def progress(self) -> LazyProgress:
        now = time.perf_counter()
        if self.phase == "scanning":
            return LazyProgress("scanning", self.scanned, self.scan_total or None, elapsed=now - self.t0)
        rate = None
        if self.first_batch is not None and self.done:
            rate = self.done / max(now - self.first_batch, 1e-6)
        return LazyProgress(self.phase, self.done, self.total, self.chunks_done, self.chunks_total, rate, now - self.t0)

    # -- callbacks (called in dask's threads) -----------------------------------------
    def on_objects(self, done: int, total: int) -> None:
        self.done, self.total = int(done), int(total)

    def _pretask(self, key, dsk, state) -> None:
        if threading.get_ident() != self.ident:  # dask callbacks are global: ours only
            return
        if self.job.cancel.is_set():
            raise RefineCancelled("the refinement was cancelled")
        if self.phase == "refining" and self.first_batch is None and "-batch-" in str(key):
            self.first_batch = time.perf_counter()

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        if threading.get_ident() != self.ident:
            return
        from dask.utils import key_split

        name = key_split(key)
        if name == "scan_block":
            self.scanned += 1
        elif name == "segrefiner-write":
            self.chunks_done += 1

    # -- the run ------------------------------------------------------------------------
    def run(self, refiner) -> None:
        self.ident = threading.get_ident()
        try:
            threads = use_threads(cpu_threads("gui")) if refiner.device.type == "cpu" else nullcontext()
            with threads, gui_friendly_interpreter():
                self._run(refiner)
        except BaseException as exc:  # noqa: BLE001 - handed to the generator
            self.error = exc
        finally:
            if self.result is None:
                self.discard()
            self.finished.set()

    def _run(self, refiner) -> None:
        import dask
        from dask.callbacks import Callback

        from ..lazy.refine import start_lazy

        job = self.job
        image, mask = job.image, job.mask
        lead = len(job.shape) - 2
        if not isinstance(mask, np.ndarray):
            mask = _as_dask(mask, lead)
        if not isinstance(image, np.ndarray):
            image = _as_dask(image, lead)
        plane_mask, plane_image = mask, image
        if job.position is not None:
            plane_mask, plane_image = mask[tuple(job.position)], image[tuple(job.position)]
        self.scan_total = _scan_blocks(plane_mask, job.chunks)
        watch = Callback(pretask=self._pretask, posttask=self._posttask)
        # the scans run inside refine_lazy, on dask's global callbacks and its default thread count:
        # one thread (a pool of one per core would starve the event loop's thread for CPU and GIL)
        with watch, dask.config.set(num_workers=1):
            request = job.request.replace(model=refiner, device=None)
            result = start_lazy(plane_image, plane_mask, request, chunks=job.chunks, progress=self.on_objects)
        if job.cancel.is_set():
            raise RefineCancelled("the refinement was cancelled")
        self.phase = "refining"
        writes, arrays = self._writes(result, mask)
        self.chunks_total = len(writes)
        # one dask worker thread (torch has the cores), our callbacks only (not dask's global ones)
        dask.compute(*writes, scheduler="threads", num_workers=1, callbacks=[watch._callback])
        self.phase = "done"
        self.result = LazyResult(
            self.folder, self.folder / "result.zarr", arrays, int(self.total or 0), time.perf_counter() - self.t0
        )

    def _writes(self, result, mask) -> tuple[list, list]:
        """The store (levels "0", "1", ...) and one write task per output block."""
        import zarr
        from dask import delayed

        job = self.job
        shape, dtype = job.shape, np.dtype(result.dtype)
        chunk = tuple(int(c[0]) for c in result.chunks[-2:])
        factors = pyramid_factors(shape, job.pyramid, side=PYRAMID_SIDE, smallest=PYRAMID_MIN)
        self.folder = Path(tempfile.mkdtemp(prefix=STORE_PREFIX, dir=store_parent(job.store_dir)))
        group = zarr.open_group(str(self.folder / "result.zarr"), mode="w")
        arrays = []
        for k, f in enumerate(factors):
            level_shape = (*shape[:-2], *(-(-n // f) for n in shape[-2:]))
            level_chunks = (*([1] * (len(shape) - 2)), *(max(1, c // f) for c in chunk))
            arrays.append(
                group.create_array(name=str(k), shape=level_shape, dtype=dtype, chunks=level_chunks, fill_value=0)
            )
        group.attrs["segrefiner"] = {"factors": factors, "seed": job.request.seed, "model": str(job.request.model)}
        sources = [((), result)] if job.position is None else [(tuple(job.position), result)]
        if job.position is not None:  # the other planes: copies of the mask's
            import dask.array as da

            mask_d = mask if hasattr(mask, "dask") else da.from_array(mask, chunks=(*([1] * (len(shape) - 2)), *chunk))
            for pos in np.ndindex(*shape[:-2]):
                if tuple(pos) != tuple(job.position):
                    sources.append((tuple(int(p) for p in pos), mask_d[pos].astype(dtype)))
        writes = []
        for prefix, arr in sources:
            for _, inner, block in block_regions(arr):
                region = tuple((p, p + 1) for p in prefix) + inner
                key = f"segrefiner-write-{len(writes)}-{id(self)}"
                writes.append(
                    delayed(_write_block, pure=False)(block, arrays, factors, region, job.cancel, dask_key_name=key)
                )
        return writes, arrays

    def discard(self) -> None:
        """Remove the partial store (once; the generator and the thread may both ask)."""
        with self._lock:
            if self._discarded:
                return
            self._discarded = True
            folder = self.folder
        remove_store(folder)


def _cancellable(refiner, cancel: threading.Event):
    return replace(refiner, network=CancellableNetwork(refiner.network, cancel))


def iter_lazy_job(job: LazyJob, refiners: ModelCache | None = None) -> Generator[LazyProgress, None, LazyResult]:
    """Refine ``job`` lazily into a new zarr store; yields :class:`LazyProgress`, returns a :class:`LazyResult`.

    See the module docstring. Raises :class:`RefineCancelled` once ``job.cancel`` is set
    (within one network call) and :class:`~.worker.RefinementError` (a message for the
    user) for anything else; in both cases the partial store is gone.
    """
    refiners = ModelCache() if refiners is None else refiners
    device = str(job.request.device or "auto")
    helper: _Helper | None = None
    thread: threading.Thread | None = None
    ok = False
    try:
        with use_threads(cpu_threads("gui")):  # loading runs on the CPU whatever the device
            refiner = cached_refiner(refiners, job.request)
        device = str(refiner.device)
        if job.cancel.is_set():
            raise RefineCancelled("the refinement was cancelled")
        if refiner.device.type == "cpu" and refiner.config.batch_size > CPU_BATCH_SIZE:
            refiner = refiner.with_options(batch_size=CPU_BATCH_SIZE)  # a Cancel waits for one batch at most
        helper = _Helper(job)
        thread = threading.Thread(
            target=helper.run, args=(_cancellable(refiner, job.cancel),), name="segrefiner-lazy", daemon=True
        )
        thread.start()
        while not helper.finished.wait(POLL_S):
            yield helper.progress()
        thread.join()
        if helper.error is not None:
            raise helper.error
        yield helper.progress()
        ok = True
        return helper.result
    except RefineCancelled:
        raise
    except Exception as exc:
        raise RefinementError(explain(exc, device)) from exc
    finally:
        if not ok:
            job.cancel.set()
            if helper is not None:
                if thread is not None:
                    thread.join(timeout=5.0)  # within one network call; else the thread cleans up itself
                if helper.finished.is_set():
                    helper.discard()
