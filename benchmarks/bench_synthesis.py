"""Speed and strength of the coarse-mask synthesis on real masks.

Times ``modify_boundary`` on object crops of real ground truth from ``../shared/data``
(DAVIS frames: the whole foreground; DSB2018: single nuclei from the label images) and
reports the IoU of the coarse masks to the ground truth. Two crop flavours per object:

* ``native``: the object box plus 20 px on each side at native resolution (what the
  training crops feed to the synthesis);
* ``256``: the same crop resized to 256 x 256 (nearest), the size the network sees.

Usage:  python benchmarks/bench_synthesis.py [--data ../shared/data] [--objects 10] [--seeds 10]
Writes  benchmarks/results/synthesis.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from napari_segrefiner.training.data import PairFolder  # noqa: E402
from napari_segrefiner.training.perturb import modify_boundary  # noqa: E402
from napari_segrefiner.training.synthesis import make_coarse  # noqa: E402


def object_crops(folder: PairFolder, n: int, pad: int = 20) -> list[np.ndarray]:
    """GT crops of n objects spread evenly over the folder's items."""
    step = max(1, len(folder) // n)
    crops = []
    for j in range(0, len(folder), step)[:n]:
        _, fine = folder.load(j)
        ys, xs = np.nonzero(fine)
        if ys.size == 0:
            continue
        h, w = fine.shape
        y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + 1 + pad)
        x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + 1 + pad)
        crops.append(np.ascontiguousarray(fine[y0:y1, x0:x1]))
    return crops


def iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / u) if u else 1.0


def measure(crops: list[np.ndarray], seeds: int, fn) -> dict:
    times, ious = [], []
    for k, gt in enumerate(crops):
        for s in range(seeds):
            rng = np.random.default_rng([k, s])
            t0 = time.perf_counter()
            out = fn(gt, rng)
            times.append(time.perf_counter() - t0)
            ious.append(iou(out, gt))
    t = np.array(times) * 1e3
    v = np.array(ious)
    return {
        "calls": len(times),
        "ms_mean": round(float(t.mean()), 2),
        "ms_median": round(float(np.median(t)), 2),
        "ms_p95": round(float(np.percentile(t, 95)), 2),
        "iou_mean": round(float(v.mean()), 3),
        "iou_p05": round(float(np.percentile(v, 5)), 3),
        "iou_p95": round(float(np.percentile(v, 95)), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--objects", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--out", default=str(HERE / "results" / "synthesis.json"))
    args = ap.parse_args()

    cv2.setNumThreads(1)
    results = {
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "machine": platform.machine(),
        "cv2_threads": 1,
        "sets": {},
    }
    cascade = lambda gt, rng: modify_boundary(gt, rng=rng)  # noqa: E731
    mixed = lambda gt, rng: make_coarse(gt, rng=rng, kind="mixed")  # noqa: E731
    for name in ("davis", "dsb2018"):
        folder = PairFolder(Path(args.data) / name, split="train")
        native = object_crops(folder, args.objects)
        resized = [
            cv2.resize(c.astype(np.uint8), (256, 256), interpolation=cv2.INTER_NEAREST).astype(bool) for c in native
        ]
        sizes = [c.shape for c in native]
        entry = {
            "objects": len(native),
            "crop_hw_mean": [
                round(float(np.mean([s[0] for s in sizes])), 1),
                round(float(np.mean([s[1] for s in sizes])), 1),
            ],
            "modify_boundary_native": measure(native, args.seeds, cascade),
            "modify_boundary_256": measure(resized, args.seeds, cascade),
            "mixed_native": measure(native, args.seeds, mixed),
        }
        results["sets"][name] = entry
        for key in ("modify_boundary_native", "modify_boundary_256", "mixed_native"):
            r = entry[key]
            print(
                f"{name:8s} {key:24s} n={r['calls']:4d}  {r['ms_mean']:6.2f} ms/call "
                f"(median {r['ms_median']:.2f}, p95 {r['ms_p95']:.2f})  IoU to GT mean {r['iou_mean']:.3f} "
                f"[p05 {r['iou_p05']:.3f}, p95 {r['iou_p95']:.3f}]"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
