"""The from-scratch Lite denoiser: the network contract at every size its divisor allows."""

from __future__ import annotations

import pytest
import torch

from napari_segrefiner.models.config import LiteConfig
from napari_segrefiner.models.nets import build_network


@pytest.mark.parametrize("cfg", [LiteConfig.tiny(), LiteConfig()], ids=["tiny", "default"])
def test_lite_contract(cfg):
    torch.manual_seed(4)
    m = build_network(cfg).eval()
    d = cfg.divisor
    x = torch.randn(2, 4, 2 * d, 3 * d)
    with torch.no_grad():
        y = m(x, torch.tensor([5, 0]))
    assert y.shape == (2, 1, 2 * d, 3 * d)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    assert cfg.divisor == 4 * 2 ** (len(cfg.channel_mult) - 1)


def test_lite_output_depends_on_the_mask_and_the_timestep():
    torch.manual_seed(5)
    cfg = LiteConfig.tiny()
    m = build_network(cfg).eval()
    d = cfg.divisor
    x = torch.randn(1, 4, 2 * d, 2 * d)
    flipped = x.clone()
    flipped[:, 3] = -flipped[:, 3]
    with torch.no_grad():
        base = m(x, torch.tensor([3]))
        assert not torch.equal(base, m(flipped, torch.tensor([3])))
        assert not torch.equal(base, m(x, torch.tensor([0])))
