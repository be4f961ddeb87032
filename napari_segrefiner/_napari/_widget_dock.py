"""The dock's controls and its sections, laid out to read at a glance.

:class:`Form` holds every input of the dock widget (the controllers read them, none owns
them) and lays them out as sections, top to bottom:

* the run: image, coarse mask (and "New coarse mask"), which labels and slices, **Run**,
  the step slider and a status line that wraps and speaks plain words;
* "Hints" (:class:`~._widget_hints.HintsPanel`: painted and clicked hints, and the re-runs
  of changed or selected objects);
* "Review" (the review queue, :class:`~._widget_review.ReviewPanel`);
* any extra section a later part of the plugin adds (:meth:`Form.add_section`);
* "Advanced", collapsed: model, mode, steps, device, seed and what happens to results.

Main thread only.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton, Slider, SpinBox
from napari.layers import Image, Labels
from napari.utils.notifications import show_warning
from qtpy.QtWidgets import QComboBox, QGroupBox, QSizePolicy, QVBoxLayout
from superqt import QCollapsible

from ..engine.request import MODES
from ..models.refiner import available_devices
from ._napari_layers import ROLE, is_image_mask, spatial_shape
from ._widget_hints import HintsPanel
from ._widget_models import ModelChoice

__all__ = ["MIN_WIDTH", "ONLY_CHANGED_TIP", "STEPS_TIP", "Form"]

MIN_WIDTH = 340  # px: the dock title and the layer names in the combo boxes stay readable
ONLY_CHANGED_TIP = (
    "Run again over the last result of this image and mask: refine only the objects whose mask "
    "or hints changed; the others keep their result"
)
STEPS_TIP = (
    "Reverse diffusion steps: 'all' = every timestep of the model (the HR global stage skips t=0); fewer is faster"
)
KEEP_TIP = "Off: a new run replaces the last result of the same mask (one undo step on that layer)"


def _group(title: str, widgets: list) -> tuple[QGroupBox, Container]:
    box = QGroupBox(title)
    inner = Container(widgets=widgets)
    inner.native.layout().setContentsMargins(0, 0, 0, 0)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(4, 4, 4, 4)
    layout.addWidget(inner.native)
    return box, inner


class Form:
    """The dock's controls (see the module docstring); ``container`` is the run section."""

    def __init__(self, viewer):
        self._viewer = viewer
        self.image = ComboBox(label="image", choices=self.image_choices)
        self.mask = ComboBox(label="coarse mask", choices=self.mask_choices)
        self.new_mask = PushButton(text="New coarse mask", tooltip="Empty Labels layer over the image, ready to paint")
        self.which = ComboBox(label="labels", choices=["all", "selected label"], value="all")
        self.slices = ComboBox(label="slices", choices=["displayed slice", "all slices"], value="displayed slice")
        self.run_btn = PushButton(text="Run")
        self.step_slider = Slider(label="step", min=1, max=1, value=1, enabled=False)  # 1-based, as the status
        self.status = Label(label="", value="")
        self.status.native.setWordWrap(True)  # never clipped mid-word
        self.status.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status.native.setMinimumWidth(200)

        self.hints = HintsPanel(viewer, self.mask)
        self.clicks_btn = PushButton(
            text="Click hints",
            tooltip="A points layer over the mask: click an object to mark it, Alt/Shift+click to mark "
            "background; each click re-refines that object",
        )
        self.only_changed = CheckBox(text="Only changed objects", value=True, tooltip=ONLY_CHANGED_TIP)
        self.rerefine = PushButton(
            text="Re-refine selected",
            tooltip="Refine the mask's selected label again (with whatever else changed), into the last result",
        )

        self.choice = ModelChoice()
        self.mode = ComboBox(label="mode", choices=list(MODES), value="auto")
        # a combo box, not a spin box: magicgui's spin box cannot show "all" for 0
        steps = [("all", 0), *((str(n), n) for n in range(1, 33))]
        self.steps = ComboBox(label="steps", choices=steps, value=0, tooltip=STEPS_TIP)
        self.device = ComboBox(label="device", choices=available_devices(), value="auto")
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=0)
        self.replace = CheckBox(text="replace input (one undo step)", value=False)
        self.keep = CheckBox(text="keep previous results", value=False, tooltip=KEEP_TIP)
        self.show_unc = CheckBox(text="show uncertainty map", value=True)

        options = [self.mode, self.steps, self.device, self.seed, self.replace, self.keep, self.show_unc]
        rerun = [self.clicks_btn, self.only_changed, self.rerefine]
        #: disabled while a run goes
        self.params = [
            self.image,
            self.mask,
            self.new_mask,
            *self.hints.inputs,
            self.which,
            self.slices,
            *self.choice.inputs,
            *options,
            *rerun,
        ]
        self.container = Container(
            widgets=[
                self.image,
                self.mask,
                self.new_mask,
                self.which,
                self.slices,
                self.run_btn,
                self.step_slider,
                self.status,
            ]
        )
        self.hints_box, hints_inner = _group("Hints", [*self.hints.widgets, *rerun])
        self.advanced = QCollapsible("Advanced")
        self.advanced.setDuration(0)
        advanced_inner = Container(widgets=[*self.choice.widgets, *options])
        self.advanced.addWidget(advanced_inner.native)
        self.inner = [self.container, hints_inner, advanced_inner]  # their combo boxes follow the layers
        layout = self.container.native.layout()
        layout.addWidget(self.hints_box)
        self._extra_at = layout.count()  # review and extra sections go here, before "Advanced"
        layout.addWidget(self.advanced)
        self.container.native.setMinimumWidth(MIN_WIDTH)
        for combo in (self.image, self.mask):
            combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.native.setMinimumContentsLength(12)

    def image_choices(self, _widget=None) -> list:
        layers = self._viewer.layers
        return [(layer.name, layer) for layer in layers if isinstance(layer, Image) and ROLE not in layer.metadata]

    def mask_choices(self, _widget=None) -> list:
        """Labels layers first (the default choice), then Image layers holding a mask."""
        layers = self._viewer.layers
        labels = [layer for layer in layers if isinstance(layer, Labels) and ROLE not in layer.metadata]
        return [(layer.name, layer) for layer in labels + [layer for layer in layers if is_image_mask(layer)]]

    def new_coarse_mask(self, *_) -> Labels | None:
        """Add an empty Labels layer over the chosen image, in paint mode with a big brush."""
        image = self.image.value
        if image is None:
            show_warning("SegRefiner: choose or open an image first")
            return None
        shape = spatial_shape(image)
        n = len(shape)  # an RGB image's transforms cover its spatial axes only
        layer = self._viewer.add_labels(
            np.zeros(shape, dtype=np.uint16),
            name="coarse mask",
            opacity=0.5,
            scale=image.scale[:n],
            translate=image.translate[:n],
            axis_labels=image.axis_labels[:n],
        )
        layer.brush_size = int(np.clip(min(shape[-2:]) // 20, 10, 80))
        layer.selected_label = 1
        layer.mode = "paint"
        self.mask.reset_choices()
        self.mask.value = layer
        return layer

    def add_section(self, widget, *, title: str | None = None):
        """Add a section (a QWidget, or magicgui widgets in a titled group) before "Advanced".

        The place where later parts of the plugin plug in (e.g. a "Learn from accepted"
        section); returns the section's QWidget.
        """
        if isinstance(widget, list):
            widget, inner = _group(title or "", widget)
            self.inner.append(inner)
        elif title is not None and not isinstance(widget, QGroupBox):
            box = QGroupBox(title)
            QVBoxLayout(box).addWidget(widget)
            widget = box
        self.container.native.layout().insertWidget(self._extra_at, widget)
        self._extra_at += 1
        return widget

    def reset_choices(self) -> None:
        for inner in self.inner[1:]:
            inner.reset_choices()

    def say(self, text: str) -> None:
        """Show ``text`` in the status line."""
        self.status.value = text
