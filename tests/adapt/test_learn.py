"""Adapting the decoder: seeded, judged on held-out pairs, cancellable, bounded in time, safe."""

from __future__ import annotations

import itertools
import time

import pytest
import torch
from _adapt_helpers import store, tiny_refiner

from napari_segrefiner.adapt import KEEP_TOLERANCE, AdaptCancelled, adapt, iter_adapt


def _weights(refiner) -> dict:
    return {k: v.detach().clone() for k, v in refiner.network.state_dict().items()}


def test_same_pairs_and_seed_give_the_same_weights():
    base, pairs = tiny_refiner(), store(4)
    a = adapt(base, pairs, max_steps=3, seed=3)
    b = adapt(base, pairs, max_steps=3, seed=3)
    c = adapt(base, pairs, max_steps=3, seed=4)
    wa, wb, wc = _weights(a.refiner), _weights(b.refiner), _weights(c.refiner)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)
    assert a.steps == 3 and (a.base_iou, a.adapted_iou) == (b.base_iou, b.adapted_iou)


def test_result_reports_both_held_out_figures_and_keeps_only_a_better_model():
    res = adapt(tiny_refiner(), store(5), max_steps=3, seed=1, holdout=0.4)
    assert len(res.holdout_keys) == 2 and len(res.train_keys) == 3
    assert 0.0 <= res.base_iou <= 1.0 and 0.0 <= res.adapted_iou <= 1.0
    assert res.kept == (res.adapted_iou > res.base_iou and res.adapted_keep_iou >= res.base_keep_iou - KEEP_TOLERANCE)
    p = res.provenance
    assert p["heldout_iou"] == {
        "base": round(res.base_iou, 6),
        "adapted": round(res.adapted_iou, 6),
        "base_keep": round(res.base_keep_iou, 6),
        "adapted_keep": round(res.adapted_keep_iou, 6),
    }
    assert p["pairs"] == {"train": 3, "holdout": 2} and p["steps"] == 3 and p["seed"] == 1
    assert "held-out IoU on 2 pairs" in res.summary()


def test_records_go_through_every_stage_in_order():
    records = list(iter_adapt(tiny_refiner(), store(3), max_steps=2, seed=0))
    stages = [r.stage for r in records]
    assert stages == ["encode", "baseline", "train", "train", "evaluate", "done"]
    assert records[-1].result is not None and records[-1].adapted_iou == records[-1].result.adapted_iou
    assert [r.step for r in records if r.stage == "train"] == [1, 2] and records[2].total == 2
    assert records[2].fraction == 0.5 and records[2].loss > 0


def test_progress_callback_gets_step_total_and_record():
    seen = []
    adapt(
        tiny_refiner(), store(3), max_steps=2, progress=lambda step, total, rec: seen.append((step, total, rec.stage))
    )
    assert seen[0] == (0, 2, "encode") and (2, 2, "train") in seen and seen[-1][2] == "done"


def test_cancel_stops_within_a_step():
    calls = itertools.count()
    records = list(iter_adapt(tiny_refiner(), store(3), max_steps=1000, cancel=lambda: next(calls) > 12))
    assert records[-1].stage == "cancelled" and records[-1].result is None
    assert records[-1].step < 1000
    with pytest.raises(AdaptCancelled):
        adapt(tiny_refiner(), store(3), max_steps=1000, cancel=lambda: True)


def test_cancel_is_honoured_fast_in_wall_time():
    flag = {"stop": False}
    gen = iter_adapt(tiny_refiner(), store(3), seconds=600, cancel=lambda: flag["stop"])
    for rec in gen:
        if rec.stage == "train" and rec.step == 2:
            flag["stop"] = True
            t0 = time.perf_counter()
    assert rec.stage == "cancelled" and time.perf_counter() - t0 < 1.0


def test_time_budget_stops_training_on_the_given_clock():
    ticks = itertools.count()
    res = adapt(tiny_refiner(), store(3), seconds=30, clock=lambda: float(next(ticks)), seed=0)
    assert 0 < res.steps < 30 and res.seconds <= 40


@pytest.mark.parametrize(
    "option, value",
    [
        ("seconds", 0),
        ("seconds", float("nan")),
        ("holdout", 0.0),
        ("holdout", 1.0),
        ("threads", 0),
        ("max_steps", 0),
        ("seed", -1),
        ("lr", 0.0),
        ("max_steps", 2.5),
        ("layers", "head"),
    ],
)
def test_bad_options_are_named(option, value):
    with pytest.raises(ValueError, match=option):
        adapt(tiny_refiner(), store(2), **{option: value})


def test_non_callables_are_refused():
    with pytest.raises(TypeError, match="cancel"):
        adapt(tiny_refiner(), store(2), cancel=1)
    with pytest.raises(TypeError, match="progress"):
        adapt(tiny_refiner(), store(2), progress="x")


def test_threads_are_restored():
    before = torch.get_num_threads()
    adapt(tiny_refiner(), store(2), max_steps=1, threads=2)
    assert torch.get_num_threads() == before


def test_a_model_that_spoils_good_masks_is_not_kept(monkeypatch):
    import napari_segrefiner.adapt.learn as learn

    calls = iter([[0.5], [0.9], [0.6], [0.85]])  # base own, base keep, adapted own, adapted keep
    monkeypatch.setattr(learn, "heldout_ious", lambda *a, **k: next(calls))
    res = adapt(tiny_refiner(), store(3), max_steps=1)
    assert (res.base_iou, res.adapted_iou, res.base_keep_iou, res.adapted_keep_iou) == (0.5, 0.6, 0.9, 0.85)
    assert not res.kept and "spoils already-good masks" in res.summary()


def test_the_encoder_runs_once_per_pair_and_never_while_training(monkeypatch):
    base, pairs = tiny_refiner(), store(4)
    cls, calls = type(base.network), []
    encode = cls.encode
    monkeypatch.setattr(cls, "encode", lambda self, x: calls.append(len(x)) or encode(self, x))
    seen = {}
    for rec in iter_adapt(base, pairs, max_steps=5, seed=0):
        seen.setdefault(rec.stage, sum(calls))
        seen[rec.stage + "_end"] = sum(calls)
    assert seen["baseline"] == 4  # the crops, encoded once
    assert seen["train_end"] == seen["train"]  # no encoder call in any training step
