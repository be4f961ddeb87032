"""Lazy runs of the dock widget: zarr/dask-backed masks refined into a zarr store (real viewer).

Small arrays (512 x 512, chunks of 128 px with objects across chunk borders) and the tiny
random network; the result must equal in-memory ``refine(mode="instance")`` bit for bit.
Where a test acts mid-run, the first progress report of ``refine_lazy`` waits until the
test releases it (a gate inside a dask task), which makes "mid-run" deterministic.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("napari")
zarr = pytest.importorskip("zarr")
da = pytest.importorskip("dask.array")
pytestmark = pytest.mark.gui

from napari.utils import progress  # noqa: E402
from napari.utils.notifications import notification_manager  # noqa: E402

from napari_segrefiner import load_refiner, refine  # noqa: E402
from napari_segrefiner._napari import _napari_menu, lazy_worker  # noqa: E402
from napari_segrefiner._napari._widget import SegRefinerWidget  # noqa: E402
from napari_segrefiner._napari._widget_lazy import STORE_KEY, lazy_status  # noqa: E402
from napari_segrefiner._napari.worker import CPU_BATCH_SIZE  # noqa: E402
from napari_segrefiner.lazy import refine as _lazy  # noqa: E402

RUN_TIMEOUT = 60_000
REAL_REFINE_LAZY = _lazy.start_lazy


def slide(side=512, step=90):
    """An RGB image of discs and coarse labels (offset boxes) of them; many cross 128 px borders."""
    yy, xx = np.mgrid[:side, :side]
    image = np.full((side, side, 3), 30, dtype=np.uint8)
    labels = np.zeros((side, side), dtype=np.int32)
    k = 0
    for cy in range(40, side - 20, step):
        for cx in range(40, side - 20, step):
            k += 1
            r = 12 + k % 7
            image[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = (210, 110, 190)
            labels[max(cy - r - 4, 0) : cy + r + 3, max(cx - r - 2, 0) : cx + r + 5] = k
    return image, labels


def as_zarr(array, path, chunk=128):
    z = zarr.create_array(
        store=str(path), shape=array.shape, dtype=array.dtype, chunks=(chunk, chunk, *array.shape[2:])
    )
    z[...] = array
    return z


def expected(checkpoint, image, labels, **kw):
    refiner = load_refiner(checkpoint, device="cpu").with_options(batch_size=CPU_BATCH_SIZE)
    return refine(image, labels, model=refiner, mode="instance", seed=0, **kw)


def stores(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(lazy_worker.STORE_PREFIX))


def layer_names(viewer):
    return [layer.name for layer in viewer.layers]


@pytest.fixture
def lazy_setup(make_napari_viewer, tiny_checkpoint, tmp_path):
    """A viewer with a zarr-backed RGB image and zarr-backed labels, and the docked widget."""
    viewer = make_napari_viewer()
    image, labels = slide()
    viewer.add_image(as_zarr(image, tmp_path / "image.zarr"), name="img", rgb=True, scale=(0.5, 0.5))
    layer = viewer.add_labels(as_zarr(labels, tmp_path / "labels.zarr"), name="mask", scale=(0.5, 0.5))
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SegRefiner")
    widget.lazy_store_dir = str(tmp_path / "out")
    (tmp_path / "out").mkdir()
    use_tiny(widget, tiny_checkpoint, image="img", mask="mask")
    return viewer, widget, layer, (image, labels), tmp_path / "out"


def use_tiny(widget, checkpoint, *, image, mask):
    widget.reset_choices()
    widget._image.value = widget._viewer.layers[image]
    widget._mask.value = widget._viewer.layers[mask]
    widget.set_model(checkpoint)
    widget._device.value = "cpu"


class Gate:
    """Wraps start_lazy (refine_lazy of a request): its first progress report waits (inside a
    dask task) until released."""

    def __init__(self):
        self.first = threading.Event()
        self.release = threading.Event()

    def __call__(self, *args, progress=None, **kwargs):
        def report(done, total):
            progress(done, total)
            if not self.first.is_set():
                self.first.set()
                self.release.wait(10)

        return REAL_REFINE_LAZY(*args, progress=report, **kwargs)


@pytest.mark.slow
def test_lazy_mode_is_chosen_for_zarr_masks_and_disables_what_it_lacks(qtbot, lazy_setup):
    viewer, widget, layer, (_, labels), _ = lazy_setup
    assert widget.lazy_reason() == "zarr-backed"
    assert "lazy mode (zarr-backed)" in widget._status.value and "no step previews" in widget._status.value
    lacking = [widget._only_changed, widget._rerefine, widget._replace, widget._show_unc, *widget._hints.widgets]
    assert not any(w.enabled for w in lacking) and not widget._review.isEnabled()
    assert widget._only_changed.tooltip.startswith("Not for lazy runs")
    # an in-memory mask: everything back, tooltips too
    viewer.add_labels(labels, name="numpy mask")
    widget._mask.reset_choices()
    widget._mask.value = viewer.layers["numpy mask"]
    assert widget.lazy_reason() is None and widget._status.value == ""
    assert all(w.enabled for w in lacking) and widget._review.isEnabled()
    assert not widget._only_changed.tooltip.startswith("Not for lazy runs")
    # numpy planes above the threshold, dask data and multiscale layers are lazy too
    assert lazy_worker.lazy_reason(np.zeros((2, 2))) is None
    assert lazy_worker.lazy_reason(da.zeros((64, 64))) == "dask-backed"
    assert lazy_worker.lazy_reason(np.zeros((1, 1)), multiscale=True) == "multiscale layer"
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(4097, 4096), strides=(0, 0))
    assert lazy_worker.lazy_reason(big) == "4097 x 4096 px planes"
    # refused with a message: whole/hr modes, re-runs; the menu command points at the widget
    widget._mask.value = layer
    widget._mode.value = "whole"
    assert widget.start() is None and "instance mode" in widget._status.value
    widget._mode.value = "auto"
    assert widget.rerefine_selected() is None and "not available for lazy runs" in widget._status.value
    n = len(notification_manager.records)
    assert _napari_menu.refine_selected_labels(layer, viewer) is None
    assert "dock widget" in str(notification_manager.records[n].message)
    assert not widget.busy


@pytest.mark.slow
@pytest.mark.parametrize("backing", ["zarr", "dask"])
def test_lazy_run_gives_a_store_backed_layer_equal_to_refine(qtbot, lazy_setup, tiny_checkpoint, backing):
    viewer, widget, layer, (image, labels), out = lazy_setup
    if backing == "dask":  # the same data as dask arrays (other chunks: 200 px)
        viewer.layers["img"].data = da.from_array(image, chunks=(200, 200, 3))
        layer.data = da.from_array(labels, chunks=200)
        assert widget.lazy_reason() == "dask-backed"
    before, source = layer_names(viewer), layer.data
    n = len(notification_manager.records)
    worker = widget.start()
    assert worker is not None and widget.busy and widget._run_btn.text == "Cancel"
    assert not layer.editable  # the run reads the mask: no painting into it meanwhile
    records = []
    worker.yielded.connect(records.append)
    qtbot.waitUntil(lambda: widget._lazy is not None and widget._lazy.bar is not None, timeout=RUN_TIMEOUT)
    bar = widget._lazy.bar
    assert bar in progress._all_instances
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    assert bar not in progress._all_instances  # closed in the finished slot
    assert [str(r.message) for r in notification_manager.records[n:] if "stored in" not in str(r.message)] == []

    result = viewer.layers["mask refined"]
    assert layer_names(viewer) == [*before, "mask refined"]
    assert type(result.data).__module__.startswith("zarr")  # napari reads the store lazily
    assert not result.multiscale  # a 512 px plane needs no pyramid
    want = expected(tiny_checkpoint, image, labels)
    assert (want != labels).any()
    np.testing.assert_array_equal(np.asarray(result.data[...]), want)
    np.testing.assert_array_equal(result.scale, layer.scale)
    # progress: objects done reach the total (every object of the mask, none twice)
    objects = len(np.unique(labels)) - 1
    refining = [r for r in records if r.phase in ("refining", "done")]
    assert refining and refining[-1].done == refining[-1].total == objects
    assert refining[-1].chunks_done == refining[-1].chunks_total > 0
    assert "done" in widget._status.value and layer.editable and layer.data is source
    np.testing.assert_array_equal(np.asarray(layer.data[...]), labels)  # input untouched
    # the store lives in its own folder; it goes with the layer
    folder = result.metadata[STORE_KEY]
    assert stores(out) == [folder.rsplit("/", 1)[-1]]
    viewer.layers.remove(result)
    assert stores(out) == []


def test_cancel_mid_run_leaves_layers_and_removes_the_partial_store(qtbot, monkeypatch, lazy_setup):
    viewer, widget, layer, (_, labels), out = lazy_setup
    before = layer_names(viewer)
    gate = Gate()
    monkeypatch.setattr(_lazy, "start_lazy", gate)
    n = len(notification_manager.records)
    worker = widget.start()
    qtbot.waitUntil(gate.first.is_set, timeout=RUN_TIMEOUT)
    assert len(stores(out)) == 1 and not layer.editable  # mid-run: its store is being written
    with qtbot.waitSignal(worker.finished, timeout=RUN_TIMEOUT):
        widget._run_btn.native.click()  # the Run button is Cancel now
        assert widget._run_btn.text == "Cancelling..." and widget._lazy.job.cancel.is_set()
        t0 = time.perf_counter()
        gate.release.set()
    assert time.perf_counter() - t0 < 2.0  # within one network call (milliseconds here)
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    assert layer_names(viewer) == before and layer.editable
    assert stores(out) == []
    assert widget._status.value == "cancelled" and widget._run_btn.text == "Run" and widget._run_btn.enabled
    assert notification_manager.records[n:] == []  # a cancel is no error
    np.testing.assert_array_equal(np.asarray(layer.data[...]), labels)


def test_closing_the_dock_mid_run_cancels_and_removes_the_store(qtbot, monkeypatch, lazy_setup):
    viewer, widget, layer, _, out = lazy_setup
    before = layer_names(viewer)
    gate = Gate()
    monkeypatch.setattr(_lazy, "start_lazy", gate)
    widget.start()
    qtbot.waitUntil(gate.first.is_set, timeout=RUN_TIMEOUT)
    run = widget._lazy
    threading.Timer(0.2, gate.release.set).start()  # the worker resumes while the dock waits for it
    viewer.window.remove_dock_widget(widget.native)  # what the dock's close button does
    assert run.done_event.is_set() and run.outcome == "cancelled"  # cancelled and waited for during removal
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    assert layer_names(viewer) == before and layer.editable and stores(out) == []


@pytest.mark.slow
def test_a_failed_run_reports_and_removes_its_store(qtbot, monkeypatch, lazy_setup):
    viewer, widget, layer, _, out = lazy_setup
    before = layer_names(viewer)
    real, calls = lazy_worker._write_block, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("No space left on device")
        return real(*args)

    monkeypatch.setattr(lazy_worker, "_write_block", failing)
    n = len(notification_manager.records)
    widget.start()
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    messages = [str(r.message) for r in notification_manager.records[n:]]
    assert any("No space left on device" in m for m in messages), messages
    assert layer_names(viewer) == before and layer.editable and stores(out) == []
    assert widget._status.value == "failed (see notification)"


@pytest.mark.slow
def test_stack_displayed_slice_and_pyramid_levels(qtbot, monkeypatch, make_napari_viewer, tiny_checkpoint, tmp_path):
    viewer = make_napari_viewer()
    image, labels = slide(side=256, step=70)
    stack_img = np.stack([image, image[::-1]])
    stack_lab = np.stack([labels, labels[::-1]])
    viewer.add_image(as_zarr(stack_img, tmp_path / "image.zarr", chunk=64), name="img", rgb=True)
    # a multiscale labels layer: the result gets pyramid levels too
    lab_z = as_zarr(stack_lab, tmp_path / "labels.zarr", chunk=64)
    viewer.add_labels([lab_z, da.from_zarr(lab_z)[:, ::2, ::2]], name="mask", multiscale=True)
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SegRefiner")
    widget.lazy_store_dir = str(tmp_path)
    use_tiny(widget, tiny_checkpoint, image="img", mask="mask")
    assert widget.lazy_reason() == "multiscale layer" and not widget._slices.native.isHidden()
    monkeypatch.setattr(lazy_worker, "PYRAMID_MIN", 64)
    viewer.dims.set_current_step(0, 1)
    widget.start()
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    result = viewer.layers["mask refined"]
    assert result.multiscale and [tuple(a.shape) for a in result.data] == [(2, 256, 256), (2, 128, 128), (2, 64, 64)]
    level0 = np.asarray(result.data[0][...])
    np.testing.assert_array_equal(level0[1], expected(tiny_checkpoint, stack_img[1], stack_lab[1]))
    np.testing.assert_array_equal(level0[0], stack_lab[0])  # the other slice: the mask's, untouched
    for f, level in ((2, result.data[1]), (4, result.data[2])):
        np.testing.assert_array_equal(np.asarray(level[...]), level0[:, ::f, ::f])
    # saving the multiscale result writes its full-resolution level
    viewer.layers.selection = {result}
    viewer.layers.save(str(tmp_path / "refined.npy"), selected=True, plugin="napari-segrefiner")
    np.testing.assert_array_equal(np.load(tmp_path / "refined.npy"), level0)


def test_lazy_status_line():
    p = lazy_worker.LazyProgress
    assert lazy_status(p("scanning", 3, 16)).startswith("lazy run: scanning the mask, chunk 3/16")
    assert lazy_status(p("refining", 0, None)).startswith("lazy run: refining (first batch")
    text = lazy_status(p("refining", 1200, 20000, 40, 256, rate=2.0))
    assert text.startswith("lazy run: 1,200/20,000 objects · 2.00/s, about 2.6 h left · 40/256 chunks written")
    assert text.endswith("no step previews, hints, re-runs or review queue")
