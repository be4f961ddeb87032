"""How many CPU threads a refinement uses: sized to the machine, set on purpose.

torch's default (one intra-op thread per logical core) oversubscribes a small machine as
soon as anything else runs on it: a GUI's own thread, another process, the user's
browser. On a loaded 2-core machine one forward pass of the shipped model took 4.4 s with
the default threads and 0.21 s with one. The front ends therefore set the count:

* ``"gui"``: the cores this process may use, minus one for the event loop and the rest of
  the desktop (at least 1);
* ``"cli"``: all of them (a batch job owns the machine);

and ``$OMP_NUM_THREADS`` or an explicit number always wins.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["PURPOSES", "available_cores", "cpu_threads", "use_threads"]

PURPOSES = ("gui", "cli")


def available_cores() -> int:
    """Logical cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def cpu_threads(purpose: str = "cli", *, requested: int | None = None) -> int:
    """The number of intra-op threads for a CPU run.

    Parameters
    ----------
    purpose : {"gui", "cli"}
        Who runs: a GUI shares the machine with its event loop, a CLI job does not.
    requested : int, optional
        An explicit choice of the user (wins over everything).

    Returns
    -------
    int
        ``requested``; else ``$OMP_NUM_THREADS`` when set to a positive integer; else
        cores - 1 (at least 1) for ``"gui"`` and all cores for ``"cli"``.

    Raises
    ------
    ValueError
        For an unknown purpose or a requested count below 1.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"threads must be a positive integer, got {requested!r}")
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = available_cores()
    return max(1, cores - 1) if purpose == "gui" else cores


@contextmanager
def use_threads(n: int) -> Iterator[int]:
    """Run the body with ``torch.set_num_threads(n)``, restoring the previous count after.

    The setting is process-wide: use it around a whole run, not per call.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield int(n)
    finally:
        torch.set_num_threads(before)
