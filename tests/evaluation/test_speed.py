"""The encoder and the per-step decoder timed apart (napari_segrefiner.evaluation.speed)."""

from __future__ import annotations

import pytest
import torch

from napari_segrefiner.evaluation.speed import run_speed, time_parts


def test_encoder_and_decoder_are_timed_and_every_batch_gets_a_row(tiny_model):
    enc, dec = time_parts(tiny_model.network, 2, size=32, device=torch.device("cpu"), repeats=1)
    assert 0.0 <= enc < 5.0 and 0.0 < dec < 5.0
    lines = []
    rows = run_speed(["lite-tiny"], ["cpu"], [1, 2], size=32, steps=6, repeats=1, max_seconds=60.0, log=lines.append)
    assert [r["batch"] for r in rows] == [1, 2] and len(lines) == 2
    for r in rows:  # one encoder pass per object, one decoder pass per step
        assert r["per_object_s"] == pytest.approx((r["encode_s"] + 6 * r["denoise_s"]) / r["batch"])
        assert r["params"] > 0
    assert "refine_end_to_end_s" in rows[0]  # batch 1 also times refine() on one object
    assert "encoder" in lines[0] and "decoder" in lines[0]


def test_an_encoder_decoder_network_spends_time_in_its_encoder():
    rows = run_speed(["encdec"], ["cpu"], [1], size=64, steps=6, repeats=1, max_seconds=60.0, log=lambda s: None)
    assert rows[0]["encode_s"] > 0.0 and rows[0]["denoise_s"] > 0.0


def test_a_batch_that_would_take_too_long_is_skipped_not_run():
    rows = run_speed(["lite-tiny"], ["cpu"], [1, 4096], size=32, repeats=1, max_seconds=1e-9, log=lambda s: None)
    assert "skipped" in rows[1] and "encode_s" not in rows[1]
