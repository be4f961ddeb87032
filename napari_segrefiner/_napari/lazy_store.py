"""The zarr side of a lazy run: where result stores go, how they are written, and how the
interpreter is kept friendly to the event loop meanwhile. No GUI import (numpy, dask, zarr).

* A store is a new folder ``segrefiner-result-*`` (:data:`STORE_PREFIX`) under the job's
  ``store_dir``, else ``$SEGREFINER_LAZY_DIR``, else the temporary folder
  (:func:`store_parent`); :func:`remove_store` removes only such folders.
* :func:`store_writes` creates the store (with pyramid levels for planes with a side over
  :data:`PYRAMID_SIDE`, halved down to :data:`PYRAMID_MIN`) and returns one dask write task
  per output block (:func:`write_block`, which refuses to start once the run is cancelled).
* :func:`as_dask` and :func:`scan_blocks` read the inputs chunk by chunk;
  :func:`gui_friendly_interpreter` holds back full garbage collections and shortens the
  thread switch interval while a lazy run goes.

Used by :mod:`.lazy_worker`, which runs the whole lazy job in a napari worker.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..diffusion.sampling import RefineCancelled
from ..lazy.store import block_regions, pyramid_factors, write_levels

__all__ = [
    "ENV_DIR",
    "PYRAMID_MIN",
    "PYRAMID_SIDE",
    "STORE_PREFIX",
    "SWITCH_S",
    "as_dask",
    "gui_friendly_interpreter",
    "is_store",
    "remove_store",
    "scan_blocks",
    "store_parent",
    "store_writes",
    "write_block",
]

PYRAMID_SIDE = 4096  # results with a larger plane side get pyramid levels (napari reads tiles, not the plane)
PYRAMID_MIN = 1024  # ... halved until the largest side is at most this
STORE_PREFIX = "segrefiner-result-"
ENV_DIR = "SEGREFINER_LAZY_DIR"


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


def as_dask(array, lead: int):
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


def scan_blocks(mask, chunks: int | None) -> int:
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


def write_block(block: np.ndarray, arrays: list, factors: list[int], region: tuple, cancel: threading.Event) -> int:
    """Write ``block`` (at ``region``: one ``(start, stop)`` per axis) into every level (:func:`write_levels`)."""
    if cancel.is_set():
        raise RefineCancelled("the refinement was cancelled")
    return write_levels(block, arrays, factors, region)


def store_writes(job, result, mask, folder: Path) -> tuple[list, list]:
    """A new store in ``folder`` (levels "0", "1", ...) and one write task per output block of ``result``.

    ``job`` is the :class:`~.lazy_worker.LazyJob`; ``mask`` its mask as dask or numpy.
    """
    import zarr
    from dask import delayed

    shape, dtype = job.shape, np.dtype(result.dtype)
    chunk = tuple(int(c[0]) for c in result.chunks[-2:])
    factors = pyramid_factors(shape, job.pyramid, side=PYRAMID_SIDE, smallest=PYRAMID_MIN)
    group = zarr.open_group(str(folder / "result.zarr"), mode="w")
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
            key = f"segrefiner-write-{len(writes)}-{id(folder)}"
            writes.append(
                delayed(write_block, pure=False)(block, arrays, factors, region, job.cancel, dask_key_name=key)
            )
    return writes, arrays
