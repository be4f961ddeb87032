"""The dock widget's hints: a Labels layer the annotator paints, held by the refinement.

Paint 1 ("object here", green) or 2 ("background here", magenta) into a hints layer; on
Run the hints of the refined plane(s) go with the :class:`~.worker.RefineJob` to
``iter_refine(hints=...)``, which holds every hinted pixel in every step and in the
result. :class:`HintsPanel` holds the "New hints layer" button, the "hints" layer chooser
(none by default; a new hints layer is chosen at once) and the colour legend, and checks
the chosen layer before a run (:meth:`HintsPanel.hints_for`): another shape than the mask,
or values other than 0, 1 and 2, refuse the run with a message. Main thread only.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Label, PushButton
from napari.layers import Labels
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.notifications import show_warning
from qtpy.QtCore import Qt

from ._napari_layers import ROLE, layer_array, spatial_shape

__all__ = ["HINT_COLORS", "HintsPanel", "hints_colormap"]

HINT_COLORS = {1: "#00e000", 2: "#ff00ff"}  # object: green, background: magenta (clear on H&E and on grey)
LEGEND = (
    f"<span style='color:{HINT_COLORS[1]}'>&#9632;</span> 1 = object &nbsp; "
    f"<span style='color:{HINT_COLORS[2]}'>&#9632;</span> 2 = background &nbsp; (0 = free)"
)


def hints_colormap() -> DirectLabelColormap:
    """Green for 1, magenta for 2, transparent elsewhere (any other value shows grey: an error)."""
    return DirectLabelColormap(color_dict={None: "#808080", 0: "transparent", 1: HINT_COLORS[1], 2: HINT_COLORS[2]})


class HintsPanel:
    """ "New hints layer" button, "hints" layer chooser and legend (see the module docstring).

    ``widgets`` go into the dock widget's own container (one column of labels with the rest).
    """

    def __init__(self, viewer, mask_widget: ComboBox):
        self._viewer = viewer
        self._mask = mask_widget
        self.new = PushButton(
            text="New hints layer",
            tooltip="A Labels layer over the mask: paint 1 = object, "
            "2 = background; every hinted pixel is held in the result",
        )
        self.layer = ComboBox(
            label="hints",
            choices=self._choices,
            nullable=True,
            value=None,
            tooltip="Hints used on Run (none: no hints)",
        )
        self.legend = Label(label="", value=LEGEND)
        self.legend.native.setTextFormat(Qt.TextFormat.RichText)
        self.widgets = [self.new, self.layer, self.legend]
        self.new.changed.connect(self.new_layer)

    def _choices(self, _widget=None) -> list:
        """Hints layers first, then the other Labels layers (not the widget's own run layers)."""
        layers = [layer for layer in self._viewer.layers if isinstance(layer, Labels)]
        hints = [layer for layer in layers if layer.metadata.get(ROLE) == "hints"]
        return [(layer.name, layer) for layer in hints + [layer for layer in layers if ROLE not in layer.metadata]]

    def new_layer(self, *_) -> Labels | None:
        """Add ``"<mask> hints"`` (zeros of the mask's shape, uint8) in paint mode with label 1, and choose it."""
        mask = self._mask.value
        if mask is None:
            show_warning("SegRefiner: choose or make a coarse mask first")
            return None
        shape = spatial_shape(mask)
        layer = self._viewer.add_labels(
            np.zeros(shape, dtype=np.uint8),
            name=f"{mask.name} hints",
            opacity=0.8,
            colormap=hints_colormap(),
            scale=mask.scale,
            translate=mask.translate,
            axis_labels=mask.axis_labels,
            metadata={ROLE: "hints"},
        )
        layer.brush_size = int(np.clip(min(shape[-2:]) // 60, 2, 20))
        layer.selected_label = 1
        layer.mode = "paint"
        self.layer.reset_choices()
        self.layer.value = layer
        return layer

    def hints_for(self, mask) -> np.ndarray | None:
        """The chosen hints as a uint8 copy of the mask's shape (None: no layer chosen).

        Raises
        ------
        ValueError
            With a message for the user: the layer's shape differs from the mask's, it is
            not integer, or it holds values other than 0, 1 and 2.
        """
        layer = self.layer.value
        if layer is None:
            return None
        if layer not in self._viewer.layers:
            raise ValueError(f"the hints layer {layer.name!r} was removed: choose another one or none")
        data = np.asarray(layer_array(layer))
        shape, name = spatial_shape(mask), f"hints layer {layer.name!r}"
        if data.shape != shape:
            raise ValueError(
                f"{name} has shape {data.shape}, the mask {mask.name!r} {shape}: they must match "
                "(press 'New hints layer' for one of the mask's shape)"
            )
        if data.dtype.kind not in "biu":
            raise ValueError(f"{name} must hold integers 0, 1, 2 (got {data.dtype})")
        values = np.unique(data)
        bad = values[(values < 0) | (values > 2)] if data.dtype.kind != "b" else values[:0]
        if bad.size:
            shown = ", ".join(str(v) for v in bad[:5].tolist())
            raise ValueError(f"{name} holds {shown}: paint only 1 (object) or 2 (background), 0 erases")
        return data.astype(np.uint8)
