"""The dock widget's review queue in a real viewer: order, Next/Previous (camera, selection,
uncertainty), Accept, Reject, Undo, and its life across layer changes.

Hand-made result and coarse layers (scaled and translated, so that the camera test checks
data-to-world), then one run of the shipped model on a crop of the sample image whose queue
must follow the engine's scores.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari_segrefiner._napari import worker as _jobs  # noqa: E402
from napari_segrefiner._napari._widget import SegRefinerWidget  # noqa: E402
from napari_segrefiner._napari._widget_review import FILL, MIN_SIDE  # noqa: E402
from napari_segrefiner.annotate.review import ReviewQueue  # noqa: E402
from napari_segrefiner.io.sample import coarsen_labels, load_nuclei  # noqa: E402

RUN_TIMEOUT = 60_000
# 40 x 50: coarse 1 rows 2-9 x cols 2-11, 2 rows 20-29 x cols 30-44, 3 rows 30-37 x cols 5-14.
COARSE = np.zeros((40, 50), dtype=np.uint16)
COARSE[2:10, 2:12] = 1
COARSE[20:30, 30:45] = 2
COARSE[30:38, 5:15] = 3
RESULT = COARSE.copy()
RESULT[2:10, 11] = 0  # 1 lost a column
RESULT[19, 30:45] = 2  # 2 grew a row up
RESULT[30:38, 15:17] = 3  # 3 grew two columns right
SCORES = {1: 0.10, 2: 0.30, 3: 0.20}
SCALE, TRANSLATE = (0.5, 2.0), (10.0, -4.0)


@pytest.fixture
def review(make_napari_viewer):
    viewer = make_napari_viewer()
    place = {"scale": SCALE, "translate": TRANSLATE}
    viewer.add_image(np.zeros((40, 50), dtype=np.uint8), name="img", **place)
    coarse = viewer.add_labels(COARSE.copy(), name="mask", **place)
    result = viewer.add_labels(RESULT.copy(), name="mask refined", **place)
    unc = viewer.add_image(np.zeros((40, 50), dtype=np.uint8), name="mask uncertainty", visible=False, **place)
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SegRefiner")
    panel = widget._review
    panel.show_queue(result, ReviewQueue(result.data, COARSE, SCORES), uncertainty=unc)
    return viewer, widget, panel, result, coarse, unc


def rows(panel):
    return [panel.list.item(i).text().split() for i in range(panel.list.count())]


def test_the_list_shows_least_certain_first(review):
    _, _, panel, *_ = review
    assert rows(panel) == [["2", "0.300", "pending"], ["3", "0.200", "pending"], ["1", "0.100", "pending"]]
    assert "3 pending" in panel.info.text()
    assert not panel.buttons["Accept"].isEnabled() and not panel.buttons["Undo"].isEnabled()


@pytest.mark.slow
def test_next_and_previous_centre_the_camera_select_the_label_and_show_uncertainty(review):
    viewer, _, panel, result, _, unc = review
    camera = viewer.scene.camera
    assert panel.next() == 2
    # centroid of 2's refined and coarse pixels (rows 19-29, cols 30-44) in world coordinates
    rows_, cols = np.nonzero((RESULT == 2) | (COARSE == 2))
    world = (rows_.mean() * SCALE[0] + TRANSLATE[0], cols.mean() * SCALE[1] + TRANSLATE[1])
    np.testing.assert_allclose(camera.center[-2:], world)
    height, width = viewer.canvas.size
    box_world = (11 * SCALE[0], 15 * SCALE[1])  # 11 rows x 15 columns, both under MIN_SIDE
    expected_zoom = FILL * min(height / (MIN_SIDE * SCALE[0]), width / (MIN_SIDE * SCALE[1]))
    assert box_world[0] < MIN_SIDE * SCALE[0] and camera.zoom == pytest.approx(expected_zoom)
    assert result.selected_label == 2 and unc.visible
    assert panel.list.currentRow() == 0
    assert (panel.next(), panel.next(), panel.next()) == (3, 1, 1)
    assert result.selected_label == 1
    assert panel.previous() == 3 and result.selected_label == 3 and panel.list.currentRow() == 1
    rows3, cols3 = np.nonzero((RESULT == 3) | (COARSE == 3))
    np.testing.assert_allclose(camera.center[-2:], (rows3.mean() * 0.5 + 10, cols3.mean() * 2 - 4))


def test_accept_reject_and_undo_one_step_each(review):
    _, _, panel, result, coarse, _ = review
    panel.next()  # 2
    assert panel.accept() == 3  # accepted, moved on to 3
    assert panel.queue.status[2] == "accepted" and rows(panel)[0][2] == "accepted"
    np.testing.assert_array_equal(result.data, RESULT)  # accepting writes nothing
    assert panel.reject() == 1  # 3 rejected: its coarse mask is back, moved on to 1
    expected = RESULT.copy()
    expected[30:38, 15:17] = 0
    np.testing.assert_array_equal(result.data, expected)
    np.testing.assert_array_equal(coarse.data, COARSE)  # the coarse layer is only read
    assert panel.queue.counts() == {"pending": 1, "accepted": 1, "rejected": 1}

    assert panel.undo() == 3  # the reject: pixels back, 3 pending and current again
    np.testing.assert_array_equal(result.data, RESULT)
    assert panel.queue.status[3] == "pending" and panel.queue.current == 3 and result.selected_label == 3
    assert panel.undo() == 2 and panel.queue.status[2] == "pending"
    assert panel.undo() is None and not panel.buttons["Undo"].isEnabled()


def test_the_queue_survives_layer_selection_and_goes_with_its_result_layer(review):
    viewer, _, panel, result, coarse, unc = review
    panel.next()
    viewer.layers.selection.active = coarse
    viewer.layers.selection.active = unc
    assert panel.queue is not None and panel.queue.current == 2 and panel.list.count() == 3
    viewer.layers.remove(unc)  # the uncertainty layer may go: the queue stays
    assert panel.queue is not None and panel.next() == 3
    viewer.layers.remove(result)
    assert panel.queue is None and panel.list.count() == 0 and not panel.buttons["Next"].isEnabled()
    assert panel.next() is None


@pytest.mark.slow
def test_a_run_fills_the_queue_with_the_engines_scores(qtbot, monkeypatch, make_napari_viewer):
    """The shipped model on a 96 x 96 crop of the sample: the queue is the engine's order."""
    image, truth = load_nuclei()
    coarse = coarsen_labels(truth, seed=0)[:96, 224:]
    viewer = make_napari_viewer()
    viewer.add_image(image[:96, 224:], name="img")
    viewer.add_labels(coarse, name="mask")
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SegRefiner")
    widget.reset_choices()
    widget._device.value = "cpu"
    widget._steps.value = 3  # quicker than the model's 6
    finals = []
    real = _jobs.start

    def spy(*args, **kwargs):
        for record in real(*args, **kwargs):
            if record.done:
                finals.append(record)
            yield record

    monkeypatch.setattr(_jobs, "start", spy)
    assert widget.start() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=RUN_TIMEOUT)
    scores = finals[-1].uncertainty
    assert scores and len(scores) >= 3
    expected = sorted(scores, key=lambda k: (-scores[k], k))
    panel = widget._review
    assert panel.layer is viewer.layers["mask refined"]
    assert panel.queue.order == tuple(expected)
    assert [int(r[0]) for r in rows(panel)] == expected
    assert [float(r[1]) for r in rows(panel)] == pytest.approx([scores[k] for k in expected], abs=5e-4)
    assert panel.uncertainty is viewer.layers["mask uncertainty"]
