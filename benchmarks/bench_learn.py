"""What an annotator feels when pressing "Learn from accepted" in the dock (a real viewer).

Opens napari with the shipped sample (an H&E image and a coarse mask of its 21 nuclei), docks
the widget, refines with ``--base``, then plays the annotator: every object of the review
queue is painted as its ground truth and accepted (each Accept makes a training pair). Then:

* ``cancel``: a Learn started and cancelled at its first training step; how long Cancel took
  to end the worker (``cancel_ms``);
* ``learn``: a Learn to the end (``--seconds`` budget, the dock's threads): wall time, steps,
  held-out IoU before and after, kept or not, and the event-loop gaps meanwhile (a 20 ms
  QTimer; a gap is the time between two ticks: 20 ms when the loop is free).

Not a test: figures depend on the machine (and what else runs on it).

Usage:  xvfb-run -a env QT_QPA_PLATFORM=offscreen python benchmarks/bench_learn.py \\
            [--base /work/runs/abl_effnet.pt] [--seconds 60]
Writes  benchmarks/results/learn_gui.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _gui import machine, sample_viewer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
TICK_MS = 20


def wait(app, cond, timeout: float) -> None:
    end = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > end:
            raise TimeoutError("timed out")
        app.processEvents()
        time.sleep(0.002)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="/work/runs/abl_effnet.pt")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--out", default=str(HERE / "results" / "learn_gui.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("NAPARI_SEGREFINER_CACHE", tempfile.mkdtemp(prefix="segrefiner-learn-"))
    import numpy as np
    from qtpy.QtCore import QTimer

    from napari_segrefiner._napari._widget import SegRefinerWidget
    from napari_segrefiner.io.sample import load_nuclei

    _, truth = load_nuclei()
    viewer, app = sample_viewer("learn benchmark")
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SegRefiner")
    widget.reset_choices()
    widget.form.device.value = "cpu"
    widget.set_model(args.base)
    t0 = time.perf_counter()
    widget.start()
    wait(app, lambda: not widget.busy, 900)
    refine_s = time.perf_counter() - t0
    review, learn = widget.review, widget.learn
    layer = review.layer
    review.next()
    while review.queue.current is not None and review.queue.status[review.queue.current] == "pending":
        label = review.queue.current
        data = layer.data
        data[data == label] = 0
        data[(truth == label) & (data == 0)] = label
        layer.refresh()
        review.accept()
    pairs = learn.number()
    learn.min_pairs, learn.seconds = min(learn.min_pairs, pairs), args.seconds

    learn.learn()
    wait(app, lambda: learn.bar.value() > 0 or "step" in learn.message.text(), 600)
    c0 = time.perf_counter()
    learn.cancel()
    wait(app, lambda: learn.worker is None, 60)
    cancel_ms = 1000 * (time.perf_counter() - c0)

    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(TICK_MS)
    l0 = time.perf_counter()
    learn.learn()
    wait(app, lambda: learn.worker is None, args.seconds * 4 + 120)
    learn_s = time.perf_counter() - l0
    timer.stop()
    gaps = np.diff(ticks) * 1000
    res = learn.result
    out = {
        "base": args.base,
        "seconds_budget": args.seconds,
        "refine_s": round(refine_s, 2),
        "pairs": pairs,
        "cancel_ms": round(cancel_ms, 1),
        "learn_wall_s": round(learn_s, 2),
        "steps": None if res is None else res.steps,
        "heldout_iou": None if res is None else {"base": res.base_iou, "adapted": res.adapted_iou},
        "kept": None if res is None else res.kept,
        "message": learn.message.text(),
        "gaps_ms": {
            "max": round(float(gaps.max()), 1),
            "p99": round(float(np.percentile(gaps, 99)), 1),
            "median": round(float(np.median(gaps)), 1),
            "ticks": len(ticks),
        },
        "tick_ms": TICK_MS,
        **machine(),
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
