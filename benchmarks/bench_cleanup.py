"""Does the default clean-up (RefineConfig.clean) cost quality? IoU and BIoU with and without it.

Runs the quality benchmark twice on seeded val subsets (the same objects and coarse masks),
once with ``clean=True`` (the default) and once with ``clean=False``, and reports per set
and coarse kind the mean IoU and Boundary IoU of both, plus the connected pieces, specks
and hole pixels of the refined demo sample with and without it.

Usage::

    python benchmarks/bench_cleanup.py --data ../shared/data/{davis,ccp,dsb2018,isbi2012} --max-items 16
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

from napari_segrefiner import load_refiner, refine
from napari_segrefiner.evaluation.benchmark import run_benchmark
from napari_segrefiner.io.files import atomic_write
from napari_segrefiner.io.sample import coarsen_labels, load_nuclei


def hygiene(labels: np.ndarray) -> dict:
    """Connected pieces, specks (< 30 px pieces) and hole pixels over all objects."""
    pieces = specks = holes = 0
    for lab in np.unique(labels[labels > 0]):
        m = labels == lab
        comp, n = ndi.label(m, structure=np.ones((3, 3), bool))
        sizes = np.bincount(comp.ravel())[1:]
        pieces += n
        specks += int((sizes < 30).sum())
        holes += int((ndi.binary_fill_holes(m) & ~m).sum())
    return {"pieces": pieces, "specks": specks, "hole_pixels": holes}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--max-items", type=int, default=16)
    p.add_argument("--kinds", nargs="+", default=["cascadepsp-0.8", "lowres-jitter", "lowres-28"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/cleanup.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    refiner = load_refiner(args.checkpoint, device="cpu")
    image, truth = load_nuclei()
    coarse = coarsen_labels(truth, seed=0)
    report: dict = {
        "source": refiner.source,
        "max_items": args.max_items,
        "sample": {"coarse": hygiene(coarse), "truth": hygiene(truth)},
        "sets": {},
    }
    runs = {}
    for clean in (False, True):
        r = refiner.with_options(clean=clean)
        report["sample"]["clean" if clean else "raw"] = hygiene(refine(image, coarse, model=r, seed=0))
        runs[clean] = run_benchmark(
            args.data,
            kinds=args.kinds,
            methods=["identity", "segrefiner"],
            max_items=args.max_items,
            model=r,
            device="cpu",
            progress=False,
        )
    print(f"demo sample: {report['sample']}")
    print(
        f"{'set':9s} {'kind':15s} {'coarse':>7s} {'IoU raw':>8s} {'IoU clean':>9s} {'BIoU raw':>9s} {'BIoU clean':>10s}"
    )
    for name, entry in runs[True]["sets"].items():
        for kind, k in entry["kinds"].items():
            on = k["methods"]["segrefiner"]
            off = runs[False]["sets"][name]["kinds"][kind]["methods"]["segrefiner"]
            row = {
                "coarse_iou": k["coarse_iou"],
                "iou_raw": off["iou"],
                "iou_clean": on["iou"],
                "biou_raw": off["biou"],
                "biou_clean": on["biou"],
            }
            report["sets"].setdefault(name, {})[kind] = row
            print(
                f"{name:9s} {kind:15s} {100 * row['coarse_iou']:7.1f} {100 * off['iou']:8.2f} {100 * on['iou']:9.2f} "
                f"{100 * off['biou']:9.2f} {100 * on['biou']:10.2f}",
                flush=True,
            )
    text = json.dumps(report, indent=1)
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
