"""The one batch step: a network batch of object crops taken through the whole reverse process.

Both the in-memory pipelines (:mod:`.pipelines`) and the lazy path
(:mod:`.lazy_tasks`) refine objects here, so crops, coarse masks, normalisation, random
streams, the keep decision, hints, review scores and the paste-back are one code:

* :func:`object_crop` resamples one object's box (image and coarse mask) to the network
  input, from the box's own pixels (so any reader of the box gives the same bits);
* :func:`refine_batch` encodes the crops once, runs every reverse step (each object
  draws from its own stream, :func:`~.scheduler.stream`), holds the hints, scores each
  object and pastes its answer back onto its box as a compact :class:`~.compose.ObjectMap`.

Objects therefore stream through: memory grows with the batch and the largest object, not
with the number of objects. Pure torch/numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..annotate.scores import review_score
from ..diffusion.sampling import iter_denoise
from ..diffusion.scheduler import Schedule, stream
from ..models.config import RefineConfig
from ..models.imaging import normalize
from .cleanup import overlapping_pieces
from .compose import ObjectMap, object_values
from .patches import crop_resize
from .records import ObjectResult

__all__ = ["CPU_NETWORK_BATCH", "PipelineRun", "network_batch", "object_crop", "refine_batch"]

Box = tuple[int, int, int, int]

# Crops per network evaluation on a CPU. A batch of objects (``RefineConfig.batch_size``: the
# unit objects stream, are recorded and are planned in) is evaluated this many crops at a
# time: on a CPU larger evaluations are not faster per object, but each crop holds about
# 35 MB of activations at 256 px with the shipped network (32 at once: 1.1 GB, 8: 0.45 GB).
CPU_NETWORK_BATCH = 8


def network_batch(config: RefineConfig, device) -> int:
    """Crops per network evaluation: ``config.batch_size``, at most :data:`CPU_NETWORK_BATCH` on a CPU."""
    if torch.device(device).type == "cpu":
        return min(config.batch_size, CPU_NETWORK_BATCH)
    return config.batch_size


@dataclass(frozen=True)
class PipelineRun:
    """What the engine needs besides the data, resolved once per run.

    Attributes
    ----------
    network : torch.nn.Module
        ``encode(image)`` / ``denoise(mask, t, features, image)`` (or a plain ``model(x, t)``).
    schedule : Schedule
    config : RefineConfig
    steps : tuple of int
        The reverse timesteps (:func:`~.scheduler.timesteps`), computed once.
    seed : int
        Object ``lab`` draws from ``scheduler.stream(seed, lab)``.
    previews : bool
        Keep every object's state after each step (:class:`~.records.ObjectResult`).
    autocast : bool
        bfloat16 autocast (CUDA only).
    cancel : callable, optional
        Asked before every network batch.
    order : tuple of int
        Labels refined first (e.g. the ones an annotator looks at); the others follow in
        label order. Objects are composed in label order, so only the network batches
        change with it (and the bits only where batch composition changes them).
    device : torch.device
        Where the network and the crops live.

    Notes
    -----
    A batch of objects is evaluated :func:`network_batch` crops at a time; every object
    draws from its own stream, so results do not depend on how a batch is split (checked
    bit for bit on the CPU for the shipped network), and the in-memory and lazy paths split
    it alike.
    """

    network: torch.nn.Module
    schedule: Schedule
    config: RefineConfig
    steps: tuple[int, ...]
    seed: int
    previews: bool = False
    autocast: bool = False
    cancel: Callable[[], bool] | None = None
    order: tuple[int, ...] = ()
    device: torch.device = torch.device("cpu")


def image_tensor(rgb: np.ndarray, full_width: bool, device) -> torch.Tensor:
    """A box of an 8-bit RGB frame as the (1, 3, h, w) float tensor every crop starts from.

    A box narrower than the frame is copied with one spare column, so that all boxes have
    one memory layout whatever array they were read from (the resampling kernels then take
    the same path and the bits match between readers).
    """
    h, w, _ = rgb.shape
    if full_width:
        buf = np.ascontiguousarray(rgb)
    else:
        buf = np.zeros((h, w + 1, 3), dtype=np.uint8)
        buf[:, :w] = rgb
    return torch.from_numpy(buf).to(device).permute(2, 0, 1)[None].float()[:, :, :, :w]


def object_crop(
    rgb: np.ndarray, labels: np.ndarray, label: int, *, full_width: bool, size: int, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """One object's network input: its box of the image and its coarse mask, at ``size``.

    Parameters
    ----------
    rgb : ndarray of shape (h, w, 3), uint8
        The image over the object's box.
    labels : ndarray of shape (h, w)
        The coarse labels over the same box.
    label : int
    full_width : bool
        Whether the box spans the frame's whole width (see :func:`image_tensor`).
    size : int
        Network input side.

    Returns
    -------
    crop : Tensor of shape (1, 3, size, size)
        RGB on 0-255 (not normalised).
    coarse : Tensor of shape (1, 1, size, size)
        The coarse mask in {0, 1}.
    """
    h, w = labels.shape
    crop = crop_resize(image_tensor(rgb, full_width, device), (0, h, 0, w), size)
    lab = torch.from_numpy(np.ascontiguousarray(labels)).to(device)
    coarse = (crop_resize((lab == label)[None, None], (0, h, 0, w), size) >= 0.5).float()
    return crop, coarse


def _limited(v: np.ndarray, box: Box, limit: Box, label: int, native: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whole mode: ``v`` cut to the object's ``limit``, kept only in pieces that overlap its coarse mask."""
    y0, _, x0, _ = box
    ly0, ly1, lx0, lx1 = limit
    v = v[ly0 - y0 : ly1 - y0, lx0 - x0 : lx1 - x0]
    own = native[ly0 - y0 : ly1 - y0, lx0 - x0 : lx1 - x0] == label
    return np.where(overlapping_pieces(v >= 0.5, own), v, 0.0).astype(np.float32), own


