"""Tests for napari_segrefiner.evaluation.coarse: kind registry, seeds, object selection, regions."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from napari_segrefiner.evaluation import coarse
from napari_segrefiner.evaluation.coarse import BenchmarkError
from napari_segrefiner.training.synthesis import dilate_erode, lowres_jitter, lowres_mask, modify_boundary, near_perfect


def _disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


# ----------------------------------------------------------------------------- kinds


def test_registry_names_and_defaults():
    assert list(coarse.KINDS) == [
        "cascadepsp-0.6",
        "cascadepsp-0.8",
        "cascadepsp-0.9",
        "lowres-28",
        "lowres-rel",
        "dilate-3",
        "erode-3",
        "lowres-jitter",
        "nearperfect",
    ]
    assert all(isinstance(desc, str) and desc and callable(f) for desc, f in coarse.KINDS.values())
    assert set(coarse.DEFAULT_PEERS_KINDS) <= set(coarse.KINDS)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("cascadepsp-0.8", lambda gt, rng: modify_boundary(gt, rng=rng, iou_target=0.8)),
        ("lowres-28", lambda gt, rng: lowres_mask(gt, size=28)),
        ("dilate-3", lambda gt, rng: dilate_erode(gt, k=3)),
        ("erode-3", lambda gt, rng: dilate_erode(gt, k=-3)),
        ("lowres-jitter", lambda gt, rng: lowres_jitter(gt, rng=rng)),
        ("nearperfect", lambda gt, rng: near_perfect(gt, rng=rng)),
    ],
)
def test_make_kind_is_its_synthesis(kind, expected):
    gt = _disk((80, 80), 40, 38, 20)
    got, replaced = coarse.make_kind(kind, gt, np.random.default_rng(coarse.coarse_seed("s", 3, kind)))
    assert not replaced and got.dtype == bool
    np.testing.assert_array_equal(got, expected(gt, np.random.default_rng(coarse.coarse_seed("s", 3, kind))))


def test_empty_coarse_is_replaced():
    gt = np.zeros((40, 40), bool)
    gt[18:22, 18:22] = True  # a 4 px square vanishes under a 3 px erosion
    mask, replaced = coarse.make_kind("erode-3", gt, np.random.default_rng(0))
    assert replaced
    np.testing.assert_array_equal(mask, dilate_erode(gt, k=1))


def test_lowres_rel_keeps_eight_pixels():
    gt = _disk((200, 200), 100, 100, 60)
    mask, replaced = coarse.make_kind("lowres-rel", gt, np.random.default_rng(0))
    assert not replaced
    np.testing.assert_array_equal(mask, lowres_mask(gt, factor=8.0))
    small = _disk((60, 60), 30, 30, 10)  # box 21 px: factor 21/8, low-res side 8 px
    np.testing.assert_array_equal(coarse.make_kind("lowres-rel", small, None)[0], lowres_mask(small, factor=21 / 8))


def test_make_kind_unknown_is_a_benchmark_error():
    with pytest.raises(BenchmarkError, match="unknown coarse kind 'blurry-7'; known: cascadepsp-0.6"):
        coarse.make_kind("blurry-7", np.ones((8, 8), bool), np.random.default_rng(0))
    assert issubclass(BenchmarkError, ValueError)


def test_check_kinds():
    assert coarse.check_kinds(None) == list(coarse.KINDS)
    assert coarse.check_kinds("erode-3") == ["erode-3"]
    assert coarse.check_kinds(["lowres-28", "erode-3", "lowres-28"]) == ["lowres-28", "erode-3"]
    with pytest.raises(BenchmarkError, match="unknown coarse kind 'nope'"):
        coarse.check_kinds(["erode-3", "nope"])
    with pytest.raises(BenchmarkError, match="unknown coarse peers kind 'nope'"):
        coarse.check_kinds(["nope"], "peers kind")
    with pytest.raises(BenchmarkError, match="no coarse kinds given"):
        coarse.check_kinds([])


# ----------------------------------------------------------------------------- seeds


def test_key_is_stable_sha256():
    # pinned: a changed key would silently change every coarse mask and object subset
    assert coarse._key("davis") == 4635500190599043140
    assert coarse._key("davis") == int.from_bytes(hashlib.sha256(b"davis").digest()[:8], "little")
    assert 0 <= coarse._key("x") < 2**64 and coarse._key("x") != coarse._key("y")


def test_coarse_seed_depends_on_every_part():
    base = coarse.coarse_seed("set", 4, "erode-3", 0)
    assert base.entropy == [0, coarse._key("set"), 4, coarse._key("erode-3")]
    draw = lambda ss: np.random.default_rng(ss).integers(0, 2**62)  # noqa: E731
    assert draw(coarse.coarse_seed("set", 4, "erode-3", 0)) == draw(base)  # reproducible
    others = [("other", 4, "erode-3", 0), ("set", 5, "erode-3", 0), ("set", 4, "dilate-3", 0), ("set", 4, "erode-3", 1)]
    assert len({draw(coarse.coarse_seed(*args)) for args in others} | {draw(base)}) == 5


# ----------------------------------------------------------------------------- selection


def test_select_objects_all_when_not_limited():
    assert coarse.select_objects(5, None, "s") == [0, 1, 2, 3, 4]
    assert coarse.select_objects(5, 5, "s") == [0, 1, 2, 3, 4]
    assert coarse.select_objects(5, 9, "s") == [0, 1, 2, 3, 4]
    assert coarse.select_objects(0, None, "s") == []


def test_select_objects_seeded_subset():
    picked = coarse.select_objects(100, 10, "cells", seed=3)
    assert len(picked) == 10 and picked == sorted(set(picked)) and all(0 <= i < 100 for i in picked)
    assert coarse.select_objects(100, 10, "cells", seed=3) == picked  # same in every run
    assert coarse.select_objects(100, 10, "disks", seed=3) != picked  # every set its own subset
    assert coarse.select_objects(100, 10, "cells", seed=4) != picked
    rng = np.random.default_rng(np.random.SeedSequence([3, coarse._key("cells"), coarse._key("select")]))
    assert picked == sorted(int(i) for i in rng.choice(100, size=10, replace=False))


# ----------------------------------------------------------------------------- region


def test_evaluation_region():
    assert coarse.evaluation_region((100, 110, 200, 240), (500, 500)) == (60, 150, 160, 280)
    assert coarse.evaluation_region((0, 100, 0, 10), (150, 150)) == (0, 150, 0, 110)
    assert math.isclose(coarse.REL_PAD, 1.0) and coarse.MIN_PAD == 32
