"""Frozen network configurations, stored as JSON beside the weights.

Two architectures share one contract (``(N, 4, H, W)`` input: normalised RGB then the
mask in {0, 1}; ``(N,)`` long timesteps; ``(N, 1, H, W)`` logits out):

* :class:`UNetConfig` -- the official SegRefiner "DenoiseUNet" (an improved-DDPM UNet).
  :meth:`UNetConfig.official` reproduces the released network exactly.
* :class:`LiteConfig` -- our CPU-first refiner: a stride-4 stem, a small UNet at a quarter
  of the resolution and a thin full-resolution head (see ``lite.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["UNetConfig", "LiteConfig", "config_from_dict", "config_to_dict"]


@dataclass(frozen=True)
class UNetConfig:
    """Configuration of the official-layout denoising UNet.

    Parameters
    ----------
    in_channels, out_channels : int
        4 (RGB + mask) and 1 (fine-mask logit) in every released model.
    model_channels : int
        Base width; level widths are ``model_channels * channel_mult[i]``.
    channel_mult : tuple of int
        One entry per resolution level.
    num_res_blocks : int
        ResBlocks per encoder level (the decoder has one more per level).
    attention_strides : tuple of int
        Downsampling factors at which self-attention is used.
    num_heads : int
        Attention heads (legacy iddpm qkv channel grouping).
    num_timesteps : int
        Rows of the learned timestep embedding table (6 in the released models).
    norm_groups : int
        GroupNorm groups (32 in the released models).
    dropout : float
        Dropout inside ResBlocks (0 in the released models).
    """

    in_channels: int = 4
    out_channels: int = 1
    model_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    num_res_blocks: int = 2
    attention_strides: tuple[int, ...] = (16, 32)
    num_heads: int = 4
    num_timesteps: int = 6
    norm_groups: int = 32
    dropout: float = 0.0

    arch = "unet"

    @classmethod
    def official(cls) -> "UNetConfig":
        """The released LR/HR SegRefiner network (118,604,673 parameters)."""
        return cls()

    @property
    def divisor(self) -> int:
        """Spatial sizes must be a multiple of this."""
        return 2 ** (len(self.channel_mult) - 1)


@dataclass(frozen=True)
class LiteConfig:
    """Configuration of the CPU-first refiner (``lite.py``).

    Parameters
    ----------
    stem_channels : tuple of int
        Widths at 1/2 and 1/4 resolution of the strided convolutional stem.
    model_channels : int
        Base width of the inner UNet, which runs at 1/4 resolution.
    channel_mult : tuple of int
        Inner UNet levels (each halves the resolution).
    num_res_blocks : int
        ResBlocks per inner encoder level.
    attention_strides : tuple of int
        Inner downsampling factors (relative to 1/4 resolution) with attention.
    head_channels : int
        Width of the full-resolution head.
    num_heads, num_timesteps, norm_groups : int
        As in :class:`UNetConfig` (the embedding width is ``4 * model_channels``).
    """

    in_channels: int = 4
    out_channels: int = 1
    stem_channels: tuple[int, ...] = (24, 32)
    model_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 1
    attention_strides: tuple[int, ...] = (8,)
    head_channels: int = 12
    num_heads: int = 4
    num_timesteps: int = 6
    norm_groups: int = 8
    dropout: float = 0.0

    arch = "lite"

    @classmethod
    def tiny(cls) -> "LiteConfig":
        """A very small network for tests (random weights, milliseconds per call)."""
        return cls(
            stem_channels=(8, 8),
            model_channels=8,
            channel_mult=(1, 2),
            num_res_blocks=1,
            attention_strides=(2,),
            head_channels=4,
            num_heads=2,
            norm_groups=4,
        )

    @property
    def divisor(self) -> int:
        """Spatial sizes must be a multiple of this."""
        return 4 * 2 ** (len(self.channel_mult) - 1)


_ARCHS = {"unet": UNetConfig, "lite": LiteConfig}


def config_to_dict(config: UNetConfig | LiteConfig) -> dict[str, Any]:
    """Serialise a config to plain JSON-compatible values (with its ``arch``)."""
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}
    out["arch"] = config.arch
    return out


def config_from_dict(data: dict[str, Any]) -> UNetConfig | LiteConfig:
    """Rebuild a config written by :func:`config_to_dict`.

    Raises
    ------
    ValueError
        If the architecture name or a field is unknown.
    """
    if not isinstance(data, dict):
        raise ValueError(f"config must be a dict, got {type(data).__name__}")
    data = dict(data)
    arch = data.pop("arch", "unet")
    if arch not in _ARCHS:
        raise ValueError(f"config arch must be one of {sorted(_ARCHS)}, got {arch!r}")
    cls = _ARCHS[arch]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"config has unknown fields for arch {arch!r}: {sorted(unknown)}")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    return cls(**kwargs)
