"""Adapted models in the user's model folder: where they live, their names and listing.

An adapted model is an ordinary checkpoint in ``registry.cache_dir()/adapted/<name>.pt`` with its
provenance under ``meta["adapted"]``, made by :mod:`napari_segrefiner.adapt`. Here, in the models
layer, so that :func:`~.refiner.load_refiner` and the CLI resolve ``"adapted:<name>"`` like any
other source (same checkpoint checks).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import registry

__all__ = ["ADAPTED_PREFIX", "AdaptedModel", "adapted_folder", "adapted_path", "check_name", "list_adapted"]

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
        raise ValueError(
            f"name must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit, "
            f"no .pt), got {name!r}"
        )
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
        base = p.get("base", {}).get("name", "?")
        return f"{self.name} (from {base}, {p.get('date', '?')[:10]}, held-out {gain:+.1f} IoU pts)"


def list_adapted(cache: str | os.PathLike | None = None) -> list[AdaptedModel]:
    """Every ``*.pt`` of the adapted folder, newest first (headers read, networks not built)."""
    from .checkpoint import load_checkpoint

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
