"""Loading networks by name or path, pipeline defaults, and device selection."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import model_from_checkpoint
from .registry import DEFAULT_MODEL, MODELS, resolve

__all__ = ["OFFICIAL_DEFAULTS", "available_devices", "resolve_device", "load_model", "pipeline_defaults"]

# test_cfg of the released pipelines (segrefiner_coco.py / segrefiner_big.py).
OFFICIAL_DEFAULTS: dict[str, Any] = {
    "size": 256,  # network input side
    "pad": 20,  # instance crop margin (px)
    "min_area": 512,  # instances below this area are left as they are
    "context": 0.0,  # crops span at least context x the object's longer side...
    "context_cap": 0,  # ...but no more than this many pixels (0: off, the official crop)
    "batch_size": 32,  # instances / patches per network call
    "hr_patch": 256,  # HR local patch side (native pixels)
    "hr_thr_ratio": 0.9,  # HR: candidate centres where F < ratio * max(F)
    "hr_iou": 0.3,  # HR: NMS IoU threshold
    "hr_min_pixels": 128,  # HR: masks with at most this many pixels are not refined
    "auto_hr_side": 512,  # auto mode: single objects whose padded box exceeds this use HR
}


def available_devices() -> list[str]:
    """Devices that work in this process: ``["auto", "cpu"]`` plus ``"cuda"``/``"mps"``."""
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"`` (CUDA, then MPS, then CPU) or a device name into a ``torch.device``.

    Raises
    ------
    ValueError
        If the name is invalid or the backend is not available here.
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a valid torch device: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    if dev.type == "mps" and "mps" not in available_devices():
        raise ValueError(f"device {device!r} requested but MPS is not available; use 'cpu' or 'auto'")
    return dev


def pipeline_defaults(model: nn.Module) -> dict[str, Any]:
    """Official defaults, overridden by those stored with the model's checkpoint."""
    return {**OFFICIAL_DEFAULTS, **getattr(model, "segrefiner_defaults", {})}


def load_model(source: str | os.PathLike | None = None, *, device: str | torch.device = "cpu") -> nn.Module:
    """Load a denoiser by registry name or checkpoint path.

    Parameters
    ----------
    source : str or path-like, optional
        A registered name (``"segrefiner-lite"``, the shipped default; ``"segrefiner-lr"``,
        ``"segrefiner-hr"`` once downloaded) or a checkpoint file (ours or the released
        layout). ``None`` means the shipped default.
    device : str or torch.device
        Where to put the network (``"auto"`` allowed).

    Returns
    -------
    torch.nn.Module
        In eval mode; ``model(x, t)`` maps (N, 4, H, W) and (N,) long to (N, 1, H, W)
        logits. The attributes ``segrefiner_defaults`` (pipeline defaults) and
        ``segrefiner_meta`` (training metadata) come from the checkpoint, and
        ``segrefiner_source`` names where it came from.

    Raises
    ------
    FileNotFoundError
        If the file or the registered model's weights are missing (the message says how to
        get them).
    CheckpointError
        If the file is not a usable checkpoint.
    """
    if source is None:
        source = DEFAULT_MODEL
    if isinstance(source, (str, os.PathLike)) and str(source) in MODELS:
        path = resolve(str(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"model {str(source)!r} is neither a registered name ({', '.join(MODELS)}) nor an existing file"
            )
    else:
        raise TypeError(f"source must be a model name or a path, got {type(source).__name__}")
    model, defaults, meta = model_from_checkpoint(path)
    model.segrefiner_defaults = defaults
    model.segrefiner_meta = meta
    model.segrefiner_source = str(source)
    return model.to(resolve_device(device))
