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
from .hints import apply_hints, crop_hints
from .scores import review_score
from .cleanup import clean_labels, overlapping_pieces
from .compose import fold, object_values
from .config import RefineConfig
from .lazy_scan import scan_plane
from .scheduler import Schedule, stream, timesteps

__all__ = ["Hints", "PipelineRun", "RefineStep", "box_from_bounds", "count_steps", "instance_box", "run_instances",
           "run_hr"]

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
    uncertainty : dict of int to float or None
        On the final record, per refined label: its review score
        (:func:`~.scores.review_score`: expected error + changed share; higher = look at it first).
    """

    index: int
    total: int
    timestep: int
    stage: str
    mode: str
    mask: np.ndarray | None
    confidence: np.ndarray | None
    done: bool
    uncertainty: dict[int, float] | None = None


@dataclass(frozen=True)
class Hints:
    """Validated hints of a run: the 0/1/2 frame and the owner of every hint-1 pixel."""

    values: np.ndarray  # uint8 (H, W): 0 free, 1 object, 2 background
    owner: np.ndarray  # int64 (H, W): the label a hint-1 pixel belongs to, else 0

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Force ``frame`` (in place) to the hints; returns it."""
        return apply_hints(frame, self.values, self.owner)


@dataclass(frozen=True)
class PipelineRun:
    """Everything a pipeline needs besides the data (built once by the API)."""

    network: torch.nn.Module
    schedule: Schedule
    config: RefineConfig
    steps: int | None
    seed: int  # object ``lab`` draws from ``scheduler.stream(seed, lab)``
    previews: bool
    autocast: bool
    cancel: Callable[[], bool] | None = None  # asked between network batches (see sampling)


def instance_box(m: np.ndarray, config: RefineConfig, shape: tuple[int, int]) -> Box:
    """The crop instance mode refines object mask ``m`` in (its padded box, grown for context)."""
    return box_from_bounds(object_box(m, pad=0), config, shape)


def box_from_bounds(tight: Box, config: RefineConfig, shape: tuple[int, int]) -> Box:
    """:func:`instance_box` from the object's tight bounds ``(y0, y1, x0, x1)`` alone.

    The lazy path finds bounds chunk by chunk and never holds an object's mask.
    """
    y0, y1, x0, x1 = tight
    h, w = shape
    longest = max(y1 - y0, x1 - x0)
    min_side = min(config.context * longest, config.context_cap)
    pad = config.pad
    padded = (max(y0 - pad, 0), min(y1 + pad, h), max(x0 - pad, 0), min(x1 + pad, w))
    return grow_box(padded, min_side, shape)


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
        v = object_values(vals[k, 0], box, lab, coarse[y0:y1, x0:x1], None if changed is None else changed[k, 0])
        if limits is None:  # instance mode: the shared overlap rule (compose.fold)
            fold(out, best, (0, 0), box, lab, v, coarse)
        else:
            ry0, ry1, rx0, rx1 = limits[k]
            own = coarse[ry0:ry1, rx0:rx1] == lab
            v = v[ry0 - y0 : ry1 - y0, rx0 - x0 : rx1 - x0]
            fg = overlapping_pieces(v >= 0.5, own)
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
    image: torch.Tensor, labels: np.ndarray, ids: Sequence[int], run: PipelineRun, *, whole: bool, cast,
    hints: Hints | None = None,
) -> Iterator[RefineStep]:
    """Instance (or whole-frame) pipeline; ``cast`` turns a labels frame into the output dtype.

    In whole mode each label is refined from the whole frame but may change only inside
    the box instance mode would crop for it (padded by ``config.pad``, grown by
    ``config.context``), in 8-connected pieces that overlap its coarse mask. ``hints`` are
    held at network resolution in every step and forced on every frame.
    """
    size = run.config.size
    h, w = labels.shape
    boxes, keep, limits = [], [], []
    table = scan_plane(labels, (0, 0))  # every label's bounds and area in one pass: linear in the labels
    row = {v: k for k, v in enumerate(table.labels.tolist())}
    for lab in ids:
        k = row[int(lab)]
        if not whole and int(table.area[k]) < run.config.min_area:
            continue  # tiny objects are left as they are (official area_thr)
        own = box_from_bounds(tuple(int(v) for v in table.bounds[k]), run.config, (h, w))
        boxes.append((0, h, 0, w) if whole else own)
        limits.append(own)  # whole mode: where the label may change
        keep.append(int(lab))
    mode = "whole" if whole else "instance"
    steps = timesteps(run.schedule, run.steps)
    finish = (lambda f: cast(f)) if hints is None else (lambda f: cast(hints.apply(f)))
    if not keep:
        yield RefineStep(0, 1, -1, mode, mode, finish(labels.copy()), None, True, {})
        return
    total = count_steps(run.schedule, mode, run.steps)
    base = labels.copy()
    base[np.isin(base, keep)] = 0
    lab_t = torch.from_numpy(labels).to(image.device)
    crops = torch.cat([crop_resize(image, b, size) for b in boxes])
    coarse = torch.cat([(crop_resize((lab_t[y0:y1, x0:x1] == lab)[None, None], (0, y1 - y0, 0, x1 - x0), size) >= 0.5)
                        .float() for (y0, y1, x0, x1), lab in zip(boxes, keep)])  # each object's box only
    held = None if hints is None else crop_hints(hints.values, hints.owner, boxes, keep, size, image.device)
    loop = iter_denoise(
        run.network,
        normalize(crops),
        coarse,
        schedule=run.schedule,
        steps=steps,
        generator=[stream(run.seed, lab) for lab in keep],
        autocast=run.autocast,
        batch_size=run.config.batch_size,
        cancel=run.cancel, keep_bias=run.config.keep_bias,
        hints=held,
    )
    for step in loop:
        frame = conf = scores = None
        if run.previews or step.is_last:
            frame, conf = _compose(base, step.mask, boxes, keep, step.confidence if run.previews else None, labels,
                                   limits if whole else None, coarse if run.config.paste_changes_only else None)
            if step.is_last and run.config.clean:
                frame = clean_labels(frame, labels, keep)
            frame = finish(frame)
        if step.is_last:
            region = _regions(limits, (h, w), size, image.device) if whole else None
            unc = review_score(step.prob, coarse, region=region)
            scores = {lab: float(u) for lab, u in zip(keep, unc.tolist())}
        yield RefineStep(step.index, total, step.timestep, mode, mode, frame, conf, step.is_last, scores)


