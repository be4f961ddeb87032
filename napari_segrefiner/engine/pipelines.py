"""The three SegRefiner pipelines as generators of :class:`~.records.RefineStep` records.

* instance: every label in its own padded crop resized to the network size, refined batch
  by batch (:func:`~.batch.refine_batch`), pasted back bilinearly (LR-SegRefiner, COCO).
* whole: the whole frame resized to the network size (encoded once, seen once per label).
  A label may change only inside the box instance mode would crop for it, and keeps only
  its connected pieces (8-connected) that overlap its coarse mask. A label the whole frame
  is too coarse for (it vanishes at network resolution) gets its instance-mode result:
  whole mode never deletes an object that instance mode keeps.
* hr: a global pass on the nearest-downsampled frame (t = 5..1, encoded once for every
  object), then one t = 0 step on native-resolution patches around low-confidence pixels,
  merged by averaging (HR-SegRefiner), one object at a time.

Every record carries the objects of one network batch as soon as they are done; the last
holds the composed result. Inputs here are already validated: ``rgb`` is the (H, W, 3)
uint8 frame, ``image`` its (1, 3, H, W) float tensor on the target device, ``labels`` an
int64 (H, W) array.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .batch import PipelineRun, object_crop, refine_batch
from .cleanup import clean_labels, overlapping_pieces
from .compose import ObjectMap, fold
from ..models.config import RefineConfig
from ..annotate.hints import apply_hints, crop_hints
from ..models.imaging import normalize
from .patches import Box, grow_box, select_patches
from .records import ObjectResult, RefineStep
from ..io.masks import bounding_box, label_table
from ..diffusion.sampling import denoise, iter_denoise, two_parts
from ..diffusion.scheduler import stream
from ..annotate.scores import review_score

__all__ = ["Hints", "MODES", "box_from_bounds", "count_records", "instance_box", "run_hr", "run_instances"]

MODES = ("instance", "whole", "hr")


@dataclass(frozen=True)
class Hints:
    """Validated hints of a run: the 0/1/2 frame and the owner of every hint-1 pixel."""

    values: np.ndarray  # uint8 (H, W): 0 free, 1 object, 2 background
    owner: np.ndarray  # int64 (H, W): the label a hint-1 pixel belongs to, else 0

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Force ``frame`` (in place) to the hints; returns it."""
        return apply_hints(frame, self.values, self.owner)

    def crop(self, box: Box) -> Hints:
        """The hints over ``box``."""
        y0, y1, x0, x1 = box
        return Hints(self.values[y0:y1, x0:x1], self.owner[y0:y1, x0:x1])


