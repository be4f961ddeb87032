"""What an annotator feels when pressing Run in the SegRefiner dock widget (a real viewer).

Opens napari with the shipped sample (``make_sample_data()``: an H&E image and a coarse mask
of its 21 nuclei), docks the widget, clicks Run with the defaults (the shipped model on the
CPU) and measures, in napari's own event loop:

* ``click_ms``: how long the click takes to return (the main thread is blocked that long);
* ``first_preview_s``: click to the first diffusion step painted into the preview layer;
* ``result_s``: click to the "<mask> refined" layer;
* event-loop gaps: a 20 ms QTimer records its ticks during the run; a gap is the time
  between two ticks (20 ms when the loop is free; more while the main thread is busy).

``--load`` starts a busy-loop process that keeps one more core busy during the measurement
(an annotator's browser, another job). Not a test: figures depend on the machine.

Usage:  QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \\
            python benchmarks/bench_widget.py [--load] [--device cpu] [--steps 0]
        (QT_QPA_PLATFORM=offscreen under xvfb-run works too when xcb is unavailable)
Writes  benchmarks/results/widget.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

from _gui import machine, sample_viewer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TICK_MS = 20


def busy_loop() -> None:  # pragma: no cover (a child process)
    while True:
        pass


def gap_stats(ticks: list[float], t0: float, marks: dict) -> dict:
    """Median, p95 and max gap between ticks; the largest ones with when they began (s after
    the click) and the widget event that was due then."""
    gaps = [1000 * (b - a) for a, b in zip(ticks, ticks[1:])]
    if not gaps:
        return {"ticks": len(ticks)}
    gaps_sorted = sorted(gaps)
    top = sorted(range(len(gaps)), key=gaps.__getitem__)[-5:][::-1]
    events = sorted((t - t0, name) for name, t in marks.items() if isinstance(t, float))

    def near(at: float) -> str:
        return ", ".join(name for when, name in events if at - 0.05 <= when <= at + gaps_sorted[-1] / 1000 + 0.05)

    return {
        "ticks": len(ticks),
        "median_ms": round(statistics.median(gaps), 1),
        "p95_ms": round(gaps_sorted[int(0.95 * (len(gaps) - 1))], 1),
        "max_ms": round(max(gaps), 1),
        "over_100ms": sum(g > 100 for g in gaps),
        "largest": [
            {"at_s": round(ticks[i] - t0, 2), "ms": round(gaps[i], 1), "near": near(ticks[i] - t0)} for i in top
        ],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", action="store_true", help="keep one more core busy (a busy-loop process)")
    parser.add_argument("--device", default="cpu", help="device of the run (default cpu)")
    parser.add_argument("--steps", type=int, default=0, help="diffusion steps (0 = all)")
    parser.add_argument("--model", default=None, help="registered model or checkpoint (default: the dock's default)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the result")
    parser.add_argument("--out", default=str(HERE / "results" / "widget.json"))
    args = parser.parse_args(argv)

    from qtpy.QtCore import QTimer

    from napari_segrefiner._napari._widget import SegRefinerWidget
    from napari_segrefiner._napari.preflight import count_objects
    from napari_segrefiner.models.threads import available_cores, cpu_threads

    viewer, app = sample_viewer("bench_widget")
    mask_name = viewer.layers[-1].name
    widget = SegRefinerWidget(viewer, confirm=lambda text: True)
    viewer.window.add_dock_widget(widget, name="SegRefiner")
    widget.reset_choices()
    widget._device.value = args.device if args.device in widget._device.choices else "auto"
    widget._steps.value = args.steps
    if args.model:
        widget._choice.set(args.model)
    objects = count_objects(widget.job())
    model, device = widget._choice.source(), widget._device.value
    load_before = round(os.getloadavg()[0], 2)  # other processes on the machine (before --load starts)

    marks: dict[str, float] = {}
    ticks: list[float] = []
    paint = widget._preview.paint

    def first_paint(*a, **k):  # the first step painted into the preview layer
        marks.setdefault("first_preview", time.perf_counter())
        return paint(*a, **k)

    widget._preview.paint = first_paint
    opening_ms: dict[str, float] = {}

    def timed(step, name):  # one piece of opening the run, in its own event-loop turn
        def run_step():
            marks[name] = time.perf_counter()
            step()
            opening_ms[name] = round(1000 * (time.perf_counter() - marks[name]), 1)

        return run_step

    from napari_segrefiner._napari import worker as jobs

    cached_refiner = jobs.cached_refiner

    def timed_cached_refiner(*a, **k):  # runs in the worker thread: loading the model
        marks["model_load_begin"] = time.perf_counter()
        refiner = cached_refiner(*a, **k)
        marks["model_loaded"] = time.perf_counter()
        return refiner

    jobs.cached_refiner = timed_cached_refiner
    write_result = widget._preview.write_result

    def timed_write_result(*a, **k):  # the result layer (main thread)
        marks["result_layer_begin"] = time.perf_counter()
        write_result(*a, **k)

    widget._preview.write_result = timed_write_result
    ticker = QTimer()
    ticker.timeout.connect(lambda: ticks.append(time.perf_counter()))
    load = None
    if args.load:
        load = mp.get_context("spawn").Process(target=busy_loop, daemon=True)
        load.start()

    def click():
        ticker.start(TICK_MS)
        marks["click"] = time.perf_counter()
        ticks.append(marks["click"])
        widget._run_btn.native.click()
        marks["click_returned"] = time.perf_counter()
        run = widget._preview.run  # opened by a 0 ms timer, one piece per turn: time each piece
        run.opening = [timed(step, name) for step, name in zip(run.opening, ["preview layer", "uncertainty layer"])]
        run.on_open = timed(run.on_open, "progress bar")
        poll.start(10)

    def check():
        if f"{mask_name} refined" in viewer.layers and "result" not in marks:
            marks["result"] = time.perf_counter()
        if not widget.busy or time.perf_counter() - marks["click"] > args.timeout:
            poll.stop()
            ticker.stop()
            marks["status"] = widget._status.value  # (napari closes its windows when the app quits)
            app.quit()

    poll = QTimer()
    poll.timeout.connect(check)
    for _ in range(30):  # let the window settle before the measurement
        app.processEvents()
        time.sleep(0.01)
    QTimer.singleShot(200, click)
    app.exec()
    if load is not None:
        load.terminate()
        load.join()

    t0 = marks["click"]
    done = "result" in marks
    result = {
        "sample": f"make_sample_data(): {objects} objects, {viewer.layers[0].data.shape[:2]} px",
        "model": model,
        "device": device,
        "steps": args.steps or "all",
        "load": bool(args.load),
        "cores": available_cores(),
        "load_average_1min_before": load_before,
        "gui_threads": cpu_threads("gui"),
        "click_ms": round(1000 * (marks["click_returned"] - t0), 1),
        "opening_ms": opening_ms,
        "model_load_s": round(marks["model_loaded"] - marks["model_load_begin"], 2),
        "first_preview_s": round(marks["first_preview"] - t0, 2) if "first_preview" in marks else None,
        "result_s": round(marks["result"] - t0, 2) if done else None,
        "status": marks.get("status"),
        "event_loop_gaps": {"tick_ms": TICK_MS, **gap_stats(ticks, t0, marks)},
        **machine(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    gaps = result["event_loop_gaps"]
    print(
        f"{result['sample']}, {result['model']} on {result['device']}, load={result['load']}, "
        f"{result['gui_threads']} torch thread(s) of {result['cores']} cores"
    )
    print(
        f"click returned in {result['click_ms']} ms; first preview after {result['first_preview_s']} s; "
        f"result after {result['result_s']} s"
    )
    print(
        f"event-loop gaps during the run: median {gaps.get('median_ms')} ms, p95 {gaps.get('p95_ms')} ms, "
        f"max {gaps.get('max_ms')} ms, {gaps.get('over_100ms')} over 100 ms ({gaps['ticks']} ticks)"
    )
    print(
        f"model loaded in the worker in {result['model_load_s']} s; opening the run just after the click "
        f"(one event-loop turn each): {opening_ms}"
    )
    print("largest gaps:")
    for gap in gaps.get("largest", []):
        print(f"  {gap['ms']} ms at {gap['at_s']} s {('(' + gap['near'] + ')') if gap['near'] else ''}")
    print(f"wrote {args.out}")
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
