"""Starting a run (napari_segrefiner.engine.run): checks before work, the pipeline choice, the dtype back."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segrefiner.diffusion.scheduler import timesteps
from napari_segrefiner.engine.request import RefineRequest
from napari_segrefiner.engine.run import caster, choose_mode, finish, start
from napari_segrefiner.io.masks import label_table
from napari_segrefiner.models.config import RefineConfig


def test_start_checks_everything_before_the_first_record(tiny_model, blobs, monkeypatch):
    from napari_segrefiner.models import refiner

    image, mask = blobs
    monkeypatch.setattr(refiner, "load_refiner", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(ValueError, match=r"labels \[9\] do not occur"):
        start(image, mask, RefineRequest(model="segrefiner-lite", labels=[9]))
    with pytest.raises(ValueError, match="does not match the image"):
        start(image, mask[:-1], RefineRequest(model="segrefiner-lite"))
    with pytest.raises(TypeError, match="cancel must be None or a callable"):
        start(image, mask, RefineRequest(model=tiny_model), cancel=3)
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 6\]"):  # the model's own bound
        start(image, mask, RefineRequest(model=tiny_model, steps=7))


def test_the_timesteps_are_computed_once_and_carried_by_every_record(tiny_model, blobs):
    image, mask = blobs
    records = list(start(image, mask, RefineRequest(model=tiny_model, steps=3, options={"batch_size": 1})))
    expected = tuple(timesteps(tiny_model.schedule, 3))
    assert len(records) == 2 and all(r.steps == expected for r in records)


def test_an_empty_mask_loads_no_model_and_yields_one_record():
    empty = np.zeros((40, 50), np.uint16)
    with pytest.warns(UserWarning, match="mask is empty"):
        records = list(start(np.zeros((40, 50, 3), np.uint8), empty, RefineRequest(model="no/such/file.pt")))
    (only,) = records
    assert only.done and only.mask.dtype == np.uint16 and not only.mask.any() and only.mode == "instance"


def test_choose_mode_from_the_label_table():
    config = RefineConfig(auto_hr_side=100, pad=10, hr_patch=64)
    lab = np.zeros((300, 300), np.int32)
    lab[50:140, 50:60] = 1  # padded box 110 px long: > 100
    lab[200:210, 200:210] = 2
    table = label_table(lab)
    assert choose_mode(table, [1], config, lab.shape) == "hr"
    assert choose_mode(table, [2], config, lab.shape) == "instance"  # padded: 30 px
    assert choose_mode(table, [1, 2], config, lab.shape) == "instance"  # several objects
    assert choose_mode(table, [1], config.replace(auto_hr_side=0), lab.shape) == "instance"  # never
    assert choose_mode(table, [1], config.replace(hr_patch=512), lab.shape) == "instance"  # image too small


def test_caster_gives_the_input_dtype_and_binary_value_back():
    frame = np.array([[0, 3], [3, 0]], np.int64)
    assert caster(np.zeros((2, 2), bool), [1])(frame).dtype == bool
    assert caster(np.zeros((2, 2), np.uint8), [255])(frame).tolist() == [[0, 255], [255, 0]]
    out = caster(np.zeros((2, 2), np.uint16), [3, 4])(frame)
    assert out.dtype == np.uint16 and out.tolist() == [[0, 3], [3, 0]]


def test_finish_keeps_the_last_record_only():
    assert finish(iter([1, 2, 3])) == 3
