"""The manifest of a resumable run: which outputs a run made, from what, with what.

``segrefiner-manifest.json`` in the output folder (or inside an output ``.zarr``) maps
each output name to the identity of its inputs (size and SHA-256), the run's settings
(model and its weights' SHA-256, seed, mode, steps, options, package version) and, once
the output is written, the output's own size and SHA-256. A rerun with the same settings

* skips an output whose entry matches and whose file is still the one recorded (``done``);
* redoes, without asking for ``--overwrite``, an output it had claimed but not recorded
  (``claimed``: the run was stopped between writing it and recording it);
* treats every other existing output as foreign (the planning rules then refuse it unless
  ``--overwrite`` is given).

The manifest is rewritten atomically (:func:`~napari_segrefiner.io.atomic_write`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "Manifest", "file_id", "model_id"]

MANIFEST = "segrefiner-manifest.json"
FORMAT = 1


def file_id(path: str | os.PathLike) -> dict[str, Any]:
    """``{"size", "sha256"}`` of a file."""
    digest = hashlib.sha256()
    p = Path(path)
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"size": p.stat().st_size, "sha256": digest.hexdigest()}


def model_id(source: str | None) -> dict[str, Any]:
    """The identity of a model given by registered name or checkpoint path, without loading it.

    ``{"source": name or absolute path, "sha256": digest of its weights or None}`` (None
    when the file cannot be found: loading it will say why).
    """
    from . import registry

    name = registry.DEFAULT_MODEL if source is None else str(source)
    try:
        path = registry.resolve(name) if name in registry.MODELS else Path(name)
        digest = file_id(path)["sha256"]
    except (OSError, ValueError, KeyError):
        digest = None
    shown = name if name in registry.MODELS else str(Path(name).absolute())
    return {"source": shown, "sha256": digest}


class Manifest:
    """The manifest of the output folder ``folder`` for a run with settings ``run``.

    Parameters
    ----------
    path : path-like
        The manifest file.
    run : dict
        JSON-compatible settings of this run; an entry counts only if its settings are
        equal.
    every : float
        :meth:`record` saves at most this often (seconds); :meth:`save` always does.
    """

    def __init__(self, path: str | os.PathLike, run: dict[str, Any], *, every: float = 2.0):
        self.path = Path(path)
        self.run = json.loads(json.dumps(run))  # normalised as it will be read back
        self.every = float(every)
        self.entries: dict[str, dict] = {}
        self._ids: dict[Path, dict] = {}
        self._saved = 0.0
        self._dirty = False
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                data = {}
            if isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("outputs"), dict):
                self.entries = data["outputs"]

    def _id(self, path: Path) -> dict:
        key = Path(path).absolute()
        if key not in self._ids:
            self._ids[key] = file_id(key)
        return self._ids[key]

    def _inputs(self, inputs: dict[str, Path]) -> dict:
        return {k: self._id(p) for k, p in inputs.items()}

    def status(self, name: str, output: Path, inputs: dict[str, Path]) -> str | None:
        """``"done"``, ``"claimed"`` or None (no matching entry) for output ``name``."""
        entry = self.entries.get(name)
        if not isinstance(entry, dict) or entry.get("run") != self.run:
            return None
        try:
            if entry.get("inputs") != self._inputs(inputs):
                return None
        except OSError:
            return None
        recorded = entry.get("output")
        if recorded is None:
            return "claimed"
        try:
            return "done" if os.path.isfile(output) and file_id(output) == recorded else None
        except OSError:
            return None

    def claim(self, name: str, inputs: dict[str, Path]) -> None:
        """Note that this run is about to write output ``name`` (call :meth:`save` after)."""
        self.entries[name] = {"inputs": self._inputs(inputs), "run": self.run, "output": None}
        self._dirty = True

    def record(self, name: str, output: dict | Path) -> None:
        """Note that output ``name`` was written (its :func:`file_id`, or its path)."""
        entry = self.entries.setdefault(name, {"inputs": {}, "run": self.run})
        entry["output"] = output if isinstance(output, dict) else file_id(output)
        entry["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._dirty = True
        if time.monotonic() - self._saved >= self.every:
            self.save()

    def save(self) -> None:
        """Write the manifest (atomically) if anything changed."""
        if not self._dirty:
            return
        from .io import atomic_write

        text = json.dumps({"format": FORMAT, "outputs": self.entries}, indent=1, sort_keys=True)
        atomic_write(self.path, lambda tmp: tmp.write_text(text))
        self._saved = time.monotonic()
        self._dirty = False
