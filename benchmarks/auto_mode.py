"""Which pipeline should ``mode="auto"`` pick for a model? Instance crops vs the HR pipeline.

``auto`` refines a single large object (longer side over ``auto_hr_side``, on an image at
least one HR patch big) with the high-resolution pipeline (global + local patches), and
everything else with the instance pipeline; ``auto_hr_side=0`` means instance always. This
runs the quality benchmark on the natural-image val sets, whose objects are large, with
both settings and otherwise the model's stored options, and prints mean IoU / Boundary IoU
and seconds per object:

    python benchmarks/auto_mode.py --data ../shared/data/davis ../shared/data/ccp --max-items 12

Writes ``benchmarks/results/auto_mode.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from napari_segrefiner import load_refiner
from napari_segrefiner.evaluation.benchmark import run_benchmark
from napari_segrefiner.io.atomic import atomic_write


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--model", default=None, help="registered model or checkpoint (default: the shipped one)")
    p.add_argument("--sides", nargs="+", type=int, default=[0, 512])
    p.add_argument("--kinds", nargs="+", default=["cascadepsp-0.8", "nearperfect"])
    p.add_argument("--max-items", type=int, default=12)
    p.add_argument("--out", default="benchmarks/results/auto_mode.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    refiner = load_refiner(args.model, device="cpu")
    rows = []
    for side in args.sides:
        res = run_benchmark(
            args.data,
            kinds=args.kinds,
            methods=["identity", "segrefiner"],
            max_items=args.max_items,
            model=refiner.with_options(auto_hr_side=side),
            device="cpu",
            progress=False,
        )
        for name, s in res["sets"].items():
            for kind, entry in s["kinds"].items():
                m = entry["methods"]
                row = {
                    "auto_hr_side": side,
                    "set": name,
                    "kind": kind,
                    "coarse_iou": 100 * m["identity"]["iou"],
                    "iou": 100 * m["segrefiner"]["iou"],
                    "biou": 100 * m["segrefiner"]["biou"],
                    "s_per_object": m["segrefiner"].get("seconds_per_object"),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    text = json.dumps({"source": refiner.source, "max_items": args.max_items, "rows": rows}, indent=1)
    atomic_write(Path(args.out), lambda tmp: Path(tmp).write_text(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
