"""The manifest of a resumable run: which outputs a run wrote, from what, with what.

``segrefiner-manifest.json`` in the output folder maps each output name to the identity
of its inputs (size and SHA-256), the run's settings (model and its weights' SHA-256, seed,
mode, steps, device, package version) and the output's own size and SHA-256. A rerun with
the same settings skips an output whose entry matches and whose file is still the one
recorded (``done``); every other existing output is foreign, and the planning rules refuse
it unless ``--overwrite`` is given. There are no "claims": an entry names an output only
with the identity of the file this tool wrote, so an edited entry, or a file put where a
killed run would have written, never makes a file look like the tool's own.

An output is recorded *before* its temporary file is moved into place, by appending one
line to ``segrefiner-manifest.journal`` (cheap, whatever the number of outputs); a run
stopped at any point thus never leaves a file it wrote unrecorded. Reading the manifest
replays the journal, and :meth:`Manifest.save` folds it into the JSON file (rewritten
atomically, :func:`~napari_segrefiner.io.atomic.atomic_write`) and removes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["JOURNAL", "MANIFEST", "Manifest", "file_id", "model_id"]

MANIFEST = "segrefiner-manifest.json"
JOURNAL = "segrefiner-manifest.journal"
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
    from ..models import registry

    name = registry.DEFAULT_MODEL if source is None else str(source)
    try:
        path = registry.resolve(name) if name in registry.MODELS else Path(name)
        digest = file_id(path)["sha256"]
    except (OSError, ValueError, KeyError):
        digest = None
    shown = name if name in registry.MODELS else str(Path(name).absolute())
    return {"source": shown, "sha256": digest}


class Manifest:
    """The manifest of the output folder of a run with settings ``run``.

    Parameters
    ----------
    path : path-like
        The manifest file (its journal is ``JOURNAL`` beside it).
    run : dict
        JSON-compatible settings of this run; an entry counts only if its settings are
        equal.
    every : float
        :meth:`record` folds the journal into the manifest at most this often (seconds);
        :meth:`save` always does.
    """

    def __init__(self, path: str | os.PathLike, run: dict[str, Any], *, every: float = 60.0):
        self.path = Path(path)
        self.journal = self.path.with_name(JOURNAL)
        self.run = json.loads(json.dumps(run))  # normalised as it will be read back
        self.every = float(every)
        self.entries: dict[str, dict] = {}
        self._ids: dict[Path, dict] = {}
        self._saved = time.monotonic()
        self._dirty = False
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                data = {}
            if isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("outputs"), dict):
                self.entries = data["outputs"]
        self._replay()

    def _replay(self) -> None:
        """Apply the journal a stopped run left (a torn last line is ignored)."""
        try:
            lines = self.journal.read_text().splitlines()
        except (OSError, ValueError):
            return
        for line in lines:
            try:
                item = json.loads(line)
                name, entry = item["name"], item["entry"]
            except (ValueError, KeyError, TypeError):
                continue
            if not isinstance(name, str):
                continue
            if isinstance(entry, dict):
                self.entries[name] = entry
            elif entry is None:
                self.entries.pop(name, None)
        self._dirty = True  # fold it into the manifest at the next save

    def _id(self, path: Path) -> dict:
        key = Path(path).absolute()
        if key not in self._ids:
            self._ids[key] = file_id(key)
        return self._ids[key]

    def _inputs(self, inputs: dict[str, Path]) -> dict:
        return {k: self._id(p) for k, p in inputs.items()}

    def status(self, name: str, output: Path, inputs: dict[str, Path]) -> str | None:
        """``"done"`` if output ``name`` is the file this tool recorded for these inputs
        and settings, else None."""
        entry = self.entries.get(name)
        if not isinstance(entry, dict) or entry.get("run") != self.run or not isinstance(entry.get("output"), dict):
            return None
        try:
            if entry.get("inputs") != self._inputs(inputs) or os.path.islink(output) or not os.path.isfile(output):
                return None
            return "done" if file_id(output) == entry["output"] else None
        except OSError:
            return None

    def _append(self, name: str, entry: dict | None) -> None:
        with open(self.journal, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"name": name, "entry": entry}, sort_keys=True) + "\n")
        self._dirty = True

    def record(self, name: str, inputs: dict[str, Path], output: dict) -> None:
        """Note that output ``name``, made from ``inputs``, is the file ``output`` (its
        :func:`file_id`); call it just before moving the file into place."""
        entry = {
            "inputs": self._inputs(inputs),
            "run": self.run,
            "output": dict(output),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self.entries[name] = entry
        self._append(name, entry)
        if time.monotonic() - self._saved >= self.every:
            self.save()

    def forget(self, name: str) -> None:
        """Drop the entry of output ``name`` (its file was not put in place after all)."""
        self.entries.pop(name, None)
        self._append(name, None)

    def save(self) -> None:
        """Write the manifest (atomically) with everything journaled, then remove the journal."""
        if not self._dirty:
            return
        from ..io.atomic import atomic_write

        text = json.dumps({"format": FORMAT, "outputs": self.entries}, indent=1, sort_keys=True)
        atomic_write(self.path, lambda tmp: tmp.write_text(text))
        self.journal.unlink(missing_ok=True)
        self._saved = time.monotonic()
        self._dirty = False