def count_records(mode: str, objects: int, batch_size: int) -> int:
    """Records a run yields: one per network batch (HR: per object); at least 1."""
    if mode == "hr":
        return max(1, int(objects))
    if mode in ("instance", "whole"):
        return max(1, -(-int(objects) // int(batch_size)))
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def instance_box(m: np.ndarray, config: RefineConfig, shape: tuple[int, int]) -> Box:
    """The crop instance mode refines object mask ``m`` in (its padded box, grown for context)."""
    tight = bounding_box(m)
    if tight is None:
        raise ValueError("the object mask is empty: no box")
    return box_from_bounds(tight, config, shape)


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


def _ordered(ids: Sequence[int], first: Sequence[int]) -> list[int]:
    front = [v for v in dict.fromkeys(first) if v in set(ids)]
    return front + [v for v in ids if v not in set(front)]


def compose(labels: np.ndarray, results: Sequence[ObjectResult], *, whole: bool = False, clean: bool = True,
            hints: Hints | None = None) -> np.ndarray:
    """The refined labels frame from every object's answer (int64; the overlap rule, clean-up, hints).

    Objects are folded in label order (:func:`~.compose.fold`); whole mode then returns to
    the background any piece of an object that a neighbour cut off from its coarse mask.
    """
    ids = sorted(r.label for r in results)
    out = labels.copy()
    out[np.isin(out, np.asarray(ids, dtype=np.int64))] = 0
    best = np.zeros(labels.shape, dtype=np.float32)
    for r in sorted(results, key=lambda r: r.label):
        fold(out, best, (0, 0), r.answer.box, r.label, r.answer.dense(), labels)
    if whole:
        for r in results:
            ry0, ry1, rx0, rx1 = r.limit
            region = out[ry0:ry1, rx0:rx1]
            mine = region == r.label
            region[mine & ~overlapping_pieces(mine, labels[ry0:ry1, rx0:rx1] == r.label)] = 0
    if clean and ids:
        out = clean_labels(out, labels, ids)
    if hints is not None:
        hints.apply(out)
    return out


def _crops(rgb: np.ndarray, labels: np.ndarray, ids: Sequence[int], boxes: Sequence[Box], size: int, device):
    w = labels.shape[1]
    pairs = [object_crop(rgb[y0:y1, x0:x1], labels[y0:y1, x0:x1], lab, full_width=(x1 - x0) == w, size=size,
                         device=device) for lab, (y0, y1, x0, x1) in zip(ids, boxes)]
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


def _batches(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for lo in range(0, len(ids), size):
        yield list(ids[lo : lo + size])


def _record(n: int, total: int, mode: str, objs, done: int, count: int, run: PipelineRun) -> RefineStep:
    return RefineStep(n, total, mode, tuple(objs), done, count, tuple(run.steps), False)


def run_instances(rgb: np.ndarray, labels: np.ndarray, ids: Sequence[int], run: PipelineRun, *, whole: bool, cast,
                  hints: Hints | None = None) -> Iterator[RefineStep]:
    """Instance (or whole-frame) pipeline; ``cast`` turns a labels frame into the output dtype.

    Objects smaller than ``config.min_area`` are left as they are (instance mode). The
    hints are held at network resolution in every step and forced on the result.
    """
    cfg, size = run.config, run.config.size
    h, w = labels.shape
    device = run.device
    boxes = {}
    table = label_table(labels)  # every label's bounds and area in one pass: linear in the labels
    row = {v: k for k, v in enumerate(table.labels.tolist())}
    for lab in ids:
        k = row[int(lab)]
        if whole or int(table.area[k]) >= cfg.min_area:  # tiny objects are left as they are (official area_thr)
            boxes[int(lab)] = box_from_bounds(tuple(int(v) for v in table.bounds[k]), cfg, (h, w))
    keep = _ordered(sorted(boxes), run.order)
    mode = "whole" if whole else "instance"
    total = count_records(mode, len(keep), cfg.batch_size)
    if not keep:
        frame = labels.copy() if hints is None else hints.apply(labels.copy())
        yield RefineStep(0, 1, mode, (), 0, 0, tuple(run.steps), True, cast(frame), {})
        return
    shared = None
    if whole:
        frame_box = (0, h, 0, w)
        full = object_crop(rgb, labels, -1, full_width=True, size=size, device=device)[0]
        with torch.inference_mode():  # one frame for every label: encoded once
            shared = two_parts(run.network)[0](normalize(full))
    results: list[ObjectResult] = []
    for n, group in enumerate(_batches(keep, cfg.batch_size)):
        if whole:
            gboxes = [frame_box] * len(group)
            limits = [boxes[lab] for lab in group]
            coarse = torch.cat([object_crop(rgb, labels, lab, full_width=True, size=size, device=device)[1]
                                for lab in group])
            region = _regions(limits, (h, w), size, device)
            held = None if hints is None else crop_hints(hints.values, hints.owner, gboxes, group, size, device)
            objs = refine_batch(run, group, gboxes, full, coarse, [labels] * len(group), hints=held, limits=limits,
                                region=region, features=shared)
            objs = _whole_fallback(run, rgb, labels, objs, hints, device)
        else:
            gboxes = [boxes[lab] for lab in group]
            crops, coarse = _crops(rgb, labels, group, gboxes, size, device)
            held = None if hints is None else crop_hints(hints.values, hints.owner, gboxes, group, size, device)
            objs = refine_batch(run, group, gboxes, crops, coarse, [labels[y0:y1, x0:x1] for y0, y1, x0, x1 in gboxes],
                                hints=held)
        results.extend(objs)
        if n + 1 < total:
            yield _record(n, total, mode, objs, len(results), len(keep), run)
    frame = compose(labels, results, whole=whole, clean=cfg.clean, hints=hints)
    scores = {r.label: r.score for r in sorted(results, key=lambda r: r.label)}
    yield RefineStep(total - 1, total, mode, tuple(objs), len(results), len(keep), tuple(run.steps), True,
                     cast(frame), scores)


def _whole_fallback(run: PipelineRun, rgb, labels, objs: list[ObjectResult], hints, device) -> list[ObjectResult]:
    """Objects the whole frame lost (nothing left at network resolution) get their instance result."""
    lost = [r.label for r in objs if not r.answer.values.size]
    if not lost:
        return objs
    boxes = [r.limit for r in objs if r.label in lost]
    crops, coarse = _crops(rgb, labels, lost, boxes, run.config.size, device)
    held = None if hints is None else crop_hints(hints.values, hints.owner, boxes, lost, run.config.size, device)
    again = refine_batch(run, lost, boxes, crops, coarse, [labels[y0:y1, x0:x1] for y0, y1, x0, x1 in boxes],
                         hints=held)
    by_label = {r.label: r for r in again}
    return [by_label.get(r.label, r) for r in objs]


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
        run.network, normalize(imgs), masks, schedule=run.schedule, steps=[0], generator=generator,
        autocast=run.autocast, batch_size=run.config.batch_size, cancel=run.cancel, keep_bias=run.config.keep_bias,
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
    """High-resolution pipeline, one object at a time (global pass + local patches).

    The global pass sees the whole frame downsampled (nearest) to the network size; it is
    encoded once for every object. ``hints`` are held in the global steps (at the network
    size) and in the local patches (native).
    """
    size = run.config.size
    h, w = labels.shape
    lab_t = torch.from_numpy(labels).to(image.device)
    ids = [lab for lab in ids if int((lab_t == lab).sum()) > run.config.hr_min_pixels]  # others stay as they are
    ids = _ordered(ids, run.order)
    finish = cast if hints is None else (lambda f: cast(hints.apply(f)))
    steps = tuple(run.steps)
    if not ids:
        yield RefineStep(0, 1, "hr", (), 0, 0, steps + (0,), True, finish(labels.copy()), {})
        return
    small = normalize(F.interpolate(image, size=(size, size), mode="nearest"))
    with torch.inference_mode():  # one global input for every object: encoded once
        shared = two_parts(run.network)[0](small)
    out = labels.copy()
    scores: dict[int, float] = {}
    for n, lab in enumerate(ids):
        m = lab_t == lab
        coarse = (F.interpolate(m[None, None].float(), size=(size, size), mode="nearest") >= 0.5).float()
        gen = stream(run.seed, lab)
        held = native = None
        if hints is not None:
            held = crop_hints(hints.values, hints.owner, [(0, h, 0, w)], [lab], size, image.device)
            obj = torch.from_numpy(hints.owner == lab).to(image.device)
            bg = torch.from_numpy((hints.values == 2) | ((hints.owner != 0) & (hints.owner != lab))).to(image.device)
            native = (obj | bg, obj)
        states, last = [], None
        for step in iter_denoise(run.network, small, coarse, schedule=run.schedule, steps=list(steps), generator=gen,
                                 autocast=run.autocast, cancel=run.cancel, keep_bias=run.config.keep_bias, hints=held,
                                 features=shared):
            if run.previews:
                states.append(np.packbits((step.mask >= 0.5).cpu().numpy()[0, 0], axis=None))
            last = step
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
        frame = (0, h, 0, w)
        answer = ObjectMap.from_values(lab, frame, (out == lab).astype(np.float32))
        conf = last.confidence.cpu().numpy()[0, 0].astype(np.float16) if run.previews else None
        obj_result = ObjectResult(int(lab), answer, scores[int(lab)], frame, frame,
                                  np.stack(states) if run.previews else None, conf)
        done = n + 1 == len(ids)
        yield RefineStep(n, len(ids), "hr", (obj_result,), n + 1, len(ids), steps + (0,), done,
                         finish(out.copy()) if done else None, dict(scores) if done else None)
