"""The npe2 manifest: discovery of the installed package, its contributions, the menu command."""

from __future__ import annotations

import importlib
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import pytest

npe2 = pytest.importorskip("npe2")
pytest.importorskip("napari")

PLUGIN = "napari-segrefiner"
ROOT = Path(__file__).resolve().parents[2]
MENU = "napari/layers/segment"
REFINE_CMD = "napari-segrefiner.refine_selected"


@pytest.fixture(scope="module")
def manifest():
    pm = npe2.PluginManager.instance()
    if PLUGIN not in pm:
        pm.discover()
    assert PLUGIN in pm, "napari-segrefiner is not installed (pip install -e .)"
    return pm.get_manifest(PLUGIN)


def test_entry_point_and_packaged_manifest_match_the_root_file():
    eps = [ep for ep in metadata.entry_points(group="napari.manifest") if ep.name == PLUGIN]
    assert [ep.value for ep in eps] == ["napari_segrefiner:napari.yaml"]
    shipped = resources.files("napari_segrefiner").joinpath("napari.yaml").read_text()
    assert shipped == (ROOT / "napari.yaml").read_text()


def test_manifest_contributions(manifest):
    c = manifest.contributions
    assert manifest.display_name == "SegRefiner"
    assert [w.display_name for w in c.widgets] == ["SegRefiner"]
    assert [s.key for s in c.sample_data] == ["nuclei"]
    assert {e for w in c.writers for e in w.filename_extensions} == {".tif", ".tiff", ".png", ".npy"}
    assert [w.layer_types for w in c.writers] == [["labels"]]
    assert [i.command for i in c.menus[MENU]] == [REFINE_CMD]
    # napari shows "<title> (SegRefiner)" and "SegRefiner <writer name>": never the name twice
    assert not [cmd.title for cmd in c.commands if "segrefiner" in cmd.title.lower()]
    assert [w.display_name for w in c.writers] == ["labels (.tif/.png/.npy)"]


COMMANDS = npe2.PluginManifest.from_file(ROOT / "napari.yaml").contributions.commands


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_every_python_name_imports(command):
    module, attr = command.python_name.split(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_reader_claims_only_mask_like_names(manifest):
    pm = npe2.PluginManager.instance()

    def claims(name):
        return any(r.plugin_name == PLUGIN for r in pm.iter_compatible_readers([name]))

    assert all(claims(n) for n in ["cells_mask.png", "labels.tif", "nuclei_seg.tiff", "x refined.npy"])
    assert not any(claims(n) for n in ["photo.png", "stack.tif", "array.npy", "mask.jpg"])


@pytest.mark.slow
@pytest.mark.gui
def test_dock_widget_and_sample_data(make_napari_viewer):
    from napari_segrefiner._napari._widget import SegRefinerWidget
    from napari_segrefiner.io.sample import load_nuclei

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "SegRefiner")
    assert isinstance(widget, SegRefinerWidget)
    layers = viewer.open_sample(PLUGIN, "nuclei")
    image, coarse = (viewer.layers[0], viewer.layers[1])
    assert len(layers) == 2 and image.rgb and image.data.shape == (256, 320, 3)
    _, truth = load_nuclei()
    assert coarse.data.shape == truth.shape
    assert set(np.unique(coarse.data)) == set(np.unique(truth))  # every nucleus survives
    iou = np.sum((coarse.data > 0) & (truth > 0)) / np.sum((coarse.data > 0) | (truth > 0))
    assert 0.6 < iou < 0.95  # deliberately coarse, but still about the nuclei
    again = viewer.open_sample(PLUGIN, "nuclei")[1]
    np.testing.assert_array_equal(again.data, coarse.data)  # seeded: the same every time
    widget.reset_choices()
    assert widget._image.value is image and widget._mask.value is coarse


@pytest.mark.gui
def test_menu_entry_registered_and_executes(make_napari_viewer, qtbot, monkeypatch, blobs, tiny_model):
    # napari's own accessor: under make_napari_viewer the app-model instance is a test double
    from napari._app_model import get_app_model
    from napari.utils import progress

    from napari_segrefiner._napari import _napari_menu
    from napari_segrefiner._napari import worker as _jobs

    bars = []

    class RecordedProgress(_napari_menu.StepProgress):
        def __init__(self, desc):
            super().__init__(desc)
            bars.append(self.bar)

    monkeypatch.setattr(_napari_menu, "StepProgress", RecordedProgress)
    viewer = make_napari_viewer()
    app = get_app_model()
    titles = {item.command.id: item.command.title for item in app.menus.get_menu(MENU) if hasattr(item, "command")}
    assert titles[REFINE_CMD] == "Refine mask (SegRefiner)"  # napari appends the display name once

    monkeypatch.setattr(_jobs, "load_refiner", lambda source, device, cache: tiny_model)
    image, mask = blobs
    viewer.add_image(image, name="img")
    labels = viewer.add_labels(mask, name="coarse", scale=(2, 2))
    viewer.layers.selection.active = labels
    worker = app.commands.execute_command(REFINE_CMD).result()
    assert worker is not None
    qtbot.waitUntil(lambda: "coarse refined" in viewer.layers, timeout=30_000)
    result = viewer.layers["coarse refined"]
    assert result.data.shape == mask.shape and tuple(result.scale) == (2, 2)
    np.testing.assert_array_equal(labels.data, mask)  # the input is untouched
    # its own progress bar: the total taken from the records, closed when the worker finished
    [bar] = bars
    qtbot.waitUntil(lambda: bar not in progress._all_instances, timeout=30_000)
    assert bar.n == bar.total > 0

    # nothing to refine: a warning, no worker
    from napari.utils.notifications import NotificationSeverity, notification_manager

    empty = viewer.add_labels(np.zeros_like(mask), name="empty")
    viewer.layers.selection.active = empty
    n = len(notification_manager.records)
    assert app.commands.execute_command(REFINE_CMD).result() is None
    [record] = notification_manager.records[n:]
    assert record.severity == NotificationSeverity.WARNING and "'empty' is empty" in str(record.message)
    assert bars == [bars[0]]  # no second run started


@pytest.mark.slow
def test_wheel_ships_the_manifest_and_npe2_reads_it(tmp_path):
    """A regular (non-editable) wheel carries napari.yaml inside the package, with the entry point."""
    import subprocess
    import sys
    import zipfile

    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    work = tmp_path / "src"
    # build from a copy so no build/ or egg-info folders land in the checkout
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", str(work)], check=True)
    if not (work / "napari_segrefiner" / "napari.yaml").exists():
        pytest.skip("the checkout's HEAD does not have the manifest yet")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(work),
        ],
        check=True,
    )
    (whl,) = (tmp_path / "dist").glob("napari_segrefiner-*.whl")
    with zipfile.ZipFile(whl) as zf:
        names = zf.namelist()
        shipped = zf.read("napari_segrefiner/napari.yaml").decode()
        eps = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert shipped == (ROOT / "napari.yaml").read_text()
    assert "[napari.manifest]" in eps and "napari-segrefiner = napari_segrefiner:napari.yaml" in eps
    assert "napari_segrefiner/samples/dsb2018_0d3640c1.png" in names
    out = tmp_path / "napari.yaml"
    out.write_text(shipped)
    mf = npe2.PluginManifest.from_file(out)
    assert mf.name == PLUGIN and any(w.display_name == "SegRefiner" for w in mf.contributions.widgets)
