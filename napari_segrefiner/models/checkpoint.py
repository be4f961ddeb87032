"""Reading and writing checkpoints (always ``torch.load(..., weights_only=True)``).

Accepted layouts:

* ours: ``{"format": "napari-segrefiner", "config": {...}, "state_dict": {...},
  "refine": {...}, "meta": {...}}`` (``refine`` is the :class:`RefineConfig`; files of
  version 1 call it ``defaults`` and may store only the options that differ);
* the released SegRefiner files: a top-level dict of ``denoise_model.*`` tensors (plus two
  ``loss_texture.*`` Sobel kernels, which are dropped), optionally wrapped in
  ``{"state_dict": ...}`` and/or prefixed with ``module.``.

A checkpoint is data from a file, checked before it can cost a long run or give silently
wrong results:

* every tensor is real floating point (float16, bfloat16, float32 or float64; every
  network here holds only such tensors) and finite: complex, bool and integer tensors are
  refused, as are NaN and infinity;
* every stored network setting lies in the range of :data:`NETWORK_RANGES`, e.g.
  ``num_timesteps`` in [1, 64] (the released and the shipped models use 6; every step
  is one network evaluation per object), and the network's estimated size stays below
  :data:`MAX_PARAMETERS`; the stored pipeline options lie in the ranges
  :class:`~napari_segrefiner.models.config.RefineConfig` documents;
* the loaded network's first forward pass on a tiny input
  (:func:`~napari_segrefiner.models.probe.probe_network`) gives finite ``(N, 1, H, W)`` logits.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io.atomic import atomic_write
from .config import EncDecConfig, LiteConfig, RefineConfig, UNetConfig, config_from_dict, config_to_dict
from .nets import build_network
from .probe import probe_network

__all__ = [
    "FLOAT_DTYPES",
    "MAX_PARAMETERS",
    "NETWORK_RANGES",
    "CheckpointError",
    "load_checkpoint",
    "network_from_checkpoint",
    "save_checkpoint",
]

FORMAT = "napari-segrefiner"


class CheckpointError(ValueError):
    """A file is not a usable SegRefiner checkpoint."""


def _read(path: str | os.PathLike) -> Any:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, random bytes...
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{p} is not a readable PyTorch checkpoint (truncated, corrupt, or contains objects "
            f"other than tensors): {msg}"
        ) from None


def _official_state(obj: dict, where: str) -> dict[str, torch.Tensor]:
    state = obj.get("state_dict", obj) if isinstance(obj.get("state_dict", None), dict) else obj
    out: dict[str, torch.Tensor] = {}
    foreign = []
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where} is not a state dict: entry {key!r} is a {type(value).__name__}")
        k = key[len("module.") :] if key.startswith("module.") else key
        if k.startswith("loss_texture."):
            continue
        if not k.startswith("denoise_model."):
            foreign.append(key)
            continue
        out[k[len("denoise_model.") :]] = value
    if foreign or not out:
        shown = ", ".join(foreign[:3]) or "(no denoise_model.* keys)"
        raise CheckpointError(f"{where} is not a SegRefiner checkpoint: expected 'denoise_model.*' keys, found {shown}")
    return out


def load_checkpoint(
    path: str | os.PathLike,
) -> tuple[UNetConfig | LiteConfig, dict[str, torch.Tensor], RefineConfig, dict]:
    """Read a checkpoint file without building a network.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    config : UNetConfig or LiteConfig
        Architecture (the official UNet for the released files).
    state_dict : dict of str to Tensor
        Network weights with keys relative to the network.
    refine : RefineConfig
        Pipeline options stored with the weights (the official ones for the released files).
    meta : dict
        Free-form metadata (training recipe, figures).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    CheckpointError
        If the file cannot be read with ``weights_only=True``, is not a SegRefiner state
        dict, or stores invalid options.
    """
    obj = _read(path)
    where = str(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{where} is not a state dict: it holds a {type(obj).__name__}")
    if obj.get("format") == FORMAT:
        try:
            config = config_from_dict(obj["config"])
            state = dict(obj["state_dict"])
            refine = RefineConfig.from_dict(obj.get("refine", obj.get("defaults", {})))
            meta = dict(obj.get("meta", {}))
        except (KeyError, ValueError, TypeError, ZeroDivisionError) as exc:
            raise CheckpointError(f"{where} has a broken napari-segrefiner header: {exc}") from None
        bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise CheckpointError(f"{where} is not a state dict: entry {bad[0]!r} is not a tensor")
        return config, _check_dtypes(state, where), refine, meta
    return UNetConfig.official(), _check_dtypes(_official_state(obj, where), where), RefineConfig.official(), {}


FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_dtypes(state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """Refuse a tensor that is not real floating point (complex, bool, integer...)."""
    for key, value in state.items():
        if value.dtype not in FLOAT_DTYPES:
            raise CheckpointError(
                f"{where}: tensor {key!r} has dtype {str(value.dtype).replace('torch.', '')}; "
                "SegRefiner weights are real floating point (float16, bfloat16, float32 or float64)"
            )
    return state


# A stored configuration is data from a file: bound it before building anything from it.
# name -> (lowest, highest value[, fewest, most entries of a tuple]); released/shipped values in comments
NETWORK_RANGES: dict[str, tuple[int, ...]] = {
    "in_channels": (4, 4),
    "out_channels": (1, 1),
    "model_channels": (1, 512),  # 128 (official UNet), 32 (lite)
    "channel_mult": (1, 16, 1, 8),  # (1, 1, 2, 2, 4, 4), (1, 2, 4, 4)
    "num_res_blocks": (1, 16),  # 2, 1
    "attention_strides": (1, 256, 0, 8),  # (16, 32), (8,)
    "num_heads": (1, 64),  # 4
    "num_timesteps": (1, 64),  # 6: one network evaluation per object and step
    "norm_groups": (1, 128),  # 32, 8
    "stem_channels": (1, 512, 1, 8),  # (24, 32), (16, 32)
    "head_channels": (1, 512),  # 12
    "widths": (1, 1024, 1, 8),  # (128, 96, 64, 32)
    "encoder_taps": (0, 64, 1, 8),  # strides (4, 8, 16, 32) or ViT block indices
    "time_channels": (1, 1024),  # 64
}
MAX_WIDTH = 2048  # model_channels x the largest channel_mult (official: 512)
# (3 num_res_blocks + 2) x 72 x sum of squared level widths: an upper bound of the UNet-like
# networks' size (official: 0.40e9 for its 118.6 M parameters; lite: 0.014e9 for 4.3 M)
MAX_PARAMETERS = 1_000_000_000


def _estimated_parameters(config) -> int:
    mc, blocks = getattr(config, "model_channels", 0), getattr(config, "num_res_blocks", 0)
    return 72 * (3 * blocks + 2) * sum((mc * m) ** 2 for m in getattr(config, "channel_mult", ()))


def _check_config(config: UNetConfig | LiteConfig | EncDecConfig) -> None:
    """Raise ValueError for a stored network configuration outside :data:`NETWORK_RANGES`."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "encoder":
            continue  # a name, checked by EncDecConfig itself
        if f.name == "dropout":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"dropout must be a number in [0, 1), got {value!r}")
            continue
        low, high, *entries = NETWORK_RANGES[f.name]
        items = value
        if entries:
            fewest, most = entries
            if not isinstance(value, tuple) or not fewest <= len(value) <= most:
                raise ValueError(f"{f.name} must have {fewest} to {most} entries, got {value!r}")
        else:
            items = (value,)
        for x in items:
            if isinstance(x, bool) or not isinstance(x, int) or not low <= x <= high:
                raise ValueError(f"{f.name} must hold integers in [{low}, {high}], got {value!r}")
    widest = getattr(config, "model_channels", 0) * max(getattr(config, "channel_mult", (0,)) or (0,))
    if widest > MAX_WIDTH:
        raise ValueError(f"model_channels x channel_mult must stay at most {MAX_WIDTH} channels, got {widest}")
    size = _estimated_parameters(config)
    if size > MAX_PARAMETERS:
        raise ValueError(f"the network would be too large: estimated size {size:.3g}, at most {MAX_PARAMETERS:.0e}")


