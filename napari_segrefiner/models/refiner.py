"""The :class:`Refiner` at the centre: a network, its schedule, its options, its device.

:func:`load_refiner` is the one way to get one, and the one place where a device is
resolved and a network is moved. Every front end (API call, CLI, widget, benchmark) calls it
once per run and passes the :class:`Refiner` on; nothing below it loads a model or resolves
a device. A network the caller passes in is never moved or put in eval mode in place: it is
used as it is when it already sits on the device in eval mode, else a copy is. There is no
separate loader for the bare network: ``load_refiner(source).network`` is it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from ..diffusion.scheduler import Schedule
from . import registry
from .checkpoint import network_from_checkpoint
from .config import RefineConfig
from .probe import probe_network

__all__ = ["Refiner", "as_refiner", "available_devices", "load_refiner", "resolve_device"]

IN_MEMORY = "<in-memory network>"


def available_devices() -> list[str]:
    """Devices that work in this process: ``["auto", "cpu"]`` plus ``"cuda"``/``"mps"``."""
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"`` (CUDA, then MPS, then CPU) or a device name into a ``torch.device``.

    Raises
    ------
    ValueError
        If the name is invalid or the backend is not available here.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a valid torch device: {exc}") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'mps'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    if dev.type == "mps" and "mps" not in available_devices():
        raise ValueError(f"device {device!r} requested but MPS is not available; use 'cpu' or 'auto'")
    return dev


def _same_device(actual: torch.device, wanted: torch.device) -> bool:
    return actual.type == wanted.type and (wanted.index is None or actual.index in (None, wanted.index))


@dataclass(frozen=True, eq=False)
class Refiner:
    """A network ready to refine: weights, schedule, pipeline options, device and origin.

    Get one with :func:`load_refiner`. Immutable: :meth:`with_options` returns a new one
    that shares the network.

    Attributes
    ----------
    network : torch.nn.Module
        ``network(x, t) -> logits`` on ``device``, in eval mode.
    config : RefineConfig
        Pipeline options (from the checkpoint, or the official ones).
    schedule : Schedule
        The diffusion schedule (its length is the network's number of timesteps).
    device : torch.device
        Where the network lives.
    source : str
        Registry name, checkpoint path, or ``"<in-memory network>"``.
    meta : Mapping
        Read-only metadata stored with the checkpoint (training recipe, figures).
    """

    network: nn.Module
    config: RefineConfig
    schedule: Schedule
    device: torch.device
    source: str = IN_MEMORY
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.network, nn.Module):
            raise TypeError(f"network must be a torch.nn.Module, got {type(self.network).__name__}")
        if not isinstance(self.config, RefineConfig):
            raise TypeError(f"config must be a RefineConfig, got {type(self.config).__name__}")
        if self.config.size % self.divisor:
            raise ValueError(f"size must be a multiple of {self.divisor} for this network, got {self.config.size}")
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    @property
    def divisor(self) -> int:
        """Network input sides must be a multiple of this."""
        return int(getattr(getattr(self.network, "config", None), "divisor", 1))

    def with_options(self, **overrides: Any) -> Refiner:
        """The same network with some pipeline options changed (validated)."""
        return replace(self, config=self.config.replace(**overrides)) if overrides else self


def _schedule_for(network: nn.Module) -> Schedule:
    return Schedule(num_timesteps=int(getattr(getattr(network, "config", None), "num_timesteps", 6)))


def _owned(network: nn.Module, device: torch.device) -> nn.Module:
    """``network`` if it is on ``device`` and in eval mode, else an eval copy there."""
    tensors = [*network.parameters(), *network.buffers()]
    if not network.training and all(_same_device(t.device, device) for t in tensors):
        return network
    return copy.deepcopy(network).to(device).eval()


def _checkpoint_path(source: str | os.PathLike, cache: str | os.PathLike | None) -> Path:
    if str(source) in registry.MODELS:
        return registry.resolve(str(source), cache=cache, verify=True)  # SHA-256, once per process
    if isinstance(source, str) and source.startswith("adapted:"):  # the user's adapted models (issue #19)
        from .adapted import adapted_path

        return adapted_path(source, cache=cache)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(
            f"model {str(source)!r} is neither a registered name ({', '.join(registry.MODELS)}) nor an existing file"
        )
    return path


def load_refiner(
    source: Refiner | nn.Module | str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = "auto",
    cache: str | os.PathLike | None = None,
) -> Refiner:
    """Load (or wrap) a refiner; the one place where a device is resolved.

    Parameters
    ----------
    source : None, str, path-like, Refiner or torch.nn.Module
        ``None`` = the shipped default model; a registered name (``"segrefiner-lite"``,
        ``"segrefiner-lr"``, ``"segrefiner-hr"`` once downloaded); ``"adapted:<name>"``, a
        model adapted to the user's corrections (:mod:`~napari_segrefiner.adapt`); a checkpoint file (ours or
        the released layout); a :class:`Refiner` (returned as it is unless it lives on
        another device); or a network (``encode``/``denoise``, or ``model(x, t) -> logits``;
        wrapped with the official options; never moved in place), which must give finite
        ``(N, 1, H, W)`` logits on a tiny test input
        (:func:`~napari_segrefiner.models.probe.probe_network`, one call of the network).
    device : str or torch.device
        ``"auto"`` (CUDA, MPS, then CPU), ``"cpu"``, ``"cuda"``... For a :class:`Refiner`
        source, ``None`` keeps its device.
    cache : str or path-like, optional
        Folder of downloaded weights (default: :func:`~.registry.cache_dir`).

    Returns
    -------
    Refiner

    Raises
    ------
    FileNotFoundError
        If the file or the registered model's weights are missing (the message says how to
        get them).
    CheckpointError
        If the file is not a usable checkpoint.
    ValueError, TypeError
        For an unknown device, a source of another type, or a network that is not a
        SegRefiner network or gives non-finite logits (the message names ``model``).
    """
    if isinstance(source, Refiner):
        if device is None:
            return source
        dev = resolve_device(device)
        network = _owned(source.network, dev)
        return source if network is source.network else replace(source, network=network, device=dev)
    dev = resolve_device(device)
    if isinstance(source, nn.Module):
        network, schedule = _owned(source, dev), _schedule_for(source)
        probe_network(network, num_timesteps=schedule.num_timesteps, device=dev, name="model")
        return Refiner(network, RefineConfig.official(), schedule, dev)
    if source is None:
        source = registry.DEFAULT_MODEL
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "model must be None, a name, a checkpoint path, a Refiner or a torch.nn.Module, "
            f"got {type(source).__name__}"
        )
    network, config, meta = network_from_checkpoint(_checkpoint_path(source, cache))
    if str(source) in registry.MODELS:
        config = config.replace(**dict(registry.MODELS[str(source)].options))
    network = network.to(dev)  # our own fresh copy
    return Refiner(network, config, _schedule_for(network), dev, source=str(source), meta=meta)


def as_refiner(
    model: Any, device: str | torch.device | None = None, *, cache: str | os.PathLike | None = None
) -> Refiner:
    """The :class:`Refiner` a run asks for: ``model`` itself when it is one and ``device`` is None,
    else :func:`load_refiner` of it (on ``device``, default ``"auto"``).

    Raises
    ------
    TypeError
        For a ``model`` of another type (the message names ``model``); else as :func:`load_refiner`.
    """
    if isinstance(model, Refiner) and device is None:
        return model
    if model is None or isinstance(model, (str, os.PathLike, Refiner, nn.Module)):
        return load_refiner(model, device="auto" if device is None else device, cache=cache)
    raise TypeError(
        f"model must be None, a name, a checkpoint path, a Refiner or a torch.nn.Module, got {type(model).__name__}"
    )
