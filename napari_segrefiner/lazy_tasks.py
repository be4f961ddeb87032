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

from .compose import ObjectMap, compose_window, object_values

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
    steps: int | None
    autocast: bool
    token: str | None


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


def _region(pos: tuple, box: Box) -> tuple:
    y0, y1, x0, x1 = box
    return (*pos, slice(y0, y1), slice(x0, x1))


def _image_tensor(rgb: np.ndarray, full_width: bool, device):
    """A crop as the (1, 3, h, w) float tensor instance mode slices from the whole frame.

    In memory the crop is a view of the whole image with its row stride; a crop narrower
    than the image is given one spare column here, so that it has the same memory layout
    class and the resampling kernels take the same path (the bits then match).
    """
    import torch

    h, w, _ = rgb.shape
    if full_width:
        buf = np.ascontiguousarray(rgb)
    else:
        buf = np.zeros((h, w + 1, 3), dtype=np.uint8)
        buf[:, :w] = rgb
    return torch.from_numpy(buf).to(device).permute(2, 0, 1)[None].float()[:, :, :, :w]


def refine_batch(spec, image: Source, labels: Source, task: BatchTask) -> list[ObjectMap]:
    """Refine one batch of objects; returns their :class:`~.compose.ObjectMap` (label order)."""
    import torch

    from .cluster import refiner_for, report
    from .imaging import apply_scaling, normalize
    from .lazy_scan import as_labels
    from .patches import crop_resize
    from .sampling import denoise
    from .scheduler import stream, timesteps

    refiner = refiner_for(spec)
    config, dev = refiner.config, refiner.device
    size = config.size
    regions = [_region(task.pos, b) for b in task.boxes]
    imgs = image.read(regions)
    labs = [as_labels(a, name=labels.name) for a in labels.read(regions)]
    crops, coarse = [], []
    for lab, box, img, lb in zip(task.labels, task.boxes, imgs, labs):
        h, w = box[1] - box[0], box[3] - box[2]
        rgb = _channels(img, task.rgb_axis)
        t = _image_tensor(apply_scaling(rgb, task.scaling), w == task.width, dev)
        crops.append(crop_resize(t, (0, h, 0, w), size))
        lab_t = torch.from_numpy(lb).to(dev)
        coarse.append((crop_resize((lab_t == lab)[None, None], (0, h, 0, w), size) >= 0.5).float())
    small = torch.cat(coarse)
    last = denoise(
        refiner.network, normalize(torch.cat(crops)), small, schedule=refiner.schedule,
        steps=timesteps(refiner.schedule, task.steps), generator=[stream(task.seed, lab) for lab in task.labels],
        autocast=task.autocast and dev.type == "cuda", batch_size=config.batch_size, keep_bias=config.keep_bias,
    )
    vals = last.mask.detach().float().cpu()
    changed = None
    if config.paste_changes_only:
        changed = ((vals >= 0.5) != (small.detach().cpu() >= 0.5)).float()
    out = []
    for k, (lab, box, lb) in enumerate(zip(task.labels, task.boxes, labs)):
        v = object_values(vals[k, 0], box, lab, lb, None if changed is None else changed[k, 0])
        out.append(ObjectMap.from_values(lab, box, v))
    report(task.token, len(out))
    return out


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
    from .cleanup import clean_labels
    from .lazy_scan import as_labels

    (window,) = labels.read([_region(task.pos, task.window)])
    lw = as_labels(window, name=labels.name)
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
    dtype = np.dtype(task.dtype)
    chunk = chunk != 0 if dtype == bool else chunk.astype(dtype)
    return chunk.reshape((1,) * len(task.pos) + chunk.shape)
