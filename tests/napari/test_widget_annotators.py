"""The dock widget as annotators meet it: Cancel, closing, checks before a run, long CPU runs.

Runs that must last use the slowed-down network of ``_slow_helpers.py`` (:class:`SlowNet`, 0.05 s
per batch of 4 crops) over 300 objects: about 20 s if nobody stops it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from _slow_helpers import MANY, SlowNet, many_objects, slow_refiner  # noqa: E402
from napari.utils.notifications import NotificationSeverity, notification_manager  # noqa: E402
from qtpy.QtCore import QThreadPool  # noqa: E402

from napari_segrefiner._napari import _widget_launch as _launch  # noqa: E402
from napari_segrefiner._napari import worker as _jobs  # noqa: E402
from napari_segrefiner._napari._napari_layers import uncertainty_colormap  # noqa: E402
from napari_segrefiner._napari._widget import MIN_WIDTH, SegRefinerWidget  # noqa: E402
from napari_segrefiner._napari.worker import CPU_BATCH_SIZE  # noqa: E402
from napari_segrefiner.models.threads import cpu_threads  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def names(viewer):
    return [layer.name for layer in viewer.layers]


def new_records(n):
    return notification_manager.records[n:]


@pytest.fixture
def slow_setup(make_napari_viewer, monkeypatch):
    """A viewer with 300 objects, the docked widget, a slow CPU network and a recording ``confirm``."""
    viewer = make_napari_viewer()
    image, labels = many_objects()
    viewer.add_image(image, name="img")
    layer = viewer.add_labels(labels, name="cells")
    asked = []
    widget = SegRefinerWidget(viewer, confirm=lambda text: asked.append(text) or True)
    viewer.window.add_dock_widget(widget, name="SegRefiner")
    widget.reset_choices()
    widget.form.device.value = "cpu"
    refiner = slow_refiner(0.05)
    monkeypatch.setattr(_jobs, "load_refiner", lambda *args, **kwargs: refiner)
    SlowNet.threads.clear()
    SlowNet.sizes.clear()
    return viewer, widget, layer, asked


def start_and_wait_first_step(qtbot, widget):
    """Start, and wait until the run's layers are there and the network has run a few batches.

    (A short run may already be over by then: the widget then holds no run any more.)
    """
    worker = widget.start()
    assert worker is not None

    def first_step_shown():
        run = widget.runs.preview.run
        return len(SlowNet.threads) >= 3 and (run is None or run.uncertainty is not None)

    qtbot.waitUntil(first_step_shown, timeout=20_000)
    return worker


@pytest.mark.slow
def test_cancel_during_a_300_object_run_resets_the_ui_within_2s(qtbot, slow_setup):
    viewer, widget, layer, asked = slow_setup
    before = names(viewer)
    viewer.layers.selection.active = layer
    n = len(notification_manager.records)
    start_and_wait_first_step(qtbot, widget)
    # asked first: 300 objects on the CPU, with an estimate
    assert len(asked) == 1 and asked[0].startswith(f"{MANY} objects on the CPU: about ")
    assert "cells preview" in names(viewer) and widget.busy
    t0 = time.perf_counter()
    widget.form.run_btn.native.click()  # Run is Cancel now
    qtbot.waitUntil(lambda: not widget.busy, timeout=2_000)
    assert time.perf_counter() - t0 < 2.0
    assert widget.form.run_btn.text == "Run" and widget.form.run_btn.enabled and widget.form.mode.enabled
    assert widget.form.status.value == "cancelled" and widget.runs.bar is None
    assert names(viewer) == before  # every layer as it was
    assert viewer.layers.selection.active is layer and list(viewer.layers.selection) == [layer]
    assert [r for r in new_records(n) if r.severity >= NotificationSeverity.WARNING] == []  # no error shown
    # the worker ran with the GUI's CPU threads (cores - 1), in batches small enough for a quick Cancel
    assert SlowNet.threads and set(SlowNet.threads) == {cpu_threads("gui")}
    assert set(SlowNet.sizes) == {CPU_BATCH_SIZE}  # the refiner asked for 4


@pytest.mark.slow
def test_a_long_cpu_run_is_not_started_when_declined(qtbot, slow_setup):
    viewer, widget, layer, asked = slow_setup
    before = names(viewer)
    widget.confirm = lambda text: asked.append(text) and False
    assert widget.start() is None and not widget.busy
    assert len(asked) == 1 and widget.form.status.value == "not started" and names(viewer) == before
    # a selected label is one object: no question
    widget.form.which.value = "selected label"
    layer.selected_label = 7
    widget.confirm = lambda text: pytest.fail("asked for a single object")
    start_and_wait_first_step(qtbot, widget)
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=2_000)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["dock", "viewer"])
def test_closing_during_a_run_returns_within_2s_without_leftover_thread(qtbot, slow_setup, how):
    viewer, widget, layer, asked = slow_setup
    before = names(viewer)
    start_and_wait_first_step(qtbot, widget)
    run = widget.runs.preview.run
    t0 = time.perf_counter()
    if how == "dock":
        viewer.window.remove_dock_widget(widget.native)  # what the dock's close button does
    else:
        viewer.close()
    assert time.perf_counter() - t0 < 2.0
    assert run.done_event.is_set() and run.outcome == "cancelled" and not widget.busy
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=2_000)
    if how == "dock":  # the unfinished run's layers are gone, nothing was added
        assert names(viewer) == before


SCRIPT = r"""
import sys, time
import torch
import numpy as np
import napari
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

