"""The records of a run (napari_segrefiner.engine.records): counts, replay of a step, the confidence frame."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segrefiner.engine.compose import ObjectMap
from napari_segrefiner.engine.records import ObjectResult, confidence_frame, count_records, replay


def test_count_records_is_one_per_network_batch_and_one_per_hr_object():
    assert count_records("instance", 5, 2) == 3 and count_records("whole", 4, 2) == 2
    assert count_records("hr", 3, 32) == 3 and count_records("instance", 0, 8) == 1
    with pytest.raises(ValueError, match="mode must be one of"):
        count_records("auto", 1, 1)


def _obj(label, box, limit, state, conf):
    s = state.shape[0]
    packed = np.stack([np.packbits(state, axis=None)])
    answer = ObjectMap.from_values(label, limit, np.zeros((limit[1] - limit[0], limit[3] - limit[2]), np.float32))
    return ObjectResult(label, answer, 0.5, box, limit, packed, np.full((s, s), conf, np.float16))


def test_replay_pastes_each_state_in_label_order_onto_background_only():
    state = np.zeros((4, 4), bool)
    state[:2, :] = True  # top half of the crop
    base = np.zeros((8, 8), np.int32)
    base[7, 7] = 9  # an object that was not refined: never painted over
    a = _obj(2, (0, 8, 0, 8), (0, 8, 0, 8), state, 0.8)  # top half of the frame: rows 0..3
    b = _obj(1, (2, 6, 0, 8), (2, 6, 0, 8), state, 0.4)  # top half of rows 2..5: rows 2..3
    out = replay(base, [a, b], 0)
    expected = np.zeros((8, 8), np.int32)
    expected[2:4, :] = 1  # label 1 first (label order), then 2 only where still background
    expected[0:2, :] = 2
    expected[7, 7] = 9
    assert np.array_equal(out, expected) and not base[:7].any()


def test_confidence_frame_takes_the_minimum_where_objects_overlap():
    state = np.zeros((4, 4), bool)
    a = _obj(1, (0, 4, 0, 4), (0, 4, 0, 4), state, 0.8)
    b = _obj(2, (2, 6, 2, 6), (2, 6, 2, 6), state, 0.4)
    conf = confidence_frame((8, 8), [a, b])
    assert conf[0, 0] == pytest.approx(0.8, abs=1e-3) and conf[3, 3] == pytest.approx(0.4, abs=1e-3)
    assert conf[7, 7] == 1.0 and conf[5, 5] == pytest.approx(0.4, abs=1e-3)
