"""Which parameters learn: the encoder-decoder's fusing decoder levels (auto), its decoder (all), a Lite's all."""

from __future__ import annotations

import pytest
import torch
from _adapt_helpers import store, tiny_refiner

from napari_segrefiner.adapt import adapt
from napari_segrefiner.adapt.layers import trainable


def _weights(refiner) -> dict:
    return {k: v.detach().clone() for k, v in refiner.network.state_dict().items()}


def test_only_the_decoder_learns_and_the_base_is_untouched():
    base, pairs = tiny_refiner(), store(4)
    before = _weights(base)
    res = adapt(base, pairs, max_steps=4, seed=0)
    after, adapted = _weights(base), _weights(res.refiner)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the base refiner is as it was
    coarse = [k for k in before if k.startswith(("levels.32.", "levels.16.", "levels.8."))]
    fixed = [k for k in before if k not in coarse]  # encoder, finest level, stem, head
    assert all(torch.equal(before[k], adapted[k]) for k in fixed)
    assert any(not torch.equal(before[k], adapted[k]) for k in coarse)
    assert res.provenance["trained"] == "decoder levels at strides 32, 16, 8" and not res.refiner.network.training
    flags = {n: p.requires_grad for n, p in res.refiner.network.named_parameters()}
    assert flags == {n: p.requires_grad for n, p in base.network.named_parameters()}  # as loaded
    whole = adapt(base, pairs, max_steps=2, seed=0, layers="all")
    changed = {k for k, v in _weights(whole.refiner).items() if not torch.equal(v, before[k])}
    assert whole.provenance["trained"] == "decoder" and changed and not any(k.startswith("encoder.") for k in changed)
    assert any(not k.startswith(("levels.32.", "levels.16.", "levels.8.")) for k in changed)


def test_a_network_without_frozen_encoder_learns_all_parameters():
    res = adapt(tiny_refiner("lite"), store(3), max_steps=2, seed=0)
    assert res.provenance["trained"] == "all parameters" and res.steps == 2


def test_trainable_marks_what_learns_and_refuses_unknown_layers():
    net = tiny_refiner().network
    params, what = trainable(net, "auto")
    assert what == "decoder levels at strides 32, 16, 8" and params
    coarse = ("levels.32.", "levels.16.", "levels.8.")
    assert all(p.requires_grad == n.startswith(coarse) for n, p in net.named_parameters())
    with pytest.raises(ValueError, match="layers must be one of"):
        trainable(net, "head")
    assert torch.is_tensor(params[0])
