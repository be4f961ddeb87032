"""DINOv2 ViT-S/14 token maps: shapes, position-table interpolation and tap selection."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from napari_segrefiner.models.nets.vit import DinoViT


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    net = DinoViT(taps=(2, 5), grid=4).eval()
    with torch.no_grad():
        net.embeddings.position_embeddings.normal_()
    return net


def test_maps_have_one_token_per_patch(vit):
    with torch.inference_mode():
        out = vit(torch.rand(2, 3, 56, 84) * 255)
    assert [tuple(o.shape) for o in out] == [(2, 384, 4, 6)] * 2


def test_the_stored_grid_is_used_as_is_and_other_grids_are_bicubic(vit):
    pos = vit.embeddings.position_embeddings
    assert vit._positions(4, 4) is pos
    got = vit._positions(3, 5)
    table = pos[:, 1:].reshape(1, 4, 4, 384).permute(0, 3, 1, 2)
    want = F.interpolate(table, size=(3, 5), mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
    torch.testing.assert_close(got[:, 1:], want)
    torch.testing.assert_close(got[:, :1], pos[:, :1])


def test_only_blocks_up_to_the_deepest_tap_are_built(vit):
    assert len(vit.encoder.layer) == 6
    assert vit.channels == (384, 384)


def test_sides_must_be_multiples_of_the_patch(vit):
    with pytest.raises(ValueError, match="multiples of 14"):
        vit(torch.zeros(1, 3, 50, 56))
    with pytest.raises(ValueError, match="taps"):
        DinoViT(taps=(12,))
