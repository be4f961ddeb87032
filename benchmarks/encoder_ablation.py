"""Encoder ablation: candidate networks trained for equal CPU-hours, scored on the val splits.

Every candidate is scored with the same pipeline options (the v2 recipe's: pad 20,
min_area 32, context 3 x up to 128 px, paste_changes_only) and ``keep_bias=0`` (the raw
network, before any keep decision is calibrated), on seeded val subsets of every set,
with coarse masks that need refining (``cascadepsp-0.8``, ``lowres-jitter``) and one that
is already good (``nearperfect``). Speed is the median of ``encode`` + 6 ``denoise`` steps
for one object at batch 1 on one thread.

    python benchmarks/encoder_ablation.py --data ../shared/data/{davis,ccp,dsb2018,isbi2012} \\
        --candidate effnet=runs/abl_effnet.pt --candidate dino=runs/abl_dino.pt \\
        --candidate lite=runs/abl_lite.pt --candidate v2=segrefiner-lite-v2 --max-items 20

Writes ``benchmarks/results/encoder_ablation.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from napari_segrefiner import load_refiner
from napari_segrefiner.evaluation.benchmark import run_benchmark
from napari_segrefiner.evaluation.speed import time_parts
from napari_segrefiner.io.atomic import atomic_write

KINDS = ("cascadepsp-0.8", "lowres-jitter", "nearperfect")
RECIPE = dict(pad=20, min_area=32, context=3.0, context_cap=128, paste_changes_only=True, auto_hr_side=0, keep_bias=0.0)


def score(results: dict) -> dict:
    """Per set and kind: coarse and refined mean IoU, Boundary IoU, share worse (points, %)."""
    out: dict = {}
    for name, s in results["sets"].items():
        for kind, entry in s["kinds"].items():
            m = entry["methods"]
            out.setdefault(name, {})[kind] = {
                "coarse_iou": 100 * m["identity"]["iou"],
                "iou": 100 * m["segrefiner"]["iou"],
                "coarse_biou": 100 * m["identity"]["biou"],
                "biou": 100 * m["segrefiner"]["biou"],
                "worse": 100 * m["segrefiner"]["worse"],
                "n": m["segrefiner"]["n"],
            }
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--candidate", action="append", required=True, help="name=checkpoint-or-registered-model")
    p.add_argument("--cpu-hours", action="append", default=[], help="name=hours of training (for the table)")
    p.add_argument(
        "--scores",
        action="append",
        default=[],
        help="name=file.json: that candidate's per-set scores from an earlier run of this script (same data, "
        "--max-items and seed), so only its speed is measured again",
    )
    p.add_argument("--max-items", type=int, default=20)
    p.add_argument("--out", default="benchmarks/results/encoder_ablation")
    args = p.parse_args()
    torch.set_num_threads(1)
    hours = dict(h.split("=", 1) for h in args.cpu_hours)
    earlier = {n: json.loads(Path(f).read_text()) for n, f in (x.split("=", 1) for x in args.scores)}
    rows = {}
    for cand in args.candidate:
        name, source = cand.split("=", 1)
        refiner = load_refiner(source, device="cpu").with_options(**RECIPE)
        enc, dec = time_parts(refiner.network, 1, size=256, device=torch.device("cpu"), repeats=5)
        if name in earlier:
            sets = earlier[name]
        else:
            sets = score(
                run_benchmark(
                    args.data,
                    kinds=KINDS,
                    methods=["identity", "segrefiner"],
                    max_items=args.max_items,
                    model=refiner,
                    device="cpu",
                    progress=False,
                )
            )
        rows[name] = {
            "source": source,
            "cpu_hours": hours.get(name),
            "encode_s": enc,
            "denoise_s": dec,
            "per_object_s": enc + 6 * dec,
            "sets": sets,
        }
        print(name, json.dumps(rows[name]["sets"]), flush=True)
    lines = [
        "| candidate | training CPU-h | s/object (1 thread) | "
        + " | ".join(f"{s} {k}" for s in next(iter(rows.values()))["sets"] for k in KINDS)
        + " |"
    ]
    lines.append("|" + "---|" * (3 + len(KINDS) * len(next(iter(rows.values()))["sets"])))
    for name, r in rows.items():
        cells = [
            f"{v['coarse_iou']:.1f} -> {v['iou']:.1f} ({v['worse']:.0f}%)"
            for s in r["sets"].values()
            for v in (s[k] for k in KINDS)
        ]
        lines.append(f"| {name} | {r['cpu_hours'] or '-'} | {r['per_object_s']:.3f} | " + " | ".join(cells) + " |")
    mean = {
        name: float(np.mean([s[k]["iou"] - s[k]["coarse_iou"] for s in r["sets"].values() for k in KINDS[:2]]))
        for name, r in rows.items()
    }
    lines.append("")
    lines.append("Mean IoU gain on the coarse kinds (points): " + ", ".join(f"{n} {v:+.2f}" for n, v in mean.items()))
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write(Path(args.out + ".json"), lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=1)))
    atomic_write(Path(args.out + ".md"), lambda tmp: Path(tmp).write_text(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
