"""The one cache of loaded models: :class:`ModelCache`, safe to use from several threads.

The napari widget keeps one (its runs load models in worker threads) and every process of
the lazy path keeps one (:func:`~napari_segrefiner.lazy.cluster.refiner_for`: a dask worker
loads a model once, not once per task). A model is keyed by its source, the device as
asked for and, for registered models, the cache folder of their weights; the most recently
used ``size`` models are kept. Loading happens under the cache's lock, so two threads
asking for one model load it once.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from . import registry
from .refiner import Refiner, load_refiner

__all__ = ["ModelCache"]

Key = tuple[Any, str, str | None]


class ModelCache:
    """Loaded :class:`~.refiner.Refiner` s, most recently used last, at most ``size`` of them.

    Parameters
    ----------
    size : int
        How many models are kept (a GUI session may switch between two).

    Notes
    -----
    ``len(cache)`` is the number of models held and iterating gives their keys
    ``(source, device, cache folder)``.
    """

    def __init__(self, size: int = 2):
        if int(size) < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = int(size)
        self.loads = 0  # models loaded by this cache (the others were found in it)
        self._models: OrderedDict[Key, Refiner] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(source: Any, device: Any = "auto", cache: str | os.PathLike | None = None) -> Key:
        """The key of ``source`` on ``device``: the cache folder counts for registered names only."""
        source = None if source is None else str(source)
        folder = None if cache is None or (source or registry.DEFAULT_MODEL) not in registry.MODELS else str(cache)
        return (source, str(device), folder)

    def get(
        self,
        source: Any,
        *,
        device: Any = "auto",
        cache: str | os.PathLike | None = None,
        load: Callable[..., Refiner] | None = None,
        before_load: Callable[[], None] | None = None,
    ) -> Refiner:
        """The model of ``source`` on ``device``, loaded at most once while it is held.

        Parameters
        ----------
        source : None, str or path-like
            What :func:`~.refiner.load_refiner` takes (None: the shipped model).
        device : str or torch.device
            As asked for (``"auto"`` is resolved by the loader, once).
        cache : str or path-like, optional
            Folder of downloaded weights.
        load : callable, optional
            ``load(source, device=..., cache=...)``; default :func:`~.refiner.load_refiner`.
        before_load : callable, optional
            Called just before a model is loaded (e.g. to set the process's torch threads).
        """
        key = self.key(source, device, cache)
        with self._lock:
            hit = self._models.get(key)
            if hit is not None:
                self._models.move_to_end(key)
                return hit
            if before_load is not None:
                before_load()
            refiner = (load or load_refiner)(source, device=device, cache=cache)
            self.loads += 1
            self._models[key] = refiner
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return refiner

    def put(
        self, source: Any, refiner: Refiner, *, device: Any = "auto", cache: str | os.PathLike | None = None
    ) -> None:
        """Hold ``refiner`` as the model of ``source`` on ``device`` (e.g. one loaded elsewhere)."""
        key = self.key(source, device, cache)
        with self._lock:
            self._models[key] = refiner
            self._models.move_to_end(key)
            while len(self._models) > self.size:
                self._models.popitem(last=False)

    def clear(self) -> None:
        """Forget every model."""
        with self._lock:
            self._models.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def __iter__(self) -> Iterator[Key]:
        with self._lock:
            return iter(list(self._models))

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._models
