"""Layers > Segment > "Refine mask (SegRefiner)": refine the selected Labels layer with defaults.

Defaults: the shipped model, ``mode="auto"``, all steps, ``device="auto"``, seed 0, all
labels; for a stack, the slice the viewer shows. The image is the topmost Image layer of
the same shape. The run happens in a worker (a progress bar in the activity dock); the result is
a new Labels layer "<name> refined" with the input's scale, translate and axis labels.
"""

from __future__ import annotations

import napari
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_info, show_warning

from .. import registry
from ._napari_layers import ROLE, StepProgress, layer_job, notify_error, result_layer, spatial_shape
from .worker import assemble, iter_job

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
    job = layer_job(viewer, image, labels, model=registry.DEFAULT_MODEL)
    if job.positions[0]:
        where = job.positions[0]
        show_info(f"SegRefiner: refining the displayed slice {where} only; the dock widget can do all slices")

    def add_result(finals: dict) -> None:
        viewer.add_layer(result_layer(labels, assemble(job, finals), f"{labels.name} refined"))

    # a progress bar of our own: the number of steps is known once the worker has loaded the model
    bar = StepProgress(f"SegRefiner: {labels.name}")
    worker = create_worker(iter_job, job, _ignore_errors=True)
    # lambdas, not bar's bound methods: Qt holds those weakly, and nothing else keeps bar alive
    worker.yielded.connect(lambda update: bar.update(update))
    worker.returned.connect(add_result)
    worker.errored.connect(notify_error)
    worker.finished.connect(lambda: bar.close())
    worker.start()
    return worker
