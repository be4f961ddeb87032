"""napari-segrefiner: SegRefiner mask refinement in pure PyTorch, with a napari plugin.

The public API never imports napari, magicgui or Qt::

    from napari_segrefiner import refine
    refined = refine(image, coarse_mask)            # shipped model, CPU or GPU

    refiner = load_refiner("segrefiner-lite", device="cpu")   # load once...
    refined = refine(image, coarse_mask, model=refiner)        # ...refine many times

The exports are loaded on first access, so that the napari contributions that need no
network (``_reader``, ``_writer``, ``_sample_data``) do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .api import RefineStep, iter_refine, refine
    from .lazy.refine import refine_lazy
    from .models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from .models.config import LiteConfig, RefineConfig, UNetConfig
    from .models.nets import build_network
    from .models.refiner import Refiner, available_devices, load_refiner

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "LiteConfig",
    "RefineConfig",
    "RefineStep",
    "Refiner",
    "UNetConfig",
    "available_devices",
    "build_network",
    "iter_refine",
    "load_checkpoint",
    "load_refiner",
    "refine",
    "refine_lazy",
    "save_checkpoint",
]

_SOURCES = {
    "CheckpointError": "models.checkpoint",
    "build_network": "models.nets",
    "load_checkpoint": "models.checkpoint",
    "save_checkpoint": "models.checkpoint",
    "LiteConfig": "models.config",
    "UNetConfig": "models.config",
    "RefineConfig": "models.config",
    "Refiner": "models.refiner",
    "available_devices": "models.refiner",
    "load_refiner": "models.refiner",
    "RefineStep": "api",
    "iter_refine": "api",
    "refine": "api",
    "refine_lazy": "lazy.refine",
}


_REMOVED = {"load_model": "load_model was removed: load_refiner(source, device=...).network is the network"}


def __getattr__(name: str):
    if name in _REMOVED:
        raise AttributeError(_REMOVED[name])
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
