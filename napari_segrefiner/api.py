"""Public numpy-in / numpy-out refinement API: :func:`iter_refine` and :func:`refine`."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from .imaging import as_rgb_uint8, check_mask
from .models import load_model, pipeline_defaults, resolve_device
from .patches import object_box
from .pipelines import Job, RefineStep, run_hr, run_instances
from .scheduler import Schedule, timesteps

__all__ = ["MODES", "RefineStep", "choose_mode", "iter_refine", "refine"]

log = logging.getLogger(__name__)
MODES = ("auto", "instance", "whole", "hr")


def choose_mode(labels: np.ndarray, ids: Iterable[int], opts: dict[str, Any]) -> str:
    """The pipeline ``mode="auto"`` picks.

    Several objects -> ``"instance"``. One object whose padded box is longer than
    ``opts["auto_hr_side"]`` (512 px) on an image at least ``opts["hr_patch"]`` on both
    sides -> ``"hr"`` (a 256 crop would lose its detail). Otherwise ``"instance"``.
    """
    ids = list(ids)
    if len(ids) != 1:
        return "instance"
    y0, y1, x0, x1 = object_box(labels == ids[0], pad=opts["pad"])
    h, w = labels.shape
    if max(y1 - y0, x1 - x0) > opts["auto_hr_side"] and min(h, w) >= opts["hr_patch"]:
        return "hr"
    return "instance"


def _caster(mask: np.ndarray, labels: np.ndarray):
    """Map a refined int64 labels frame back to the input's dtype and binary value."""
    dtype = np.asarray(mask).dtype
    ids = np.unique(labels)
    ids = ids[ids != 0]
    if dtype == bool:
        return lambda frame: frame != 0
    if len(ids) == 1 and ids[0] != 1:
        value = ids[0]
        return lambda frame: np.where(frame != 0, value, 0).astype(dtype)
    return lambda frame: frame.astype(dtype, copy=False)


def _model(model: Any, device: torch.device) -> nn.Module:
    if isinstance(model, nn.Module):
        return model.to(device).eval()
    if model is None or isinstance(model, (str, os.PathLike)):
        return load_model(model, device=device)
    raise TypeError(f"model must be None, a name, a checkpoint path or a torch.nn.Module, got {type(model).__name__}")


