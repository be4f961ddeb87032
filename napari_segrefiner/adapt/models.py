"""Saving adapted models to the user's model folder, with their provenance (the folder, names and
listing: :mod:`napari_segrefiner.models.adapted`).

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
from pathlib import Path
from typing import Any

import torch

from ..models import registry
from ..models.adapted import ADAPTED_PREFIX, adapted_folder, adapted_path, check_name

__all__ = ["base_identity", "save_adapted"]


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


def save_adapted(
    result,
    name: str | None = None,
    *,
    cache: str | os.PathLike | None = None,
    overwrite: bool = False,
    force: bool = False,
) -> Path:
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
    from ..models.checkpoint import save_checkpoint

    if not result.kept and not force:
        raise ValueError(
            f"the adapted model did not beat its base on the held-out pairs (IoU {result.adapted_iou:.4f} "
            f"vs {result.base_iou:.4f}); it is not saved (force=True saves it anyway)"
        )
    stamp = _dt.datetime.now(_dt.UTC)
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