def _build(config: UNetConfig | LiteConfig | EncDecConfig, refine: RefineConfig, path: str | os.PathLike) -> nn.Module:
    """Build the network of ``config`` without weights (checked against :data:`NETWORK_RANGES` first).

    The big UNet is built on the meta device (no random init of 118 M weights that are
    overwritten anyway); small networks on the CPU (the meta device's first use costs
    ~1.4 s of imports, 20x the Lite network's whole initialisation). Whether it runs is
    checked later, with its weights (:func:`~napari_segrefiner.models.probe.probe_network`).
    """
    try:
        _check_config(config)
    except ValueError as exc:
        raise CheckpointError(f"{path}: a stored {config.arch} network setting is out of range: {exc}") from None
    try:
        side = int(config.divisor)
        where = torch.device("meta") if isinstance(config, UNetConfig) else torch.device("cpu")
        with where:
            model = build_network(config)
    except Exception as exc:  # ZeroDivisionError, RuntimeError, ValueError... from a broken config
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: its {config.arch} network configuration cannot be built: {msg}") from None
    for name in ("size", "hr_patch"):
        if getattr(refine, name) % side:
            raise CheckpointError(
                f"{path}: the stored {name} {getattr(refine, name)} is not a multiple of {side}, "
                "which this network needs"
            )
    return model


