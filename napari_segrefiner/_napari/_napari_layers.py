"""napari helpers shared by the dock widget, the menu command, the benchmarks and the docs.

Reading layers (their array, spatial shape, a mask copy, the plane the viewer shows),
building a :class:`~.worker.RefineJob` from them, painting a plane in place, the result
layer, the uncertainty colormap, error notifications and the progress bar of a run.
Main thread only; nothing here imports the dock widget.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels
from napari.utils import progress
from napari.utils.colormaps import Colormap, ensure_colormap
from napari.utils.notifications import notification_manager

from ._reader import looks_like_mask
from .worker import RefineJob, StepCounter, Update, all_positions, mask_copy, sync_bar

__all__ = ["ROLE", "StepProgress", "current_position", "is_image_mask", "layer_array", "layer_job", "mask_array",
           "notify_error", "paint_plane", "plane_axes", "result_layer", "spatial_shape",
           "uncertainty_colormap"]  # fmt: skip

ROLE = "segrefiner"  # layer.metadata key marking the widget's own preview/uncertainty layers


def notify_error(exc: BaseException) -> None:
    """Show a worker's exception as a napari error notification (its traceback one click away).

    Workers run with ``ignore_errors=True`` (no re-raise in the main thread), so nothing
    else would tell the user.
    """
    notification_manager.receive_error(type(exc), exc, exc.__traceback__)


def layer_array(layer):
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def spatial_shape(layer) -> tuple[int, ...]:
    shape = tuple(layer_array(layer).shape)
    return shape[:-1] if getattr(layer, "rgb", False) else shape


def mask_array(layer) -> np.ndarray:
    """A private integer copy of a Labels layer, or of an Image layer holding a mask."""
    return mask_copy(layer_array(layer), layer.name)


def is_image_mask(layer) -> bool:
    """An Image layer that holds a mask: bool, or integer and piecewise constant (in memory)."""
    if not isinstance(layer, Image) or layer.rgb or ROLE in layer.metadata:
        return False
    data = layer_array(layer)
    return data.dtype == bool or (isinstance(data, np.ndarray) and looks_like_mask(data))  # never load lazy data


def plane_axes(viewer, ndim: int) -> tuple[int, int]:
    """The layer axes on screen in a 2-D view (otherwise its last two)."""
    if viewer.dims.ndisplay == 2:
        shift = viewer.dims.ndim - ndim
        axes = sorted(a - shift for a in viewer.dims.displayed)
        if all(0 <= a < ndim for a in axes):
            return axes[0], axes[1]
    return ndim - 2, ndim - 1


def current_position(viewer, layer, axes: tuple[int, int]) -> tuple[int, ...]:
    """Indices, along the layer's non-plane axes, of the slice the viewer shows."""
    point = layer.world_to_data(viewer.dims.point)
    shape = spatial_shape(layer)
    return tuple(int(np.clip(np.round(point[a]), 0, shape[a] - 1)) for a in range(len(shape)) if a not in axes)


def layer_job(viewer, image, mask, *, all_slices: bool = False, **options) -> RefineJob:
    """A :class:`RefineJob` refining layer ``mask`` over layer ``image`` (same spatial shape).

    Of a stack, the plane the viewer shows, or every plane with ``all_slices``; ``options``
    (model, device, mode, ...) go to :class:`RefineJob` as they are.
    """
    shape = spatial_shape(mask)
    axes = plane_axes(viewer, len(shape))
    if len(shape) == 2 or all_slices:
        positions = all_positions(shape, axes)
    else:
        positions = (current_position(viewer, mask, axes),)
    return RefineJob(image=layer_array(image), rgb=bool(image.rgb), mask=mask_array(mask), axes=axes,
                     positions=positions, **options)  # fmt: skip


def paint_plane(layer, index: tuple, values: np.ndarray, *, refresh: bool = True) -> bool:
    """Write ``values`` into ``layer.data[index]`` in place, only within the changed box.

    The layer's data must be a numpy array the caller owns. Returns False when nothing
    changed (and then does not refresh). Much cheaper than ``layer.data = new`` on large
    layers: no new array, no dims update, no per-step colour hashing for small dtypes.
    """
    plane = layer.data[index]
    diff = plane != values
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return False
    cols = np.flatnonzero(diff.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    np.copyto(plane[box], values[box], casting="unsafe")
    if refresh:
        layer.refresh(extent=False, highlight=False, thumbnail=False)
    return True


def uncertainty_colormap() -> Colormap:
    """magma whose dark (confident) end is transparent, so only unsure pixels show."""
    ramp = np.linspace(0.0, 1.0, 64)
    colors = np.asarray(ensure_colormap("magma").map(ramp), dtype=np.float32)
    colors[:, 3] = 0.85 * np.clip(ramp * 1.5, 0.0, 1.0)
    return Colormap(colors, name="segrefiner-uncertainty", display_name="uncertainty (magma)")


def result_layer(source, data: np.ndarray, name: str) -> Labels:
    """A Labels layer for ``data`` with ``source``'s scale, translate, units and axis labels."""
    return Labels(data, name=name, scale=source.scale, translate=source.translate, units=source.units,
                  axis_labels=source.axis_labels, opacity=0.7)  # fmt: skip


class StepProgress:
    """A napari progress bar (activity dock) driven by the :class:`Update`s of a run.

    Create it, feed it and close it on the main thread: in the slots of the worker's
    ``yielded`` and ``finished`` signals. The step count is unknown until the worker has
    loaded the model, so the bar starts indeterminate (total 0) and takes its total from
    the records (see :class:`~.worker.StepCounter`). Closing twice is harmless.
    """

    def __init__(self, desc: str):
        self.bar = progress(total=0, desc=desc)
        self._counter = StepCounter()

    def update(self, update: Update) -> None:
        sync_bar(self.bar, *self._counter.advance(update))

    def close(self, *_) -> None:
        self.bar.close()  # tqdm's close returns at once when closed already
