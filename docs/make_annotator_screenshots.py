"""Make the annotator-workflow pictures of ``docs/plugin_usage.md`` (hints, review queue, re-run).

napari with the SegRefiner widget on the plugin's sample (DSB 2018 nuclei + coarse mask):

1. ``annotator_queue.png``: after a first run, the review queue lists the objects least
   certain first; "Next" (pressed until the first one away from the image border) has
   centred the view on it, selected it in the result layer and shown the uncertainty layer.
2. ``annotator_hints.png``: a hints layer over that object: magenta (2 = background) where
   its result covers background in the sample's ground truth, green (1 = object) where the
   result misses it (within its coarse mask), before pressing Run.
3. ``annotator_rerefined.png``: after Run with "Only changed objects": only that object was
   refined again (the status line says so), the hinted pixels hold, the other 20 objects
   kept their result.

Needs a real X display for correct pixels (Qt's ``offscreen`` platform grabs black)::

    xvfb-run -a -s "-screen 0 1600x1100x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python docs/make_annotator_screenshots.py [--out-dir docs]
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
    parser.add_argument("--size", default="1600x1060", help="window size WxH")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for a run")
    args = parser.parse_args(argv)

    import napari
    import torch  # noqa: F401  (before Qt)
    from napari.utils.colormaps import DirectLabelColormap
    from qtpy.QtWidgets import QApplication
    from scipy import ndimage as ndi

    from napari_segrefiner.io.sample import load_nuclei

    out = Path(args.out_dir)
    viewer = napari.Viewer(title="napari-segrefiner", show=True)
    width, height = (int(v) for v in args.size.lower().split("x"))
    viewer.window.resize(width, height)
    _, coarse = viewer.open_sample("napari-segrefiner", "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-segrefiner", "SegRefiner")
    widget.reset_choices()
    widget._device.value = "cpu"
    app = QApplication.instance()

    def settle(n=30):
        for _ in range(n):
            app.processEvents()
            time.sleep(0.01)

    def run() -> bool:
        if widget.start() is None:
            print(f"did not start: {widget._status.value}", file=sys.stderr)
            return False
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

    if not run():
        return 1
    result = viewer.layers[f"{coarse.name} refined"]
    # the coarse input as yellow outlines above the result
    coarse.colormap = DirectLabelColormap(color_dict={None: "yellow", 0: "transparent"})
    coarse.contour, coarse.opacity = 1, 0.9
    viewer.layers.move(viewer.layers.index(coarse), len(viewer.layers))
    viewer.layers.selection.active = result
    panel = widget._review
    label = panel.next()
    h, w = result.data.shape
    for _ in range(len(panel.queue) - 1):  # the least certain object away from the image border
        y0, y1, x0, x1 = panel.queue.item(label).box
        if min(y0, x0) >= 10 and y1 <= h - 10 and x1 <= w - 10:
            break
        label = panel.next()
    shot("annotator_queue.png")

    # hints for that object from the sample's ground truth (an annotator's two strokes)
    _, truth = load_nuclei()
    hints = widget._hints.new_layer()
    own = result.data == label
    spill = own & (truth != label)
    missed = (truth == label) & ~own & (coarse.data == label)
    hints.data[ndi.binary_opening(spill)] = 2
    hints.data[ndi.binary_opening(missed)] = 1
    if not hints.data.any():  # the result matches the truth already: mark its outer rim as background
        hints.data[own & ~ndi.binary_erosion(own, iterations=2)] = 2
    hints.refresh()
    viewer.layers.selection.active = hints
    result.visible = False
    shot("annotator_hints.png")

    result.visible = True
    if not run():
        return 1
    viewer.layers.selection.active = result
    panel.go(label)
    shot("annotator_rerefined.png")
    print(f"object {label}: {widget._status.value}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
