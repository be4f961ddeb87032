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
(:mod:`~.hint_windows`); the whole and HR pipelines are not available here (``auto`` picks
instance mode for many objects anyway). The scans and the plan are :mod:`~.plan`'s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..diffusion.scheduler import timesteps
from ..engine.request import DEFAULT_SEED, RefineRequest, request_of, resolve_seed
from ..models.refiner import as_refiner
from .checks import check_arrays, check_options
from .cluster import ModelSpec, Progress, get_client
from .plan import plan_lazy
from .tasks import Source, compose_chunk, refine_batch

__all__ = ["refine_lazy", "start_lazy"]

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


def refine_lazy(
    image: Any,
    mask: Any,
    *,
    model: Any = None,
    device: str | None = None,
    mode: str = "auto",
    seed: int | None = DEFAULT_SEED,
    steps: int | None = None,
    labels: Iterable[int] | None = None,
    hints: Any = None,
    chunks: int | tuple[int, int] | None = None,
    client: Any = None,
    progress: Callable[[int, int], None] | None = None,
    autocast: bool = False,
    force: bool = False,
    **options: Any,
):
    """Refine a big labels array object by object, lazily; returns a dask array.

    Instance mode only: every object is refined once, whole, in its own crop, and the
    result is bit-identical to ``refine(image, mask, mode="instance", seed=seed)`` (CPU),
    plane by plane for nD arrays, for any chunking. With the default arguments of both,
    ``refine_lazy(image, mask)`` equals ``refine(image, mask)`` wherever ``refine`` picks
    instance mode (several objects, or one that is not HR-sized).

    Parameters
    ----------
    image : numpy, zarr or dask array of shape (..., H, W) or (..., H, W, C)
        Gray, RGB or RGBA (C = 1, 3 or 4), any numeric dtype (as
        :func:`~napari_segrefiner.io.images.as_rgb_uint8`, per plane).
    mask : numpy, zarr or dask array of shape (..., H, W)
        Coarse labels (0 = background) or a binary mask (then one object per plane: label
        a binary mask first to refine its pieces one by one). An empty mask is returned
        unchanged, with a ``UserWarning``.
    model, device, seed, steps, labels, autocast, force, **options
        As :func:`~napari_segrefiner.api.refine` (the same defaults; ``**options`` are
        :class:`~napari_segrefiner.models.config.RefineConfig` overrides, ``batch_size``
        the number of objects per network batch and per task).
    mode : {"auto", "instance"}
        Both refine object by object (the whole and HR pipelines need the whole frame).
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

    Returns
    -------
    dask.array.Array
        The mask's shape and dtype, chunked ``(1, ..., 1, rows, cols)``.

    Raises
    ------
    ValueError, TypeError
        For mismatched shapes, bad dtypes, labels not in the mask, or bad options (before
        anything is refined).

    Warns
    -----
    UserWarning
        For an empty mask.
    """
    request = request_of(locals())  # the fields of the run; chunks, client and progress are the lazy path's
    return start_lazy(image, mask, request, chunks=chunks, client=client, progress=progress)


def start_lazy(
    image: Any,
    mask: Any,
    request: RefineRequest,
    *,
    chunks: int | tuple[int, int] | None = None,
    client: Any = None,
    progress: Callable[[int, int], None] | None = None,
):
    """:func:`refine_lazy` of a :class:`~napari_segrefiner.engine.request.RefineRequest` (the CLI's
    zarr mode and the napari plugin describe their runs with one); ``previews`` and ``order``
    do not apply to lazy runs and are ignored.

    Raises
    ------
    ValueError, TypeError
        As :func:`refine_lazy`, and for a mode other than ``"auto"``/``"instance"``.
    """
    import dask.array as da
    from dask import delayed
    from dask.highlevelgraph import HighLevelGraph

    request.check_lazy()
    seed = resolve_seed(request.seed)
    check_arrays(image, mask)
    check_options(chunks=chunks, progress=progress)
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
    model, device = request.model, request.device
    remote = client is not None and (model is None or isinstance(model, (str, os.PathLike)))
    refiner = as_refiner(model, "cpu" if remote else device, cache=request.cache).with_options(**request.options)
    schedule_steps = tuple(timesteps(refiner.schedule, request.steps))  # validates steps; computed once
    config = refiner.config
    if remote:
        spec = ModelSpec(
            source=None if model is None else str(model),
            device=str(device or "auto"),
            cache=None if request.cache is None else str(request.cache),
            options=tuple(sorted(request.options.items())),
        )
    else:
        spec = ModelSpec(refiner=refiner)
    tracker = Progress(progress, 0) if progress is not None else None
    hints_d, hints = None, request.hints
    if hints is not None:
        if tuple(hints.shape) != tuple(mask_d.shape):
            raise ValueError(f"hints shape {tuple(hints.shape)} does not match the mask's shape {tuple(mask_d.shape)}")
        hints_d = _as_dask(hints, mask_d.chunks)
    plan = plan_lazy(
        image_d,
        mask_d,
        config=config,
        seed=seed,
        steps=schedule_steps,
        labels=request.labels,
        chunks=chunks,
        client=client,
        autocast=request.autocast,
        token=None if tracker is None else tracker.token,
        hints=hints_d,
        force=request.force,
    )
    log.info(
        "refine_lazy: %d objects in %d batches, %d output chunks", plan.objects, len(plan.batches), len(plan.chunks)
    )
    name = f"segrefiner-{_token()}"
    model_d = delayed(spec, name=f"{name}-model", traverse=False)
    image_src = delayed(
        Source(image, "image") if not hasattr(image, "dask") else Source(image_d, "image"),
        name=f"{name}-image",
        traverse=False,
    )
    mask_src = delayed(
        Source(mask, "mask") if not hasattr(mask, "dask") else Source(mask_d, "mask"),
        name=f"{name}-mask",
        traverse=False,
    )
    batches = [
        delayed(refine_batch, pure=True)(model_d, image_src, mask_src, b, dask_key_name=f"{name}-batch-{k}")
        for k, b in enumerate(plan.batches)
    ]
    outs = [
        delayed(compose_chunk, pure=True)(
            mask_src, [batches[d] for d in plan.deps[idx]], task, dask_key_name=(name, *idx)
        )
        for idx, task in plan.chunks.items()
    ]
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
