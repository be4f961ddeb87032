"""Seconds per forward pass and per object (napari_segrefiner.evaluation.speed)."""

from __future__ import annotations

import torch

from napari_segrefiner.evaluation.speed import run_speed, time_forward


def test_a_forward_pass_is_timed_and_every_batch_gets_a_row(tiny_model):
    assert 0.0 < time_forward(tiny_model.network, 2, size=32, device=torch.device("cpu"), repeats=1) < 5.0
    lines = []
    rows = run_speed(["lite-tiny"], ["cpu"], [1, 2], size=32, steps=6, repeats=1, max_seconds=60.0, log=lines.append)
    assert [r["batch"] for r in rows] == [1, 2] and len(lines) == 2
    for r in rows:
        assert r["per_object_s"] == 6 * r["forward_s"] / r["batch"] and r["params"] > 0
    assert "refine_end_to_end_s" in rows[0]  # batch 1 also times refine() on one object


def test_a_batch_that_would_take_too_long_is_skipped_not_run():
    rows = run_speed(["lite-tiny"], ["cpu"], [1, 4096], size=32, repeats=1, max_seconds=1e-9, log=lambda s: None)
    assert "skipped" in rows[1] and "forward_s" not in rows[1]
