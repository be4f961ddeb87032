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
   :data:`~.lazy_store.PYRAMID_SIDE`, so that napari reads only what it shows; the store
   itself is written by :mod:`.lazy_store`);
3. yields a :class:`LazyProgress` every :data:`POLL_S` (objects done / total, chunks
   written), and returns a :class:`LazyResult` (the store and its opened arrays).

The viewer stays responsive: the scans use one dask thread, batches and chunks one more
(torch gets the GUI's thread count), and while the run goes automatic full garbage
collections wait and the interpreter switches threads more often
(:func:`~.lazy_store.gui_friendly_interpreter`), so the event loop's thread gets the GIL quickly.

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

import tempfile
import threading
import time
from collections.abc import Generator
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..diffusion.sampling import RefineCancelled
from ..models.cache import ModelCache
from ..models.threads import cpu_threads, use_threads
from .lazy_job import LAZY_PIXELS, LazyJob, LazyProgress, LazyResult, lazy_reason
from .lazy_store import (
    STORE_PREFIX,
    as_dask,
    gui_friendly_interpreter,
    remove_store,
    scan_blocks,
    store_parent,
    store_writes,
)
from .worker import CPU_BATCH_SIZE, RefinementError, cached_refiner, explain

__all__ = [
    "LAZY_PIXELS",
    "POLL_S",
    "CancellableNetwork",
    "LazyJob",
    "LazyProgress",
    "LazyResult",
    "iter_lazy_job",
    "lazy_reason",
    "remove_store",
]

POLL_S = 0.25  # the worker yields a progress record this often


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
            mask = as_dask(mask, lead)
        if not isinstance(image, np.ndarray):
            image = as_dask(image, lead)
        plane_mask, plane_image = mask, image
        if job.position is not None:
            plane_mask, plane_image = mask[tuple(job.position)], image[tuple(job.position)]
        self.scan_total = scan_blocks(plane_mask, job.chunks)
        watch = Callback(pretask=self._pretask, posttask=self._posttask)
        # the scans run inside refine_lazy, on dask's global callbacks and its default thread count:
        # one thread (a pool of one per core would starve the event loop's thread for CPU and GIL)
        with watch, dask.config.set(num_workers=1):
            request = job.request.replace(model=refiner, device=None)
            result = start_lazy(plane_image, plane_mask, request, chunks=job.chunks, progress=self.on_objects)
        if job.cancel.is_set():
            raise RefineCancelled("the refinement was cancelled")
        self.phase = "refining"
        self.folder = Path(tempfile.mkdtemp(prefix=STORE_PREFIX, dir=store_parent(job.store_dir)))
        writes, arrays = store_writes(job, result, mask, self.folder)
        self.chunks_total = len(writes)
        # one dask worker thread (torch has the cores), our callbacks only (not dask's global ones)
        dask.compute(*writes, scheduler="threads", num_workers=1, callbacks=[watch._callback])
        self.phase = "done"
        self.result = LazyResult(
            self.folder, self.folder / "result.zarr", arrays, int(self.total or 0), time.perf_counter() - self.t0
        )

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
