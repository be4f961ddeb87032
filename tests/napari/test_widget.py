"""The SegRefiner dock widget in a real viewer (CPU, tiny random network).

Runs wait with ``qtbot.waitUntil``. Where a test must act in the middle of a run, the core
is wrapped so that it pauses after its first step until the test releases it
(:class:`Gate`), which makes "mid-run" deterministic without sleeping.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari.utils import progress  # noqa: E402
from napari.utils.notifications import notification_manager  # noqa: E402

from napari_segrefiner._napari import _widget_launch as _launch  # noqa: E402
from napari_segrefiner._napari import worker as _jobs  # noqa: E402
from napari_segrefiner._napari._widget import SegRefinerWidget  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REAL_CORE = _jobs.start
RUN_TIMEOUT = 30_000


class Gate:
    """Wraps the core generator: records its steps and pauses after the first one."""

    def __init__(self, fail: Exception | None = None):
        self.first = threading.Event()
        self.release = threading.Event()
        self.records = []
        self.calls = 0
        self.fail = fail

    def __call__(self, *args, **kwargs):
        self.calls += 1
        for i, record in enumerate(REAL_CORE(*args, **kwargs)):
            self.records.append(record)
            yield record
            if i == 0:
                self.first.set()
                if self.fail is not None:
                    raise self.fail
                self.release.wait(10)


@pytest.fixture
def setup(make_napari_viewer, tiny_checkpoint, blobs):
    """A viewer with an RGB image and coarse labels (scaled, translated) and the docked widget."""
    viewer = make_napari_viewer()
    image, mask = blobs
    transform = {"scale": (0.5, 0.25), "translate": (3.0, 4.0), "axis_labels": ("y", "x")}
    viewer.add_image(image, name="img", **transform)
    labels = viewer.add_labels(mask, name="mask", **transform)
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SegRefiner")
    use_tiny(widget, tiny_checkpoint)
    return viewer, widget, labels


def use_tiny(widget, checkpoint):
    widget.reset_choices()
    widget.set_model(checkpoint)
    widget.form.device.value = "cpu"


def run_to_end(qtbot, widget):
    worker = widget.start()
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    return worker


def layer_names(viewer):
    return [layer.name for layer in viewer.layers]


def shown(w) -> bool:
    return not w.native.isHidden()


@pytest.mark.slow
def test_run_previews_objects_then_adds_result_and_scrubs(qtbot, monkeypatch, setup):
    from napari_segrefiner.engine.records import replay

    viewer, widget, labels = setup
    original = labels.data.copy()
    gate = Gate()
    monkeypatch.setattr(_jobs, "start", gate)
    widget.start()
    assert widget.form.run_btn.text == "Cancel" and not widget.form.mode.enabled
    qtbot.waitUntil(gate.first.is_set, timeout=RUN_TIMEOUT)
    preview = viewer.layers["mask preview"]
    assert viewer.layers["mask uncertainty"].colormap.name == "segrefiner-uncertainty"
    # the first object reaches the preview layer while the run is paused: it changed inside its
    # box only, and the other object still shows its coarse mask
    first = gate.records[0]
    assert not first.done and len(first.objects) == 1 and first.total_objects == 2
    (obj,) = first.objects
    y0, y1, x0, x1 = obj.answer.box
    qtbot.waitUntil(lambda: not np.array_equal(preview.data, original), timeout=5_000)
    outside = np.ones(original.shape, bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(preview.data[outside], original[outside])
    assert widget.form.status.value == "refining 2 of 2 objects"
    # the first object is painted once the preview layer is there; the bar comes after the uncertainty layer
    qtbot.waitUntil(lambda: widget.runs.bar.bar is not None, timeout=5_000)
    bar = widget.runs.bar.bar
    assert (bar.n, bar.total) == (1, 2) and bar in progress._all_instances
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    assert widget.runs.bar is None and bar not in progress._all_instances  # closed in the finished slot

    result = viewer.layers["mask refined"]
    final = gate.records[-1]
    assert final.done
    np.testing.assert_array_equal(result.data, final.mask)
    assert result.data.dtype == labels.data.dtype
    for attr in ("scale", "translate"):
        np.testing.assert_array_equal(getattr(result, attr), getattr(labels, attr))
    assert tuple(result.axis_labels) == ("y", "x")
    np.testing.assert_array_equal(labels.data, original)  # input untouched
    assert widget.form.run_btn.text == "Run" and widget.form.mode.enabled

    # the slider scrubs the reverse steps, composed from the objects' kept states: no new computation
    calls = gate.calls
    steps = viewer.layers["mask steps"]
    objects = [o for r in gate.records for o in r.objects]
    base = np.where(np.isin(original, [o.label for o in objects]), 0, original)
    # slider and status count the same way: 1-based, "step k/6" at slider value k
    assert widget.form.step_slider.max == widget.form.step_slider.value == len(final.steps) == 6
    assert widget.form.step_slider.enabled and widget.form.step_slider.min == 1 and not steps.visible
    widget.form.step_slider.value = 1
    assert steps.visible and widget.form.status.value.startswith("step 1/6")
    np.testing.assert_array_equal(steps.data, replay(base, objects, 0))
    widget.form.step_slider.value = 4
    assert widget.form.status.value.startswith("step 4/6")
    np.testing.assert_array_equal(steps.data, replay(base, objects, 3))
    widget.form.step_slider.value = 6
    assert not steps.visible and widget.form.status.value.startswith("step 6/6")
    assert gate.calls == calls and not widget.busy

    # a second run with "keep previous results" replaces the first run's steps/uncertainty layers,
    # not its result, and reuses the network cached on the widget (keyed by source and device)
    loads = []
    widget.form.only_changed.value = False  # (on, nothing changed: no second run at all)
    widget.form.keep.value = True
    monkeypatch.setattr(_jobs, "start", REAL_CORE)
    monkeypatch.setattr(_jobs, "load_refiner", lambda *a, **k: loads.append(a))
    run_to_end(qtbot, widget)
    names = layer_names(viewer)
    assert names.count("mask steps") == 1 and names.count("mask uncertainty") == 1
    assert "mask refined" in names and "mask refined [1]" in names
    assert loads == [] and len(widget.models) == 1
    [(source, device, _)] = widget.models
    assert device == "cpu" and source.endswith("tiny.pt")


def test_status_line_counts_objects():
    from napari_segrefiner._napari._widget_preview import step_status
    from napari_segrefiner.engine.records import RefineStep

    def status(done, total, plane=0, planes=1):
        step = RefineStep(done - 1, total, "instance", (), done, total, (5, 4, 3, 2, 1, 0), False)
        return step_status(_jobs.Update(plane, planes, (plane,), step))

    assert status(2, 9) == "refining 3 of 9 objects"  # two done: the third is being refined
    assert status(3, 3) == "refining 3 of 3 objects"
    assert status(1, 3, plane=1, planes=3) == "slice 2 of 3: refining 2 of 3 objects"


@pytest.mark.slow
def test_cancel_mid_run_leaves_layers_as_they_were(qtbot, monkeypatch, setup):
    viewer, widget, labels = setup
    before, original = layer_names(viewer), labels.data.copy()
    gate = Gate()
    monkeypatch.setattr(_jobs, "start", gate)
    viewer.layers.selection.active = labels
    n = len(notification_manager.records)
    worker = widget.start()
    qtbot.waitUntil(gate.first.is_set, timeout=RUN_TIMEOUT)
    assert "mask preview" in layer_names(viewer)
    with qtbot.waitSignal(worker.finished, timeout=RUN_TIMEOUT):
        widget.form.run_btn.native.click()  # the Run button is Cancel now
        assert widget.form.run_btn.text == "Cancelling..."
        assert widget.runs.preview.run.job.cancel.is_set()  # the core stops before its next network batch
        gate.release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    assert layer_names(viewer) == before
    np.testing.assert_array_equal(labels.data, original)
    assert widget.form.run_btn.text == "Run" and widget.form.run_btn.enabled
    assert widget.form.status.value == "cancelled"
    assert notification_manager.records[n:] == []  # a cancel is no error
    assert list(viewer.layers.selection) == [labels] and viewer.layers.selection.active is labels  # restored


@pytest.mark.slow
def test_errors_are_reported_and_the_widget_recovers(qtbot, monkeypatch, setup):
    viewer, widget, labels = setup
    before = layer_names(viewer)

    def new_messages(n_before):
        return [str(n.message) for n in notification_manager.records[n_before:]]

    # a torch OOM is a RuntimeError, which a generator worker would swallow (G3)
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    monkeypatch.setattr(_jobs, "start", Gate(fail=oom))
    n = len(notification_manager.records)
    run_to_end(qtbot, widget)
    assert any("out of memory on cpu: try CPU or a smaller region" in m for m in new_messages(n)), new_messages(n)
    assert layer_names(viewer) == before
    assert widget.form.run_btn.text == "Run" and widget.form.run_btn.enabled and widget.form.image.enabled
    assert "failed" in widget.form.status.value

    # a validation error of the core (raised in the worker) reaches the user the same way
    monkeypatch.setattr(_jobs, "start", REAL_CORE)
    widget.form.mode.value = "hr"  # needs >= 256 px per side: the core refuses a 64 px image
    n = len(notification_manager.records)
    run_to_end(qtbot, widget)
    assert any("mode 'hr' needs an image of at least" in m for m in new_messages(n)), new_messages(n)
    assert layer_names(viewer) == before

    # usable again: a run works
    widget.form.mode.value = "auto"
    run_to_end(qtbot, widget)
    assert "mask refined" in viewer.layers


@pytest.mark.slow
def test_run_cannot_start_a_second_worker(qtbot, monkeypatch, setup):
    viewer, widget, labels = setup
    created = []
    real_create = _launch.create_worker

    def counting(*args, **kwargs):
        created.append(real_create(*args, **kwargs))
        return created[-1]

    gate = Gate()
    monkeypatch.setattr(_launch, "create_worker", counting)
    monkeypatch.setattr(_jobs, "start", gate)
    first = widget.start()
    assert widget.start() is None  # refused by the busy flag, not by the button state
    qtbot.waitUntil(gate.first.is_set, timeout=RUN_TIMEOUT)
    assert widget.start() is None and len(created) == 1 and widget.worker is first
    gate.release.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    assert len(created) == 1 and gate.calls == 1


@pytest.mark.slow
def test_replace_input_is_one_undo_step(qtbot, setup):
    viewer, widget, labels = setup
    original = labels.data.copy()
    widget.form.replace.value = True
    widget.form.show_unc.value = False
    run_to_end(qtbot, widget)
    assert "mask refined" not in viewer.layers and "mask uncertainty" not in viewer.layers
    refined = labels.data.copy()
    assert not np.array_equal(refined, original)
    labels.undo()
    np.testing.assert_array_equal(labels.data, original)
    labels.redo()
    np.testing.assert_array_equal(labels.data, refined)


@pytest.mark.slow
def test_stack_refines_displayed_or_all_slices(qtbot, make_napari_viewer, tiny_checkpoint, blobs):
    viewer = make_napari_viewer()
    image, mask = blobs
    stack = np.stack([mask, np.zeros_like(mask), np.roll(mask, 5, axis=1)])  # middle slice empty
    viewer.add_image(np.stack([image] * 3), name="img", rgb=True, scale=(2, 1, 1))
    labels = viewer.add_labels(stack, name="stack", scale=(2, 1, 1))
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget)
    use_tiny(widget, tiny_checkpoint)
    assert shown(widget.form.slices)
    viewer.dims.set_current_step(0, 2)
    widget.form.keep.value = True  # both results stay
    for slices, name in [("displayed slice", "stack refined"), ("all slices", "stack refined [1]")]:
        widget.form.slices.value = slices
        run_to_end(qtbot, widget)
        result = viewer.layers[name].data
        assert result.shape == stack.shape
        np.testing.assert_array_equal(result[1], 0)  # nothing to refine there
        changed = [not np.array_equal(result[z], stack[z]) for z in (0, 2)]
        assert changed == ([True, True] if slices == "all slices" else [False, True])
        np.testing.assert_array_equal(labels.data, stack)
        widget.form.step_slider.value = 1  # scrubbing works on stacks too
        assert viewer.layers["stack steps"].visible
        np.testing.assert_array_equal(viewer.layers["stack steps"].data[1], 0)


@pytest.mark.slow
def test_new_coarse_mask_and_image_layer_as_mask(qtbot, setup):
    viewer, widget, labels = setup
    layer = widget.new_coarse_mask()
    assert layer.data.shape == (64, 64) and layer.mode == "paint" and layer.brush_size >= 10
    np.testing.assert_array_equal(layer.scale, viewer.layers["img"].scale)
    assert widget.form.mask.value is layer
    # an Image layer holding a 0/1 mask is accepted and converted
    viewer.add_image((labels.data > 0).astype(np.uint8), name="binary", **{"scale": labels.scale})
    widget.reset_choices()
    assert "binary" in [name for name, _ in widget.form.mask_choices()]
    widget.form.mask.value = viewer.layers["binary"]
    run_to_end(qtbot, widget)
    assert viewer.layers["binary refined"]._type_string == "labels"


@pytest.mark.slow
def test_model_choices_missing_model_and_download(qtbot, monkeypatch, setup, tmp_path):
    viewer, widget, labels = setup
    from napari_segrefiner.models import registry

    # the shipped model is being trained and may be absent: say so, in the widget and on Run
    real_resolve = registry.resolve

    def resolve(name, cache=None, **kwargs):
        if name == "segrefiner-lite":
            raise FileNotFoundError(f"the shipped model {name!r} is missing from this installation")
        return real_resolve(name, cache=cache, **kwargs)

    monkeypatch.setattr(registry, "resolve", resolve)
    widget.set_model("segrefiner-lite")
    assert "missing" in widget.form.choice.status.value and not shown(widget.form.choice.download_btn)
    n_records = len(notification_manager.records)
    run_to_end(qtbot, widget)
    messages = [str(n.message) for n in notification_manager.records[n_records:]]
    assert any("is missing from this installation" in m for m in messages), messages
    widget.set_model(tmp_path / "nothing.pt")
    assert widget.start() is None and not widget.busy  # refused before any worker starts

    # official models: a Download button while not cached in the (changeable) cache folder
    calls = []

    def fake_fetch(name, *, cache=None, progressbar=False, trust_unknown_hash=False):
        calls.append((name, cache, trust_unknown_hash))
        progressbar.total = 4
        progressbar.update(4)
        path = Path(cache) / registry.MODELS[name].filename
        path.write_bytes(b"weights")
        return path

    monkeypatch.setattr(registry, "fetch", fake_fetch)
    widget.set_model("segrefiner-hr")
    widget.form.choice.cache.value = tmp_path
    assert shown(widget.form.choice.cache) and shown(widget.form.choice.download_btn)
    assert "no published checksum" in widget.form.choice.download_btn.text
    widget.set_model("segrefiner-lr")
    assert (
        widget.form.choice.download_btn.text == "Download" and widget.form.choice.status.value == "not downloaded yet"
    )
    assert widget.download() is not None
    qtbot.waitUntil(lambda: widget.form.choice.downloading is None, timeout=RUN_TIMEOUT)
    assert not shown(widget.form.choice.download_btn) and widget.form.choice.download_btn.enabled
    assert calls == [("segrefiner-lr", str(tmp_path), False)]
    assert widget.form.choice.status.value == "downloaded"


@pytest.mark.slow
def test_closing_the_widget_stops_the_worker(qtbot, monkeypatch, setup):
    viewer, widget, labels = setup
    before = layer_names(viewer)
    gate = Gate()
    monkeypatch.setattr(_jobs, "start", gate)
    widget.start()
    qtbot.waitUntil(gate.first.is_set, timeout=RUN_TIMEOUT)
    run = widget.runs.preview.run
    threading.Timer(0.2, gate.release.set).start()  # the worker resumes while we wait for it
    viewer.window.remove_dock_widget(widget.native)  # what the dock's close button does
    assert run.done_event.is_set()  # quit + wait happened during removal
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    assert layer_names(viewer) == before


@pytest.mark.slow
def test_closing_the_viewer_stops_the_worker(qtbot, monkeypatch, setup):
    viewer, widget, labels = setup
    gate = Gate()
    monkeypatch.setattr(_jobs, "start", gate)
    widget.start()
    qtbot.waitUntil(gate.first.is_set, timeout=RUN_TIMEOUT)
    run = widget.runs.preview.run
    threading.Timer(0.2, gate.release.set).start()
    viewer.close()
    qtbot.waitUntil(run.done_event.is_set, timeout=RUN_TIMEOUT)
    assert run.outcome != "done"


def _xcb_available() -> str | None:
    if sys.platform != "linux":
        return "the screenshot test needs Linux + Xvfb"
    if shutil.which("xvfb-run") is None and not os.environ.get("DISPLAY"):
        return "no xvfb-run and no X display (apt-get install xvfb)"
    missing = [lib for lib in ("xcb-icccm", "xcb-keysyms") if ctypes.util.find_library(lib) is None]
    if missing:
        return f"Qt's xcb platform needs {missing} (apt-get install libxcb-icccm4 libxcb-keysyms1)"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_xcb_available() is not None, reason=str(_xcb_available()))
def test_screenshot_under_xcb(tiny_checkpoint, tmp_path):
    """docs/make_screenshot.py in a subprocess: Qt's platform (xcb, not offscreen) is per process."""
    out = tmp_path / "shot.png"
    script = ROOT / "docs" / "make_screenshot.py"
    cmd = [sys.executable, str(script), "--model", str(tiny_checkpoint), "--out", str(out)]
    cmd += ["--threads", "1", "--steps", "2"]
    if shutil.which("xvfb-run"):  # a 24-bit screen big enough for the window
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *cmd]
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from PIL import Image

    pixels = np.asarray(Image.open(out).convert("RGB"), dtype=np.float32)
    assert pixels.shape[0] >= 800 and pixels.shape[1] >= 1500
    assert pixels.std() > 5  # not a black (offscreen) grab
