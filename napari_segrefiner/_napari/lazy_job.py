"""What a lazy run of the napari front end is made of, without any GUI import (numpy only).

:func:`lazy_reason` says why a mask layer is refined lazily (zarr, dask or other non-numpy
data, a multiscale layer, or planes above :data:`LAZY_PIXELS`); a :class:`LazyJob` is what
the main thread gathers (no data is read there); the worker (:mod:`.lazy_worker`) yields
:class:`LazyProgress` records (:func:`lazy_status` in words) and returns a
:class:`LazyResult`; :class:`LazyRun` is the main thread's state of one run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.request import RefineRequest
from .preflight import duration

__all__ = [
    "LAZY_NOTE",
    "LAZY_PIXELS",
    "RATE_SMOOTHING",
    "LazyJob",
    "LazyProgress",
    "LazyResult",
    "LazyRun",
    "lazy_reason",
    "lazy_status",
]

LAZY_NOTE = "no step previews, hints, re-runs or review queue"
RATE_SMOOTHING = 0.2  # weight of the newest rate in the time left a lazy run shows

LAZY_PIXELS = 4096 * 4096  # numpy masks with larger planes are refined lazily too (bounded memory)


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


@dataclass
class LazyRun:
    """State of one lazy run (main thread)."""

    job: LazyJob
    source: Any  # the mask layer
    reason: str
    editable: bool | None = None  # the mask layer's editability before the run
    bar: Any = None  # the napari progress bar (opened just after the click, before the worker starts)
    phase: str = ""
    outcome: str = "running"  # -> "done", "error", "cancelled"
    done_event: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.perf_counter)
    last: LazyProgress | None = None
    shown: tuple[str, float] = ("", 0.0)  # phase and time of the last record shown
    closed: bool = False
    asked: bool = False  # the object count was confirmed (or needed no question)
    rate: float | None = None  # objects per second, smoothed over the records (see smooth)

    def smooth(self, p: LazyProgress) -> LazyProgress:
        """``p`` with its rate smoothed (an exponential moving average, :data:`RATE_SMOOTHING`):
        the time left no longer jumps from record to record."""
        if p.rate is None:
            return p
        self.rate = p.rate if self.rate is None else self.rate + RATE_SMOOTHING * (p.rate - self.rate)
        return replace(p, rate=self.rate)

    image: Any = None  # the image layer
    removed: str | None = None  # name of an input layer removed while the run went (it then stops)


def lazy_status(p: LazyProgress) -> str:
    """The status line of a lazy run's progress record."""
    if p.phase == "scanning":
        total = f"/{p.total}" if p.total else ""
        return f"lazy run: scanning the mask, chunk {p.done}{total} · {LAZY_NOTE}"
    if p.total is None:
        return f"lazy run: refining (first batch of objects) · {LAZY_NOTE}"
    text = f"lazy run: {p.done:,}/{p.total:,} objects"
    if p.rate:
        text += f" · {p.rate:.2f}/s, about {duration(max(p.total - p.done, 0) / p.rate)} left"
    if p.chunks_total:
        text += f" · {p.chunks_done}/{p.chunks_total} chunks written"
    return f"{text} · {LAZY_NOTE}"
