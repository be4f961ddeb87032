"""The habits that keep the package tree drawing the architecture, checked on every run.

* the import contract of ``pyproject.toml`` holds (``lint-imports``: layers, no GUI in the core);
* no module is longer than :data:`MAX_LINES` lines, none of the napari wing longer than
  :data:`MAX_NAPARI_LINES`;
* no module imports another module's private (underscore) name;
* every module has a test file of its own: ``tests/<subpackage>/test_<module>.py``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "napari_segrefiner"
MAX_LINES = 400
MAX_NAPARI_LINES = 300  # the napari wing: small controllers, one concern each
# Modules whose tests live elsewhere: the napari wing's (tests/napari/).
UNTESTED_HERE = ("_napari/",)


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def test_the_import_contract_holds():
    pytest.importorskip("importlinter")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(no_cache=True, no_logo=True))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def _limit(rel: str) -> int:
    return MAX_NAPARI_LINES if rel.startswith("_napari/") else MAX_LINES


def test_no_module_is_longer_than_the_limit():
    lengths = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in _modules()}
    assert {k: n for k, n in lengths.items() if n > _limit(k)} == {}


def test_no_module_imports_another_modules_private_name():
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("napari_segrefiner")):
                found += [
                    f"{path.relative_to(PACKAGE)}:{node.lineno} {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert found == []


def test_every_module_has_a_test_file_of_its_own():
    missing = []
    for path in _modules():
        rel = path.relative_to(PACKAGE)
        if path.name.startswith("_") or str(rel).startswith(UNTESTED_HERE):
            continue
        if not (ROOT / "tests" / rel.parent / f"test_{path.stem}.py").is_file():
            missing.append(str(rel))
    assert missing == []
