"""Layers > Segment > "Refine mask (SegRefiner)": refine the selected Labels layer with defaults.

Defaults: the shipped model, ``mode="auto"``, all steps, ``device="auto"``, seed 0, all
labels; for a stack, the slice the viewer shows. The image is the topmost Image layer of
the same shape. The run happens in a worker (progress in the activity dock); the result is
a new Labels layer "<name> refined" with the input's scale, translate and axis labels.
"""

from __future__ import annotations

import napari
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_info, show_warning

from .. import registry
from ._widget import (
    ROLE,
    RefineJob,
    assemble,
    current_position,
    iter_job,
    layer_array,
    mask_array,
    notify_error,
    plane_axes,
    result_layer,
    spatial_shape,
)

__all__ = ["find_image", "refine_selected_labels"]


def find_image(viewer: napari.Viewer, labels: Labels) -> Image | None:
    """The topmost Image layer whose (spatial) shape equals ``labels``'s."""
    shape = spatial_shape(labels)
    for layer in reversed(viewer.layers):
        if isinstance(layer, Image) and ROLE not in layer.metadata and spatial_shape(layer) == shape:
            return layer
    return None


def refine_selected_labels(labels: Labels | None = None, viewer: napari.Viewer | None = None):
    """Refine the active Labels layer with default settings; returns the worker (or None)."""
    if labels is None or viewer is None:
        show_warning("SegRefiner: select a Labels layer to refine")
        return None
    image = find_image(viewer, labels)
    if image is None:
        show_warning(f"SegRefiner: no Image layer has the shape of {labels.name!r} {spatial_shape(labels)}")
        return None
    shape = spatial_shape(labels)
    axes = plane_axes(viewer, len(shape))
    position = () if len(shape) == 2 else current_position(viewer, labels, axes)
    job = RefineJob(
        image=layer_array(image),
        rgb=bool(image.rgb),
        mask=mask_array(labels),
        axes=axes,
        positions=(position,),
        model=registry.DEFAULT_MODEL,
    )
    if position:
        show_info(f"SegRefiner: refining the displayed slice {position} only; the dock widget can do all slices")

    def add_result(finals: dict) -> None:
        viewer.add_layer(result_layer(labels, assemble(job, finals), f"{labels.name} refined"))

    worker = create_worker(
        iter_job, job, _progress={"total": 0, "desc": f"SegRefiner: {labels.name}"}, _ignore_errors=True
    )
    worker.returned.connect(add_result)
    worker.errored.connect(notify_error)
    worker.start()
    return worker
