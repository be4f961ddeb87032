"""What the lazy path and the CLI need to run on dask: models per worker, clients, progress.

* :class:`ModelSpec` says which model a task needs; :func:`refiner_for` gives it, loading
  a registered name or a checkpoint file **once per process** (the process's
  :class:`~napari_segrefiner.models.cache.ModelCache`). Dask workers are processes, so a model is loaded once per
  worker, never pickled with every task; :func:`model_loads` counts the loads of this
  process (ask every worker with ``client.run(model_loads)``).
* :func:`get_client` turns ``None``, an address (``"tcp://host:8786"``) or a
  ``distributed.Client`` into a client (or None: dask's threaded scheduler); :func:`local_cluster`
  starts a ``LocalCluster`` of worker processes.
* :class:`Progress` counts finished objects of a run: tasks call :func:`report`, which calls
  the callback directly in the driver's process (threaded scheduler) or sends a
  ``distributed`` event that the driver's client forwards to it.

dask, distributed and torch are imported inside the functions that need them.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..models.cache import ModelCache

__all__ = [
    "MODELS",
    "ModelSpec",
    "Progress",
    "clear_models",
    "get_client",
    "local_cluster",
    "model_loads",
    "refiner_for",
    "report",
    "worker_threads",
]

MODELS = ModelCache(size=2)  # this process's models (a dask worker's, or the driver's)


@dataclass(frozen=True)
class ModelSpec:
    """Which model a task needs, small enough to travel in a task graph.

    Attributes
    ----------
    source : str or None
        Registered name or checkpoint path (None: the shipped default).
    device : str
        Device to load it on in each worker (``"auto"``, ``"cpu"``, ``"cuda"``...).
    cache : str or None
        Folder of downloaded weights (registered names).
    options : tuple of (str, value)
        :class:`~.config.RefineConfig` overrides.
    threads : int or None
        torch intra-op threads to set in the worker process when the model is loaded there.
    refiner : Refiner or None
        An in-memory model, used as it is (threaded scheduler) or pickled once per worker
        (as one key of the graph, not per task); ``source`` is then ignored.
    """

    source: str | None = None
    device: str = "auto"
    cache: str | None = None
    options: tuple = ()
    threads: int | None = None
    refiner: Any = field(default=None, compare=False)


def refiner_for(spec: ModelSpec):
    """The :class:`~napari_segrefiner.models.refiner.Refiner` of ``spec``, loaded at most once per process."""
    if spec.refiner is not None:
        return spec.refiner.with_options(**dict(spec.options))

    def threads() -> None:
        if spec.threads:
            import torch

            torch.set_num_threads(int(spec.threads))

    refiner = MODELS.get(spec.source, device=spec.device, cache=spec.cache, before_load=threads)
    return refiner.with_options(**dict(spec.options))


def model_loads() -> int:
    """How many models :func:`refiner_for` has loaded in this process."""
    return MODELS.loads


def clear_models() -> None:
    """Forget the models cached in this process."""
    MODELS.clear()


def get_client(client: Any = None):
    """``None`` -> None (threaded scheduler); an address -> a new ``distributed.Client``;
    a client -> itself.

    Raises
    ------
    TypeError
        For anything else.
    """
    if client is None:
        return None
    if isinstance(client, str):
        from distributed import Client

        return Client(client, set_as_default=False)
    if hasattr(client, "submit") and hasattr(client, "scheduler_info"):
        return client
    raise TypeError(f"client must be None, an address or a distributed.Client, got {type(client).__name__}")


def local_cluster(workers: int, *, threads_per_worker: int = 1):
    """A ``LocalCluster`` of ``workers`` worker processes and a client on it (close both).

    distributed's INFO messages (workers starting and closing) are silenced.
    """
    import logging

    from distributed import Client, LocalCluster

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        dashboard_address=None,
        silence_logs=40,
    )
    return cluster, Client(cluster, set_as_default=False)


# ----------------------------------------------------------------------- progress ---
_progress: dict[str, Progress] = {}


class Progress:
    """Cumulative count of finished objects of one run, forwarded to ``callback(done, total)``.

    Register it with :meth:`attach` (and :meth:`detach` when done); tasks of the run call
    :func:`report` with its token.
    """

    def __init__(self, callback: Callable[[int, int], None] | None, total: int):
        self.token = uuid.uuid4().hex
        self.callback = callback
        self.total = int(total)
        self.done = 0
        self._lock = threading.Lock()
        self._client = None

    @property
    def topic(self) -> str:
        return f"segrefiner-progress-{self.token}"

    def add(self, n: int) -> None:
        with self._lock:
            self.done += int(n)
            done = self.done
        if self.callback is not None:
            self.callback(done, self.total)
        if self.total and done >= self.total:
            self.detach()

    def attach(self, client=None) -> Progress:
        _progress[self.token] = self
        if client is not None:
            self._client = client
            client.subscribe_topic(self.topic, lambda event: self.add(event[1]))
        return self

    def detach(self) -> None:
        _progress.pop(self.token, None)
        if self._client is not None:
            try:
                self._client.unsubscribe_topic(self.topic)
            except Exception:  # pragma: no cover - a closed client
                pass
            self._client = None


def report(token: str | None, n: int) -> None:
    """Tell the run ``token`` that ``n`` more objects are done (no-op without a listener)."""
    if token is None:
        return
    local = _progress.get(token)
    if local is not None:
        local.add(n)
        return
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    worker.log_event(f"segrefiner-progress-{token}", int(n))


def worker_threads(total: int | None, workers: int) -> int:
    """torch threads per worker process when ``total`` threads are shared by ``workers``."""
    total = total or (os.cpu_count() or 1)
    return max(1, int(total) // max(1, int(workers)))
