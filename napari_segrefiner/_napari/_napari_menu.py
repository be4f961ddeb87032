"""Layers > Segment > "Refine mask (SegRefiner)": refine the selected Labels layer with defaults.

(napari appends the plugin's display name to the command title "Refine mask".) Defaults:
the shipped model, ``mode="auto"``, all steps, ``device="auto"``, seed 0, all labels; for a
stack, the slice the viewer shows. The image is the topmost Image layer of the same shape.
Nothing to refine (an empty mask or slice) gives a warning and no run, and so does a big or
zarr/dask-backed mask (the dock widget refines those lazily); more than
:data:`~.preflight.LARGE_RUN_OBJECTS` objects on a CPU a warning with a time estimate, and
the run. The run happens in a worker (a progress bar in the activity dock); the result is
a new Labels layer "<name> refined" with the input's scale, translate and axis labels.
"""

from __future__ import annotations

import napari
from napari.layers import Image, Labels
from napari.utils.notifications import show_info, show_warning

from ..engine.request import RefineRequest
from ..models import registry
from ..models.refiner import resolve_device
from ._napari_layers import ROLE, StepProgress, layer_array, layer_job, notify_error, result_layer, spatial_shape
from ._widget_launch import launch
from .lazy_worker import lazy_reason
from .preflight import LARGE_RUN_OBJECTS, check_job, estimate_seconds, estimate_text
from .worker import RefineCancelled, assemble, iter_job

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
    if lazy_reason(layer_array(labels), multiscale=bool(getattr(labels, "multiscale", False))) is not None:
        show_warning(
            f"SegRefiner: {labels.name!r} is big or zarr/dask-backed: refine it lazily with the dock widget "
            "(Plugins > SegRefiner)"
        )
        return None
    image = find_image(viewer, labels)
    if image is None:
        show_warning(f"SegRefiner: no Image layer has the shape of {labels.name!r} {spatial_shape(labels)}")
        return None
    job = layer_job(viewer, image, labels, RefineRequest(model=registry.DEFAULT_MODEL, device="auto"))
    objects, why = check_job(job, labels.name)
    if why is not None:
        show_warning(f"SegRefiner: {why}")
        return None
    if objects > LARGE_RUN_OBJECTS and resolve_device(job.request.device).type == "cpu":
        text = estimate_text(objects, estimate_seconds(objects, job.request.model, job.request.steps), measured=False)
        show_warning(f"SegRefiner: {text}; the dock widget can refine a selected label or cancel")
    if job.positions[0]:
        where = job.positions[0]
        show_info(f"SegRefiner: refining the displayed slice {where} only; the dock widget can do all slices")

    def add_result(finals: dict) -> None:
        viewer.add_layer(result_layer(labels, assemble(job, finals), f"{labels.name} refined"))

    # a progress bar of our own: the number of steps is known once the worker has loaded the model
    bar = StepProgress(f"SegRefiner: {labels.name}")
    # lambdas, not bar's bound methods: Qt holds those weakly, and nothing else keeps bar alive
    slots = {
        "yielded": lambda update: bar.update(update),
        "returned": add_result,
        "errored": lambda exc: None if isinstance(exc, RefineCancelled) else notify_error(exc),
        "finished": lambda: bar.close(),
    }
    return launch(iter_job, job, slots=slots).worker