def refine_batch(
    run: PipelineRun,
    labels: Sequence[int],
    boxes: Sequence[Box],
    crops: torch.Tensor,
    coarse: torch.Tensor,
    native: Sequence[np.ndarray],
    *,
    hints: tuple[torch.Tensor, torch.Tensor] | None = None,
    limits: Sequence[Box] | None = None,
    region: torch.Tensor | None = None,
    features: tuple[torch.Tensor, ...] | None = None,
) -> list[ObjectResult]:
    """Refine a batch of objects through every reverse step; one :class:`ObjectResult` each.

    Parameters
    ----------
    run : PipelineRun
    labels : sequence of int
        The objects, one per crop.
    boxes : sequence of tuple
        Each crop's box in the frame.
    crops : Tensor of shape (N, 3, S, S) or (1, 3, S, S)
        RGB on 0-255 (one shared crop: the whole mode's frame).
    coarse : Tensor of shape (N, 1, S, S)
        Coarse masks in {0, 1}.
    native : sequence of ndarray
        The coarse labels over each box (native resolution).
    hints : (Tensor, Tensor), optional
        ``(fixed, value)`` maps at network resolution (:func:`~.hints.crop_hints`).
    limits : sequence of tuple, optional
        Whole mode: where each object may change; its answer is cut to its limit and kept
        only in pieces that overlap its coarse mask.
    region : Tensor of shape (N, 1, S, S), bool, optional
        Whole mode: the pixels its review score counts.
    features : tuple of Tensor, optional
        The encoder's features of ``crops`` when the caller computed them.
    """
    cfg = run.config
    states = []
    last = None
    loop = iter_denoise(
        run.network,
        normalize(crops),
        coarse,
        schedule=run.schedule,
        steps=list(run.steps),
        generator=[stream(run.seed, lab) for lab in labels],
        autocast=run.autocast,
        batch_size=network_batch(cfg, run.device),
        cancel=run.cancel,
        keep_bias=cfg.keep_bias,
        hints=hints,
        features=features,
    )
    for step in loop:
        if run.previews:
            states.append((step.mask >= 0.5).cpu().numpy()[:, 0])
        last = step
    scores = review_score(last.prob, coarse, region=region).tolist()
    vals = last.mask.detach().float().cpu()
    changed = None
    if cfg.paste_changes_only:
        changed = ((vals >= 0.5) != (coarse.detach().cpu() >= 0.5)).float()
    conf = last.confidence.detach().cpu().numpy()[:, 0].astype(np.float16) if run.previews else None
    out = []
    for k, (lab, box) in enumerate(zip(labels, boxes)):
        v = object_values(vals[k, 0], box, lab, native[k], None if changed is None else changed[k, 0])
        limit = box
        if limits is not None:
            limit = limits[k]
            v, _ = _limited(v, box, limit, lab, native[k])
        packed = None if not run.previews else np.stack([np.packbits(s[k], axis=None) for s in states])
        out.append(
            ObjectResult(
                int(lab),
                ObjectMap.from_values(lab, limit, v),
                float(scores[k]),
                tuple(box),
                tuple(limit),
                packed,
                None if conf is None else conf[k],
            )
        )
    return out