def iter_refine(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    model: Any = None,
    mode: str = "auto",
    steps: int | None = None,
    device: str | torch.device = "auto",
    seed: int | None = None,
    labels: Iterable[int] | None = None,
    previews: bool = True,
    autocast: bool = False,
    **options: Any,
) -> Iterator[RefineStep]:
    """Refine a mask step by step, yielding one :class:`RefineStep` per diffusion step.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        Gray, RGB or RGBA image of any numeric dtype (see
        :func:`~napari_segrefiner.imaging.as_rgb_uint8`).
    mask : ndarray of shape (H, W)
        Coarse binary mask (bool, 0/1, or one non-zero value) or labels (0 = background).
    model : None, str, path-like or torch.nn.Module
        ``None`` = the shipped default model; a registered name; a checkpoint file; or a
        loaded network (``model(x, t) -> logits``).
    mode : {"auto", "instance", "whole", "hr"}
        Pipeline. ``"auto"`` picks one (:func:`choose_mode`) and logs which; every record
        carries it in ``mode``.
    steps : int, optional
        Number of reverse steps (default: all timesteps, 6; the HR global stage uses 5).
    device : str or torch.device
        ``"auto"`` (CUDA, MPS, then CPU), ``"cpu"``, ``"cuda"``...
    seed : int, optional
        Seed of the per-pixel draws; ``None`` draws a fresh one.
    labels : iterable of int, optional
        Refine only these label values (others are kept exactly); default all.
    previews : bool
        Paste every intermediate step into the frame (for display). ``False`` leaves
        ``mask`` None on intermediate records, which is faster.
    autocast : bool
        bfloat16 autocast for the network (CUDA only; ignored elsewhere).
    **options
        Pipeline overrides: ``pad``, ``min_area``, ``context``, ``context_cap``, ``batch_size``, ``size``, ``hr_patch``,
        ``hr_thr_ratio``, ``hr_iou``, ``hr_min_pixels``, ``auto_hr_side``.

    Yields
    ------
    RefineStep
        The last record has ``done=True`` and holds the result in ``mask``.

    Raises
    ------
    ValueError, TypeError
        For invalid inputs (named in the message), raised by this call itself, before the
        generator runs.
    FileNotFoundError, CheckpointError
        If the model cannot be loaded.
    """
    rgb = as_rgb_uint8(image, name="image")
    lab = check_mask(mask, name="mask", shape=rgb.shape[:2])
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    present = [int(v) for v in np.unique(lab) if v != 0]
    if labels is None:
        ids = present
    else:
        ids = [int(v) for v in labels]
        missing = sorted(set(ids) - set(present))
        if missing:
            raise ValueError(f"labels {missing} do not occur in mask (present: {present[:10]})")
        if not ids:
            raise ValueError("labels is empty: nothing to refine")
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    dev = resolve_device(device)
    net = _model(model, dev)
    opts = pipeline_defaults(net)
    unknown = set(options) - set(opts)
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}; valid: {sorted(opts)}")
    opts.update(options)
    size = opts["size"]
    divisor = getattr(getattr(net, "config", None), "divisor", 1)
    if size % divisor:
        raise ValueError(f"size must be a multiple of {divisor} for this network, got {size}")
    chosen = choose_mode(lab, ids, opts) if mode == "auto" else mode
    if chosen == "hr" and min(lab.shape) < opts["hr_patch"]:
        if mode == "hr":
            raise ValueError(f"mode 'hr' needs an image of at least {opts['hr_patch']} px per side, got {lab.shape}")
        chosen = "instance"
    if mode == "auto":
        log.info("mode='auto' chose %r", chosen)
    num_t = getattr(getattr(net, "config", None), "num_timesteps", 6)
    timesteps(Schedule(num_timesteps=num_t), steps, last=1 if chosen == "hr" else 0)  # validates steps
    if not isinstance(opts["batch_size"], int) or opts["batch_size"] < 1:
        raise ValueError(f"batch_size must be a positive integer, got {opts['batch_size']!r}")
    if chosen == "hr" and opts["hr_patch"] % divisor:
        raise ValueError(f"hr_patch must be a multiple of {divisor} for this network, got {opts['hr_patch']}")
    generator = torch.Generator(device=dev)
    generator.manual_seed(int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (2**63)))
    job = Job(
        model=net,
        opts=opts,
        steps=steps,
        generator=generator,
        previews=previews,
        autocast=bool(autocast and dev.type == "cuda"),
        schedule=Schedule(num_timesteps=num_t),
    )
    cast = _caster(mask, lab)
    return _run(rgb, lab, ids, job, chosen, cast, dev)


def _run(rgb, lab, ids, job: Job, chosen: str, cast, dev) -> Iterator[RefineStep]:
    image_t = torch.from_numpy(rgb).to(dev).permute(2, 0, 1)[None].float()
    if chosen == "hr":
        yield from run_hr(image_t, lab, ids, job, cast=cast)
    else:
        yield from run_instances(image_t, lab, ids, job, whole=chosen == "whole", cast=cast)


def refine(image: np.ndarray, mask: np.ndarray, **kwargs: Any) -> np.ndarray:
    """Refine a coarse mask or labels array; returns an array of ``mask``'s shape and dtype.

    Takes the arguments of :func:`iter_refine` (``model=None, mode="auto", steps=None,
    device="auto", seed=None, labels=None, ...``): a binary mask in gives a binary mask
    out; a labels array in gives the same labels, refined, out.
    """
    kwargs.setdefault("previews", False)
    *_, last = iter_refine(image, mask, **kwargs)
    return last.mask
