"""Training data: each crop encoded once, coarse variants and batches seeded, windows aligned to 32 px."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _adapt_helpers import store, tiny_refiner

from napari_segrefiner.adapt.samples import Batches, Cancelled, coarse_variants, encode_pairs, keep_variant


def test_each_crop_is_encoded_once_in_batches():
    net = tiny_refiner().network
    calls = []
    encode = net.encode
    net.encode = lambda x: calls.append(len(x)) or encode(x)
    data = encode_pairs(net, store(5).pairs, batch=2)
    assert calls == [2, 2, 1] and len(data) == 5
    assert all(f.shape[0] == 5 and not f.requires_grad for f in data.features)
    with pytest.raises(Cancelled):
        encode_pairs(net, store(2).pairs, cancel=lambda: True)


def test_variants_and_batches_are_seeded():
    final = np.zeros((64, 64), bool)
    final[20:44, 16:40] = True
    a = coarse_variants(final, np.random.default_rng(0))
    b = coarse_variants(final, np.random.default_rng(0))
    assert a and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(m.any() and not np.array_equal(m, final) for m in a)
    assert keep_variant(final, np.random.default_rng(0)).dtype == np.float32
    data = encode_pairs(tiny_refiner().network, store(3).pairs)
    variants = [torch.zeros((0, 1, 64, 64))] * 3

    def batch(seed):
        return Batches(data, [0, 1], variants, seed=seed).next()

    one, two = batch(1), batch(1)
    assert all(torch.equal(one[k], two[k]) for k in ("image", "fine", "coarse"))
    assert one["image"].shape[-1] == 64 and len(one["features"]) == len(data.features)
