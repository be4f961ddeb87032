"""The instance and whole-frame pipelines as generators of :class:`~.records.RefineStep` records.

* instance: every label in its own padded crop resized to the network size, refined batch
  by batch (:func:`~.batch.refine_batch`), pasted back bilinearly (LR-SegRefiner, COCO).
* whole: the whole frame resized to the network size (encoded once, seen once per label).
  A label may change only inside the box instance mode would crop for it, and keeps only
  its connected pieces (8-connected) that overlap its coarse mask. A label the whole frame
  is too coarse for (it vanishes at network resolution) gets its instance-mode result:
  whole mode never deletes an object that instance mode keeps.

The HR pipeline is :mod:`.hr`. Every record carries the objects of one network batch as
soon as they are done; the last holds the composed result. Inputs here are already
validated (:func:`~.run.start`): ``rgb`` is the (H, W, 3) uint8 frame, ``labels`` an int64
(H, W) array and ``table`` its :class:`~napari_segrefiner.io.masks.ObjectTable`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..annotate.hints import Hints
from ..diffusion.sampling import two_parts
from ..io.masks import Box, ObjectTable, bounding_box, label_table
from ..models.config import RefineConfig
from ..models.imaging import normalize
from .batch import PipelineRun, object_crop, refine_batch
from .cleanup import clean_labels, overlapping_pieces
from .compose import fold
from .patches import grow_box
from .records import ObjectResult, RefineStep, count_records

__all__ = ["box_from_bounds", "compose", "instance_box", "ordered", "run_instances"]


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


def ordered(ids: Sequence[int], first: Sequence[int]) -> list[int]:
    """``ids`` with the labels of ``first`` that occur in it moved to the front (in ``first``'s order)."""
    front = [v for v in dict.fromkeys(first) if v in set(ids)]
    return front + [v for v in ids if v not in set(front)]


def compose(
    labels: np.ndarray,
    results: Sequence[ObjectResult],
    *,
    whole: bool = False,
    clean: bool = True,
    hints: Hints | None = None,
) -> np.ndarray:
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
    pairs = [
        object_crop(rgb[y0:y1, x0:x1], labels[y0:y1, x0:x1], lab, full_width=(x1 - x0) == w, size=size, device=device)
        for lab, (y0, y1, x0, x1) in zip(ids, boxes)
    ]
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


def _batches(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for lo in range(0, len(ids), size):
        yield list(ids[lo : lo + size])


def _record(n: int, total: int, mode: str, objs, done: int, count: int, run: PipelineRun) -> RefineStep:
    return RefineStep(n, total, mode, tuple(objs), done, count, tuple(run.steps), False)


def run_instances(
    rgb: np.ndarray,
    labels: np.ndarray,
    ids: Sequence[int],
    run: PipelineRun,
    *,
    whole: bool,
    cast,
    hints: Hints | None = None,
    table: ObjectTable | None = None,
) -> Iterator[RefineStep]:
    """Instance (or whole-frame) pipeline; ``cast`` turns a labels frame into the output dtype.

    Objects smaller than ``config.min_area`` are left as they are (instance mode). The
    hints are held at network resolution in every step and forced on the result.
    ``table``: every label's bounds and area (computed here when not given).
    """
    cfg, size = run.config, run.config.size
    h, w = labels.shape
    device = run.device
    boxes = {}
    if table is None:
        table = label_table(labels)  # every label's bounds and area in one pass: linear in the labels
    row = {v: k for k, v in enumerate(table.labels.tolist())}
    for lab in ids:
        k = row[int(lab)]
        if whole or int(table.area[k]) >= cfg.min_area:  # tiny objects are left as they are (official area_thr)
            boxes[int(lab)] = box_from_bounds(tuple(int(v) for v in table.bounds[k]), cfg, (h, w))
    keep = ordered(sorted(boxes), run.order)
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
            coarse = torch.cat(
                [object_crop(rgb, labels, lab, full_width=True, size=size, device=device)[1] for lab in group]
            )
            region = _regions(limits, (h, w), size, device)
            held = None if hints is None else hints.maps(gboxes, group, size, device)
            objs = refine_batch(
                run,
                group,
                gboxes,
                full,
                coarse,
                [labels] * len(group),
                hints=held,
                limits=limits,
                region=region,
                features=shared,
            )
            objs = _whole_fallback(run, rgb, labels, objs, hints, device)
        else:
            gboxes = [boxes[lab] for lab in group]
            crops, coarse = _crops(rgb, labels, group, gboxes, size, device)
            held = None if hints is None else hints.maps(gboxes, group, size, device)
            objs = refine_batch(
                run, group, gboxes, crops, coarse, [labels[y0:y1, x0:x1] for y0, y1, x0, x1 in gboxes], hints=held
            )
        results.extend(objs)
        if n + 1 < total:
            yield _record(n, total, mode, objs, len(results), len(keep), run)
    frame = compose(labels, results, whole=whole, clean=cfg.clean, hints=hints)
    scores = {r.label: r.score for r in sorted(results, key=lambda r: r.label)}
    yield RefineStep(
        total - 1, total, mode, tuple(objs), len(results), len(keep), tuple(run.steps), True, cast(frame), scores
    )


def _whole_fallback(run: PipelineRun, rgb, labels, objs: list[ObjectResult], hints, device) -> list[ObjectResult]:
    """Objects the whole frame lost (nothing left at network resolution) get their instance result."""
    lost = [r.label for r in objs if not r.answer.values.size]
    if not lost:
        return objs
    boxes = [r.limit for r in objs if r.label in lost]
    crops, coarse = _crops(rgb, labels, lost, boxes, run.config.size, device)
    held = None if hints is None else hints.maps(boxes, lost, run.config.size, device)
    again = refine_batch(
        run, lost, boxes, crops, coarse, [labels[y0:y1, x0:x1] for y0, y1, x0, x1 in boxes], hints=held
    )
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
