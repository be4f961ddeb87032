"""napari-segrefiner: SegRefiner mask refinement in pure PyTorch, with a napari plugin.

The public API never imports napari, magicgui or Qt::

    from napari_segrefiner import refine
    refined = refine(image, coarse_mask)            # shipped model, CPU or GPU
"""

from .checkpoint import CheckpointError, build_model, load_checkpoint, save_checkpoint
from .config import LiteConfig, UNetConfig
from .models import available_devices, load_model
from .refine import RefineStep, iter_refine, refine

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "LiteConfig",
    "RefineStep",
    "UNetConfig",
    "available_devices",
    "build_model",
    "iter_refine",
    "load_checkpoint",
    "load_model",
    "refine",
    "save_checkpoint",
]
