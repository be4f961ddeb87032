"""Start a run: a :class:`~.request.RefineRequest` and the data become a generator of records.

:func:`start` is what every in-memory front end calls (the API, the CLI's file and folder
modes, the napari worker): it checks the arrays against the request, loads the model
(:func:`~napari_segrefiner.models.refiner.as_refiner`), picks the pipeline, computes the
timesteps once and returns the pipeline's generator, so that every problem is raised by
the call itself, before the first record.

An empty mask (no object) is a valid input: the run warns and yields one record holding
the mask unchanged, without loading a model.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from ..annotate.hints import OBJECT, Hints, check_hints, owners
from ..diffusion.scheduler import timesteps
from ..io.images import as_rgb_uint8
from ..io.masks import ObjectTable, as_labels, label_table
from ..io.plausible import check_label_count, check_memory
from ..models.config import RefineConfig
from ..models.refiner import as_refiner
from .batch import PipelineRun
from .hr import run_hr
from .pipelines import box_from_bounds, run_instances
from .records import RefineStep
from .request import RefineRequest, resolve_seed

__all__ = ["caster", "choose_mode", "finish", "start"]

log = logging.getLogger(__name__)


def choose_mode(table: ObjectTable, ids: Sequence[int], config: RefineConfig, shape: tuple[int, int]) -> str:
    """The pipeline ``mode="auto"`` picks.

    Several objects -> ``"instance"``. One object whose box padded by ``config.pad`` is
    longer than ``config.auto_hr_side`` (512 px; 0 = never) on an image at least
    ``config.hr_patch`` on both sides -> ``"hr"`` (a 256 crop would lose its detail).
    Otherwise ``"instance"``.

    Parameters
    ----------
    table : ObjectTable
        The labels' bounds (:func:`~napari_segrefiner.io.masks.label_table`).
    ids : sequence of int
        The labels to refine.
    config : RefineConfig
    shape : (int, int)
        The image's (H, W).
    """
    ids = list(ids)
    if len(ids) != 1 or config.auto_hr_side <= 0:
        return "instance"
    h, w = shape
    y0, y1, x0, x1 = (int(v) for v in table.bounds[int(np.searchsorted(table.labels, ids[0]))])
    pad = config.pad
    y0, y1, x0, x1 = max(y0 - pad, 0), min(y1 + pad, h), max(x0 - pad, 0), min(x1 + pad, w)
    if max(y1 - y0, x1 - x0) > config.auto_hr_side and min(h, w) >= config.hr_patch:
        return "hr"
    return "instance"


def caster(mask: np.ndarray, present: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
    """Map a refined int64 labels frame back to the input's dtype and binary value.

    ``present``: the labels of the input. A bool mask comes back bool, a one-object mask
    with its value (0/255 stays 0/255), labels with their dtype.
    """
    dtype = np.asarray(mask).dtype
    if dtype.kind == "b":
        return lambda frame: frame != 0
    if len(present) == 1 and present[0] != 1:
        value = present[0]
        return lambda frame: np.where(frame != 0, value, 0).astype(dtype)
    return lambda frame: frame.astype(dtype, copy=False)


def _unchanged(mask: np.ndarray, mode: str) -> Iterator[RefineStep]:
    yield RefineStep(0, 1, mode, (), 0, 0, (), True, np.array(mask, copy=True), {})


def start(
    image: np.ndarray, mask: np.ndarray, request: RefineRequest, *, cancel: Callable[[], bool] | None = None
) -> Iterator[RefineStep]:
    """Check ``image`` and ``mask`` against ``request``, load its model and start the run.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        Any numeric dtype (:func:`~napari_segrefiner.io.images.as_rgb_uint8`).
    mask : ndarray of shape (H, W)
        Coarse mask or labels (:func:`~napari_segrefiner.io.masks.as_labels`).
    request : RefineRequest
        The run's description (already valid by construction).
    cancel : callable, optional
        Asked before every network batch (:class:`~napari_segrefiner.diffusion.sampling.RefineCancelled`).

    Returns
    -------
    iterator of RefineStep
        One record per network batch; the last holds the result.

    Raises
    ------
    TypeError, ValueError
        For invalid arrays, labels that do not occur in the mask, hints that belong to no
        object, implausible masks or runs (see ``request.force``) and steps the model does
        not have; raised by this call, before anything runs.
    FileNotFoundError, CheckpointError
        If the model cannot be loaded.
    """
    if cancel is not None and not callable(cancel):
        raise TypeError(f"cancel must be None or a callable, got {type(cancel).__name__}")
    rgb = as_rgb_uint8(image, name="image")
    lab = as_labels(mask, name="mask", shape=rgb.shape[:2])
    table = label_table(lab)  # every label's bounds and area in one pass, linear in the pixels
    present = table.labels.tolist()
    check_label_count(len(present), lab.shape, force=request.force)
    ids = present if request.labels is None else list(request.labels)
    missing = sorted(set(ids) - set(present))
    if missing:
        raise ValueError(f"labels {missing} do not occur in mask (present: {present[:10]})")
    hint_values = check_hints(request.hints, shape=lab.shape)
    if not present:
        if hint_values is not None and (hint_values == OBJECT).any():
            owners(lab, hint_values, lambda v: (0, 0, 0, 0))  # refuses: object hints need an object
        warnings.warn(
            "mask is empty (no foreground pixels): nothing to refine; it is returned unchanged",
            UserWarning,
            stacklevel=3,
        )
        return _unchanged(mask, "instance" if request.mode == "auto" else request.mode)
    seed = resolve_seed(request.seed)
    refiner = as_refiner(request.model, request.device, cache=request.cache).with_options(**request.options)
    config = refiner.config
    chosen = choose_mode(table, ids, config, lab.shape) if request.mode == "auto" else request.mode
    if chosen == "hr" and min(lab.shape) < config.hr_patch:
        if request.mode == "hr":
            raise ValueError(f"mode 'hr' needs an image of at least {config.hr_patch} px per side, got {lab.shape}")
        chosen = "instance"
    if request.mode == "auto":
        log.info("mode='auto' chose %r", chosen)
    steps = tuple(timesteps(refiner.schedule, request.steps, last=1 if chosen == "hr" else 0))  # computed once
    rows = np.searchsorted(table.labels, ids)
    refined = len(ids) if chosen != "instance" else int(np.count_nonzero(table.area[rows] >= config.min_area))
    at_once = 1 if chosen == "hr" else min(refined, config.batch_size)  # objects stream through batch by batch
    check_memory(lab.shape, at_once, size=config.size, device=refiner.device, force=request.force)
    if chosen == "hr" and config.hr_patch % refiner.divisor:
        raise ValueError(f"hr_patch must be a multiple of {refiner.divisor} for this network, got {config.hr_patch}")
    run = PipelineRun(
        network=refiner.network,
        schedule=refiner.schedule,
        config=config,
        steps=steps,
        seed=seed,
        previews=request.previews,
        autocast=request.autocast and refiner.device.type == "cuda",
        cancel=cancel,
        order=request.order,
        device=refiner.device,
    )
    boxes = dict(zip(present, table.bounds.tolist()))
    hints = Hints.of(lab, hint_values, lambda v: box_from_bounds(tuple(boxes[int(v)]), config, lab.shape))
    return _records(rgb, lab, ids, run, chosen, caster(mask, present), hints, table)


def finish(records: Iterator[RefineStep]) -> RefineStep:
    """Run ``records`` to the end; returns the last (the result), keeping no other record."""
    last = None
    for record in records:
        last = record
    if last is None:  # pragma: no cover - every run yields at least one record
        raise RuntimeError("the run yielded no record")
    return last


def _records(rgb, lab, ids, run: PipelineRun, chosen: str, cast, hints, table) -> Iterator[RefineStep]:
    if chosen == "hr":
        image_t = torch.from_numpy(rgb).to(run.device).permute(2, 0, 1)[None].float()
        yield from run_hr(image_t, lab, ids, run, cast=cast, hints=hints)
    else:
        yield from run_instances(rgb, lab, ids, run, whole=chosen == "whole", cast=cast, hints=hints, table=table)
