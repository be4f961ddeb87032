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
from .tracking import StepCounter, sync_bar
from .worker import RefineJob, Update, all_positions, mask_copy

__all__ = [
    "ROLE",
    "UNCERTAINTY_FLOOR",
    "StepProgress",
    "current_position",
    "is_image_mask",
    "layer_array",
    "layer_job",
    "mask_array",
    "notify_error",
    "paint_plane",
    "plane_axes",
    "result_layer",
    "spatial_shape",
    "uncertainty_colormap",
]

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
    """An Image layer that holds a mask: bool, integer and piecewise constant, or float 0/1.

    In-memory data only (lazy data is never loaded here); integer and float data are
    judged on a sample of rows (:func:`mask_copy` checks every pixel when a run starts).
    """
    if not isinstance(layer, Image) or layer.rgb or ROLE in layer.metadata:
        return False
    data = layer_array(layer)
    if data.dtype == bool:
        return True
    if not isinstance(data, np.ndarray) or data.ndim < 2 or data.size == 0:
        return False
    if data.dtype.kind == "f":
        rows = data.reshape(-1, data.shape[-1])[:: max(1, int(np.ceil(data.size / 4_000_000)))]
        return bool(((rows == 0) | (rows == 1)).all())
    return looks_like_mask(data)


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


def layer_job(viewer, image, mask, request, *, all_slices: bool = False) -> RefineJob:
    """A :class:`RefineJob` refining layer ``mask`` over layer ``image`` (same spatial shape).

    Of a stack, the plane the viewer shows, or every plane with ``all_slices``; ``request``
    (a :class:`~napari_segrefiner.engine.request.RefineRequest`: model, device, mode, ...)
    describes the run.
    """
    shape = spatial_shape(mask)
    axes = plane_axes(viewer, len(shape))
    if len(shape) == 2 or all_slices:
        positions = all_positions(shape, axes)
    else:
        positions = (current_position(viewer, mask, axes),)
    return RefineJob(
        image=layer_array(image),
        rgb=bool(image.rgb),
        mask=mask_array(mask),
        axes=axes,
        positions=positions,
        request=request,
    )


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


UNCERTAINTY_FLOOR = 0.1  # below this uncertainty nothing is drawn (no faint boxes around the crops)


def uncertainty_colormap() -> Colormap:
    """magma, fully transparent below :data:`UNCERTAINTY_FLOOR`, so only unsure pixels show.

    The layer holds ``255 * uncertainty`` (uint8): the transparent part ends just under the
    floor, between two uint8 values, so no value below the floor gets any colour.
    """
    edge = UNCERTAINTY_FLOOR - 0.25 / 255  # above 25/255, the last uint8 value under the floor (25.5/255)
    controls = np.concatenate([[0.0, edge], np.linspace(UNCERTAINTY_FLOOR, 1.0, 32)])
    colors = np.asarray(ensure_colormap("magma").map(controls), dtype=np.float32)
    alpha = 0.85 * np.clip(0.2 + (controls - UNCERTAINTY_FLOOR) * 1.5, 0.0, 1.0)
    colors[:, 3] = np.where(controls < UNCERTAINTY_FLOOR, 0.0, alpha)
    return Colormap(colors, controls=controls, name="segrefiner-uncertainty", display_name="uncertainty (magma)")


def result_layer(source, data: np.ndarray, name: str) -> Labels:
    """A Labels layer for ``data`` with ``source``'s scale, translate, units and axis labels."""
    return Labels(
        data,
        name=name,
        scale=source.scale,
        translate=source.translate,
        units=source.units,
        axis_labels=source.axis_labels,
        opacity=0.7,
    )


class StepProgress:
    """A napari progress bar (activity dock) driven by the :class:`Update`s of a run.

    Create it, feed it and close it on the main thread: in the slots of the worker's
    ``yielded`` and ``finished`` signals. The step count is unknown until the worker has
    loaded the model, so the bar starts indeterminate (total 0) and takes its total from
    the records (see :class:`~.tracking.StepCounter`). With ``deferred`` the napari bar
    appears only at :meth:`open` (napari processes pending events while it adds one, which
    must not happen inside a click); steps counted before are shown then. Closing twice is
    harmless.
    """

    def __init__(self, desc: str, *, deferred: bool = False):
        self.desc = desc
        self.bar = None
        self._counter = StepCounter()
        self._count: tuple[int, int | None] = (0, None)
        self._closed = False
        if not deferred:
            self.open()

    def open(self) -> None:
        if self.bar is not None or self._closed:
            return
        bar = progress(total=0, desc=self.desc)  # napari processes events in here: the run may end
        if self._closed:
            bar.close()
        else:
            self.bar = bar
            sync_bar(bar, *self._count)

    def update(self, update: Update) -> None:
        self._count = self._counter.advance(update)
        if self.bar is not None:
            sync_bar(self.bar, *self._count)

    def close(self, *_) -> None:
        self._closed = True
        if self.bar is not None:
            self.bar.close()  # tqdm's close returns at once when closed already
