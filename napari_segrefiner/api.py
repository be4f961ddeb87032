"""Public numpy-in / numpy-out refinement API: :func:`iter_refine` and :func:`refine`.

These are the API front end: each call gets its :class:`~.refiner.Refiner` from
:func:`~.refiner.load_refiner` once (or uses the one passed in), validates the arrays and
options, and hands a :class:`~.pipelines.PipelineRun` to the pipeline generator.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from .models.config import RefineConfig
from .io.images import as_rgb_uint8
from .io.masks import as_labels, bounding_box
from .annotate.hints import check_hints, owners
from .engine.batch import PipelineRun
from .engine.pipelines import MODES as PIPELINES
from .engine.pipelines import Hints, instance_box, run_hr, run_instances
from .engine.records import RefineStep
from .io.plausible import check_label_count, check_memory
from .models.refiner import Refiner, load_refiner
from .diffusion.scheduler import timesteps

__all__ = ["DEFAULT_SEED", "MODES", "RefineStep", "choose_mode", "iter_refine", "resolve_seed", "refine"]

log = logging.getLogger(__name__)
MODES = ("auto", *PIPELINES)
DEFAULT_SEED = 0  # every front end (API, lazy, CLI, plugin) refines with this seed unless told otherwise


def choose_mode(labels: np.ndarray, ids: Iterable[int], config: RefineConfig) -> str:
    """The pipeline ``mode="auto"`` picks.

    Several objects -> ``"instance"``. One object whose padded box is longer than
    ``config.auto_hr_side`` (512 px; 0 = never) on an image at least ``config.hr_patch``
    on both sides -> ``"hr"`` (a 256 crop would lose its detail). Otherwise ``"instance"``.
    """
    ids = list(ids)
    if len(ids) != 1 or config.auto_hr_side <= 0:
        return "instance"
    y0, y1, x0, x1 = bounding_box(labels == ids[0], pad=config.pad)
    h, w = labels.shape
    if max(y1 - y0, x1 - x0) > config.auto_hr_side and min(h, w) >= config.hr_patch:
        return "hr"
    return "instance"


def resolve_seed(seed: int | None) -> int:
    """The seed of a run's per-pixel draws (None draws a fresh one; the default is ``DEFAULT_SEED``).

    Every object of a run draws from its own CPU stream
    (:func:`~napari_segrefiner.diffusion.scheduler.stream` of the seed and its label): the same
    numbers on every device, for every batch size, and whether the object is refined alone
    or with others.

    Raises
    ------
    TypeError, ValueError
        If ``seed`` is not an int in ``[0, 2**64)`` (or None, which draws a fresh seed).
    """
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return int(seed)


def _caster(mask: np.ndarray, ids: list[int]):
    """Map a refined int64 labels frame back to the input's dtype and binary value (``ids``:
    the labels present)."""
    dtype = np.asarray(mask).dtype
    if dtype == bool:
        return lambda frame: frame != 0
    if len(ids) == 1 and ids[0] != 1:
        value = ids[0]
        return lambda frame: np.where(frame != 0, value, 0).astype(dtype)
    return lambda frame: frame.astype(dtype, copy=False)


def _refiner(model: Any, device: Any) -> Refiner:
    if isinstance(model, Refiner) and device is None:
        return model
    if model is None or isinstance(model, (str, os.PathLike, Refiner, torch.nn.Module)):
        return load_refiner(model, device="auto" if device is None else device)
    raise TypeError(
        f"model must be None, a name, a checkpoint path, a Refiner or a torch.nn.Module, got {type(model).__name__}"
    )


def iter_refine(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    model: Any = None,
    mode: str = "auto",
    steps: int | None = None,
    device: str | torch.device | None = None,
    seed: int | None = DEFAULT_SEED,
    labels: Iterable[int] | None = None,
    previews: bool = False,
    autocast: bool = False,
    cancel: Callable[[], bool] | None = None,
    hints: np.ndarray | None = None,
    order: Iterable[int] = (),
    force: bool = False,
    **options: Any,
) -> Iterator[RefineStep]:
    """Refine a mask batch by batch, yielding one :class:`RefineStep` per network batch of objects.

    Each batch of objects is encoded once and taken through every reverse step before the
    next one starts, so objects stream through (memory grows with the batch, not with the
    number of objects) and every record carries finished objects.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        Gray, RGB or RGBA image of any numeric dtype (see
        :func:`~napari_segrefiner.io.images.as_rgb_uint8`).
    mask : ndarray of shape (H, W)
        Coarse binary mask (bool, 0/1, or one non-zero value) or labels (0 = background).
    model : None, str, path-like, Refiner or torch.nn.Module
        A :class:`~.refiner.Refiner` (from :func:`~.refiner.load_refiner`: load once, refine
        many times); or what :func:`~.refiner.load_refiner` takes: ``None`` = the shipped
        default model, a registered name, a checkpoint file, a network
        (``model(x, t) -> logits``, with the official options).
    mode : {"auto", "instance", "whole", "hr"}
        Pipeline. ``"auto"`` picks one (:func:`choose_mode`) and logs which; every record
        carries it in ``mode``.
    steps : int, optional
        Number of reverse steps (default: all timesteps, 6; the HR global stage uses 5).
    device : str or torch.device, optional
        Where to load the model: ``"auto"`` (CUDA, MPS, then CPU; the default), ``"cpu"``,
        ``"cuda"``... With a :class:`~.refiner.Refiner`, None keeps its device.
    seed : int or None
        Seed of the per-pixel draws (made on the CPU, so a seed gives the same draws on
        every device and batch size); default 0, as every front end (the same call gives
        the same result); ``None`` draws a fresh one.
    labels : iterable of int, optional
        Refine only these label values (others are kept exactly); default all.
    previews : bool
        Keep every object's state after each reverse step and its last confidence map
        (:class:`~.records.ObjectResult`; :func:`~.records.replay` composes a step's frame).
    autocast : bool
        bfloat16 autocast for the network (CUDA only; ignored elsewhere).
    cancel : callable, optional
        Asked before every network batch; when it returns True the generator raises
        :class:`~.sampling.RefineCancelled` (a GUI's Cancel then takes effect within one
        batch).
    hints : ndarray of shape (H, W), optional
        Annotator hints, integers: 0 = free, 1 = "object here", 2 = "background here".
        A 1 belongs to the object whose coarse mask holds it, else to the nearest object
        if it lies in that object's crop (else it is refused). Hinted pixels are held in
        every step and in the result, for every pipeline and every object (also those not
        in ``labels``); see :mod:`napari_segrefiner.annotate.hints`.
    order : iterable of int
        Labels to refine first (those an annotator looks at); the rest follow in label
        order. The result is composed in label order whatever the order.
    force : bool
        Refine a mask that fails the checks of :mod:`~napari_segrefiner.io.plausible` anyway:
        more labels than ``max(1024, H * W / 16)`` (a photo passed as the mask, or image
        and mask swapped), or a run whose estimated memory exceeds what is available.
    **options
        Overrides of the refiner's :class:`~.config.RefineConfig`: ``pad``, ``min_area``,
        ``context``, ``context_cap``, ``batch_size``, ``size``, ``hr_patch``, ``hr_thr_ratio``,
        ``hr_iou``, ``hr_min_pixels``, ``auto_hr_side``.

    Yields
    ------
    RefineStep
        One per network batch (HR: per object) with its finished objects; the last has
        ``done=True`` and holds the result in ``mask`` and every review score in
        ``uncertainty``.

    Raises
    ------
    ValueError, TypeError
        For invalid inputs (named in the message) and implausible masks or runs (see
        ``force``), raised by this call itself, before the generator runs.
    FileNotFoundError, CheckpointError
        If the model cannot be loaded.
    """
    rgb = as_rgb_uint8(image, name="image")
    lab = as_labels(mask, name="mask", shape=rgb.shape[:2])
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    _check_flags(previews=previews, autocast=autocast, force=force)
    if cancel is not None and not callable(cancel):
        raise TypeError(f"cancel must be None or a callable, got {type(cancel).__name__}")
    values, areas = np.unique(lab, return_counts=True)  # one sort: linear in the labels after it
    present = values[values != 0].tolist()
    check_label_count(len(present), lab.shape, force=force)
    if labels is None:
        ids = present
    else:
        ids = []
        for v in labels:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"labels must hold integers, got {v!r}")
            ids.append(int(v))
        ids = sorted(set(ids))  # the result must not depend on the order given
        missing = sorted(set(ids) - set(present))
        if missing:
            raise ValueError(f"labels {missing} do not occur in mask (present: {present[:10]})")
        if not ids:
            raise ValueError("labels is empty: nothing to refine")
    seed = resolve_seed(seed)
    hint_values = check_hints(hints, shape=lab.shape)
    refiner = _refiner(model, device).with_options(**options)
    config = refiner.config
    chosen = choose_mode(lab, ids, config) if mode == "auto" else mode
    if chosen == "hr" and min(lab.shape) < config.hr_patch:
        if mode == "hr":
            raise ValueError(f"mode 'hr' needs an image of at least {config.hr_patch} px per side, got {lab.shape}")
        chosen = "instance"
    if mode == "auto":
        log.info("mode='auto' chose %r", chosen)
    schedule_steps = tuple(timesteps(refiner.schedule, steps, last=1 if chosen == "hr" else 0))  # validates steps
    refined = np.isin(values, ids) & (areas >= config.min_area if chosen == "instance" else True)
    # objects stream through the network batch by batch (hr: one object after the other)
    at_once = 1 if chosen == "hr" else min(int(np.count_nonzero(refined)), config.batch_size)
    check_memory(lab.shape, at_once, size=config.size, device=refiner.device, force=force)
    if chosen == "hr" and config.hr_patch % refiner.divisor:
        raise ValueError(f"hr_patch must be a multiple of {refiner.divisor} for this network, got {config.hr_patch}")
    run = PipelineRun(
        network=refiner.network,
        schedule=refiner.schedule,
        config=config,
        steps=schedule_steps,
        seed=seed,
        previews=bool(previews),
        autocast=bool(autocast and refiner.device.type == "cuda"),
        cancel=cancel,
        order=tuple(int(v) for v in order),
        device=refiner.device,
    )
    held = None
    if hint_values is not None:
        owner = owners(lab, hint_values, lambda v: instance_box(lab == v, config, lab.shape))
        held = Hints(hint_values, owner)
    cast = _caster(mask, present)
    return _run(rgb, lab, ids, run, chosen, cast, held)


def _run(rgb, lab, ids, run: PipelineRun, chosen: str, cast, hints) -> Iterator[RefineStep]:
    if chosen == "hr":
        image_t = torch.from_numpy(rgb).to(run.device).permute(2, 0, 1)[None].float()
        yield from run_hr(image_t, lab, ids, run, cast=cast, hints=hints)
    else:
        yield from run_instances(rgb, lab, ids, run, whole=chosen == "whole", cast=cast, hints=hints)


def _check_flags(**flags: Any) -> None:
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def refine(image: np.ndarray, mask: np.ndarray, **kwargs: Any) -> np.ndarray:
    """Refine a coarse mask or labels array; returns an array of ``mask``'s shape and dtype.

    Takes the arguments of :func:`iter_refine` (``model=None, mode="auto", steps=None,
    device=None, seed=0, labels=None, force=False, ...``): a binary mask in gives a
    binary mask out; a labels array in gives the same labels, refined, out.
    """
    *_, last = iter_refine(image, mask, **kwargs)
    return last.mask
