"""Hints and re-runs of changed objects in the dock widget, in a real viewer.

The shipped model on a 96 x 96 crop of the sample image (6 nuclei), its network wrapped so
that the test counts the crops it sees: a re-run after editing one nucleus must refine
exactly that one and leave every other object of the result layer bit for bit.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari.utils.notifications import notification_manager  # noqa: E402

from napari_segrefiner import load_refiner, refine  # noqa: E402
from napari_segrefiner._napari import worker as _jobs  # noqa: E402
from napari_segrefiner._napari._widget import SegRefinerWidget  # noqa: E402
from napari_segrefiner._napari._widget_hints import HINT_COLORS  # noqa: E402
from napari_segrefiner.io.sample import coarsen_labels, load_nuclei  # noqa: E402

RUN_TIMEOUT = 60_000
STEPS = 3  # diffusion steps of these runs (quicker than the model's 6): one crop per step per object


class Counting(torch.nn.Module):
    """The shipped network, counting the crops of every call."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.crops: list[int] = []

    def forward(self, x, t):
        self.crops.append(int(x.shape[0]))
        return self.net(x, t)


@pytest.fixture(scope="module")
def shipped():
    return load_refiner(None, device="cpu")


@pytest.fixture
def nuclei(make_napari_viewer, monkeypatch, shipped):
    image, truth = load_nuclei()
    image, coarse = image[:96, 224:], coarsen_labels(truth, seed=0)[:96, 224:]
    viewer = make_napari_viewer()
    viewer.add_image(image, name="img")
    mask = viewer.add_labels(coarse, name="mask")
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SegRefiner")
    widget.reset_choices()
    widget._device.value = "cpu"
    widget._steps.value = STEPS
    net = Counting(shipped.network)
    monkeypatch.setattr(_jobs, "load_refiner", lambda *a, **k: dataclasses.replace(shipped, network=net))
    return viewer, widget, mask, net, image


def run(qtbot, widget):
    worker = widget.start()
    assert worker is not None, widget._status.value
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)


def names(viewer):
    return [layer.name for layer in viewer.layers]


def snapshot(viewer):
    return {layer.name: np.array(layer.data, copy=True) for layer in viewer.layers}


@pytest.mark.slow
def test_a_rerun_after_editing_one_object_refines_exactly_that_object(qtbot, nuclei):
    viewer, widget, mask, net, image = nuclei
    run(qtbot, widget)
    result = viewer.layers["mask refined"]
    first = result.data.copy()
    objects = [int(v) for v in np.unique(mask.data) if v]
    assert sum(net.crops) == STEPS * len(objects)

    # the annotator dilates nucleus 12 by 2 px in the coarse layer
    edited = mask.data.copy()
    edited[ndi.binary_dilation(edited == 12, iterations=2) & (edited == 0)] = 12
    mask.data = edited
    net.crops.clear()
    n_layers = len(viewer.layers)
    unc = viewer.layers["mask uncertainty"]
    unc_before = unc.data.copy()
    old_region = widget._memories.entries[-1].planes[()].memory.objects[12].region
    run(qtbot, widget)
    assert sum(net.crops) == STEPS  # exactly one object refined
    assert widget._status.value == f"re-refined: 1 edited (12), {len(objects) - 1} unchanged"
    assert viewer.layers["mask refined"] is result and "mask refined [1]" not in names(viewer)
    # the first run's steps go once the result is on screen (they no longer show the result)
    qtbot.waitUntil(lambda: "mask steps" not in names(viewer), timeout=5_000)
    assert len(viewer.layers) == n_layers - 1 and "mask uncertainty" in names(viewer)
    for label in objects:
        if label != 12:
            np.testing.assert_array_equal(result.data == label, first == label)  # bit for bit
    alone = refine(image, edited, model=load_refiner(None, device="cpu"), seed=0, labels=[12], steps=STEPS)
    own = (alone == 12) & ((first == 0) | (first == 12))  # where no unchanged object was
    np.testing.assert_array_equal(result.data == 12, own)
    assert 12 in widget._review.queue.order
    # the uncertainty map changed only around 12 (its old and new region)
    outside = np.ones(unc.data.shape, dtype=bool)
    for y0, y1, x0, x1 in (old_region, widget._memories.entries[-1].planes[()].memory.objects[12].region):
        outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(unc.data[outside], unc_before[outside])
    assert not np.array_equal(unc.data, unc_before)

    result.undo()  # the merge was one undo step
    np.testing.assert_array_equal(result.data, first)


@pytest.mark.slow
def test_nothing_changed_removed_objects_and_re_refine_selected(qtbot, nuclei):
    viewer, widget, mask, net, _ = nuclei
    run(qtbot, widget)
    result = viewer.layers["mask refined"]
    first = result.data.copy()
    net.crops.clear()
    n = len(notification_manager.records)
    assert widget.start() is None and not widget.busy  # nothing changed: no worker
    assert widget._status.value.startswith("nothing changed since 'mask refined' was refined")
    assert "nothing changed" in str(notification_manager.records[n].message)

    mask.selected_label = 15
    worker = widget._rerefine.changed.emit(True) or widget._worker  # the button's slot starts a run
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    assert sum(net.crops) == STEPS and widget._status.value.startswith("re-refined: 1 selected (15)")
    np.testing.assert_array_equal(result.data, first)  # same input, same seed: the same object

    edited = mask.data.copy()
    edited[edited == 19] = 0
    mask.data = edited
    net.crops.clear()
    assert widget.start() is None and not widget.busy and net.crops == []  # a removal needs no network
    assert "1 removed (19)" in widget._status.value
    expected = first.copy()
    expected[expected == 19] = 0
    np.testing.assert_array_equal(result.data, expected)
    assert 19 not in widget._review.queue.order


