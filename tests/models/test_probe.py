"""The first forward pass on a tiny input (napari_segrefiner.models.probe)."""

from __future__ import annotations

import pytest
import torch

from napari_segrefiner.models.probe import probe_network


def test_a_segrefiner_network_passes(tiny_model):
    probe_network(tiny_model.network, num_timesteps=6)


class Constant(torch.nn.Module):
    def __init__(self, value, shape=None):
        super().__init__()
        self.value, self.shape = value, shape

    def forward(self, x, t):
        shape = self.shape or (x.shape[0], 1, *x.shape[2:])
        return torch.full(shape, self.value)


@pytest.mark.parametrize(
    "network, error, match",
    [
        (Constant(float("nan")), ValueError, "NaN or infinite logits"),
        (Constant(0.0, shape=(2, 3, 8, 8)), ValueError, r"not floating-point logits of shape \(2, 1, 32, 32\)"),
        (torch.nn.Linear(3, 3), TypeError, "is not a SegRefiner network: Linear fails"),
    ],
)
def test_what_cannot_refine_is_refused_naming_the_parameter(network, error, match):
    with pytest.raises(error, match=match):
        probe_network(network, num_timesteps=6, name="model")