sys.path.insert(0, sys.argv[3])
from _slow_helpers import slow_refiner
from napari_segrefiner._napari import worker

checkpoint, when = sys.argv[1], sys.argv[2]
viewer = napari.Viewer(show=True)
image = np.zeros((64, 64, 3), np.uint8); image[10:30, 10:30] = 200
mask = np.zeros((64, 64), np.uint16); mask[8:32, 8:32] = 1
viewer.add_image(image, name="img"); viewer.add_labels(mask, name="mask")
dock, widget = viewer.window.add_plugin_dock_widget("napari-segrefiner", "SegRefiner")
widget.reset_choices(); widget.set_model(checkpoint); widget.form.device.value = "cpu"
if when == "during a run":
    slow = slow_refiner(0.2)
    worker.load_refiner = lambda *a, **k: slow
app = QApplication.instance()
steps = []

def later(ms, fn):
    QTimer.singleShot(ms, fn)

def run():
    widget.start()
    later(100, wait)

def wait():
    if widget.busy and when == "after a run":
        return later(50, wait)
    later(100, close_dock)

def close_dock():
    t0 = time.perf_counter()
    dock.destroyOnClose()  # the dock's close button
    steps.append(("dock", time.perf_counter() - t0))
    later(200, close_viewer)

def close_viewer():
    t0 = time.perf_counter()
    viewer.close()
    steps.append(("viewer", time.perf_counter() - t0))
    later(300, app.quit)

later(200, run)
app.exec()
print("CLOSED", steps, flush=True)
# no del/gc here: the widget and its timer are torn down by the interpreter's exit, in its
# order (the native widget's destroyed signal after the timer had gone aborted this once)
"""


@pytest.mark.slow
@pytest.mark.parametrize("when", ["after a run", "during a run"])
def test_closing_the_dock_then_the_viewer_never_crashes(tiny_checkpoint, when):
    """In a process of its own, to its exit: PyQt aborts the process on an exception in a slot."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    cmd = [sys.executable, "-c", SCRIPT, str(tiny_checkpoint), when, str(Path(__file__).parent)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CLOSED" in proc.stdout
    assert "Traceback" not in proc.stderr and "has been deleted" not in proc.stderr, proc.stderr[-3000:]
    steps = dict(eval(proc.stdout.split("CLOSED", 1)[1]))  # noqa: S307 (our own output)
    assert steps["dock"] < 2.0 and steps["viewer"] < 2.0


def test_nothing_to_refine_warns_and_starts_no_worker(qtbot, make_napari_viewer, monkeypatch, blobs):
    viewer = make_napari_viewer()
    image, mask = blobs
    viewer.add_image(image, name="img")
    empty = viewer.add_labels(np.zeros_like(mask), name="empty")
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget)
    created = []
    monkeypatch.setattr(_launch, "create_worker", lambda *a, **k: created.append(a))

    def refused(expected: str):
        n = len(notification_manager.records)
        assert widget.start() is None and not widget.busy
        [record] = new_records(n)
        assert record.severity == NotificationSeverity.WARNING and expected in str(record.message)
        assert expected in widget.form.status.value
        assert record.exception is None if hasattr(record, "exception") else True  # a warning, no traceback

    widget.reset_choices()
    widget.form.mask.value = empty
    refused("the coarse mask 'empty' is empty")
    labels = viewer.add_labels(mask, name="mask")
    widget.reset_choices()
    widget.form.mask.value = labels
    widget.form.which.value = "selected label"
    labels.selected_label = 7
    refused("label 7 (the selected label) does not occur in mask 'mask'")
    # a stack: the displayed slice is empty
    stack = np.stack([mask, np.zeros_like(mask)])
    viewer.add_image(np.stack([image] * 2), name="img3", rgb=True)
    viewer.add_labels(stack, name="stack")
    widget.reset_choices()
    widget.form.image.value, widget.form.mask.value = viewer.layers["img3"], viewer.layers["stack"]
    widget.form.which.value = "all"
    viewer.dims.set_current_step(0, 1)
    refused("nothing to refine in the displayed slice (1,) of 'stack'")
    assert created == []  # no worker was ever made


