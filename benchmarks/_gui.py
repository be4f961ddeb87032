"""What the plugin benchmarks share: a viewer holding the shipped sample, and the machine they ran on."""

from __future__ import annotations

import os
import platform


def sample_viewer(title: str):
    """A shown napari viewer titled ``title`` with the shipped sample's layers; ``(viewer, app)``."""
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_segrefiner._napari._sample_data import make_sample_data

    viewer = napari.Viewer(title=title, show=True)
    for data, kwargs, kind in make_sample_data():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    return viewer, QApplication.instance()


def machine(**versions) -> dict:
    """The GL, the Qt platform and the software versions (``versions``: more, by name) of this run."""
    import napari
    import torch

    return {
        "gl": "Mesa software (Xvfb)" if platform.system() == "Linux" else "native",
        "qt_platform": os.environ.get("QT_QPA_PLATFORM", ""),
        "machine": {
            "python": platform.python_version(),
            "napari": napari.__version__,
            "torch": torch.__version__,
            **versions,
            "cpu": platform.processor() or platform.machine(),
        },
    }
