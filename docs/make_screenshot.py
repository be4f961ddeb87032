"""Make ``docs/screenshot.png``: napari with the SegRefiner widget docked after refining
the plugin's sample data (DSB 2018 nuclei + coarse mask).

Needs a real X display for correct pixels (Qt's ``offscreen`` platform grabs black)::

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python docs/make_screenshot.py [--model segrefiner-lite] [--out docs/screenshot.png]

``--model`` takes a registered name (default: the shipped ``segrefiner-lite``) or a
checkpoint file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="segrefiner-lite", help="registry name or checkpoint file")
    parser.add_argument("--out", default=str(HERE / "screenshot.png"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=0, help="diffusion steps (default 0: all of the model's)")
    parser.add_argument("--size", default="1600x860", help="window size WxH")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the run")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--show-uncertainty", action="store_true", help="leave the uncertainty layer visible")
    args = parser.parse_args(argv)

    import torch  # (before Qt)

    if args.threads:
        torch.set_num_threads(args.threads)
    import napari
    from napari.utils.colormaps import DirectLabelColormap
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="napari-segrefiner", show=True)
    width, height = (int(v) for v in args.size.lower().split("x"))
    viewer.window.resize(width, height)
    image, coarse = viewer.open_sample("napari-segrefiner", "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-segrefiner", "SegRefiner")
    widget.reset_choices()
    widget.set_model(args.model)
    widget.form.device.value = args.device if args.device in widget.form.device.choices else "auto"
    widget.form.steps.value = args.steps
    app = QApplication.instance()
    if widget.start() is None:
        print("could not start the refinement (see the notification above)", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    while widget.busy and time.perf_counter() - t0 < args.timeout:
        app.processEvents()
        time.sleep(0.02)
    refined = f"{coarse.name} refined"
    if widget.busy or refined not in viewer.layers:
        print(f"the refinement did not finish ({widget.form.status.value})", file=sys.stderr)
        return 1
    # the coarse input as yellow outlines above the filled result: the change is visible at a glance
    coarse.colormap = DirectLabelColormap(color_dict={None: "yellow", 0: "transparent"})
    coarse.contour = 1
    coarse.opacity = 0.9
    viewer.layers.move(viewer.layers.index(coarse), len(viewer.layers))
    uncertainty = f"{coarse.name} uncertainty"
    if uncertainty in viewer.layers and not args.show_uncertainty:
        viewer.layers[uncertainty].visible = False
    viewer.layers.selection.active = viewer.layers[refined]
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
    viewer.screenshot(args.out, canvas_only=False, flash=False)
    print(f"wrote {args.out} after {time.perf_counter() - t0:.1f} s of refinement")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
