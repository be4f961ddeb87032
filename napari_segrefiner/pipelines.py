"""The three SegRefiner pipelines as generators over full-frame step records.

* instance: every label in its own padded crop resized to the network size, all instances
  batched and stepped together, pasted back bilinearly (LR-SegRefiner, COCO).
* whole: the whole frame resized to the network size (one "crop" = the image, seen once
  per label). The network sees the whole frame, but a label may change only inside the box
  instance mode would crop for it, and keeps only its connected pieces (8-connected) that
  overlap its coarse mask: one piece per coarse piece, not specks all over the frame.
* hr: a global pass on the nearest-downsampled frame (t = 5..1), then one t = 0 step on
  native-resolution patches around low-confidence pixels, merged by averaging (HR-SegRefiner).

Inputs here are already validated: ``image`` is a (1, 3, H, W) float tensor on the 0-255
scale on the target device, ``labels`` an int64 (H, W) array.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
import numpy as np
import torch
import torch.nn.functional as F

from .imaging import normalize
from .patches import Box, crop_resize, grow_box, object_box, paste, select_patches
from .sampling import denoise, iter_denoise
from .cleanup import clean_labels, overlapping_pieces
from .config import RefineConfig
from .scheduler import Schedule, timesteps

__all__ = ["PipelineRun", "RefineStep", "count_steps", "run_instances", "run_hr"]

MODES = ("instance", "whole", "hr")


def count_steps(schedule: Schedule, mode: str, steps: int | None = None, *, objects: int = 1) -> int:
    """Number of records a run yields: the one place that knows it.

    Parameters
    ----------
    schedule : Schedule
        The refiner's schedule.
    mode : {"instance", "whole", "hr"}
        The pipeline that runs (after ``"auto"`` was resolved).
    steps : int, optional
        Reverse steps asked for (default all).
    objects : int
        Objects the HR pipeline refines (one after the other; each takes its global steps
        plus one local step). Ignored by the other pipelines, which step all objects at once.

    Returns
    -------
    int
        At least 1 (a run with nothing to refine yields one final record).
    """
    if mode == "hr":
        return max(1, (len(timesteps(schedule, steps, last=1)) + 1) * int(objects))
    if mode in ("instance", "whole"):
        return len(timesteps(schedule, steps))
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


@dataclass(frozen=True)
class RefineStep:
    """One step of a refinement, on the full frame.

    Attributes
    ----------
    index : int
        0-based step number (over all stages).
    total : int
        Number of steps of this run.
    timestep : int
        Diffusion timestep the network was evaluated at.
    stage : str
        ``"instance"``, ``"whole"``, ``"global"`` or ``"local"``.
    mode : str
        The pipeline that runs (``"instance"``, ``"whole"`` or ``"hr"``).
    mask : ndarray of shape (H, W) or None
        The current diffusion state pasted into the frame, with the input's dtype; on the
        final record the refined result. None on intermediate records when previews are off.
    confidence : ndarray of shape (H, W) or None
        Network confidence ``2|sigmoid - 0.5|`` of this step (1 outside refined regions).
    done : bool
        True on the final record.
    """

    index: int
    total: int
    timestep: int
    stage: str
    mode: str
    mask: np.ndarray | None
    confidence: np.ndarray | None
    done: bool


@dataclass(frozen=True)
class PipelineRun:
    """Everything a pipeline needs besides the data (built once by the API)."""

    network: torch.nn.Module
    schedule: Schedule
    config: RefineConfig
    steps: int | None
    generator: torch.Generator
    previews: bool
    autocast: bool
    cancel: Callable[[], bool] | None = None  # asked between network batches (see sampling)


def _instance_box(m: np.ndarray, config: RefineConfig, shape: tuple[int, int]) -> Box:
    """The crop instance mode refines an object in (its padded box, grown for context)."""
    tight = object_box(m, pad=0)
    longest = max(tight[1] - tight[0], tight[3] - tight[2])
    min_side = min(config.context * longest, config.context_cap)
    return grow_box(object_box(m, pad=config.pad), min_side, shape)


def _compose(base: np.ndarray, values: torch.Tensor, boxes: Sequence[Box], ids: Sequence[int], conf: torch.Tensor | None,
             coarse: np.ndarray, limits: Sequence[Box] | None = None, small_coarse: torch.Tensor | None = None):
    """Paste (N, 1, S, S) maps into a copy of ``base``.

    Where refined objects overlap, a pixel goes to the object whose coarse mask held it
    (priority +0.5), else to the more confident one; per-pixel competition between two
    confident objects would otherwise fragment their shared border.

    With ``limits`` (whole mode, where every box is the frame) object ``k`` may only take
    pixels inside ``limits[k]``, in pieces that overlap its coarse mask, and after the
    competition each object keeps only such pieces.

    With ``small_coarse`` (the coarse masks at network resolution; ``paste_changes_only``)
    a native pixel takes the network's answer only near a pixel whose state changed at
    network resolution, and keeps its native coarse value elsewhere: resizing a crop to
    the network and back then never degrades what the network kept.
    """
    out = base.copy()
    best = np.zeros(base.shape, dtype=np.float32)
    conf_frame = None if conf is None else np.ones(base.shape, dtype=np.float32)
    vals = values.detach().float().cpu()
    confs = None if conf is None else conf.detach().float().cpu()
    changed = None if small_coarse is None else ((vals >= 0.5) != (small_coarse.detach().cpu() >= 0.5)).float()
    for k, (box, lab) in enumerate(zip(boxes, ids)):
        y0, y1, x0, x1 = box
        v = paste(vals[k, 0], box).numpy()
        if changed is not None:  # away from network-resolution changes, the native coarse mask stands
            near = paste(changed[k, 0], box).numpy() > 0
            v = np.where(near, v, (coarse[y0:y1, x0:x1] == lab).astype(np.float32))
        fg = v >= 0.5
        ry0, ry1, rx0, rx1 = box if limits is None else limits[k]
        own = coarse[ry0:ry1, rx0:rx1] == lab
        if limits is not None:
            v = v[ry0 - y0 : ry1 - y0, rx0 - x0 : rx1 - x0]
            fg = overlapping_pieces(fg[ry0 - y0 : ry1 - y0, rx0 - x0 : rx1 - x0], own)
        priority = v + 0.5 * own
        region, region_best = out[ry0:ry1, rx0:rx1], best[ry0:ry1, rx0:rx1]
        win = fg & (priority > region_best) & ((region == 0) | (region_best > 0))
        region[win] = lab
        region_best[win] = priority[win]
        if conf_frame is not None:
            c = paste(confs[k, 0], box).numpy()
            np.minimum(conf_frame[y0:y1, x0:x1], c, out=conf_frame[y0:y1, x0:x1])
    if limits is not None:  # a neighbour may have cut a piece off: it goes back to background
        for (ry0, ry1, rx0, rx1), lab in zip(limits, ids):
            region = out[ry0:ry1, rx0:rx1]
            mine = region == lab
            region[mine & ~overlapping_pieces(mine, coarse[ry0:ry1, rx0:rx1] == lab)] = 0
    return out, conf_frame


def run_instances(
    image: torch.Tensor, labels: np.ndarray, ids: Sequence[int], run: PipelineRun, *, whole: bool, cast
) -> Iterator[RefineStep]:
    """Instance (or whole-frame) pipeline; ``cast`` turns a labels frame into the output dtype.

    In whole mode each label is refined from the whole frame but may change only inside
    the box instance mode would crop for it (padded by ``config.pad``, grown by
    ``config.context``), in 8-connected pieces that overlap its coarse mask.
    """
    size = run.config.size
    h, w = labels.shape
    boxes, keep, limits = [], [], []
    for lab in ids:
        m = labels == lab
        if not whole and int(m.sum()) < run.config.min_area:
            continue  # tiny objects are left as they are (official area_thr)
        own = _instance_box(m, run.config, (h, w))
        boxes.append((0, h, 0, w) if whole else own)
        limits.append(own)  # whole mode: where the label may change
        keep.append(int(lab))
    mode = "whole" if whole else "instance"
    steps = timesteps(run.schedule, run.steps)
    if not keep:
        yield RefineStep(0, 1, -1, mode, mode, cast(labels), None, True)
        return
    total = count_steps(run.schedule, mode, run.steps)
    base = labels.copy()
    base[np.isin(base, keep)] = 0
    lab_t = torch.from_numpy(labels).to(image.device)
    crops = torch.cat([crop_resize(image, b, size) for b in boxes])
    coarse = torch.cat([(crop_resize((lab_t == lab)[None, None], b, size) >= 0.5).float() for b, lab in zip(boxes, keep)])
    loop = iter_denoise(
        run.network,
        normalize(crops),
        coarse,
        schedule=run.schedule,
        steps=steps,
        generator=run.generator,
        autocast=run.autocast,
        batch_size=run.config.batch_size,
        cancel=run.cancel, keep_bias=run.config.keep_bias,
    )
    for step in loop:
        frame = conf = None
        if run.previews or step.is_last:
            frame, conf = _compose(base, step.mask, boxes, keep, step.confidence if run.previews else None, labels,
                                   limits if whole else None, coarse if run.config.paste_changes_only else None)
            if step.is_last and run.config.clean:
                frame = clean_labels(frame, labels, keep)
            frame = cast(frame)
        yield RefineStep(step.index, total, step.timestep, mode, mode, frame, conf, step.is_last)


def _hr_local(image, m_global: torch.Tensor, fine_prob: torch.Tensor, run: PipelineRun) -> torch.Tensor:
    """Refine native-resolution patches around uncertain pixels; returns the merged bool frame."""
    patch = run.config.hr_patch
    h, w = m_global.shape
    corners = select_patches(
        fine_prob.cpu().numpy(), (h, w), patch=patch, thr_ratio=run.config.hr_thr_ratio, iou_thr=run.config.hr_iou
    )
    kept = []
    for y0, x0 in corners:
        piece = m_global[y0 : y0 + patch, x0 : x0 + patch]
        if bool(piece.any()) and not bool(piece.all()):
            kept.append((int(y0), int(x0)))
    if not kept:
        return m_global
    imgs = torch.cat([image[:, :, y : y + patch, x : x + patch] for y, x in kept])
    masks = torch.stack([m_global[y : y + patch, x : x + patch] for y, x in kept])[:, None].float()
    soft = denoise(
        run.network,
        normalize(imgs),
        masks,
        schedule=run.schedule,
        steps=[0],
        generator=run.generator,
        autocast=run.autocast,
        batch_size=run.config.batch_size,
        cancel=run.cancel, keep_bias=run.config.keep_bias,
    ).mask[:, 0]
    acc = torch.zeros((h, w), device=soft.device)
    cnt = torch.zeros((h, w), device=soft.device)
    for k, (y, x) in enumerate(kept):
        acc[y : y + patch, x : x + patch] += soft[k]
        cnt[y : y + patch, x : x + patch] += 1
    merged = acc / cnt.clamp(min=1) >= 0.5
    return torch.where(cnt > 0, merged, m_global)


def run_hr(image: torch.Tensor, labels: np.ndarray, ids: Sequence[int], run: PipelineRun, *, cast) -> Iterator[RefineStep]:
    """High-resolution pipeline, one object at a time (global 256 pass + local patches)."""
    pending = None
    for record in _hr_steps(image, labels, ids, run, cast=cast):
        if pending is not None:
            yield pending
        pending = record
    if pending is None:  # every object was too small to refine
        pending = RefineStep(0, 1, -1, "local", "hr", cast(labels), None, False)
    yield replace(pending, done=True)


def _hr_steps(image, labels, ids, run: PipelineRun, *, cast) -> Iterator[RefineStep]:
    size = run.config.size
    h, w = labels.shape
    steps = timesteps(run.schedule, run.steps, last=1)
    per = len(steps) + 1
    lab_t = torch.from_numpy(labels).to(image.device)
    ids = [lab for lab in ids if int((lab_t == lab).sum()) > run.config.hr_min_pixels]  # others stay as they are
    total = count_steps(run.schedule, "hr", run.steps, objects=len(ids))
    out = labels.copy()
    small = normalize(F.interpolate(image, size=(size, size), mode="nearest"))
    for n, lab in enumerate(ids):
        m = lab_t == lab
        coarse = (F.interpolate(m[None, None].float(), size=(size, size), mode="nearest") >= 0.5).float()
        last = None
        loop = iter_denoise(
            run.network, small, coarse, schedule=run.schedule, steps=steps, generator=run.generator,
            autocast=run.autocast, cancel=run.cancel, keep_bias=run.config.keep_bias,
        )
        for step in loop:
            last = step
            frame = conf = None
            if run.previews:
                state = (F.interpolate(step.mask, size=(h, w), mode="nearest")[0, 0] >= 0.5).cpu().numpy()
                frame = out.copy()
                frame[(out == lab) & ~state] = 0
                frame[state & (out == 0)] = lab
                frame = cast(frame)
                conf = F.interpolate(step.confidence, size=(h, w), mode="bilinear", align_corners=False)
                conf = conf[0, 0].cpu().numpy()
            yield RefineStep(n * per + step.index, total, step.timestep, "global", "hr", frame, conf, False)
        m_global = F.interpolate(last.mask, size=(h, w), mode="nearest")[0, 0] >= 0.5
        result = _hr_local(image, m_global, last.fine_prob[0, 0], run).cpu().numpy()
        out[(out == lab) & ~result] = 0
        out[result & (out == 0)] = lab
        if run.config.clean:
            out = clean_labels(out, labels, [lab])
        yield RefineStep(n * per + per - 1, total, 0, "local", "hr", cast(out), None, False)
