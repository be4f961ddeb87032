"""Checks made on the main thread before a run starts, and its time estimate (numpy only).

:func:`check_job` counts the objects a :class:`~.worker.RefineJob` would refine and, when
there are none, says why in words for the user (an empty mask, the selected label absent,
an empty slice), so that no worker is started for nothing. :func:`estimate_seconds` gives
the expected CPU time of a run (objects x steps x seconds per object-step, measured on this
computer when a run has been timed, else :data:`NOMINAL_S_PER_OBJECT_STEP`); the dock
widget asks before starting more than :data:`LARGE_RUN_OBJECTS` objects on a CPU, the menu
command only warns.
"""

from __future__ import annotations

import numpy as np

from .worker import RefineJob

__all__ = [
    "DEFAULT_STEPS",
    "LARGE_RUN_OBJECTS",
    "NOMINAL_S_PER_OBJECT_STEP",
    "check_job",
    "count_objects",
    "estimate_seconds",
    "estimate_text",
    "plane_ids",
]

LARGE_RUN_OBJECTS = 200  # more objects than this on a CPU: confirm first (dock) or warn (menu)
# one network evaluation of one object crop on one CPU core (benchmarks/results/speed.json, batch 1)
NOMINAL_S_PER_OBJECT_STEP = {
    "segrefiner-lite": 0.05,  # v3: encoder once (0.04 s) + 6 decoder steps (0.04 s each), per step
    "segrefiner-lite-v2": 0.14,
    "segrefiner-lr": 11.4,
    "segrefiner-hr": 11.4,
}
UNKNOWN_S_PER_OBJECT_STEP = 0.5  # a checkpoint file: unknown network size
DEFAULT_STEPS = 6  # steps of a run with steps=None (all timesteps of the usual schedule)


def plane_ids(plane: np.ndarray) -> np.ndarray:
    """The non-zero label values in ``plane`` (a bincount of the non-zero pixels: fast)."""
    values = plane[plane != 0]
    if values.size and values.dtype.kind in "iu" and values.min() >= 0 and values.max() < (1 << 22):
        return np.flatnonzero(np.bincount(values.astype(np.intp, copy=False)))
    return np.unique(values)


def count_objects(job: RefineJob) -> int:
    """Objects the run refines: the chosen labels present, summed over the chosen planes."""
    total = 0
    for pos in job.positions:
        ids = plane_ids(job.mask[job.index(pos)])
        if job.request.labels is not None:
            ids = np.intersect1d(ids, np.asarray(job.request.labels))
        total += int(ids.size)
    return total


def check_job(job: RefineJob, mask_name: str) -> tuple[int, str | None]:
    """``(objects to refine, None)``, or ``(0, why there is nothing to refine)`` in words."""
    objects = count_objects(job)
    if objects:
        return objects, None
    if not job.mask.any():
        return 0, f"the coarse mask {mask_name!r} is empty: paint the objects first (one label each)"
    stack = job.mask.ndim > 2
    if not stack:
        where = f"mask {mask_name!r}"
    elif len(job.positions) == 1:
        where = f"the displayed slice {job.positions[0]} of {mask_name!r}"
    else:
        where = f"the slices of {mask_name!r}"
    if job.request.labels is not None:
        values = ", ".join(str(v) for v in job.request.labels)
        return 0, f"label {values} (the selected label) does not occur in {where}: choose another label or 'all'"
    return 0, f"nothing to refine in {where}: move to a slice with objects, or choose 'all slices'"


def estimate_seconds(objects: int, model: str, steps: int | None, measured: float | None = None) -> float:
    """Expected CPU seconds of a run: ``objects * steps * seconds per object-step``.

    ``measured`` (seconds per object-step of an earlier run on this computer) wins over the
    nominal figure of the model.
    """
    per = measured if measured else NOMINAL_S_PER_OBJECT_STEP.get(model, UNKNOWN_S_PER_OBJECT_STEP)
    return float(objects) * float(steps or DEFAULT_STEPS) * per


def estimate_text(objects: int, seconds: float, *, measured: bool) -> str:
    """E.g. "300 objects on the CPU: about 4 min (nominal speed)"."""
    if seconds < 90:
        span = f"{seconds:.0f} s"
    elif seconds < 5400:
        span = f"{seconds / 60:.0f} min"
    else:
        span = f"{seconds / 3600:.1f} h"
    how = "measured on this computer" if measured else "nominal speed"
    return f"{objects} objects on the CPU: about {span} ({how})"
