"""Make the pictures of the dock that reads at a glance, and of a click-hint session.

napari with the SegRefiner widget on the plugin's sample (21 nuclei + coarse mask):

1. ``dock_default.png``: the dock as it opens (image, mask and Run on top; Hints and Review
   sections; "Advanced" folded);
2. ``dock_advanced.png``: the same with "Advanced" open (model, mode, steps, device, seed,
   what happens to results);
3. ``dock_finished.png``: after Run: the status line says "done: 21 objects in ... s";
4. ``click_hints.png``: two clicks on the "clicks" layer (an object click, green; an
   Alt-click on background just outside that object, magenta), each re-refining it.

Needs a real X display for correct pixels (Qt's ``offscreen`` platform grabs black)::

    xvfb-run -a -s "-screen 0 1600x1100x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python docs/make_interactive_screenshots.py [--out-dir docs]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=str(HERE))
    parser.add_argument("--size", default="1500x1000", help="window size WxH")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for a run")
    args = parser.parse_args(argv)

    import napari
    import numpy as np
    import torch  # noqa: F401  (before Qt)
    from qtpy.QtWidgets import QApplication
    from scipy import ndimage as ndi

    out = Path(args.out_dir)
    viewer = napari.Viewer(title="napari-segrefiner", show=True)
    width, height = (int(v) for v in args.size.lower().split("x"))
    viewer.window.resize(width, height)
    _, coarse = viewer.open_sample("napari-segrefiner", "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-segrefiner", "SegRefiner")
    widget.reset_choices()
    widget.form.device.value = "cpu"
    app = QApplication.instance()

    def settle(n=30):
        for _ in range(n):
            app.processEvents()
            time.sleep(0.01)

    def wait() -> bool:
        t0 = time.perf_counter()
        while widget.busy and time.perf_counter() - t0 < args.timeout:
            app.processEvents()
            time.sleep(0.02)
        settle()
        return not widget.busy

    def shot(name: str) -> None:
        settle()
        path = out / name
        viewer.screenshot(str(path), canvas_only=False, flash=False)
        print(f"wrote {path}")

    viewer.layers.selection.active = coarse
    shot("dock_default.png")
    widget.form.advanced.expand()
    shot("dock_advanced.png")
    widget.form.advanced.collapse()
    if widget.start() is None or not wait():
        print(f"the run did not end: {widget.form.status.value}", file=sys.stderr)
        return 1
    shot("dock_finished.png")
    print(widget.form.status.value)

    plane = np.asarray(coarse.data)
    ys, xs = np.nonzero(plane)
    centre = np.array(plane.shape) / 2
    k = int(np.argmin((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2))
    label = plane[ys[k], xs[k]]
    rows, cols = np.nonzero(plane == label)
    widget.clicks.points_layer()
    widget.clicks.click(coarse.data_to_world((int(rows.mean()), int(cols.mean()))))
    wait()
    # background just outside the object, where it is farthest from every other object
    own = plane == label
    ring = ndi.binary_dilation(own, iterations=3) & ~ndi.binary_dilation(own, iterations=2)
    room = ndi.distance_transform_edt((plane == 0) | own)
    edge = np.unravel_index(np.argmax(np.where(ring, room, -1)), plane.shape)
    widget.clicks.click(coarse.data_to_world(edge), background=True)
    wait()
    viewer.scene.camera.center = coarse.data_to_world((rows.mean(), cols.mean()))
    viewer.scene.camera.zoom = 4
    shot("click_hints.png")
    print(widget.form.status.value)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
