"""Tests for the official-layout UNet, its blocks and the Lite network.

The expected state-dict layout is generated INDEPENDENTLY of our module, from the layer
tables of the released SegRefiner network (the official DenoiseUNet: per-level widths,
ResBlocks and attention placement, and the released checkpoints' key names): the tables
are transcribed below by hand and turned into key names and shapes with those templates.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _released_unet import official_key_shapes
from torch import nn

from napari_segrefiner.models.config import UNetConfig
from napari_segrefiner.models.nets import blocks
from napari_segrefiner.models.nets.unet import UNet

# section 2.3 "Representative full keys with shapes" (the denoise_model.* ones), verbatim
REPRESENTATIVE = {
    "time_embed.weight": (6, 512),
    "input_blocks.0.0.weight": (128, 4, 3, 3),
    "input_blocks.1.0.in_layers.0.weight": (128,),
    "input_blocks.1.0.in_layers.2.weight": (128, 128, 3, 3),
    "input_blocks.1.0.emb_layers.1.weight": (128, 512),
    "input_blocks.1.0.out_layers.3.weight": (128, 128, 3, 3),
    "input_blocks.3.0.op.weight": (128, 128, 3, 3),
    "input_blocks.7.0.skip_connection.weight": (256, 128, 1, 1),
    "input_blocks.13.0.in_layers.2.weight": (512, 256, 3, 3),
    "input_blocks.13.1.norm.weight": (512,),
    "input_blocks.13.1.qkv.weight": (1536, 512, 1),
    "input_blocks.13.1.proj_out.weight": (512, 512, 1),
    "middle_block.1.qkv.bias": (1536,),
    "middle_block.2.emb_layers.1.weight": (512, 512),
    "output_blocks.0.0.in_layers.0.weight": (1024,),
    "output_blocks.0.0.in_layers.2.weight": (512, 1024, 3, 3),
    "output_blocks.0.0.skip_connection.weight": (512, 1024, 1, 1),
    "output_blocks.2.2.conv.weight": (512, 512, 3, 3),
    "output_blocks.5.0.in_layers.2.weight": (512, 768, 3, 3),
    "output_blocks.6.0.in_layers.2.weight": (256, 768, 3, 3),
    "output_blocks.8.1.conv.weight": (256, 256, 3, 3),
    "output_blocks.11.0.skip_connection.weight": (256, 384, 1, 1),
    "output_blocks.12.0.in_layers.2.weight": (128, 384, 3, 3),
    "output_blocks.14.1.conv.weight": (128, 128, 3, 3),
    "output_blocks.17.0.out_layers.3.weight": (128, 128, 3, 3),
    "out.0.weight": (128,),
    "out.2.weight": (1, 128, 3, 3),
}


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def test_reference_table_itself_matches_the_published_counts():
    # Guard on the transcription: section 2.1/2.4 give 453 tensors and 118,604,673 elements,
    # and every representative key of section 2.3 must come out of the generator.
    table = official_key_shapes()
    assert len(table) == 453
    assert sum(_numel(s) for s in table.values()) == 118_604_673
    for k, s in REPRESENTATIVE.items():
        assert table[k] == s, k
    # Section 1.5 says "Attention blocks in total: 10" but lists input 13,14,16,17 (4),
    # middle 1 (1) and output 0-5 (6) = 11; only 11 reproduces 453 tensors / 118,604,673
    # elements, so "10" is a typo in the dossier and the enumeration is right.
    assert sum(k.endswith(".qkv.weight") for k in table) == 11


@pytest.fixture(scope="module")
def official():
    torch.manual_seed(0)
    return UNet(UNetConfig.official()).eval()


def test_official_parameter_and_tensor_counts(official):
    sd = official.state_dict()
    assert len(sd) == 453
    assert sum(p.numel() for p in official.parameters()) == 118_604_673
    assert sum(v.numel() for v in sd.values()) == 118_604_673  # no buffers
    assert UNetConfig.official().divisor == 32


def test_official_state_dict_keys_and_shapes_match_reference(official):
    ours = {k: tuple(v.shape) for k, v in official.state_dict().items()}
    expected = official_key_shapes()
    assert sorted(set(expected) - set(ours)) == []  # missing
    assert sorted(set(ours) - set(expected)) == []  # unexpected
    wrong = {k: (ours[k], expected[k]) for k in expected if ours[k] != expected[k]}
    assert wrong == {}


def test_official_representative_keys(official):
    sd = official.state_dict()
    for k, s in REPRESENTATIVE.items():
        assert tuple(sd[k].shape) == s, k


def test_official_time_embedding_is_embedding_6_by_512(official):
    te = official.time_embed
    assert isinstance(te, nn.Embedding)
    assert (te.num_embeddings, te.embedding_dim) == (6, 512)


def test_official_forward_small_input(official):
    # 32x32 (a multiple of 32) keeps this fast; never 256x256 in tests.
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = official(x, torch.tensor([5]))
    assert y.shape == (1, 1, 32, 32)
    assert torch.isfinite(y).all()


# --------------------------------------------------------------------------- #
# attention: legacy qkv grouping
# --------------------------------------------------------------------------- #
def reference_legacy_attention(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """Straight transcription of section 1.2: reshape to (B*heads, 3*ch, T) BEFORE the
    q/k/v split, scale q and k by ch**-0.25, softmax over keys in float32, heads concatenated
    head-major."""
    b, width, length = qkv.shape
    ch = width // (3 * heads)
    grouped = qkv.reshape(b * heads, 3 * ch, length)
    q, k, v = grouped[:, :ch], grouped[:, ch : 2 * ch], grouped[:, 2 * ch :]
    scale = ch**-0.25
    w = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    w = torch.softmax(w.float(), dim=-1).to(w.dtype)
    a = torch.einsum("bts,bcs->bct", w, v)
    return a.reshape(b, heads * ch, length)


def qkv_major_attention(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """The OTHER common layout (split q, k, v first, then heads) -- must NOT match."""
    b, width, length = qkv.shape
    ch = width // (3 * heads)
    q, k, v = qkv.chunk(3, dim=1)
    q, k, v = (z.reshape(b * heads, ch, length) for z in (q, k, v))
    w = torch.softmax(torch.einsum("bct,bcs->bts", q, k) / ch**0.5, dim=-1)
    return torch.einsum("bts,bcs->bct", w, v).reshape(b, heads * ch, length)


@pytest.mark.parametrize("heads,ch,length", [(4, 8, 10), (2, 16, 7), (1, 5, 3)])
def test_legacy_attention_matches_reference_description(heads, ch, length):
    g = torch.Generator().manual_seed(heads * 100 + ch)
    qkv = torch.randn(3, 3 * heads * ch, length, generator=g)
    ours = blocks.legacy_attention(qkv, heads)
    ref = reference_legacy_attention(qkv, heads)
    assert ours.shape == (3, heads * ch, length)
    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-5)
    if heads > 1:  # the test can tell the two layouts apart
        assert not torch.allclose(ours, qkv_major_attention(qkv, heads), atol=1e-3)


def test_attention_block_matches_manual_computation():
    torch.manual_seed(1)
    blk = blocks.AttentionBlock(16, num_heads=4, groups=4).eval()
    x = torch.randn(2, 16, 3, 5)
    with torch.no_grad():
        y = blk(x)
        flat = x.reshape(2, 16, 15)
        hn = F.group_norm(flat.float(), 4, blk.norm.weight, blk.norm.bias, eps=1e-5)
        qkv = F.conv1d(hn, blk.qkv.weight, blk.qkv.bias)
        a = reference_legacy_attention(qkv, 4)
        expected = (flat + F.conv1d(a, blk.proj_out.weight, blk.proj_out.bias)).reshape(2, 16, 3, 5)
    assert torch.allclose(y, expected, atol=1e-5)
    assert blk.qkv.weight.shape == (48, 16, 1) and blk.proj_out.weight.shape == (16, 16, 1)


# --------------------------------------------------------------------------- #
# GroupNorm32 in float32
# --------------------------------------------------------------------------- #
def test_groupnorm32_computes_in_float32_and_casts_back():
    torch.manual_seed(2)
    gn = blocks.GroupNorm32(4, 16)
    with torch.no_grad():
        gn.weight.uniform_(0.5, 1.5)
        gn.bias.uniform_(-0.5, 0.5)
    x32 = torch.randn(2, 16, 6, 6) * 3 + 5
    xb = x32.to(torch.bfloat16)
    yb = gn(xb)
    assert yb.dtype == torch.bfloat16
    # definition: normalise the bf16 values in float32, cast the result to bf16 -> exact
    exact = F.group_norm(xb.float(), 4, gn.weight, gn.bias, eps=1e-5).to(torch.bfloat16)
    assert torch.equal(yb, exact)
    # and close to the fp32 result within bf16 precision (8 mantissa bits: rel. 2**-8)
    y32 = gn(x32)
    assert y32.dtype == torch.float32
    assert torch.allclose(yb.float(), y32, atol=0.05, rtol=2**-7)


def test_groupnorm_everywhere_uses_norm_groups():
    cfg = UNetConfig(model_channels=32, channel_mult=(1, 2), attention_strides=(2,), norm_groups=8)
    m = UNet(cfg)
    norms = [mod for mod in m.modules() if isinstance(mod, nn.GroupNorm)]
    assert norms and all(isinstance(n, blocks.GroupNorm32) for n in norms)
    assert all(n.num_groups == 8 and n.eps == 1e-5 and n.affine for n in norms)


# --------------------------------------------------------------------------- #
# small configurations and the Lite network
# --------------------------------------------------------------------------- #
SMALL = UNetConfig(model_channels=32, channel_mult=(1, 2), attention_strides=(2,), norm_groups=8)


def test_small_unet_forward_shape_and_timestep_dependence():
    torch.manual_seed(3)
    m = UNet(SMALL).eval()
    assert isinstance(m.time_embed, nn.Embedding) and m.time_embed.num_embeddings == 6
    x = torch.randn(3, 4, 16, 24)
    with torch.no_grad():
        y = m(x, torch.tensor([0, 3, 5]))
        y_other_t = m(x, torch.tensor([1, 3, 5]))
    assert y.shape == (3, 1, 16, 24)
    assert y.dtype == torch.float32
    # the embedding is used: changing t of sample 0 changes only sample 0
    assert not torch.allclose(y[0], y_other_t[0])
    assert torch.allclose(y[1:], y_other_t[1:], atol=1e-6)
    with pytest.raises(IndexError):
        m(x[:1], torch.tensor([6]))  # the table has exactly 6 rows


def test_small_unet_structure_follows_iddpm_rules():
    # For channel_mult=(1, 2), num_res_blocks=2, attention at stride 2 (level 1):
    # input_blocks: 0 conv, 1-2 res 32, 3 down, 4-5 res 32->64 / 64 (+attn); 6 blocks
    # output_blocks: level 1 (3 blocks, attn, upsample on the 3rd), level 0 (3 blocks): 6
    m = UNet(SMALL)
    sd = m.state_dict()
    assert len(m.input_blocks) == 6 and len(m.output_blocks) == 6
    assert sd["input_blocks.4.0.skip_connection.weight"].shape == (64, 32, 1, 1)
    assert "input_blocks.4.1.qkv.weight" in sd and "input_blocks.5.1.qkv.weight" in sd
    assert "input_blocks.1.1.qkv.weight" not in sd
    # decoder input widths: h + popped skip = 64+64, 64+64, 64+32 | 64+32, 32+32, 32+32
    widths = [sd[f"output_blocks.{i}.0.in_layers.2.weight"].shape[1] for i in range(6)]
    assert widths == [128, 128, 96, 96, 64, 64]
    assert sd["output_blocks.2.2.conv.weight"].shape == (64, 64, 3, 3)


def test_unet_with_first_multiplier_not_one():
    # A generic config must work for any channel_mult: the output head takes the width of
    # the last decoder level, model_channels * channel_mult[0] (here 32), not model_channels.
    cfg = UNetConfig(model_channels=16, channel_mult=(2, 2), attention_strides=(), norm_groups=8)
    m = UNet(cfg).eval()
    with torch.no_grad():
        y = m(torch.randn(1, 4, 8, 8), torch.tensor([1]))
    assert y.shape == (1, 1, 8, 8)
