"""The two tasks of the lazy path: refine a batch of objects, compose an output chunk.

* :func:`refine_batch` reads every object of a batch over its instance box only, runs the
  reverse diffusion on the batch (the same network batch instance mode forms in memory)
  and returns the objects' pasted answers as compact :class:`~.compose.ObjectMap` records.
* :func:`compose_chunk` reads the coarse labels over a window around an output chunk,
  folds in every refined object whose box meets the window (:func:`~.compose.compose_window`),
  cleans the objects whose boxes meet the chunk (:func:`~.cleanup.clean_labels`) and
  returns the chunk.

Both are plain functions of picklable arguments (dask ships them to worker processes).
The arrays are wrapped in :class:`Source`, which reads regions of a numpy, zarr or dask
array without ever loading the whole of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.compose import ObjectMap, compose_window

__all__ = ["BatchTask", "ChunkTask", "Source", "compose_chunk", "refine_batch"]

Box = tuple[int, int, int, int]


class Source:
    """A numpy, zarr or dask array read region by region (one graph key, not one per task).

    Parameters
    ----------
    array : numpy, zarr or dask array
    name : str
        For messages.
    """

    def __init__(self, array, name: str):
        self.array = array
        self.name = name

    def __dask_tokenize__(self):  # never hash the data
        return ("segrefiner-source", id(self), self.name)

    def read(self, regions: list[tuple]) -> list[np.ndarray]:
        """The arrays at ``regions`` (tuples of ints and slices), as numpy."""
        arr = self.array
        if hasattr(arr, "dask"):  # a dask array: one synchronous graph, chunks read once
            import dask

            return [np.asarray(a) for a in dask.compute(*[arr[r] for r in regions], scheduler="sync")]
        return [np.asarray(arr[r]) for r in regions]


@dataclass(frozen=True)
class BatchTask:
    """One network batch: objects of plane ``pos`` (label order) and their instance boxes."""

    pos: tuple[int, ...]
    labels: tuple[int, ...]
    boxes: tuple[Box, ...]
    width: int  # of the plane
    scaling: tuple
    rgb_axis: bool
    seed: int
    steps: tuple[int, ...]  # the reverse timesteps, computed once for the run
    autocast: bool
    token: str | None
    hints: tuple | None = None  # per object: (hint values, hint owners) over its box


@dataclass(frozen=True)
class ChunkTask:
    """One output chunk ``region`` of plane ``pos`` and the ``window`` it is composed in.

    ``refined``: the refined labels whose boxes meet the window (folded in); ``owners``:
    those whose boxes meet the region (cleaned).
    """

    pos: tuple[int, ...]
    region: Box
    window: Box
    refined: tuple[int, ...]
    owners: tuple[int, ...]
    clean: bool
    dtype: str
    hints: tuple | None = None  # (hint values, hint owners) over ``region``


def _region(pos: tuple, box: Box) -> tuple:
    y0, y1, x0, x1 = box
    return (*pos, slice(y0, y1), slice(x0, x1))


def refine_batch(spec, image: Source, labels: Source, task: BatchTask) -> list[ObjectMap]:
    """Refine one batch of objects; returns their :class:`~.compose.ObjectMap` (label order).

    The objects go through :func:`~.batch.refine_batch`, the batch step of the in-memory
    pipelines, each read over its own box only.
    """
    import torch

    from ..engine.batch import PipelineRun, object_crop
    from ..engine.batch import refine_batch as run_batch
    from ..io.images import apply_scaling
    from ..io.masks import as_labels
    from .cluster import refiner_for, report

    refiner = refiner_for(spec)
    config, dev = refiner.config, refiner.device
    regions = [_region(task.pos, b) for b in task.boxes]
    imgs = image.read(regions)
    labs = [as_labels(a, name=labels.name, ndim=None) for a in labels.read(regions)]
    crops, coarse = [], []
    for lab, box, img, lb in zip(task.labels, task.boxes, imgs, labs):
        rgb = apply_scaling(_channels(img, task.rgb_axis), task.scaling)
        c, m = object_crop(rgb, lb, lab, full_width=box[3] - box[2] == task.width, size=config.size, device=dev)
        crops.append(c)
        coarse.append(m)
    run = PipelineRun(
        refiner.network,
        refiner.schedule,
        config,
        task.steps,
        task.seed,
        autocast=task.autocast and dev.type == "cuda",
        device=dev,
    )
    held = None
    if task.hints is not None:
        from ..annotate.hints import hint_maps

        held = hint_maps(task.hints, task.labels, config.size, dev)
    objs = run_batch(run, task.labels, task.boxes, torch.cat(crops), torch.cat(coarse), labs, hints=held)
    report(task.token, len(objs))
    return [o.answer for o in objs]


def _channels(img: np.ndarray, rgb_axis: bool) -> np.ndarray:
    """(h, w[, C]) -> (h, w, 3) channels as :func:`~.imaging.rgb_channels` (no size check)."""
    if rgb_axis:
        if img.shape[-1] == 4:
            img = img[..., :3]
        elif img.shape[-1] == 1:
            img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return img


def compose_chunk(labels: Source, batches: list[list[ObjectMap]], task: ChunkTask) -> np.ndarray:
    """The refined labels of one output chunk (with leading unit axes for the plane)."""
    from ..engine.cleanup import clean_labels
    from ..io.masks import as_labels

    (window,) = labels.read([_region(task.pos, task.window)])
    lw = as_labels(window, name=labels.name, ndim=None)
    wy0, _, wx0, _ = task.window
    if task.refined:
        wanted = set(task.refined)
        maps = [m for batch in batches for m in batch if m.label in wanted]
        out = compose_window(lw, (wy0, wx0), maps, task.refined)
        if task.clean and task.owners:
            out = clean_labels(out, lw, task.owners)
    else:
        out = lw
    y0, y1, x0, x1 = task.region
    chunk = out[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
    if task.hints is not None:
        from ..annotate.hints import apply_hints

        chunk = apply_hints(chunk.copy(), *task.hints)
    dtype = np.dtype(task.dtype)
    chunk = chunk != 0 if dtype.kind == "b" else chunk.astype(dtype)
    return chunk.reshape((1,) * len(task.pos) + chunk.shape)
