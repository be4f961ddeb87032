"""Adapted models in the user's model folder: where they live, their names, listing and saving.

An adapted model is an ordinary checkpoint (:func:`~napari_segrefiner.checkpoint.save_checkpoint`)
in ``registry.cache_dir()/adapted/<name>.pt``, with its provenance under ``meta["adapted"]``
(base model and its SHA-256, pairs, steps, seconds, held-out IoU of base and adapted, date,
seed). It is loaded by the name ``"adapted:<name>"`` (``load_refiner``, ``refine(model=...)``,
the CLI's ``--model``) or by its path, through the same checks as any checkpoint. Adapting
never writes anywhere else: the shipped weights and the base file stay as they are.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import registry

__all__ = ["ADAPTED_PREFIX", "AdaptedModel", "adapted_folder", "adapted_path", "base_identity", "check_name",
           "list_adapted", "save_adapted"]

#: Model sources of this form name an adapted model: ``"adapted:<name>"``.
ADAPTED_PREFIX = "adapted:"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def adapted_folder(cache: str | os.PathLike | None = None) -> Path:
    """``registry.cache_dir(cache) / "adapted"`` (not created here)."""
    return registry.cache_dir(cache) / "adapted"


def check_name(name: Any) -> str:
    """A valid adapted-model name (the ``adapted:`` prefix is dropped); ValueError naming ``name`` otherwise."""
    if isinstance(name, str) and name.startswith(ADAPTED_PREFIX):
        name = name[len(ADAPTED_PREFIX) :]
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith(".pt"):
        raise ValueError(f"name must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit, "
                         f"no .pt), got {name!r}")
    return name


def adapted_path(name: str, *, cache: str | os.PathLike | None = None) -> Path:
    """The file of an existing adapted model (``"adapted:<name>"`` or ``"<name>"``).

    Raises
    ------
    ValueError
        For an invalid name.
    FileNotFoundError
        If there is no such model (the message lists those there are).
    """
    name = check_name(name)
    path = adapted_folder(cache) / f"{name}.pt"
    if not path.is_file():
        have = ", ".join(m.name for m in list_adapted(cache)) or "none"
        raise FileNotFoundError(f"no adapted model {name!r} in {path.parent} (adapted models: {have})")
    return path


@dataclass(frozen=True)
class AdaptedModel:
    """One adapted model of the folder, for a menu.

    Attributes
    ----------
    name : str
    source : str
        ``"adapted:<name>"``: what ``load_refiner`` takes.
    path : Path
    provenance : dict
        ``meta["adapted"]`` of the file (empty when it cannot be read).
    error : str or None
        Why the file cannot be used (it is listed anyway, so the user sees it).
    """

    name: str
    source: str
    path: Path
    provenance: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def label(self) -> str:
        """A line for a dropdown: name, base, date and the held-out IoU change."""
        p = self.provenance
        if self.error:
            return f"{self.name} (unusable: {self.error[:60]})"
        held = p.get("heldout_iou", {})
        gain = 100 * (held.get("adapted", 0.0) - held.get("base", 0.0))
        return f"{self.name} (from {p.get('base', {}).get('name', '?')}, {p.get('date', '?')[:10]}, held-out {gain:+.1f} IoU pts)"


def list_adapted(cache: str | os.PathLike | None = None) -> list[AdaptedModel]:
    """Every ``*.pt`` of the adapted folder, newest first (headers read, networks not built)."""
    from ..checkpoint import load_checkpoint

    folder = adapted_folder(cache)
    if not folder.is_dir():
        return []
    out = []
    for path in folder.glob("*.pt"):
        if not _NAME.fullmatch(path.stem) or not path.is_file():
            continue
        try:
            meta = load_checkpoint(path)[3]
            prov = meta.get("adapted")
            error = None if isinstance(prov, dict) else "not an adapted model (no provenance)"
            prov = prov if isinstance(prov, dict) else {}
        except (OSError, ValueError) as exc:
            prov, error = {}, str(exc)
        out.append(AdaptedModel(path.stem, ADAPTED_PREFIX + path.stem, path, prov, error))
    return sorted(out, key=lambda m: (str(m.provenance.get("date", "")), m.name), reverse=True)


def _state_digest(network: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(network.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def base_identity(refiner, *, cache: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"name", "source", "sha256", "digest_of"}`` of a loaded base model.

    ``sha256`` is the digest of its checkpoint file when it came from one (registered
    name, ``adapted:`` name or path), else of its weights in memory (``digest_of`` says which).
    """
    source = str(refiner.source)
    path = None
    if source in registry.MODELS:
        path = registry.resolve(source, cache=cache)
    elif source.startswith(ADAPTED_PREFIX):
        path = adapted_path(source, cache=cache)
    elif Path(source).is_file():
        path = Path(source)
    name = str(refiner.meta.get("name") or (Path(source).stem if path is not None else source))
    if path is not None:
        return {"name": name, "source": source, "sha256": registry.sha256sum(path), "digest_of": "file"}
    return {"name": name, "source": source, "sha256": _state_digest(refiner.network), "digest_of": "weights"}


def save_adapted(result, name: str | None = None, *, cache: str | os.PathLike | None = None,
                 overwrite: bool = False, force: bool = False) -> Path:
    """Write an :class:`~.learn.AdaptResult`'s network to ``adapted/<name>.pt``; returns the path.

    Parameters
    ----------
    result : AdaptResult
    name : str, optional
        Default ``adapted-<UTC date and time>``.
    cache : path-like, optional
        The model folder (default :func:`~napari_segrefiner.registry.cache_dir`).
    overwrite : bool
        Replace an adapted model of the same name.
    force : bool
        Save a model that did not beat its base on the held-out pairs.

    Raises
    ------
    ValueError
        If the model was not kept (and not ``force``), or for an invalid name.
    FileExistsError
        If the name is taken and ``overwrite`` is False.
    """
    from ..checkpoint import save_checkpoint

    if not result.kept and not force:
        raise ValueError(f"the adapted model did not beat its base on the held-out pairs (IoU {result.adapted_iou:.4f} "
                         f"vs {result.base_iou:.4f}); it is not saved (force=True saves it anyway)")
    stamp = _dt.datetime.now(_dt.timezone.utc)
    name = check_name(name if name is not None else f"adapted-{stamp:%Y%m%d-%H%M%S}")
    path = adapted_folder(cache) / f"{name}.pt"
    if path.exists() and not overwrite:
        raise FileExistsError(f"an adapted model named {name!r} exists ({path}); choose another name or overwrite")
    base_src = str(result.base.source)
    if Path(base_src).is_file() and Path(base_src).resolve() == path.resolve():
        raise ValueError(f"refusing to overwrite the base model's own file {path}")
    meta = {"name": name, "adapted": {**result.provenance, "name": name}}
    save_checkpoint(path, result.refiner.network, refine=result.refiner.config, meta=meta)
    return path
