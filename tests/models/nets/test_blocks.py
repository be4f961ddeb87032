"""The concatenating denoiser keeps the official contract: image and mask as input channels."""

from __future__ import annotations

import torch

from napari_segrefiner.models.nets.blocks import ConcatDenoiser


class _Probe(ConcatDenoiser):
    def forward(self, x, t):
        return x.sum(1, keepdim=True) * 0 + x[:, -1:] * 2 + t.view(-1, 1, 1, 1) + x[:, :1]


def test_encode_passes_the_image_and_denoise_concatenates_the_mask():
    net = _Probe()
    image = torch.randn(2, 3, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).to(torch.uint8)
    t = torch.tensor([1, 4])
    (feat,) = net.encode(image)
    assert feat is image
    got = net.denoise(mask, t, (feat,), image)
    want = mask.float() * 2 + t.view(-1, 1, 1, 1) + image[:, :1]
    torch.testing.assert_close(got, want)
