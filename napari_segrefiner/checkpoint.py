"""Reading and writing checkpoints (always ``torch.load(..., weights_only=True)``).

Accepted layouts:

* ours: ``{"format": "napari-segrefiner", "config": {...}, "state_dict": {...},
  "refine": {...}, "meta": {...}}`` (``refine`` is the :class:`RefineConfig`; files of
  version 1 call it ``defaults`` and may store only the options that differ);
* the released SegRefiner files: a top-level dict of ``denoise_model.*`` tensors (plus two
  ``loss_texture.*`` Sobel kernels, which are dropped), optionally wrapped in
  ``{"state_dict": ...}`` and/or prefixed with ``module.``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_write
from .config import EncDecConfig, LiteConfig, RefineConfig, UNetConfig, config_from_dict, config_to_dict
from .nets import build_network

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint", "network_from_checkpoint"]

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
        raise CheckpointError(
            f"{where} is not a SegRefiner checkpoint: expected 'denoise_model.*' keys, found {shown}"
        )
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
        return config, state, refine, meta
    return UNetConfig.official(), _official_state(obj, where), RefineConfig.official(), {}


# a stored configuration is data from a file: bound it before building anything from it
_MAX_INT = 1 << 16
_MAX_LEVELS = 8  # entries of channel_mult / stem_channels / attention_strides
_MAX_BLOCKS = 16  # num_res_blocks


def _check_config(config: UNetConfig | LiteConfig) -> None:
    """Raise ValueError for a stored network configuration outside what can be built."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "encoder":
            continue  # a name, checked by EncDecConfig itself
        if f.name == "dropout":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"dropout must be a number in [0, 1), got {value!r}")
            continue
        items = value if isinstance(value, tuple) else (value,)
        fewest = 0 if f.name == "attention_strides" else 1  # no attention at all is fine
        if not fewest <= len(items) <= _MAX_LEVELS:
            raise ValueError(f"{f.name} must have {fewest} to {_MAX_LEVELS} entries, got {value!r}")
        for x in items:
            if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x <= _MAX_INT:
                raise ValueError(f"{f.name} must hold integers in [1, {_MAX_INT}], got {value!r}")
    if (config.in_channels, config.out_channels) != (4, 1):
        raise ValueError(f"in_channels/out_channels must be 4/1, got {config.in_channels}/{config.out_channels}")
    if getattr(config, "num_res_blocks", 0) > _MAX_BLOCKS:
        raise ValueError(f"num_res_blocks must be at most {_MAX_BLOCKS}, got {config.num_res_blocks}")


_KNOWN_GOOD = (UNetConfig.official(), LiteConfig(), LiteConfig.tiny())  # built and run by the test suite


def _build(config: UNetConfig | LiteConfig, refine: RefineConfig, path: str | os.PathLike) -> nn.Module:
    """Build the network of ``config`` on the meta device (no weights) and check it runs.

    A forward pass on a tiny input checks every shape, so a configuration that builds but
    cannot run (output channels, level counts...) is refused here. The configurations of
    the released and shipped networks are known to run and skip it (it costs 0.3-1.5 s,
    most of a small model's loading time).
    """
    try:
        _check_config(config)
        side = int(config.divisor)
        # the big UNet is built on the meta device (no random init of 118 M weights that are
        # overwritten anyway); small networks on the CPU: the meta device's first use costs
        # ~1.4 s of imports, 20x the Lite network's whole initialisation
        where = torch.device("meta") if isinstance(config, UNetConfig) else torch.device("cpu")
        with where, torch.no_grad():
            model = build_network(config)
            if config in _KNOWN_GOOD:
                out = torch.empty(1, 1, side, side)
            else:
                out = model(torch.zeros(1, 4, side, side), torch.full((1,), config.num_timesteps - 1, dtype=torch.long))
        if tuple(out.shape) != (1, 1, side, side):
            raise ValueError(f"a (1, 4, {side}, {side}) input gives {tuple(out.shape)}, not (1, 1, {side}, {side})")
    except Exception as exc:  # ZeroDivisionError, RuntimeError, ValueError... from a broken config
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: its {config.arch} network configuration cannot be built: {msg}") from None
    for name in ("size", "hr_patch"):
        if getattr(refine, name) % side:
            raise CheckpointError(
                f"{path}: the stored {name} {getattr(refine, name)} is not a multiple of {side}, which this network needs"
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
        Also if the stored network configuration cannot be built or does not map an
        ``(N, 4, H, W)`` input to ``(N, 1, H, W)`` logits, the stored ``size``/``hr_patch``
        do not fit the network, the keys or shapes do not match it, or a weight is NaN or
        infinite.
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
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: tensor {key!r} holds NaN or infinite values (a broken training run?)")
    # fresh, aligned copies: views into a shared file buffer would make kernels take other paths
    model.load_state_dict({k: v.float().clone() for k, v in state.items()}, strict=True, assign=True)
    model.eval()
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
        A network built by :func:`~napari_segrefiner.nets.build_network` (it has a
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