def test_float_01_image_is_offered_as_a_mask(qtbot, make_napari_viewer, tiny_checkpoint, blobs):
    viewer = make_napari_viewer()
    image, mask = blobs
    viewer.add_image(image, name="img")
    viewer.add_image((mask > 0).astype(np.float32), name="float mask")
    viewer.add_image(np.linspace(0, 1, mask.size, dtype=np.float32).reshape(mask.shape), name="ramp")
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    offered = [name for name, _ in widget.form.mask_choices()]
    assert "float mask" in offered and "ramp" not in offered and "img" not in offered
    widget.set_model(tiny_checkpoint)
    widget.form.device.value = "cpu"
    widget.form.mask.value = viewer.layers["float mask"]
    assert widget.start() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert viewer.layers["float mask refined"]._type_string == "labels"


def test_layout_and_uncertainty_colours(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SegRefiner")
    assert widget.native.minimumWidth() == MIN_WIDTH >= 300
    slider = widget.form.step_slider
    assert (slider.min, slider.value) == (1, 1)  # 1-based, as the status line
    assert widget.form.steps.native.currentText() == "all" and widget.form.steps.value == 0  # shown as "all", not 0
    # low but non-zero uncertainty is not drawn (no faint boxes around the crops)
    alpha = uncertainty_colormap().map(np.array([0.0, 0.02, 0.05, 25 / 255, 26 / 255, 0.5, 1.0]))[:, 3]
    assert np.all(alpha[:4] == 0) and np.all(alpha[4:] > 0.1)


def test_slots_are_quiet_once_qt_objects_are_deleted(qtbot, make_napari_viewer, monkeypatch, blobs):
    """The deterministic core of the closing crash: a slot meeting a deleted QTimer or widget."""
    viewer = make_napari_viewer()
    image, mask = blobs
    viewer.add_image(image, name="img")
    viewer.add_labels(mask, name="mask")
    widget = SegRefinerWidget(viewer)  # not docked: nothing else holds its native widget
    widget.runs.preview.flush_timer.deleteLater()  # Qt deletes it (as its parent's teardown does)
    qtbot.waitUntil(lambda: not _alive(widget.runs.preview.flush_timer), timeout=2_000)
    widget.on_destroyed()  # stops the (deleted) timer: no RuntimeError
    widget._closed = False
    with qtbot.waitSignal(widget.native.destroyed, timeout=2_000):
        widget.native.deleteLater()
    assert widget._closed  # the destroyed handler ran (pytest-qt fails on any slot exception)
    widget.runs.on_finished()  # later signals of a worker reach a closed dock: no-ops
    widget.on_run_clicked()
    assert not widget.busy


def _alive(qobject) -> bool:
    try:
        qobject.objectName()
        return True
    except RuntimeError:
        return False


@pytest.mark.slow
def test_menu_command_warns_about_a_long_cpu_run_and_runs(qtbot, make_napari_viewer, monkeypatch):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    image, labels = many_objects()
    viewer.add_image(image, name="img")
    viewer.layers.selection.active = viewer.add_labels(labels, name="cells")
    refiner = slow_refiner(0.0)
    monkeypatch.setattr(_jobs, "load_refiner", lambda *args, **kwargs: refiner)
    monkeypatch.setattr("napari_segrefiner._napari._napari_menu.resolve_device", lambda device: refiner.device)
    n = len(notification_manager.records)
    worker = get_app_model().commands.execute_command("napari-segrefiner.refine_selected").result()
    assert worker is not None
    warnings = [str(r.message) for r in new_records(n) if r.severity == NotificationSeverity.WARNING]
    assert any(f"{MANY} objects on the CPU: about" in m for m in warnings), warnings
    qtbot.waitUntil(lambda: "cells refined" in viewer.layers, timeout=60_000)


@pytest.mark.slow
def test_the_estimate_uses_the_speed_measured_on_this_computer(qtbot, slow_setup):
    viewer, widget, layer, asked = slow_setup
    widget.runs.speed["segrefiner-lite"] = 0.5  # s per object-step, as if timed by an earlier run
    widget.confirm = lambda text: asked.append(text) and False
    assert widget.start() is None
    assert asked == [
        f"{MANY} objects on the CPU: about 15 min (measured on this computer). "
        "Refining the selected label or the displayed slice first is quicker. Start anyway?"
    ]
    # a finished run of >= 10 objects is timed: 20 of the 300
    widget.runs.speed.clear()
    layer.data = np.where(layer.data <= 20, layer.data, 0)
    widget.confirm = lambda text: pytest.fail("20 objects: no question")
    worker = widget.start()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert worker is not None and "cells refined" in viewer.layers
    assert 0 < widget.runs.speed["segrefiner-lite"] < 5
