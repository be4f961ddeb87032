"""Refine big arrays lazily, object by object: :func:`refine_lazy` (instance mode only).

Takes numpy, zarr or dask arrays (2-D, or nD refined plane by plane along the last two
axes; the image may have a trailing channel axis) and returns a dask array of the mask's
shape and dtype. Nothing ever holds the whole image or mask:

1. **Scan** (one task per mask chunk): every label's tight bounds and pixel count per plane,
   merged across chunks, so an object cut by chunk borders is one object. Images that are
   not 8-bit get their exact percentile stretch from two more chunk-wise passes.
2. **Refine** (one task per network batch): the objects of a plane in label order, in
   groups of ``batch_size`` - exactly the network batches instance mode forms in memory,
   as the network's numbers depend on the batch it runs in. Each object is read over its
   instance box only (:func:`~.pipelines.box_from_bounds`), drawn from its own random
   stream, and kept as the compact pasted answer (:class:`~.compose.ObjectMap`).
3. **Compose** (one task per output chunk): the overlap rule and the clean-up are
   per-pixel folds over the objects whose boxes cover a pixel (see :mod:`~.compose`). An
   output chunk is composed in a window that holds the boxes of every object meeting the
   chunk (grown by the clean-up's one-pixel margin), from every object whose box meets that
   window, then cleaned for the objects meeting the chunk - with the functions the
   in-memory pipeline uses, so the result is bit-identical to ``refine(image, mask,
   mode="instance", seed=seed)`` on the CPU.

Peak memory grows with the largest object's window and the batch, not with the image: the
results of a batch are held until every chunk that needs them is composed, which with
labels numbered in scan order (``scipy.ndimage.label``, ``skimage.measure.label``) is a
band of the image.

Runs on dask's threaded scheduler by default; with a ``distributed`` client (or address)
the model is loaded once per worker process (:mod:`~.cluster`). Hints are held as in memory
(:mod:`~.lazy_hints`); the whole and HR pipelines are not available here (``auto`` picks
instance mode for many objects anyway).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .scan import default_scaling, image_stats, merge_stats, merge_tables, needed_bins, plane_scaling, scan_block
from .tasks import BatchTask, ChunkTask, Source, compose_chunk, refine_batch
from .checks import check_arrays, check_ids, check_options
from ..io.plausible import check_label_count

__all__ = ["LazyPlan", "plan_lazy", "refine_lazy"]

log = logging.getLogger(__name__)
DEFAULT_CHUNK = 1024


def _as_dask(array, chunks):
    import dask.array as da

    if hasattr(array, "dask"):
        return array
    if type(array).__module__.startswith("zarr"):
        return da.from_zarr(array)
    return da.from_array(np.asarray(array), chunks=chunks)


def _numpy_chunks(ndim: int, chunks) -> tuple | None:
    """Chunks of a numpy mask turned into a dask array: one plane, ``chunks`` or 1024 px."""
    if chunks is None:
        chunks = DEFAULT_CHUNK
    if isinstance(chunks, (int, np.integer)):
        chunks = (int(chunks), int(chunks))
    return tuple([1] * (ndim - 2) + [int(c) for c in tuple(chunks)[-2:]])


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
        items = [delayed(merge)(items[i], items[i + 1]) if i + 1 < len(items) else items[i]
                 for i in range(0, len(items), 2)]
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


def plan_lazy(image, mask, *, config, seed: int, steps: tuple[int, ...], labels: Iterable[int] | None = None,
              chunks=None, client=None, autocast: bool = False, token: str | None = None, hints=None,
              force: bool = False) -> LazyPlan:
    """Scan ``mask`` (and ``image`` when it is not 8-bit) and plan the batches and chunks.

    ``image`` and ``mask`` are dask arrays; ``config`` the run's :class:`~.config.RefineConfig`.
    See :func:`refine_lazy` for the rest.
    """
    lead = mask.ndim - 2
    h, w = mask.shape[-2:]
    rgb_axis = image.ndim == mask.ndim + 1
    tables = merge_tables(_compute([_delayed(scan_block)(b, off) for b, off in _blocks(mask)], client))
    if not tables:
        raise ValueError("mask is empty (no foreground pixels): nothing to refine")
    for pos, table in tables.items():  # a photo passed as the mask, or image and mask swapped
        check_label_count(len(table), (h, w), force=force, name=f"mask plane {pos}" if lead else "mask")
    wanted = None
    if labels is not None:
        wanted = sorted({int(v) for v in check_ids(labels)})
        if not wanted:
            raise ValueError("labels is empty: nothing to refine")
        present = set(np.concatenate([t.labels for t in tables.values()]).tolist())
        missing = sorted(set(wanted) - present)
        if missing:
            raise ValueError(f"labels {missing} do not occur in mask (present: {sorted(present)[:10]})")
    scaling = _scalings(image, tables, lead, rgb_axis, client)
    from ..engine.pipelines import box_from_bounds

    windows = _hint_windows(hints, mask, tables, config, client)
    batches, boxes_of = [], {}
    for pos, table in tables.items():
        win = windows.get(pos)
        keep = table.area >= config.min_area
        if wanted is not None:
            keep &= np.isin(table.labels, wanted)
        ids = table.labels[keep]
        boxes = np.asarray([box_from_bounds(tuple(int(v) for v in b), config, (h, w)) for b in table.bounds[keep]],
                           dtype=np.int64).reshape(-1, 4)
        first = len(batches)
        for lo in range(0, len(ids), config.batch_size):
            batches.append(BatchTask(
                pos=pos, labels=tuple(int(v) for v in ids[lo : lo + config.batch_size]),
                boxes=tuple(tuple(int(v) for v in b) for b in boxes[lo : lo + config.batch_size]), width=int(w),
                scaling=scaling[pos], rgb_axis=rgb_axis, seed=int(seed), steps=steps, autocast=bool(autocast),
                token=token, hints=None if win is None else tuple(
                    win.over(tuple(int(v) for v in b)) for b in boxes[lo : lo + config.batch_size]),
            ))
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
                    window = (max(min(region[0], int(b[:, 0].min()) - 1), 0), min(max(region[1], int(b[:, 1].max()) + 1), h),
                              max(min(region[2], int(b[:, 2].min()) - 1), 0), min(max(region[3], int(b[:, 3].max()) + 1), w))
                refined = _meeting(boxes, window)
                idx = (*pos, i, j)
                win = windows.get(tuple(pos))
                plan_chunks[idx] = ChunkTask(pos=tuple(pos), region=region, window=window,
                                             refined=tuple(int(v) for v in ids[refined]),
                                             owners=tuple(int(v) for v in ids[owners]),
                                             clean=bool(config.clean), dtype=str(mask.dtype),
                                             hints=None if win is None else win.over(region))
                deps[idx] = sorted({int(v) for v in batch_of[refined]})
    out_chunks = tuple([(1,) * n for n in mask.shape[:lead]] + [rows, cols])
    objects = sum(len(b.labels) for b in batches)
    return LazyPlan(tables, batches, plan_chunks, deps, objects, out_chunks)


def _hint_windows(hints, mask, tables: dict, config, client) -> dict:
    """Plane -> :class:`~.lazy_hints.HintWindow` (empty without hints)."""
    if hints is None:
        return {}
    from .hint_windows import hint_bounds, merge_bounds, plan_hints
    from ..engine.pipelines import box_from_bounds

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


def refine_lazy(
    image: Any,
    mask: Any,
    *,
    model: Any = None,
    device: str | None = None,
    seed: int | None = 0,
    steps: int | None = None,
    labels: Iterable[int] | None = None,
    chunks: int | tuple[int, int] | None = None,
    client: Any = None,
    progress: Callable[[int, int], None] | None = None,
    autocast: bool = False,
    hints: Any = None,
    force: bool = False,
    **options: Any,
):
    """Refine a big labels array object by object, lazily; returns a dask array.

    Instance mode only: every object is refined once, whole, in its own crop, and the
    result is bit-identical to ``refine(image, mask, mode="instance", seed=seed)`` (CPU),
    plane by plane for nD arrays, for any chunking.

    Parameters
    ----------
    image : numpy, zarr or dask array of shape (..., H, W) or (..., H, W, C)
        Gray, RGB or RGBA (C = 1, 3 or 4), any numeric dtype (as
        :func:`~napari_segrefiner.io.images.as_rgb_uint8`, per plane).
    mask : numpy, zarr or dask array of shape (..., H, W)
        Coarse labels (0 = background) or a binary mask (then one object per plane: label
        a binary mask first to refine its pieces one by one).
    model, device, seed, steps, labels, autocast
        As :func:`~napari_segrefiner.api.refine` (the same default seed).
    hints : numpy, zarr or dask array of the mask's shape, optional
        Annotator hints (0 free, 1 object, 2 background), held as in memory
        (:mod:`~napari_segrefiner.annotate.hints`): the result equals ``refine(..., hints=hints)``.
    chunks : int or (int, int), optional
        Output chunk (and composition window) size along the last two axes, at least
        16 px; default: the mask's chunks (1024 for numpy input).
    client : None, str or distributed.Client
        None: dask's threaded scheduler (one model in this process). A client or an
        address: scans run on that cluster now, and each worker process loads a model
        given by name or path once (an in-memory model is sent once per worker). Compute
        the result on the same cluster (``client.compute``, ``da.store``...).
    progress : callable, optional
        ``progress(done, total)`` after every refined batch (objects), while the result is
        computed.
    force : bool
        Refine a plane with more labels than ``max(1024, H * W / 16)`` anyway (see
        :mod:`~napari_segrefiner.io.plausible`: a photo passed as the mask, or image and mask
        swapped).
    **options
        Overrides of the refiner's :class:`~.config.RefineConfig` (``batch_size`` is the
        number of objects per network batch and per task).

    Returns
    -------
    dask.array.Array
        The mask's shape and dtype, chunked ``(1, ..., 1, rows, cols)``.

    Raises
    ------
    ValueError, TypeError
        For mismatched shapes, bad dtypes, an empty mask, labels not in the mask, or bad
        options (before anything is refined).
    """
    import dask.array as da
    from dask import delayed
    from dask.highlevelgraph import HighLevelGraph

    from ..api import _refiner, resolve_seed
    from .cluster import ModelSpec, Progress, get_client
    from ..diffusion.scheduler import timesteps

    seed = resolve_seed(seed)
    check_arrays(image, mask)
    check_options(chunks=chunks, progress=progress, autocast=autocast, force=force)
    mask_d = _as_dask(mask, _numpy_chunks(np.ndim(mask), chunks))
    if isinstance(image, np.ndarray):
        extra = ((image.shape[-1],),) if image.ndim == mask_d.ndim + 1 else ()
        image_d = _as_dask(image, (*mask_d.chunks, *extra))
    else:
        image_d = _as_dask(image, None)
    check_arrays(image_d, mask_d)
    if min(mask_d.shape[-2:]) < 2:
        raise ValueError(f"image is too small: shape {image_d.shape}")
    client = get_client(client)
    remote = client is not None and (model is None or isinstance(model, (str, os.PathLike)))
    refiner = _refiner(model, "cpu" if remote else device).with_options(**options)
    schedule_steps = tuple(timesteps(refiner.schedule, steps))  # validates steps; computed once
    config = refiner.config
    if remote:
        spec = ModelSpec(source=None if model is None else str(model), device=device or "auto",
                         options=tuple(sorted(options.items())))
    else:
        spec = ModelSpec(refiner=refiner)
    tracker = Progress(progress, 0) if progress is not None else None
    hints_d = None
    if hints is not None:
        if tuple(hints.shape) != tuple(mask_d.shape):
            raise ValueError(f"hints shape {tuple(hints.shape)} does not match the mask's shape {tuple(mask_d.shape)}")
        if np.dtype(hints.dtype).kind not in "biu":
            raise TypeError(f"hints must be an integer array (0 free, 1 object, 2 background), got dtype {hints.dtype}")
        hints_d = _as_dask(hints, mask_d.chunks)
    plan = plan_lazy(image_d, mask_d, config=config, seed=seed, steps=schedule_steps, labels=labels, chunks=chunks,
                     client=client, autocast=autocast, token=None if tracker is None else tracker.token, hints=hints_d,
                     force=force)
    log.info("refine_lazy: %d objects in %d batches, %d output chunks", plan.objects, len(plan.batches), len(plan.chunks))
    name = f"segrefiner-{_token()}"
    model_d = delayed(spec, name=f"{name}-model", traverse=False)
    image_src = delayed(Source(image, "image") if not hasattr(image, "dask") else Source(image_d, "image"),
                        name=f"{name}-image", traverse=False)
    mask_src = delayed(Source(mask, "mask") if not hasattr(mask, "dask") else Source(mask_d, "mask"),
                       name=f"{name}-mask", traverse=False)
    batches = [delayed(refine_batch, pure=True)(model_d, image_src, mask_src, b, dask_key_name=f"{name}-batch-{k}")
               for k, b in enumerate(plan.batches)]
    outs = [delayed(compose_chunk, pure=True)(mask_src, [batches[d] for d in plan.deps[idx]], task,
                                              dask_key_name=(name, *idx))
            for idx, task in plan.chunks.items()]
    tasks: dict = {}
    for o in outs:  # one layer named like the array, as dask's array operations expect
        tasks.update(o.__dask_graph__())
    graph = HighLevelGraph.from_collections(name, tasks, dependencies=())
    result = da.Array(graph, name, plan.out_chunks, dtype=mask_d.dtype, meta=np.empty((0,) * mask_d.ndim, mask_d.dtype))
    if tracker is not None:  # detaches itself once every object is reported
        tracker.total = plan.objects
        tracker.attach(client)
    return result


def _token() -> str:
    import uuid

    return uuid.uuid4().hex[:12]
