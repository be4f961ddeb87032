"""The crop cache stores exactly what the recipes drew, and the features what the encoder gives."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _cache_helpers import Recipe as _Recipe  # noqa: E402

from napari_segrefiner.models.config import EncDecConfig
from napari_segrefiner.models.imaging import normalize
from napari_segrefiner.models.nets import build_network
from napari_segrefiner.training.feature_cache import CachedCrops, build_cache, encode_cache


def test_cached_items_are_the_recipes_items(tmp_path):
    a, b = _Recipe(0), _Recipe(1000)
    build_cache(tmp_path / "c", [a, b], [1.0, 1.0], items=10, count=3, seed=4)
    assert json.loads((tmp_path / "c" / "progress.json").read_text())["done"] == 10
    ds = CachedCrops(tmp_path / "c", seed=9, length=40)
    picks = np.random.default_rng(4).choice(2, size=10, p=[0.5, 0.5])
    for i in range(len(ds)):
        item = ds[i]
        rng = np.random.default_rng([9, i])
        j, k = int(rng.integers(10)), int(rng.integers(3))
        source = (a, b)[picks[j]].item_with_coarse(j, 3)
        assert torch.equal(item["image"], source["image"])
        assert torch.equal(item["fine"], source["fine"])
        assert torch.equal(item["coarse"], source["coarse"][k : k + 1])
        assert item["features"] == ()


def test_a_finished_cache_is_not_drawn_again_and_other_settings_are_refused(tmp_path):
    recipe = _Recipe(0)
    build_cache(tmp_path / "c", [recipe], [1.0], items=5, count=2)
    recipe.calls.clear()
    build_cache(tmp_path / "c", [recipe], [1.0], items=5, count=2)
    assert recipe.calls == []
    with pytest.raises(ValueError, match="other settings"):
        build_cache(tmp_path / "c", [recipe], [1.0], items=5, count=3)


def test_features_are_the_encoders_output_in_float16(tmp_path):
    build_cache(tmp_path / "c", [_Recipe(0)], [1.0], items=3, count=1)
    torch.manual_seed(0)
    net = build_network(EncDecConfig(encoder="efficientnet-lite0"))
    encode_cache(tmp_path / "c", net, tmp_path / "f", batch=2)
    ds = CachedCrops(tmp_path / "c", tmp_path / "f", length=3)
    for i in range(3):
        item = ds[i]
        with torch.inference_mode():
            want = net.encode(normalize(item["image"][None].float()))
        assert len(item["features"]) == len(want) == 4
        for got, ref in zip(item["features"], want):
            assert got.shape == ref.shape[1:]
            # float16 storage: within one half-precision step (batched and single runs may
            # differ in the last float32 bit, which can flip a rounding)
            torch.testing.assert_close(got, ref[0].half().float(), rtol=1e-3, atol=1e-6)


def test_mismatched_folders_are_refused(tmp_path):
    build_cache(tmp_path / "c", [_Recipe(0)], [1.0], items=2, count=1)
    with pytest.raises(ValueError, match="2 features folders for 1 crop caches"):
        CachedCrops([tmp_path / "c"], [tmp_path / "x", tmp_path / "y"])