def test_new_hints_layer_with_its_legend(nuclei):
    viewer, widget, mask, *_ = nuclei
    panel = widget._hints
    assert panel.layer.value is None  # no hints unless chosen
    panel.new.changed.emit(True)
    layer = viewer.layers["mask hints"]
    assert layer.data.shape == mask.data.shape and layer.data.dtype == np.uint8 and not layer.data.any()
    assert panel.layer.value is layer and layer.mode == "paint" and layer.selected_label == 1
    colours = layer.colormap.map(np.array([0, 1, 2]))
    assert colours[0][3] == 0  # 0 is transparent
    np.testing.assert_allclose(colours[1][:3], [0, 224 / 255, 0], atol=0.01)  # 1: green
    np.testing.assert_allclose(colours[2][:3], [1, 0, 1], atol=0.01)  # 2: magenta
    text = panel.legend.value
    assert "1 = object" in text and "2 = background" in text and HINT_COLORS[1] in text
    widget._mask.reset_choices()
    assert layer not in widget._mask.choices  # never offered as the coarse mask


@pytest.mark.parametrize("bad", ["shape", "value"])
def test_bad_hints_give_a_message_start_nothing_and_change_no_layer(qtbot, nuclei, bad):
    viewer, widget, _, net, _ = nuclei
    if bad == "shape":
        other = viewer.add_labels(np.zeros((50, 96), dtype=np.uint8), name="other hints")
        widget._hints.layer.reset_choices()
        widget._hints.layer.value = other
        expected = "hints layer 'other hints' has shape (50, 96), the mask 'mask' (96, 96)"
    else:
        widget._hints.new_layer()
        viewer.layers["mask hints"].data[10:12, 10:12] = 3
        expected = "hints layer 'mask hints' holds 3: paint only 1 (object) or 2 (background)"
    before, layers = snapshot(viewer), names(viewer)
    n = len(notification_manager.records)
    assert widget.start() is None and not widget.busy
    assert widget._status.value.startswith(expected)
    assert expected in str(notification_manager.records[n].message)
    qtbot.wait(50)
    assert names(viewer) == layers and net.crops == []
    for name, data in snapshot(viewer).items():
        np.testing.assert_array_equal(data, before[name])


@pytest.mark.slow
def test_hints_reach_the_engine_hold_in_the_result_and_a_hint_edit_reruns_its_object(qtbot, nuclei, monkeypatch):
    viewer, widget, mask, net, _ = nuclei
    hints = widget._hints.new_layer()
    hints.data[40:46, 60:66] = 2  # background inside nucleus 12's coarse mask
    hints.data[90:96, 90:96] = 1  # object: nucleus 12's crop, outside every coarse object -> 12
    assert mask.data[40:46, 60:66].min() == 12 and not mask.data[90:96, 90:96].any()
    given = []
    real = _jobs.start
    monkeypatch.setattr(_jobs, "start", lambda *a, **k: given.append(a[2].hints) or real(*a, **k))
    run(qtbot, widget)
    np.testing.assert_array_equal(given[-1], hints.data)
    result = viewer.layers["mask refined"]
    assert not result.data[40:46, 60:66].any() and (result.data[90:96, 90:96] == 12).all()
    first = result.data.copy()

    hints.data[50:52, 70:72] = 2  # one more hint, in 12's region only
    net.crops.clear()
    run(qtbot, widget)
    assert sum(net.crops) == STEPS and widget._status.value.startswith("re-refined: 1 edited (12)")
    assert not result.data[50:52, 70:72].any() and not result.data[40:46, 60:66].any()
    others = (first != 12) & (first != 0)
    np.testing.assert_array_equal(result.data[others], first[others])


def test_rerun_and_review_on_the_displayed_slice_of_a_stack(qtbot, make_napari_viewer, tiny_checkpoint, blobs):
    """Plane 1 of a 2-plane stack (tiny network): the re-run and a reject write into that plane only."""
    viewer = make_napari_viewer()
    image, mask = blobs
    stack = np.stack([mask, np.roll(mask, 3, axis=0)])
    viewer.add_image(np.stack([image] * 2), name="img", rgb=True)
    labels = viewer.add_labels(stack.copy(), name="stack")
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    widget.set_model(tiny_checkpoint)
    widget._device.value = "cpu"
    viewer.dims.set_current_step(0, 1)
    run(qtbot, widget)
    result = viewer.layers["stack refined"]
    first = result.data.copy()
    np.testing.assert_array_equal(first[0], stack[0])  # plane 0 was not refined

    edited = labels.data.copy()
    edited[1][ndi.binary_dilation(edited[1] == 2, iterations=2) & (edited[1] == 0)] = 2
    labels.data = edited
    run(qtbot, widget)
    assert widget._status.value.startswith("re-refined: 1 edited (2), 1 unchanged")
    np.testing.assert_array_equal(result.data[0], first[0])
    np.testing.assert_array_equal(result.data[1] == 1, first[1] == 1)

    panel = widget._review
    assert set(panel.queue.order) == {1, 2}
    panel.go(1)
    before = result.data.copy()
    panel.reject()  # object 1 of plane 1 back to its coarse mask
    expected = before.copy()
    expected[1][expected[1] == 1] = 0
    expected[1][edited[1] == 1] = 1
    np.testing.assert_array_equal(result.data, expected)
    panel.undo()
    np.testing.assert_array_equal(result.data, before)
