"""Frozen configurations stored as JSON beside the weights: the network's and the pipeline's.

Two architectures share one contract (``(N, 4, H, W)`` input: normalised RGB then the
mask in {0, 1}; ``(N,)`` long timesteps; ``(N, 1, H, W)`` logits out):

* :class:`UNetConfig` -- the official SegRefiner "DenoiseUNet" (an improved-DDPM UNet).
  :meth:`UNetConfig.official` reproduces the released network exactly.
* :class:`LiteConfig` -- our CPU-first refiner: a stride-4 stem, a small UNet at a quarter
  of the resolution and a thin full-resolution head (see ``nets/lite.py``).

:class:`RefineConfig` holds the pipeline options (crop size, padding, batch size, HR
settings...) that travel with the weights.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["UNetConfig", "LiteConfig", "EncDecConfig", "ENCODERS", "RefineConfig", "config_from_dict", "config_to_dict"]


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
    def official(cls) -> UNetConfig:
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
    def tiny(cls) -> LiteConfig:
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


@dataclass(frozen=True)
class EncDecConfig:
    """Configuration of the encoder-decoder refiner (``nets/encdec.py``).

    A frozen pretrained image encoder runs once per crop (``encode``); a small mask
    decoder conditioned on the timestep runs at every reverse step (``denoise``).

    Parameters
    ----------
    encoder : {"efficientnet-lite0", "dinov2-vits14"}
        The pretrained feature extractor (its tensors are stored in the checkpoint).
    encoder_taps : tuple of int
        EfficientNet: output strides whose features are used; DINOv2: block indices.
    widths : tuple of int
        Decoder widths at strides 32, 16, 8, 4 (coarsest first).
    stem_channels : tuple of int
        Widths of the trainable image+mask stem at strides 2 and 4.
    head_channels : int
        Width of the full-resolution head.
    time_channels : int
        Width of the learned timestep embedding.
    num_timesteps : int
        Rows of the timestep embedding table (6).
    norm_groups : int
        GroupNorm groups of the decoder blocks.
    """

    encoder: str = "efficientnet-lite0"
    encoder_taps: tuple[int, ...] = (4, 8, 16, 32)
    widths: tuple[int, ...] = (128, 96, 64, 32)
    stem_channels: tuple[int, ...] = (16, 32)
    head_channels: int = 12
    time_channels: int = 64
    num_timesteps: int = 6
    norm_groups: int = 8
    in_channels: int = 4
    out_channels: int = 1

    arch = "encdec"
    divisor = 32

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if len(self.widths) != 4 or len(self.stem_channels) != 2:
            raise ValueError(f"widths needs 4 entries and stem_channels 2, got {self.widths}, {self.stem_channels}")

    @classmethod
    def tiny(cls, encoder: str = "efficientnet-lite0") -> EncDecConfig:
        """A very small decoder for tests (random weights)."""
        taps = (16,) if encoder == "efficientnet-lite0" else (0,)
        return cls(
            encoder=encoder,
            encoder_taps=taps,
            widths=(8, 8, 8, 8),
            stem_channels=(4, 8),
            head_channels=4,
            time_channels=8,
            norm_groups=4,
        )


ENCODERS = ("efficientnet-lite0", "dinov2-vits14")

_ARCHS = {"unet": UNetConfig, "lite": LiteConfig, "encdec": EncDecConfig}


def config_to_dict(config: UNetConfig | LiteConfig | EncDecConfig) -> dict[str, Any]:
    """Serialise a config to plain JSON-compatible values (with its ``arch``)."""
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}
    out["arch"] = config.arch
    return out


def config_from_dict(data: dict[str, Any]) -> UNetConfig | LiteConfig | EncDecConfig:
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


# ------------------------------------------------------------------ pipeline options ---
def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return int(value)


def _check_float(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not (math.isfinite(float(value)) and low <= float(value) <= high):
        raise ValueError(f"{name} must be a finite number in [{low}, {high}], got {value}")
    return float(value)


# name -> (kind, low, high): the ranges every RefineConfig, stored or given, must respect
_RANGES: dict[str, tuple[str, float, float]] = {
    "size": ("int", 8, 2048),
    "pad": ("int", 0, 4096),
    "min_area": ("int", 0, 1 << 24),
    "context": ("float", 0.0, 64.0),
    "context_cap": ("int", 0, 4096),
    "batch_size": ("int", 1, 4096),
    "hr_patch": ("int", 8, 2048),
    "hr_thr_ratio": ("float", 0.0, 1.0),
    "hr_iou": ("float", 0.0, 1.0),
    "hr_min_pixels": ("int", 0, 1 << 24),
    "auto_hr_side": ("int", 0, 1 << 20),
    "keep_bias": ("float", 0.0, 20.0),
}


@dataclass(frozen=True)
class RefineConfig:
    """Pipeline options of a refiner: frozen, validated, stored with our checkpoints.

    The defaults are the released pipelines' test configuration (``segrefiner_coco.py`` /
    ``segrefiner_big.py``); a checkpoint may store its own (the shipped model does).

    Every number, given or stored, must lie in its range (inclusive): ``size`` and
    ``hr_patch`` 8-2048, ``pad`` and ``context_cap`` 0-4096, ``min_area`` and
    ``hr_min_pixels`` 0-2**24, ``context`` 0-64, ``batch_size`` 1-4096, ``hr_thr_ratio``
    and ``hr_iou`` 0-1, ``auto_hr_side`` 0-2**20, ``keep_bias`` 0-20.

    Parameters
    ----------
    size : int
        Network input side (px).
    pad : int
        Instance crop margin (px).
    min_area : int
        Instances with fewer pixels are left as they are.
    context : float
        Crops span at least ``context`` x the object's longer side...
    context_cap : int
        ...but no more than this many pixels (0: off, the official crop).
    batch_size : int
        Instances or patches per network call.
    hr_patch : int
        HR local patch side (native pixels).
    hr_thr_ratio : float
        HR: candidate patch centres where ``F < hr_thr_ratio * max(F)``.
    hr_iou : float
        HR: non-maximum suppression IoU threshold.
    hr_min_pixels : int
        HR: masks with at most this many pixels are not refined.
    auto_hr_side : int
        ``mode="auto"``: a single object whose padded box is longer than this uses the HR
        pipeline; 0 means never (for models not trained for it).
    keep_bias : float
        Logit bias towards the coarse mask in every reverse step (0 = the official
        sampler). A model calibrates it on its val split so that already-good masks stay
        good, and stores it here.
    paste_changes_only : bool
        Paste the network's answer back only near pixels whose state it changed at network
        resolution and keep the native coarse mask elsewhere, so that a mask the network
        keeps comes back exactly (False: the official bilinear paste of the whole crop).
    clean : bool
        Clean each refined object (:func:`~napari_segrefiner.engine.cleanup.clean_labels`: keep
        the pieces that overlap its coarse object, drop specks, fill pinholes).

    Raises
    ------
    TypeError, ValueError
        If a value has the wrong type or lies outside its range (the message names it).
    """

    size: int = 256
    pad: int = 20
    min_area: int = 512
    context: float = 0.0
    context_cap: int = 0
    batch_size: int = 32
    hr_patch: int = 256
    hr_thr_ratio: float = 0.9
    hr_iou: float = 0.3
    hr_min_pixels: int = 128
    auto_hr_side: int = 512
    keep_bias: float = 0.0
    paste_changes_only: bool = False
    clean: bool = True

    def __post_init__(self) -> None:
        for name in ("paste_changes_only", "clean"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
            object.__setattr__(self, name, bool(value))
        for name, (kind, low, high) in _RANGES.items():
            check = _check_int if kind == "int" else _check_float
            object.__setattr__(self, name, check(name, getattr(self, name), low, high))

    @classmethod
    def official(cls) -> RefineConfig:
        """The released pipelines' test configuration."""
        return cls()

    def replace(self, **overrides: Any) -> RefineConfig:
        """A copy with some options changed (validated; unknown names are a TypeError)."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise TypeError(f"unknown options {unknown}; valid: {sorted(valid)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> RefineConfig:
        """Official defaults overridden by ``data`` (a possibly partial dict, as stored)."""
        if not isinstance(data, dict):
            raise TypeError(f"refine config must be a dict, got {type(data).__name__}")
        return cls().replace(**data)
