"""Main-thread cost of one live-preview update in the SegRefiner widget, on a 2048 x 2048 frame.

Every diffusion step the worker yields a full-frame mask and a confidence map; the
widget's main-thread slot must show them without freezing the viewer. This compares

* ``before``: the obvious handler, ``preview.data = step.mask`` (a Labels layer of the
  input's dtype, int32 here) and ``confidence.data = 1 - step.confidence`` (float32 Image);
* ``after``: what the widget does (``RunPreview.paint`` in ``_napari/_widget_preview.py``): the preview layer is
  uint8/uint16 when the labels fit (napari then skips hashing every label on each refresh),
  only the bounding box of the changed pixels is copied into it in place, the
  uncertainty map arrives as uint8 (computed in the worker), and one refresh redraws it.

The step records are real: the core (``iter_refine``) runs a tiny random network over a
synthetic 2048 x 2048 image with ~150 objects. Two times are reported per update: the
handler alone, and handler + ``processEvents`` (the redraw; on Xvfb this is Mesa's
software OpenGL, so it is far slower than on a GPU). Besides, the widget coalesces yields
so that at most one repaint happens every ``FLUSH_MS`` (50 ms), whatever the step rate.

Usage:  xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb \\
            python benchmarks/bench_preview.py [--size 2048] [--objects 150] [--repeats 3]
Writes  benchmarks/results/preview.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def synthetic_frame(size: int, objects: int, seed: int = 0):
    """An RGB image of bright ellipses and a coarse labels mask (boxes around them)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), (235, 225, 240), dtype=np.uint8)
    labels = np.zeros((size, size), dtype=np.int32)
    yy, xx = np.ogrid[:size, :size]
    for value in range(1, objects + 1):
        cy, cx = rng.integers(60, size - 60, 2)
        ry, rx = rng.integers(15, 45, 2)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        image[inside] = (120, 60, 170)
        labels[cy - ry - 4 : cy + ry + 4, cx - rx - 4 : cx + rx + 4] = value
    return image, labels


def step_records(image, labels):
    import torch

    from napari_segrefiner import LiteConfig, build_network, iter_refine

    torch.manual_seed(0)
    model = build_network(LiteConfig.tiny()).eval()
    model.segrefiner_defaults = {"size": 64, "min_area": 32, "batch_size": 64}
    return list(iter_refine(image, labels, model=model, device="cpu", seed=0))


def median_ms(values):
    values = sorted(values)
    return round(1000 * values[len(values) // 2], 2)


def measure(app, update, records, repeats: int):
    handler, with_draw = [], []
    order = [r for _ in range(repeats) for r in records]  # wraps around: every update changes pixels
    for record in order:
        t0 = time.perf_counter()
        update(record)
        t1 = time.perf_counter()
        app.processEvents()
        t2 = time.perf_counter()
        handler.append(t1 - t0)
        with_draw.append(t2 - t0)
    return {"handler_ms": median_ms(handler), "handler_plus_draw_ms": median_ms(with_draw), "updates": len(order)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="time one live-preview update")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--objects", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results" / "preview.json"))
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(1)
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_segrefiner._napari._widget import SegRefinerWidget
    from napari_segrefiner._napari._widget_preview import FLUSH_MS
    from napari_segrefiner._napari.worker import RefineJob, Update, to_uncertainty
    from napari_segrefiner.engine.request import RefineRequest

    image, labels = synthetic_frame(args.size, args.objects)
    t0 = time.perf_counter()
    records = step_records(image, labels)
    core_s = time.perf_counter() - t0
    changed = [float(np.mean(a.mask != b.mask)) for a, b in zip(records, records[1:])]
    uncertainties = [to_uncertainty(r.confidence) for r in records]  # (worker-side in the widget)

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.add_image(image, name="image")
    source = viewer.add_labels(labels, name="coarse")
    widget = SegRefinerWidget(viewer)
    viewer.window.add_dock_widget(widget)
    for _ in range(5):
        app.processEvents()

    # before: replace the layers' data on every step
    naive = viewer.add_labels(labels.copy(), name="naive preview", opacity=0.7)
    conf = viewer.add_image(
        np.zeros(labels.shape, np.float32),
        name="naive confidence",
        colormap="magma",
        contrast_limits=(0, 1),
        blending="translucent",
    )

    def before(record):
        naive.data = record.mask
        conf.data = 1.0 - record.confidence

    before_stats = measure(app, before, records, args.repeats)
    viewer.layers.remove(naive)
    viewer.layers.remove(conf)

    # after: the widget's own paint path
    job = RefineJob(
        image=image, rgb=True, mask=labels, axes=(0, 1), positions=((),), request=RefineRequest(model="tiny")
    )
    run = widget._preview.begin(job, source, uncertainty=True)  # (the running run from here on)
    widget._preview.open_now(run)  # adds the run's layers (the widget does it just after the Run click)
    by_id = {id(r): u for r, u in zip(records, uncertainties)}

    def after(record):
        widget._preview.paint(run, (), record.mask, by_id[id(record)])

    after_stats = measure(app, after, records, args.repeats)
    assert np.array_equal(run.preview.data, records[-1].mask)

    # the slot that runs once per yield (caching + scheduling the coalesced repaint + status line)
    t0 = time.perf_counter()
    for record, unc in zip(records, uncertainties):
        widget._on_yielded(Update(0, 1, (), record, unc))
    slot_ms = round(1000 * (time.perf_counter() - t0) / len(records), 3)
    widget._preview.flush_timer.stop()
    widget._preview.run = None

    result = {
        "frame": [args.size, args.size],
        "objects": args.objects,
        "steps": len(records),
        "core_seconds_tiny_model": round(core_s, 2),
        "changed_pixels_per_step": [round(c, 4) for c in changed],
        "before": {"preview_dtype": str(labels.dtype), "confidence_dtype": "float32", **before_stats},
        "after": {
            "preview_dtype": str(run.preview.data.dtype),
            "uncertainty_dtype": str(run.uncertainty.data.dtype),
            **after_stats,
            "yield_slot_ms": slot_ms,
            "repaints_at_most_every_ms": FLUSH_MS,
        },
        "speedup_handler": round(before_stats["handler_ms"] / max(after_stats["handler_ms"], 1e-6), 1),
        "gl": "Mesa software (Xvfb)" if platform.system() == "Linux" else "native",
        "machine": {"python": platform.python_version(), "napari": napari.__version__, "cpu": platform.processor()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.size}x{args.size} labels, {args.objects} objects, {len(records)} steps")
    print(f"before: handler {before_stats['handler_ms']} ms, with redraw {before_stats['handler_plus_draw_ms']} ms")
    print(f"after:  handler {after_stats['handler_ms']} ms, with redraw {after_stats['handler_plus_draw_ms']} ms")
    print(f"per-yield slot: {slot_ms} ms; repaints coalesced to at most one per {FLUSH_MS} ms")
    print(f"wrote {args.out}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
