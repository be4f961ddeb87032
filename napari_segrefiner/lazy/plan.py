"""Plan a lazy run: scan the mask (and a non-8-bit image) chunk by chunk, then form the tasks.

:func:`plan_lazy` finds every object of every plane (bounds and area, merged across
chunks), the 8-bit scaling of every image plane, the hints' windows, and forms the
network batches (the objects of a plane in label order, ``batch_size`` at a time: the
batches instance mode forms in memory) and one composition task per output chunk, with
the batches each chunk needs. Nothing here runs the network.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..engine.pipelines import box_from_bounds
from ..io.plausible import check_label_count
from .hint_windows import hint_bounds, merge_bounds, plan_hints
from .scan import default_scaling, image_stats, merge_stats, merge_tables, needed_bins, plane_scaling, scan_block
from .tasks import BatchTask, ChunkTask

__all__ = ["LazyPlan", "plan_lazy"]


def _compute(items: list, client) -> list:
    import dask

    if not items:
        return []
    return list(dask.compute(*items, scheduler=client if client is not None else "threads"))


def _offsets(chunks: tuple[tuple[int, ...], ...]) -> list[np.ndarray]:
    return [np.concatenate([[0], np.cumsum(c)]) for c in chunks]


def _blocks(arr):
    """(block delayed, offset of its first element) for every block of a dask array."""
    starts = _offsets(arr.chunks)
    blocks = arr.to_delayed()
    for idx in np.ndindex(*blocks.shape):
        yield blocks[idx], tuple(int(starts[d][i]) for d, i in enumerate(idx))


def _tree(items: list, merge: Callable):
    from dask import delayed

    while len(items) > 1:
        items = [
            delayed(merge)(items[i], items[i + 1]) if i + 1 < len(items) else items[i] for i in range(0, len(items), 2)
        ]
    return items[0]


@dataclass(frozen=True)
class LazyPlan:
    """What a lazy run will do, found by the scans (cheap; no network runs).

    Attributes
    ----------
    tables : dict
        Plane index (along the leading axes) -> :class:`~napari_segrefiner.io.masks.ObjectTable` of the
        objects found in it.
    batches : list of BatchTask
        Network batches (objects, boxes), per plane in label order.
    chunks : dict
        Output chunk index -> :class:`~.lazy_tasks.ChunkTask`.
    deps : dict
        Output chunk index -> indices into ``batches`` it needs.
    objects : int
        Objects that will be refined.
    out_chunks : tuple
        dask chunks of the result: one plane along the leading axes, then rows and columns.
    """

    tables: dict
    batches: list
    chunks: dict
    deps: dict
    objects: int
    out_chunks: tuple


def _spatial_chunks(mask_chunks, shape, chunks) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if chunks is None:
        return mask_chunks[-2], mask_chunks[-1]
    if isinstance(chunks, (int, np.integer)):
        chunks = (int(chunks), int(chunks))
    out = []
    for size, c in zip(shape[-2:], chunks[-2:]):
        c = int(c)
        if c < 1:
            raise ValueError(f"chunks must be positive, got {chunks}")
        out.append(tuple([c] * (size // c) + ([size % c] if size % c else [])))
    return out[0], out[1]


def plan_lazy(
    image,
    mask,
    *,
    config,
    seed: int,
    steps: tuple[int, ...],
    labels: Iterable[int] | None = None,
    chunks=None,
    client=None,
    autocast: bool = False,
    token: str | None = None,
    hints=None,
    force: bool = False,
) -> LazyPlan:
    """Scan ``mask`` (and ``image`` when it is not 8-bit) and plan the batches and chunks.

    ``image`` and ``mask`` are dask arrays; ``config`` the run's
    :class:`~napari_segrefiner.models.config.RefineConfig`; ``labels`` sorted and unique
    (a request's). See :func:`~.refine.refine_lazy` for the rest. An empty mask warns and
    plans chunks that copy it.
    """
    lead = mask.ndim - 2
    h, w = mask.shape[-2:]
    rgb_axis = image.ndim == mask.ndim + 1
    tables = merge_tables(_compute([_delayed(scan_block)(b, off) for b, off in _blocks(mask)], client))
    if not tables:
        warnings.warn(
            "mask is empty (no foreground pixels): nothing to refine; it is returned unchanged",
            UserWarning,
            stacklevel=3,
        )
    for pos, table in tables.items():  # a photo passed as the mask, or image and mask swapped
        check_label_count(len(table), (h, w), force=force, name=f"mask plane {pos}" if lead else "mask")
    wanted = None
    if labels is not None:
        wanted = sorted({int(v) for v in labels})
        if not wanted:
            raise ValueError("labels is empty: nothing to refine")
        present = set(np.concatenate([np.zeros(0, np.int64), *(t.labels for t in tables.values())]).tolist())
        missing = sorted(set(wanted) - present)
        if missing:
            raise ValueError(f"labels {missing} do not occur in mask (present: {sorted(present)[:10]})")
    scaling = _scalings(image, tables, lead, rgb_axis, client)
    windows = _hint_windows(hints, mask, tables, config, client)
    batches, boxes_of = [], {}
    for pos, table in tables.items():
        win = windows.get(pos)
        keep = table.area >= config.min_area
        if wanted is not None:
            keep &= np.isin(table.labels, wanted)
        ids = table.labels[keep]
        boxes = np.asarray(
            [box_from_bounds(tuple(int(v) for v in b), config, (h, w)) for b in table.bounds[keep]], dtype=np.int64
        ).reshape(-1, 4)
        first = len(batches)
        for lo in range(0, len(ids), config.batch_size):
            batches.append(
                BatchTask(
                    pos=pos,
                    labels=tuple(int(v) for v in ids[lo : lo + config.batch_size]),
                    boxes=tuple(tuple(int(v) for v in b) for b in boxes[lo : lo + config.batch_size]),
                    width=int(w),
                    scaling=scaling[pos],
                    rgb_axis=rgb_axis,
                    seed=int(seed),
                    steps=steps,
                    autocast=bool(autocast),
                    token=token,
                    hints=None
                    if win is None
                    else tuple(win.over(tuple(int(v) for v in b)) for b in boxes[lo : lo + config.batch_size]),
                )
            )
        boxes_of[pos] = (ids, boxes, first + np.arange(len(ids)) // config.batch_size)
    rows, cols = _spatial_chunks(mask.chunks, mask.shape, chunks)
    ry, rx = _offsets((rows,)), _offsets((cols,))
    plan_chunks, deps = {}, {}
    for pos in np.ndindex(*mask.shape[:lead]):
        ids, boxes, batch_of = boxes_of.get(pos, (np.zeros(0, np.int64), np.zeros((0, 4), np.int64), np.zeros(0, int)))
        for i in range(len(rows)):
            for j in range(len(cols)):
                region = (int(ry[0][i]), int(ry[0][i + 1]), int(rx[0][j]), int(rx[0][j + 1]))
                owners = _meeting(boxes, region)
                window = region
                if owners.any():  # the owners' boxes, grown by the clean-up's margin
                    b = boxes[owners]
                    window = (
                        max(min(region[0], int(b[:, 0].min()) - 1), 0),
                        min(max(region[1], int(b[:, 1].max()) + 1), h),
                        max(min(region[2], int(b[:, 2].min()) - 1), 0),
                        min(max(region[3], int(b[:, 3].max()) + 1), w),
                    )
                refined = _meeting(boxes, window)
                idx = (*pos, i, j)
                win = windows.get(tuple(pos))
                plan_chunks[idx] = ChunkTask(
                    pos=tuple(pos),
                    region=region,
                    window=window,
                    refined=tuple(int(v) for v in ids[refined]),
                    owners=tuple(int(v) for v in ids[owners]),
                    clean=bool(config.clean),
                    dtype=str(mask.dtype),
                    hints=None if win is None else win.over(region),
                )
                deps[idx] = sorted({int(v) for v in batch_of[refined]})
    out_chunks = tuple([(1,) * n for n in mask.shape[:lead]] + [rows, cols])
    objects = sum(len(b.labels) for b in batches)
    return LazyPlan(tables, batches, plan_chunks, deps, objects, out_chunks)


def _hint_windows(hints, mask, tables: dict, config, client) -> dict:
    """Plane -> :class:`~.lazy_hints.HintWindow` (empty without hints)."""
    if hints is None:
        return {}
    bounds = merge_bounds(_compute([_delayed(hint_bounds)(b, off) for b, off in _blocks(hints)], client))
    shape = tuple(mask.shape[-2:])
    boxes_of, reach = {}, 1
    for pos, table in tables.items():
        boxes_of[pos] = {}
        for lab, t in zip(table.labels.tolist(), table.bounds.tolist()):
            b = box_from_bounds(tuple(t), config, shape)
            boxes_of[pos][lab] = b
            reach = max(reach, t[0] - b[0], b[1] - t[1], t[2] - b[2], b[3] - t[3])
    return plan_hints(hints, mask, bounds, boxes_of, reach + 1, shape)


def _meeting(boxes: np.ndarray, region) -> np.ndarray:
    y0, y1, x0, x1 = region
    return (boxes[:, 0] < y1) & (boxes[:, 1] > y0) & (boxes[:, 2] < x1) & (boxes[:, 3] > x0)


def _delayed(func):
    from dask import delayed

    return delayed(func, pure=True)


def _scalings(image, tables: dict, lead: int, rgb_axis: bool, client) -> dict:
    """Plane -> 8-bit scaling of the image plane (chunk-wise passes for non-8-bit images)."""
    fixed = default_scaling(image.dtype)
    if fixed is not None:
        return {pos: fixed for pos in tables}
    stat = _delayed(image_stats)
    blocks = list(_blocks(image))
    p1 = _compute([_tree([stat(b, off, lead, rgb_axis) for b, off in blocks], merge_stats)], client)[0]
    p1 = {pos: s for pos, s in p1.items() if pos in tables}
    bins = needed_bins(p1)
    p2 = _compute([_tree([stat(b, off, lead, rgb_axis, bins) for b, off in blocks], merge_stats)], client)[0]
    return plane_scaling(image.dtype, p1, p2)
