"""The released SegRefiner UNet's state-dict layout, transcribed by hand from its layer tables.

Generated INDEPENDENTLY of our module, from the layer tables of the released network (the
official DenoiseUNet: per-level widths, ResBlocks and attention placement, and the released
checkpoints' key names), for the UNet and checkpoint tests.
"""

from __future__ import annotations

EMB = 512  # time_embed_dim = 4 x model_channels (section 1.3)


def _res(prefix: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
    """ResBlock key template of section 2.3."""
    d = {
        f"{prefix}.in_layers.0.weight": (cin,),
        f"{prefix}.in_layers.0.bias": (cin,),
        f"{prefix}.in_layers.2.weight": (cout, cin, 3, 3),
        f"{prefix}.in_layers.2.bias": (cout,),
        f"{prefix}.emb_layers.1.weight": (cout, EMB),
        f"{prefix}.emb_layers.1.bias": (cout,),
        f"{prefix}.out_layers.0.weight": (cout,),
        f"{prefix}.out_layers.0.bias": (cout,),
        f"{prefix}.out_layers.3.weight": (cout, cout, 3, 3),
        f"{prefix}.out_layers.3.bias": (cout,),
    }
    if cin != cout:
        d[f"{prefix}.skip_connection.weight"] = (cout, cin, 1, 1)
        d[f"{prefix}.skip_connection.bias"] = (cout,)
    return d


def _attn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    """AttentionBlock key template of section 2.3 (Conv1d weights are 3-D)."""
    return {
        f"{prefix}.norm.weight": (c,),
        f"{prefix}.norm.bias": (c,),
        f"{prefix}.qkv.weight": (3 * c, c, 1),
        f"{prefix}.qkv.bias": (3 * c,),
        f"{prefix}.proj_out.weight": (c, c, 1),
        f"{prefix}.proj_out.bias": (c,),
    }


def _conv3(prefix: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (cout, cin, 3, 3), f"{prefix}.bias": (cout,)}


# Section 1.5, transcribed by hand. Encoder: (idx, kind, C_in, C_out, attention?)
_ENCODER = [
    (1, "res", 128, 128, False),
    (2, "res", 128, 128, False),
    (3, "down", 128, 128, False),
    (4, "res", 128, 128, False),
    (5, "res", 128, 128, False),
    (6, "down", 128, 128, False),
    (7, "res", 128, 256, False),
    (8, "res", 256, 256, False),
    (9, "down", 256, 256, False),
    (10, "res", 256, 256, False),
    (11, "res", 256, 256, False),
    (12, "down", 256, 256, False),
    (13, "res", 256, 512, True),
    (14, "res", 512, 512, True),
    (15, "down", 512, 512, False),
    (16, "res", 512, 512, True),
    (17, "res", 512, 512, True),
]
# Decoder: (idx, C_in (h + skip), C_out, attention?, upsample?)
_DECODER = [
    (0, 1024, 512, True, False),
    (1, 1024, 512, True, False),
    (2, 1024, 512, True, True),
    (3, 1024, 512, True, False),
    (4, 1024, 512, True, False),
    (5, 768, 512, True, True),
    (6, 768, 256, False, False),
    (7, 512, 256, False, False),
    (8, 512, 256, False, True),
    (9, 512, 256, False, False),
    (10, 512, 256, False, False),
    (11, 384, 256, False, True),
    (12, 384, 128, False, False),
    (13, 256, 128, False, False),
    (14, 256, 128, False, True),
    (15, 256, 128, False, False),
    (16, 256, 128, False, False),
    (17, 256, 128, False, False),
]


def official_key_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the released ``denoise_model.*`` tensors (prefix stripped)."""
    d: dict[str, tuple[int, ...]] = {"time_embed.weight": (6, EMB)}
    d.update(_conv3("input_blocks.0.0", 4, 128))
    for idx, kind, cin, cout, att in _ENCODER:
        if kind == "down":
            d.update(_conv3(f"input_blocks.{idx}.0.op", cin, cout))
            continue
        d.update(_res(f"input_blocks.{idx}.0", cin, cout))
        if att:
            d.update(_attn(f"input_blocks.{idx}.1", cout))
    d.update(_res("middle_block.0", 512, 512))
    d.update(_attn("middle_block.1", 512))
    d.update(_res("middle_block.2", 512, 512))
    for idx, cin, cout, att, up in _DECODER:
        d.update(_res(f"output_blocks.{idx}.0", cin, cout))
        sub = 1
        if att:
            d.update(_attn(f"output_blocks.{idx}.1", cout))
            sub = 2
        if up:
            d.update(_conv3(f"output_blocks.{idx}.{sub}.conv", cout, cout))
    d["out.0.weight"] = (128,)
    d["out.0.bias"] = (128,)
    d.update(_conv3("out.2", 128, 1))
    return d
