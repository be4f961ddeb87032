"""The engine must not import the GUI stack (napari, magicgui, Qt bindings).

Checked in a fresh interpreter (the pytest process itself has napari/pytest-qt plugins
loaded). Besides looking at ``sys.modules`` afterwards, a meta-path spy records every
ATTEMPT to import a forbidden package, so an optional ``try: import napari`` in a core
module is caught even where napari is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FORBIDDEN = ["napari", "magicgui", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6"]
# every module of the package except the napari wing's own modules (``_napari._*``, and the GUI
# controllers named below)
CORE = {
    "models.checkpoint",
    "models.config",
    "io.images",
    "models.refiner",
    "engine.patches",
    "engine.pipelines",
    "api",
    "models.registry",
    "diffusion.sampling",
    "diffusion.scheduler",
    "cli.main",
    "models.nets.unet",
    "models.nets.lite",
    "models.nets.blocks",
    "lazy.refine",
    "training.train",
    "training.synthesis",
    "evaluation.benchmark",
    "evaluation.metrics",
    "_napari.worker",
    "adapt.learn",
    "adapt.review",
    "adapt.store",
    "models.adapted",
    "cli.adapt",
}

# the napari wing's controllers with public names (Qt widgets: they import the GUI stack)
GUI_MODULES: list[str] = []

SCRIPT = r"""
import importlib, json, pkgutil, sys
FORBIDDEN = set(json.loads(sys.argv[1]))
GUI_MODULES = set(json.loads(sys.argv[2]))
attempts = []

class Spy:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            attempts.append(name)
        return None  # let the normal machinery continue

sys.meta_path.insert(0, Spy())
import napari_segrefiner
mods = sorted(
    m.name[len("napari_segrefiner."):]
    for m in pkgutil.walk_packages(napari_segrefiner.__path__, "napari_segrefiner.")
    if not m.name.rsplit(".", 1)[-1].startswith("_") and not m.ispkg
)
mods = [m for m in mods if m not in GUI_MODULES]
for name in mods:
    importlib.import_module("napari_segrefiner." + name)
loaded = sorted(n for n in sys.modules if n.split(".")[0] in FORBIDDEN)
print(json.dumps({"modules": mods, "loaded": loaded, "attempts": sorted(set(attempts))}))
"""


def test_core_modules_do_not_import_gui_packages():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(FORBIDDEN), json.dumps(GUI_MODULES)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert CORE <= set(report["modules"]), report["modules"]  # discovery really found them
    assert report["loaded"] == [], f"GUI packages in sys.modules: {report['loaded']}"
    assert report["attempts"] == [], f"imports of GUI packages were attempted: {report['attempts']}"
