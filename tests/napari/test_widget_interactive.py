"""The dock as an annotator meets it, in a real viewer (CPU, tiny random network).

Its sections, the selection during a run, a re-run replacing the last result (undoable),
an input layer removed mid-run, the review queue following the layer's own undo, clicks as
hints, a stray hint stroke, and the order in which objects are refined. Expectations come
from the core API (:func:`napari_segrefiner.refine`) or from the test's own arrays.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari.utils.notifications import notification_manager  # noqa: E402

from napari_segrefiner import refine  # noqa: E402
from napari_segrefiner._napari import worker as _jobs  # noqa: E402
from napari_segrefiner._napari._widget import SegRefinerWidget  # noqa: E402
from napari_segrefiner._napari._widget_review import HEADER  # noqa: E402
from napari_segrefiner.annotate.review import ReviewQueue  # noqa: E402

REAL_CORE = _jobs.start
RUN_TIMEOUT = 30_000


class Gate:
    """Wraps the core generator: records the requests, pauses after the first record."""

    def __init__(self):
        self.first = threading.Event()
        self.release = threading.Event()
        self.requests = []

    def __call__(self, *args, **kwargs):
        self.requests.append(args[2])
        for i, record in enumerate(REAL_CORE(*args, **kwargs)):
            yield record
            if i == 0:
                self.first.set()
                self.release.wait(10)


@pytest.fixture
def dock(make_napari_viewer, biased_checkpoint, blobs):
    viewer = make_napari_viewer()
    image, mask = blobs
    viewer.add_image(image, name="img")
    labels = viewer.add_labels(mask, name="mask")
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SegRefiner")
    widget.reset_choices()
    widget.set_model(biased_checkpoint)
    widget.form.device.value = "cpu"
    widget.form.steps.value = 3
    viewer.layers.selection.active = labels
    return viewer, widget, labels, image, mask, biased_checkpoint


def run_to_end(qtbot, widget):
    worker = widget.start()
    assert worker is not None, widget.form.status.value
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    return worker


def expected(image, mask, checkpoint, seed, **kwargs):
    return refine(image, mask, model=str(checkpoint), device="cpu", steps=3, seed=seed, **kwargs)


def test_the_dock_reads_at_a_glance(dock):
    _, widget, *_ = dock
    form = widget.form
    assert not form.advanced.isExpanded()  # expert options are folded away
    advanced = form.advanced.content()
    for w in (form.mode, form.steps, form.device, form.seed, form.choice.model):
        assert advanced.isAncestorOf(w.native)
    for w in (form.image, form.mask, form.run_btn, form.status):
        assert not advanced.isAncestorOf(w.native) and not form.hints_box.isAncestorOf(w.native)
    assert form.hints_box.isAncestorOf(form.clicks_btn.native)
    assert form.status.native.wordWrap()
    # a later section goes above "Advanced"
    from qtpy.QtWidgets import QLabel

    extra = widget.add_section(QLabel("extra"), title="Extra")
    layout = form.container.native.layout()
    assert layout.indexOf(extra) < layout.indexOf(form.advanced)


@pytest.mark.slow
def test_selection_stays_on_the_mask_and_the_status_ends_with_done(qtbot, monkeypatch, dock):
    viewer, widget, labels, *_ = dock
    gate = Gate()
    monkeypatch.setattr(_jobs, "start", gate)
    widget.start()
    qtbot.waitUntil(gate.first.is_set, timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: "mask uncertainty" in viewer.layers, timeout=RUN_TIMEOUT)
    qtbot.wait(50)
    assert viewer.layers.selection.active is labels and set(viewer.layers.selection) == {labels}
    assert widget.form.status.value.startswith("refining ")
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    assert "mask refined" in viewer.layers and viewer.layers.selection.active is labels
    assert widget.form.status.value.startswith("done: 2 objects in ")


@pytest.mark.slow
def test_a_rerun_replaces_the_result_and_undo_brings_the_old_one_back(qtbot, dock):
    viewer, widget, labels, image, mask, checkpoint = dock
    run_to_end(qtbot, widget)
    layer = viewer.layers["mask refined"]
    first, second = expected(image, mask, checkpoint, 0), expected(image, mask, checkpoint, 1)
    assert not np.array_equal(first, second)  # (the two seeds give two results)
    np.testing.assert_array_equal(layer.data, first)
    widget.form.seed.value = 1  # other options: a full run, not a re-run of changed objects
    run_to_end(qtbot, widget)
    assert [lay.name for lay in viewer.layers].count("mask refined") == 1 and "mask refined [1]" not in viewer.layers
    assert viewer.layers["mask refined"] is layer
    np.testing.assert_array_equal(layer.data, second)
    layer.undo()  # one step
    np.testing.assert_array_equal(layer.data, first)
    layer.redo()
    np.testing.assert_array_equal(layer.data, second)
    # "keep previous results": both stay
    widget.form.keep.value = True
    widget.form.seed.value = 2
    run_to_end(qtbot, widget)
    assert "mask refined [1]" in viewer.layers
    np.testing.assert_array_equal(layer.data, second)


@pytest.mark.slow
def test_removing_the_mask_mid_run_stops_it_with_a_message_and_no_result(qtbot, monkeypatch, dock):
    viewer, widget, labels, *_ = dock
    gate = Gate()
    monkeypatch.setattr(_jobs, "start", gate)
    seen = len(notification_manager.records)
    widget.start()
    qtbot.waitUntil(gate.first.is_set, timeout=RUN_TIMEOUT)
    viewer.layers.remove(labels)
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    assert widget.form.status.value == "stopped: the layer 'mask' was removed; no result"
    assert [lay.name for lay in viewer.layers] == ["img"]  # no result, no preview layers
    messages = [str(r.message) for r in notification_manager.records[seen:]]
    assert any("'mask' was removed" in m for m in messages), messages
    assert widget.form.run_btn.text == "Run"


def test_the_review_queue_has_headers_and_follows_the_layers_undo(dock):
    viewer, widget, labels, *_ = dock
    coarse = labels.data.copy()
    result = coarse.copy()
    result[6:10, 6:30] = 0  # object 1 shrank
    layer = viewer.add_labels(result.copy(), name="mask refined")
    panel = widget.review
    panel.show_queue(layer, ReviewQueue(result, coarse, {1: 0.5, 2: 0.1}))
    assert panel.header.text().split() == ["label", "uncertainty", "state"] == HEADER.split()
    assert panel.next() == 1 and panel.reject() is not None
    np.testing.assert_array_equal(layer.data, coarse)  # the reject restored the coarse object
    assert panel.queue.status[1] == "rejected"
    layer.undo()  # Ctrl+Z on the layer itself
    np.testing.assert_array_equal(layer.data, result)
    assert panel.queue.status[1] == "pending" and "rejected" not in panel.list.item(0).text()
    layer.redo()
    assert panel.queue.status[1] == "rejected" and panel.list.item(0).text().split()[-1] == "rejected"
    panel.undo()  # the panel's own undo still works after the layer's
    assert panel.queue.status[1] == "pending"
    np.testing.assert_array_equal(layer.data, result)


@pytest.mark.slow
def test_a_click_hint_refines_exactly_the_clicked_object(qtbot, monkeypatch, dock):
    viewer, widget, labels, image, mask, checkpoint = dock
    run_to_end(qtbot, widget)
    layer = viewer.layers["mask refined"]
    before = layer.data.copy()
    points = widget.clicks.points_layer()
    assert viewer.layers.selection.active is points
    # the hints layer follows in the next event-loop turn (one layer added per turn)
    qtbot.waitUntil(lambda: widget.form.hints.layer.value in viewer.layers, timeout=5000)
    assert viewer.layers.selection.active is points
    gate = Gate()
    gate.first.set()
    gate.release.set()
    monkeypatch.setattr(_jobs, "start", gate)
    assert widget.clicks.click((44.0, 42.0)) is not None  # inside object 2
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    assert [r.labels for r in gate.requests] == [(2,)]  # one object refined
    hints = widget.form.hints.layer.value.data
    assert hints[44, 42] == 1 and set(np.unique(hints)) == {0, 1}
    assert np.all(mask[hints == 1] == 2)  # an object click paints inside its object only
    assert len(points.data) == 1
    # object 1 kept its pixels; object 2 is what the core gives with that hint
    want = expected(image, mask, checkpoint, 0, hints=hints)
    np.testing.assert_array_equal(layer.data[before == 1], before[before == 1])
    np.testing.assert_array_equal(layer.data == 2, want == 2)
    # a background click far from every object is refused
    assert widget.clicks.click((2.0, 62.0), background=True) is None
    assert "not within" in widget.form.status.value and len(gate.requests) == 1


def test_a_stroke_that_touches_no_object_is_refused(dock):
    viewer, widget, labels, *_ = dock
    hints = widget.form.hints.new_layer()
    hints.data[60:63, 2:5] = 1  # far from both objects
    with pytest.raises(ValueError, match="touches no object"):
        widget.request()
    hints.data[60:63, 2:5] = 2  # background there is fine
    assert widget.request().hints is not None


def test_the_selected_label_and_the_objects_in_view_come_first(dock):
    viewer, widget, labels, *_ = dock
    labels.selected_label = 2
    assert widget.job().request.order[0] == 2
    labels.selected_label = 1
    assert widget.job().request.order[:2] == (1, 2)


def test_the_warm_up_loads_the_model_and_measures_this_computers_speed(qtbot, dock):
    viewer, widget, *_, checkpoint = dock
    assert widget.runs.speed == {}
    assert widget.warm() is not None  # (done when the dock is first shown)
    qtbot.waitUntil(lambda: widget.runs.speed != {}, timeout=RUN_TIMEOUT)
    assert widget.models.loads == 1 and widget.runs.speed[str(checkpoint)] > 0
    question = widget.runs.confirm_text(widget.request().replace(mode="instance"), 500)
    assert "measured on this computer" in question