def network_from_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, RefineConfig, dict]:
    """Build the network of a checkpoint and load its weights strictly.

    Returns
    -------
    network : nn.Module
        In eval mode, on the CPU.
    refine : RefineConfig
        As in :func:`load_checkpoint`.
    meta : dict
        As in :func:`load_checkpoint`.

    Raises
    ------
    CheckpointError
        Also if a stored setting is out of range (see the module docstring), the stored
        ``size``/``hr_patch`` do not fit the network, the keys or shapes do not match it,
        a tensor is not real floating point or is NaN or infinite, or the network's first
        forward pass on a tiny input does not give finite ``(N, 1, H, W)`` logits.
    """
    config, state, refine, meta = load_checkpoint(path)
    model = _build(config, refine, path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match the {config.arch} network: {len(missing)} missing keys "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:2]})"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{path}: tensor {key!r} has shape {tuple(value.shape)}, the network expects "
                f"{tuple(expected[key].shape)}"
            )
        if not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: tensor {key!r} holds NaN or infinite values (a broken training run?)")
    # fresh, aligned copies: views into a shared file buffer would make kernels take other paths
    model.load_state_dict({k: v.float().clone() for k, v in state.items()}, strict=True, assign=True)
    model.eval()
    try:
        probe_network(model, num_timesteps=config.num_timesteps, device="cpu", name="its network")
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return model, refine, meta


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    refine: RefineConfig | None = None,
    meta: dict | None = None,
    half: bool = False,
    extra: dict | None = None,
) -> None:
    """Write weights + network config + pipeline options (+ metadata) in our format.

    Parameters
    ----------
    path : str or path-like
        Destination (parent folders are created).
    model : nn.Module
        A network built by :func:`~napari_segrefiner.models.nets.build_network` (it has a
        ``config`` attribute).
    refine : RefineConfig, optional
        Pipeline options to store (default: the official ones).
    meta : dict, optional
        JSON-like metadata.
    half : bool
        Store floating tensors as float16 (halves the file; loaded back as float32).
    extra : dict, optional
        Further entries of plain tensors/JSON-like values (e.g. optimizer state for resuming).
    """
    config = getattr(model, "config", None)
    if not isinstance(config, (UNetConfig, LiteConfig, EncDecConfig)):
        raise TypeError("model must carry a UNetConfig, LiteConfig or EncDecConfig as .config")
    state = {
        k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    obj = {
        "format": FORMAT,
        "version": 2,
        "config": config_to_dict(config),
        "state_dict": state,
        "refine": (refine if refine is not None else RefineConfig.official()).to_dict(),
        "meta": dict(meta or {}),
    }
    if extra:
        clash = set(extra) & set(obj)
        if clash:
            raise ValueError(f"extra must not override the reserved entries {sorted(clash)}")
        obj.update(extra)
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
