"""The hand-written Adam (no torch.optim import) steps exactly as torch's."""

from __future__ import annotations

import torch


def test_adam_matches_torch_adam():
    from napari_segrefiner.adapt.optim import Adam

    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 3))
    b = torch.nn.Parameter(a.detach().clone())
    mine, ref = Adam([a]), torch.optim.Adam([b], lr=1e-2)
    for _step in range(5):
        x = torch.randn(3, 4)
        for p, opt in ((a, mine), (b, ref)):
            opt.zero_grad()
            ((p @ x) ** 2).sum().backward()
        mine.step(1e-2)
        ref.step()
        assert torch.allclose(a, b, atol=1e-6)
