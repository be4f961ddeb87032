"""Is napari still responsive while the dock widget refines a 16k x 16k zarr-backed slide?

Builds (in a temporary folder, never in the repository) a synthetic whole slide of
``--side`` x ``--side`` px: 256 px tiles of real dsb2018 val images and seeded coarse masks
of their nuclei (``bench_lazy.build_slide``: about 20,000 objects on 16384 px), as zarr
arrays with 1024 px chunks, plus nearest-neighbour pyramid levels down to 1024 px (a
whole-slide viewer's usual layout). Then, in a real viewer (napari under Xvfb):

1. adds the slide as a multiscale Image layer and its coarse mask as a multiscale Labels
   layer (``--single-scale``: plain full-resolution zarr layers instead), docks the widget
   and lets the viewer settle;
2. records a 20 ms QTimer for ``--baseline`` seconds without any run (the machine's own noise);
3. clicks Run (the shipped model on the CPU: a lazy run, since the mask is zarr-backed) and
   keeps recording for ``--window`` seconds: the first part with the viewer left alone, the
   last ``--interact`` seconds panning and zooming every second (napari then reads tiles
   of both layers in the main thread), while the mask is scanned and objects are refined
   into the widget's zarr store;
4. clicks Cancel and records until the run has ended, then checks that the layers are as
   before and the partial store is gone.

A gap is the time between two ticks (20 ms when the loop is free). The full refinement of
~20,000 objects takes hours on this CPU, so the run is measured over a bounded window and
cancelled; the JSON reports how many objects were done and at what rate.

Usage:  QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \\
            python benchmarks/bench_widget_lazy.py [--window 90] [--interact 30] [--data-dir DIR]
Writes  benchmarks/results/widget_lazy.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _gui import machine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

TICK_MS = 20
GOAL_MS = 200


def pyramid(root: Path, name: str, stop: int = 1024) -> list[str]:
    """Nearest-neighbour levels ``name.1``, ``name.2``, ... of ``root/name.zarr`` down to ``stop`` px."""
    import zarr

    paths = [f"{name}.zarr"]
    src = zarr.open_array(str(root / paths[0]), mode="r")
    k = 1
    while max(src.shape[:2]) > stop:
        path = f"{name}.{k}.zarr"
        shape = (-(-src.shape[0] // 2), -(-src.shape[1] // 2), *src.shape[2:])
        chunks = (min(1024, shape[0]), min(1024, shape[1]), *src.shape[2:])
        dst = zarr.create_array(
            store=str(root / path), shape=shape, dtype=src.dtype, chunks=chunks, fill_value=0, overwrite=True
        )
        for y in range(0, src.shape[0], 2048):
            dst[y // 2 : (y + 2048 + 1) // 2] = src[y : y + 2048][::2, ::2]
        paths.append(path)
        src, k = dst, k + 1
    return paths


def build(root: Path, side: int, data: Path, seed: int) -> dict:
    from bench_lazy import build_slide

    t0 = time.perf_counter()
    facts = build_slide(root, side, round(20000 * (side / 16384) ** 2), 1024, data, seed)
    facts["levels"] = {"image": pyramid(root, "image"), "labels": pyramid(root, "labels")}
    facts["build_s"] = round(time.perf_counter() - t0, 1)
    (root / "slide.json").write_text(json.dumps(facts))
    return facts


def gap_stats(ticks: list[float], t0: float, marks: list[tuple[float, str]]) -> dict:
    """Median, p95, p99 and max gap between ticks; the largest gaps, when they began (s after
    ``t0``) and the run's phase then."""
    gaps = np.diff(np.asarray(ticks)) * 1000.0
    if gaps.size == 0:
        return {"ticks": len(ticks)}
    top = np.argsort(gaps)[-5:][::-1]

    def phase(at: float) -> str:
        names = [name for when, name in marks if when <= at]
        return names[-1] if names else ""

    return {
        "ticks": len(ticks),
        "seconds": round(ticks[-1] - ticks[0], 1),
        "median_ms": round(float(np.median(gaps)), 1),
        "p95_ms": round(float(np.percentile(gaps, 95)), 1),
        "p99_ms": round(float(np.percentile(gaps, 99)), 1),
        "max_ms": round(float(gaps.max()), 1),
        "over_100ms": int((gaps > 100).sum()),
        f"over_{GOAL_MS}ms": int((gaps > GOAL_MS).sum()),
        "largest": [
            {"at_s": round(ticks[i] - t0, 2), "ms": round(float(gaps[i]), 1), "phase": phase(ticks[i])} for i in top
        ],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", type=int, default=16384)
    p.add_argument("--window", type=float, default=90.0, help="seconds of refinement measured before Cancel")
    p.add_argument("--interact", type=float, default=30.0, help="the last seconds of the window pan and zoom")
    p.add_argument("--baseline", type=float, default=5.0, help="seconds measured before Run (no refinement)")
    p.add_argument("--single-scale", action="store_true", help="plain full-resolution layers instead of pyramids")
    p.add_argument("--data", default="/work/shared/data/dsb2018")
    p.add_argument("--data-dir", default=None, help="reuse (or build into) this folder instead of a new temporary one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="print the main thread's busiest functions (cProfile)")
    p.add_argument("--out", default=str(HERE / "results" / "widget_lazy.json"))
    args = p.parse_args(argv)

    root = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="segrefiner-bench-widget-lazy-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        facts = json.loads((root / "slide.json").read_text()) if (root / "slide.json").is_file() else None
        if facts is None or facts.get("side") != args.side:
            facts = build(root, args.side, Path(args.data), args.seed)
        print(f"slide: {facts}", file=sys.stderr, flush=True)
        result = measure(root, facts, args)
    finally:
        if not args.data_dir:
            shutil.rmtree(root, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    run = result["run"]
    print(
        json.dumps(
            {k: result["event_loop_gaps"][k] for k in ("baseline", "refining", "interacting", "cancel")}, indent=1
        )
    )
    print(
        f"objects done in the window: {run['objects_done']} of {run['objects_total']} "
        f"({run['objects_per_s']} /s); scan {run['scan_s']} s; cancel took {run['cancel_s']} s; "
        f"layers as before: {run['layers_as_before']}; partial store removed: {run['store_removed']}"
    )
    return 0


def measure(root: Path, facts: dict, args) -> dict:
    import napari
    import zarr
    from qtpy.QtCore import Qt, QTimer
    from qtpy.QtWidgets import QApplication

    from napari_segrefiner._napari._widget import SegRefinerWidget
    from napari_segrefiner._napari.lazy_worker import STORE_PREFIX
    from napari_segrefiner.models.threads import available_cores, cpu_threads

    viewer = napari.Viewer(title="bench_widget_lazy", show=True)
    app = QApplication.instance()
    levels = facts["levels"]
    images = [zarr.open_array(str(root / p), mode="r") for p in levels["image"]]
    labels = [zarr.open_array(str(root / p), mode="r") for p in levels["labels"]]
    if args.single_scale:
        images, labels = images[:1], labels[:1]
    viewer.add_image(images if len(images) > 1 else images[0], name="slide", rgb=True, multiscale=len(images) > 1)
    t_add = time.perf_counter()  # what a finished run's result layer costs the event loop too (the same kind)
    mask = viewer.add_labels(labels if len(labels) > 1 else labels[0], name="nuclei", multiscale=len(labels) > 1)
    add_labels_ms = round(1000 * (time.perf_counter() - t_add), 1)
    widget = SegRefinerWidget(viewer, confirm=lambda text: True)
    viewer.window.add_dock_widget(widget, name="SegRefiner")
    widget.reset_choices()
    widget._image.value, widget._mask.value = viewer.layers["slide"], mask
    widget._device.value = "cpu"
    out = root / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    widget.lazy_store_dir = str(out)
    model = widget._choice.source()
    before = [layer.name for layer in viewer.layers]
    mask_editable = mask.editable
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    home = (tuple(camera.center), float(camera.zoom))

    ticks: list[float] = []
    marks: list[tuple[float, str]] = []
    state: dict = {"records": [], "phase": None}
    t: dict[str, float] = {}

    def mark(name: str) -> None:
        marks.append((time.perf_counter(), name))

    def on_record(rec) -> None:
        state["records"].append((time.perf_counter(), rec))
        if rec.phase != state["phase"]:
            state["phase"] = rec.phase
            mark(rec.phase)
            if rec.phase == "refining":
                t["refining"] = time.perf_counter()

    launch = widget._launch_lazy

    def timed_launch():  # the progress bar appears (napari adds it to its activity dock), the worker starts
        mark("progress bar")
        t0 = time.perf_counter()
        launch()
        t["bar_ms"] = round(1000 * (time.perf_counter() - t0), 1)
        mark("loading the model")

    widget._launch_lazy = timed_launch
    collections: list[tuple[float, float, int, str]] = []  # garbage collections: start, ms, generation, thread
    gc_start: dict = {}

    def on_gc(phase: str, info: dict) -> None:  # (runs in whichever thread allocates)
        if phase == "start":
            gc_start["t"] = time.perf_counter()
        elif "t" in gc_start:
            began = gc_start.pop("t")
            collections.append(
                (began, 1000 * (time.perf_counter() - began), info["generation"], threading.current_thread().name)
            )

    gc.callbacks.append(on_gc)
    ticker = QTimer()
    ticker.setTimerType(Qt.TimerType.PreciseTimer)
    ticker.timeout.connect(lambda: ticks.append(time.perf_counter()))
    rng = np.random.default_rng(1)

    def interact() -> None:  # pan to a random place at a random zoom (napari loads its tiles)
        side = facts["side"]
        camera.center = (float(rng.uniform(0, side)), float(rng.uniform(0, side)))
        camera.zoom = float(home[1] * 2 ** rng.uniform(0, 5))

    wiggle = QTimer()
    wiggle.timeout.connect(interact)

    def start_baseline():
        t["baseline"] = time.perf_counter()
        ticks.append(t["baseline"])
        ticker.start(TICK_MS)
        QTimer.singleShot(int(args.baseline * 1000), click_run)

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()

    def click_run():
        if profiler is not None:
            profiler.enable()
        t["click"] = time.perf_counter()
        t["click_cpu"] = time.thread_time()
        mark("click Run")
        worker_box["worker"] = None
        widget._run_btn.native.click()
        t["click_returned"] = time.perf_counter()
        worker = widget._worker
        worker.yielded.connect(on_record)
        worker.finished.connect(lambda: t.setdefault("finished", time.perf_counter()))
        quiet = max(args.window - args.interact, 0.0)
        QTimer.singleShot(int(quiet * 1000), start_interacting)
        QTimer.singleShot(int(args.window * 1000), click_cancel)

    def start_interacting():
        if args.interact > 0:
            t["interact"] = time.perf_counter()
            mark("interacting")
            wiggle.start(1000)

    def click_cancel():
        if profiler is not None:
            profiler.disable()
        wiggle.stop()
        t["cancel"] = time.perf_counter()
        t["cancel_cpu"] = time.thread_time()
        mark("click Cancel")
        state["at_cancel"] = state["records"][-1][1] if state["records"] else None
        state["stores_mid_run"] = sorted(p.name for p in out.iterdir())
        widget._run_btn.native.click()
        poll.start(20)

    def check_end():
        if not widget.busy and "finished" in t:
            poll.stop()
            t["ended"] = time.perf_counter()
            QTimer.singleShot(500, finish)  # a little more of the loop after the end

    def finish():
        ticker.stop()
        t["stop"] = time.perf_counter()
        state["status"] = widget._status.value
        app.quit()

    worker_box: dict = {}
    poll = QTimer()
    poll.timeout.connect(check_end)
    for _ in range(100):  # let the window settle: first tiles loaded, dock laid out
        app.processEvents()
        time.sleep(0.02)
    load_before = os.getloadavg()
    QTimer.singleShot(200, start_baseline)
    app.exec()
    load_after = os.getloadavg()
    gc.callbacks.remove(on_gc)
    if profiler is not None:
        import pstats

        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)

    def between(a: float, b: float) -> list[float]:
        return [x for x in ticks if a <= x <= b]

    end_quiet = t.get("interact", t["cancel"])
    gaps = {
        "tick_ms": TICK_MS,
        "goal_max_ms": GOAL_MS,
        "baseline": gap_stats(between(t["baseline"], t["click"]), t["click"], marks),
        "refining": gap_stats(between(t["click"], end_quiet), t["click"], marks),
        "interacting": gap_stats(between(end_quiet, t["cancel"]), t["click"], marks) if "interact" in t else None,
        "cancel": gap_stats(between(t["cancel"], t["stop"]), t["click"], marks),
        "whole_run": gap_stats(between(t["click"], t["stop"]), t["click"], marks),
    }
    records = state["records"]
    in_run = [c for c in collections if t["click"] <= c[0] <= t["stop"]]
    gc_stats = {
        "collections": len(in_run),
        "full_collections": sum(c[2] == 2 for c in in_run),
        "longest": [
            {"at_s": round(c[0] - t["click"], 2), "ms": round(c[1], 1), "generation": c[2], "thread": c[3]}
            for c in sorted(in_run, key=lambda c: -c[1])[:5]
        ],
    }
    last = state.get("at_cancel")
    refine_s = t["cancel"] - t["refining"] if "refining" in t else None
    done = last.done if last is not None and last.phase == "refining" else 0
    stores_after = sorted(p.name for p in out.iterdir()) if out.exists() else []
    run = {
        "click_ms": round(1000 * (t["click_returned"] - t["click"]), 1),
        "model": model,
        "scan_s": round(t["refining"] - t["click"], 1) if "refining" in t else None,
        "objects_total": last.total if last is not None else None,
        "objects_done": done,
        "objects_per_s": round(done / refine_s, 3) if refine_s else None,
        "chunks_written": last.chunks_done if last is not None else 0,
        "progress_records": len(records),
        "progress_bar_open_ms": t.get("bar_ms"),
        "main_thread_cpu_share": round((t["cancel_cpu"] - t["click_cpu"]) / (t["cancel"] - t["click"]), 3),
        "cancel_s": round(t["finished"] - t["cancel"], 2) if "finished" in t else None,
        "status_after": state.get("status"),
        "store_mid_run": any(n.startswith(STORE_PREFIX) for n in state.get("stores_mid_run", [])),
        "store_removed": not any(n.startswith(STORE_PREFIX) for n in stores_after),
        "layers_as_before": [layer.name for layer in viewer.layers] == before and mask.editable == mask_editable,
    }
    return {
        "slide": {k: facts[k] for k in ("side", "chunk", "tiles", "objects")},
        "layers": "single-scale zarr"
        if args.single_scale
        else f"multiscale zarr ({len(images)} image levels, {len(labels)} labels levels)",
        "add_labels_layer_ms": add_labels_ms,
        "window_s": args.window,
        "interact_s": args.interact,
        "run": run,
        "event_loop_gaps": gaps,
        "garbage_collections": gc_stats,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cores": available_cores(),
        "gui_threads": cpu_threads("gui"),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0),
        **machine(zarr=zarr.__version__),
        "date": time.strftime("%Y-%m-%d"),
    }


if __name__ == "__main__":
    sys.exit(main())
