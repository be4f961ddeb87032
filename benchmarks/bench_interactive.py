"""Does the dock feel interactive? Run, the first refined object, the result, one click hint.

Opens napari with the shipped sample (``make_sample_data()``: an H&E image and a coarse mask
of its 21 nuclei), docks the widget, clicks Run with the defaults (the shipped model on the
CPU, one torch thread) and measures in napari's own event loop:

* ``first_object_s``: Run to the first refined object painted into the preview layer, and
  where that time went (``before_first``: the click to the worker, the model (loaded when
  the dock was first shown), the run's checks, the first object's network steps, the way
  from the worker to the screen);
* ``result_s``: Run to the "<mask> refined" layer;
* ``click_hint_s``: one click hint on the object nearest the centre of the image (its hint
  disk and the re-run of that object, and of a neighbour whose crop the disk falls in) to
  its merged result (``click_hints_button_ms``: the "Click hints" button before it, which
  adds the clicks and hints layers);
* the event loop's longest pause (a 20 ms QTimer's ticks) over all of it.

``--load`` keeps one more core busy (a busy-loop process), as an annotator's other work would.
Not a test: figures depend on the machine.

Usage:  QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \\
            python benchmarks/bench_interactive.py [--load]
Writes  benchmarks/results/interactive.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

from _gui import machine, sample_viewer
from bench_widget import busy_loop, gap_stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TICK_MS = 20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", action="store_true", help="keep one more core busy (a busy-loop process)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for each phase")
    parser.add_argument("--out", default=str(HERE / "results" / "interactive.json"))
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from qtpy.QtCore import QTimer

    from napari_segrefiner._napari import worker as jobs
    from napari_segrefiner._napari._widget import SegRefinerWidget
    from napari_segrefiner._napari.preflight import count_objects
    from napari_segrefiner.models.threads import available_cores, cpu_threads

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    viewer, app = sample_viewer("bench_interactive")
    mask = viewer.layers[-1]
    widget = SegRefinerWidget(viewer, confirm=lambda text: True)
    viewer.window.add_dock_widget(widget, name="SegRefiner")
    widget.reset_choices()
    widget.form.device.value = "cpu"
    objects = count_objects(widget.job())
    model = widget.form.choice.source()  # (napari closes its windows when the app quits)
    load_before = round(os.getloadavg()[0], 2)

    marks: dict[str, float] = {}
    ticks: list[float] = []
    paint = widget.runs.preview.paint

    def first_paint(*a, **k):
        marks.setdefault("first_object", time.perf_counter())
        return paint(*a, **k)

    widget.runs.preview.paint = first_paint
    cached_refiner, start = jobs.cached_refiner, jobs.start

    def timed_cached_refiner(*a, **k):  # worker thread (the dock's warm-up before the click: not timed)
        if "click" not in marks:
            return cached_refiner(*a, **k)
        marks.setdefault("model_load_begin", time.perf_counter())
        refiner = cached_refiner(*a, **k)
        marks.setdefault("model_loaded", time.perf_counter())
        return refiner

    def timed_start(*a, **k):  # worker thread: the run's checks, then its records
        if "click" not in marks:  # (the dock's warm-up probe before the click: not timed)
            return start(*a, **k)
        marks.setdefault("start_begin", time.perf_counter())
        records = start(*a, **k)
        marks.setdefault("start_returned", time.perf_counter())

        def timed_records():
            for record in records:
                marks.setdefault("first_record", time.perf_counter())
                yield record

        return timed_records()

    jobs.cached_refiner, jobs.start = timed_cached_refiner, timed_start
    yielded = widget.runs.on_yielded

    def timed_yielded(update):
        marks.setdefault("first_yield_slot", time.perf_counter())
        return yielded(update)

    widget.runs.on_yielded = timed_yielded  # (connected per run, in start(): this one is used)
    ticker = QTimer()
    ticker.timeout.connect(lambda: ticks.append(time.perf_counter()))
    load = None
    if args.load:
        load = mp.get_context("spawn").Process(target=busy_loop, daemon=True)
        load.start()

    def click_run():
        ticker.start(TICK_MS)
        marks["click"] = time.perf_counter()
        ticks.append(marks["click"])
        widget.form.run_btn.native.click()
        marks["click_returned"] = time.perf_counter()
        poll.start(10)

    def click_hint():
        plane = np.asarray(mask.data)
        ys, xs = np.nonzero(plane)
        centre = np.array(plane.shape) / 2
        k = int(np.argmin((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2))
        marks["hint_label"] = float(plane[ys[k], xs[k]])
        marks["click_hints_button"] = time.perf_counter()
        widget.clicks.points_layer()  # the "Click hints" button: the clicks and hints layers
        marks["click_hints_layers"] = time.perf_counter()

        def click():
            marks["hint_click"] = time.perf_counter()
            widget.clicks.click(mask.data_to_world((ys[k], xs[k])))
            marks["hint_click_returned"] = time.perf_counter()

        QTimer.singleShot(1000, click)

    def check():
        now = time.perf_counter()
        if "result" not in marks:
            if f"{mask.name} refined" in viewer.layers and not widget.busy:
                marks["result"] = now
                marks["run_status"] = widget.form.status.value
                QTimer.singleShot(300, click_hint)
        elif "hint_click_returned" in marks and not widget.busy and "hint_done" not in marks:
            marks["hint_done"] = now
            marks["hint_status"] = widget.form.status.value
            QTimer.singleShot(300, finish)
        if now - marks["click"] > args.timeout:
            finish()

    def finish():
        poll.stop()
        ticker.stop()
        app.quit()

    poll = QTimer()
    poll.timeout.connect(check)
    for _ in range(30):
        app.processEvents()
        time.sleep(0.01)
    t_warm = time.perf_counter()  # the dock loads the model and times a probe when first shown: an annotator
    while not widget.runs.speed and time.perf_counter() - t_warm < 60:  # opens it before painting
        app.processEvents()
        time.sleep(0.01)
    marks["warm_up_s"] = time.perf_counter() - t_warm
    QTimer.singleShot(200, click_run)
    app.exec()
    if load is not None:
        load.terminate()
        load.join()

    t0 = marks["click"]

    def since(name, origin="click"):
        return round(marks[name] - marks[origin], 3) if name in marks and origin in marks else None

    result = {
        "sample": f"make_sample_data(): {objects} objects, {viewer.layers[0].data.shape[:2]} px",
        "model": model,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "gui_threads": cpu_threads("gui"),
        "cores": available_cores(),
        "load": bool(args.load),
        "load_average_1min_before": load_before,
        "model_warm_up_at_show_s": round(marks["warm_up_s"], 2),
        "click_ms": round(1000 * (marks["click_returned"] - t0), 1),
        "first_object_s": since("first_object"),
        "before_first": {
            "click_to_model_s": since("model_load_begin"),
            "model_from_cache_s": since("model_loaded", "model_load_begin"),
            "run_checks_s": since("start_returned", "start_begin"),
            "first_batch_s": since("first_record", "start_returned"),
            "worker_to_slot_s": since("first_yield_slot", "first_record"),
            "slot_to_paint_s": since("first_object", "first_yield_slot"),
        },
        "result_s": since("result"),
        "run_status": marks.get("run_status"),
        "click_hint_label": marks.get("hint_label"),
        "click_hints_button_ms": round(1000 * since("click_hints_layers", "click_hints_button"), 1),
        "click_hint_s": since("hint_done", "hint_click"),
        "hint_status": marks.get("hint_status"),
        "event_loop_gaps": {"tick_ms": TICK_MS, **gap_stats(ticks, t0, {k: v for k, v in marks.items()})},
        **machine(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine",)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