def _regions(limits: Sequence[Box], shape: tuple[int, int], size: int, device) -> torch.Tensor:
    """Whole mode: each label's own box at network resolution, as a bool (N, 1, S, S) map."""
    h, w = shape
    out = torch.zeros((len(limits), 1, size, size), dtype=torch.bool, device=device)
    for k, (y0, y1, x0, x1) in enumerate(limits):
        ry0, ry1 = int(y0 * size / h), max(int(np.ceil(y1 * size / h)), int(y0 * size / h) + 1)
        rx0, rx1 = int(x0 * size / w), max(int(np.ceil(x1 * size / w)), int(x0 * size / w) + 1)
        out[k, 0, ry0:ry1, rx0:rx1] = True
    return out


def _hr_local(image, m_global: torch.Tensor, fine_prob: torch.Tensor, run: PipelineRun, generator,
              held: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Refine native-resolution patches around uncertain pixels; returns the merged bool frame.

    ``held`` = (fixed, value) native (H, W) bool maps of this object's hints.
    """
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
    patch_hints = None
    if held is not None:
        patch_hints = tuple(torch.stack([m[y : y + patch, x : x + patch] for y, x in kept])[:, None] for m in held)
    soft = denoise(
        run.network,
        normalize(imgs),
        masks,
        schedule=run.schedule,
        steps=[0],
        generator=generator,
        autocast=run.autocast,
        batch_size=run.config.batch_size,
        cancel=run.cancel, keep_bias=run.config.keep_bias,
        hints=patch_hints,
    ).mask[:, 0]
    acc = torch.zeros((h, w), device=soft.device)
    cnt = torch.zeros((h, w), device=soft.device)
    for k, (y, x) in enumerate(kept):
        acc[y : y + patch, x : x + patch] += soft[k]
        cnt[y : y + patch, x : x + patch] += 1
    merged = acc / cnt.clamp(min=1) >= 0.5
    return torch.where(cnt > 0, merged, m_global)


def run_hr(image: torch.Tensor, labels: np.ndarray, ids: Sequence[int], run: PipelineRun, *, cast,
           hints: Hints | None = None) -> Iterator[RefineStep]:
    """High-resolution pipeline, one object at a time (global 256 pass + local patches).

    ``hints`` are held in the global steps (at 256 px) and in the local patches (native).
    """
    pending = None
    scores: dict[int, float] = {}
    finish = cast if hints is None else (lambda f: cast(hints.apply(f)))
    for record in _hr_steps(image, labels, ids, run, finish=finish, hints=hints, scores=scores):
        if pending is not None:
            yield pending
        pending = record
    if pending is None:  # every object was too small to refine
        pending = RefineStep(0, 1, -1, "local", "hr", finish(labels.copy()), None, False)
    yield replace(pending, done=True, uncertainty=scores)


def _hr_steps(image, labels, ids, run: PipelineRun, *, finish, hints: Hints | None, scores: dict) -> Iterator[RefineStep]:
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
        gen = stream(run.seed, lab)
        held = native = None
        if hints is not None:
            held = crop_hints(hints.values, hints.owner, [(0, h, 0, w)], [lab], size, image.device)
            obj = torch.from_numpy(hints.owner == lab).to(image.device)
            bg = torch.from_numpy((hints.values == 2) | ((hints.owner != 0) & (hints.owner != lab))).to(image.device)
            native = (obj | bg, obj)
        loop = iter_denoise(
            run.network, small, coarse, schedule=run.schedule, steps=steps, generator=gen,
            autocast=run.autocast, cancel=run.cancel, keep_bias=run.config.keep_bias, hints=held,
        )
        for step in loop:
            last = step
            frame = conf = None
            if run.previews:
                state = (F.interpolate(step.mask, size=(h, w), mode="nearest")[0, 0] >= 0.5).cpu().numpy()
                frame = out.copy()
                frame[(out == lab) & ~state] = 0
                frame[state & (out == 0)] = lab
                frame = finish(frame)
                conf = F.interpolate(step.confidence, size=(h, w), mode="bilinear", align_corners=False)
                conf = conf[0, 0].cpu().numpy()
            yield RefineStep(n * per + step.index, total, step.timestep, "global", "hr", frame, conf, False)
        scores[int(lab)] = float(review_score(last.prob, coarse)[0])
        m_global = F.interpolate(last.mask, size=(h, w), mode="nearest")[0, 0] >= 0.5
        if native is not None:
            m_global = torch.where(native[0], native[1], m_global)
        result = _hr_local(image, m_global, last.fine_prob[0, 0], run, gen, native).cpu().numpy()
        out[(out == lab) & ~result] = 0
        out[result & (out == 0)] = lab
        if run.config.clean:
            out = clean_labels(out, labels, [lab])
        if hints is not None:
            hints.apply(out)
        yield RefineStep(n * per + per - 1, total, 0, "local", "hr", finish(out.copy()), None, False)
