"""Public numpy-in / numpy-out refinement API: :func:`refine` and :func:`iter_refine`.

Both describe the run as a :class:`~napari_segrefiner.engine.request.RefineRequest` (the
description every front end shares, validated once) and start it with
:func:`~napari_segrefiner.engine.run.start`, which loads the model (unless it is handed a
:class:`~napari_segrefiner.models.refiner.Refiner`), checks the arrays and picks the
pipeline before anything runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from .engine.records import RefineStep
from .engine.request import DEFAULT_SEED, request_of
from .engine.run import finish, start
from .models.refiner import Refiner

__all__ = ["RefineStep", "iter_refine", "refine"]

Model = Refiner | torch.nn.Module | str | os.PathLike | None


def iter_refine(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    model: Model = None,
    mode: str = "auto",
    steps: int | None = None,
    device: str | torch.device | None = None,
    seed: int | None = DEFAULT_SEED,
    labels: Iterable[int] | None = None,
    hints: np.ndarray | None = None,
    previews: bool = False,
    autocast: bool = False,
    cancel: Callable[[], bool] | None = None,
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
        Coarse binary mask (bool, 0/1, or one non-zero value) or labels (0 = background);
        floats must hold only 0 and 1 (:mod:`napari_segrefiner.io.masks`). An empty mask
        gives one record holding it unchanged, with a ``UserWarning``.
    model : None, str, path-like, Refiner or torch.nn.Module
        A :class:`~napari_segrefiner.models.refiner.Refiner` (from
        :func:`~napari_segrefiner.models.refiner.load_refiner`: load once, refine many
        times); or what ``load_refiner`` takes: ``None`` = the shipped default model, a
        registered name, a checkpoint file, a network (``model(x, t) -> logits``, with the
        official options).
    mode : {"auto", "instance", "whole", "hr"}
        Pipeline. ``"auto"`` picks one (:func:`~napari_segrefiner.engine.run.choose_mode`)
        and logs which; every record carries it in ``mode``.
    steps : int, optional
        Number of reverse steps (default: all timesteps, 6; the HR global stage uses 5).
    device : str or torch.device, optional
        Where to load the model: ``"auto"`` (CUDA, MPS, then CPU; the default), ``"cpu"``,
        ``"cuda"``... With a Refiner, None keeps its device.
    seed : int or None
        Seed of the per-pixel draws (made on the CPU, so a seed gives the same draws on
        every device and batch size); default 0, as every front end (the same call gives
        the same result); ``None`` draws a fresh one.
    labels : iterable of int, optional
        Refine only these label values (others are kept exactly); default all.
    hints : ndarray of shape (H, W), optional
        Annotator hints, integers: 0 = free, 1 = "object here", 2 = "background here".
        A 1 belongs to the object whose coarse mask holds it, else to the nearest object
        if it lies in that object's crop (else it is refused). Hinted pixels are held in
        every step and in the result, for every pipeline and every object (also those not
        in ``labels``); see :mod:`napari_segrefiner.annotate.hints`.
    previews : bool
        Keep every object's state after each reverse step and its last confidence map
        (:class:`~napari_segrefiner.engine.records.ObjectResult`;
        :func:`~napari_segrefiner.engine.records.replay` composes a step's frame).
    autocast : bool
        bfloat16 autocast for the network (CUDA only; ignored elsewhere).
    cancel : callable, optional
        Asked before every network batch; when it returns True the generator raises
        :class:`~napari_segrefiner.diffusion.sampling.RefineCancelled` (a GUI's Cancel then
        takes effect within one batch).
    order : iterable of int
        Labels to refine first (those an annotator looks at); the rest follow in label
        order. The result is composed in label order whatever the order.
    force : bool
        Refine a mask that fails the checks of :mod:`napari_segrefiner.io.plausible`
        anyway: more labels than ``max(1024, H * W / 16)`` (a photo passed as the mask, or
        image and mask swapped), or a run whose estimated memory exceeds what is available.
    **options
        Overrides of the refiner's :class:`~napari_segrefiner.models.config.RefineConfig`:
        ``pad``, ``min_area``, ``context``, ``context_cap``, ``batch_size``, ``size``,
        ``hr_patch``, ``hr_thr_ratio``, ``hr_iou``, ``hr_min_pixels``, ``auto_hr_side``,
        ``keep_bias``, ``paste_changes_only``, ``clean``.

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

    Warns
    -----
    UserWarning
        For an empty mask (returned unchanged; no model is loaded).
    """
    return start(image, mask, request_of(locals()), cancel=cancel)  # every parameter but the arrays and cancel


def refine(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    model: Model = None,
    mode: str = "auto",
    steps: int | None = None,
    device: str | torch.device | None = None,
    seed: int | None = DEFAULT_SEED,
    labels: Iterable[int] | None = None,
    hints: np.ndarray | None = None,
    autocast: bool = False,
    cancel: Callable[[], bool] | None = None,
    order: Iterable[int] = (),
    force: bool = False,
    **options: Any,
) -> np.ndarray:
    """Refine a coarse mask or labels array.

    A binary mask in gives a binary mask out (the same dtype and value); a labels array in
    gives the same labels, refined, out. Objects stream through the network batch by batch
    and only the last record is kept, so memory grows with the batch and the largest
    object, not with the number of objects.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        Gray, RGB or RGBA image of any numeric dtype.
    mask : ndarray of shape (H, W)
        Coarse binary mask or labels (0 = background); an empty mask is returned unchanged
        with a ``UserWarning``.
    model : None, str, path-like, Refiner or torch.nn.Module
        The model (default: the shipped one); see :func:`iter_refine`.
    mode : {"auto", "instance", "whole", "hr"}
        The pipeline; ``"auto"`` picks one.
    steps : int, optional
        Reverse steps (default: every timestep of the model).
    device : str or torch.device, optional
        Where to load the model (default ``"auto"``; a Refiner keeps its device).
    seed : int or None
        Seed of the per-pixel draws (default 0: the same call gives the same result;
        ``refine_lazy`` with the same seed gives the same bits).
    labels : iterable of int, optional
        Refine only these labels; the others are returned exactly as given.
    hints : ndarray of shape (H, W), optional
        Annotator hints (0 free, 1 object, 2 background), held in every step and in the result.
    autocast : bool
        bfloat16 autocast on CUDA.
    cancel : callable, optional
        Asked before every network batch; True stops the run
        (:class:`~napari_segrefiner.diffusion.sampling.RefineCancelled`).
    order : iterable of int
        Labels refined first (the result is composed in label order).
    force : bool
        Refine an implausible mask or run anyway (:mod:`napari_segrefiner.io.plausible`).
    **options
        :class:`~napari_segrefiner.models.config.RefineConfig` overrides (``batch_size``,
        ``min_area``, ``clean``, ...).

    Returns
    -------
    ndarray
        ``mask``'s shape and dtype.

    Raises
    ------
    ValueError, TypeError
        For invalid inputs, named in the message, before anything runs.
    FileNotFoundError, CheckpointError
        If the model cannot be loaded.

    Warns
    -----
    UserWarning
        For an empty mask.

    See Also
    --------
    iter_refine : the same run, record by record (progress, previews, cancel).
    napari_segrefiner.lazy.refine.refine_lazy : the same result for arrays that do not fit in memory.
    """
    records = start(image, mask, request_of(locals()), cancel=cancel)  # iter_refine's, but for previews
    return finish(records).mask  # only the last record is kept: the others' objects are folded into it
