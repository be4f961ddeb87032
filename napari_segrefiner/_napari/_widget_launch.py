"""The one wiring of a napari worker: every run, lazy run, menu run and download starts here.

:func:`launch` creates the worker (``ignore_errors``: a failure reaches the ``errored``
slot, never the event loop as an exception, see G4 in the napari notes), connects the
given slots by signal name, optionally sets a :class:`threading.Event` from the worker's
own thread when it finishes (so that closing can wait for it without a deadlock) and starts
it. The returned :class:`Launch` disconnects every slot at once (the run is over for the
widget, whatever the worker still sends). Main thread only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from napari.qt.threading import create_worker
from qtpy.QtCore import Qt

__all__ = ["Launch", "launch"]


class Launch:
    """A started worker and the slots connected to it."""

    def __init__(self, worker, slots: list):
        self.worker = worker
        self._slots = slots

    def disconnect(self) -> None:
        """Disconnect every slot (idempotent; a deleted signal is ignored)."""
        for signal, slot in self._slots:
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        self._slots = []


def launch(
    func: Callable,
    *args,
    slots: dict[str, Callable] | None = None,
    done: threading.Event | None = None,
    start: bool = True,
    **kwargs,
) -> Launch:
    """Run ``func(*args, **kwargs)`` in a napari worker with ``slots`` ``{signal name: slot}``."""
    worker = create_worker(func, *args, _ignore_errors=True, **kwargs)
    if done is not None:
        worker.finished.connect(done.set, type=Qt.ConnectionType.DirectConnection)
    pairs = [(getattr(worker, name), slot) for name, slot in (slots or {}).items()]
    for signal, slot in pairs:
        signal.connect(slot)
    if start:
        worker.start()
    return Launch(worker, pairs)
