"""Choose a model's ``keep_bias`` on the val splits: the do-no-harm vs gain trade-off curve.

For each bias, the quality benchmark runs on seeded val subsets with two kinds of coarse
masks that are already good (``lowres-28``, ``nearperfect``: the refiner must not spoil
them) and two that need refining (``cascadepsp-0.8``, ``lowres-jitter``). Printed and
written per bias and set: the IoU change in points and the share of objects made worse by
more than 1 point. The chosen bias is the smallest one whose mean harm on every set is at
most ``--max-harm`` points (0.3) and whose share made worse by more than 1 point is at most
``--max-worse`` (issue 16: 10 %; issue 8 allowed 20 %).

Usage::

    python benchmarks/calibrate_keep.py --data ../shared/data/{davis,ccp,dsb2018,isbi2012} \\
        --checkpoint runs/lite-v2.pt --biases 0 0.5 1 1.5 2 --max-items 16 \\
        --out benchmarks/results/keep_bias.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from napari_segrefiner import load_refiner
from napari_segrefiner.evaluation.benchmark import run_benchmark
from napari_segrefiner.io.files import atomic_write

HARM_KINDS = ("lowres-28", "nearperfect")
GAIN_KINDS = ("cascadepsp-0.8", "lowres-jitter")


def summarise(results: dict) -> dict:
    """Per set and kind: IoU change (points), share worse by > 1 point, BIoU change."""
    out: dict = {}
    for item in results["items"]:
        m = item["methods"]
        d = out.setdefault(item["set"], {}).setdefault(item["kind"], {"diou": [], "dbiou": []})
        d["diou"].append(100 * (m["segrefiner"]["iou"] - m["identity"]["iou"]))
        d["dbiou"].append(100 * (m["segrefiner"]["biou"] - m["identity"]["biou"]))
    return {
        s: {
            k: {
                "n": len(v["diou"]),
                "iou_change_points": float(np.mean(v["diou"])),
                "biou_change_points": float(np.mean(v["dbiou"])),
                "worse_by_1pt_share": float(np.mean(np.asarray(v["diou"]) < -1.0)),
            }
            for k, v in kinds.items()
        }
        for s, kinds in out.items()
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--checkpoint", default=None, help="default: the shipped model")
    p.add_argument("--biases", nargs="+", type=float, default=[0.0, 0.5, 1.0, 1.5, 2.0])
    p.add_argument("--max-items", type=int, default=16)
    p.add_argument("--max-harm", type=float, default=0.3)
    p.add_argument("--max-worse", type=float, default=0.10, help="share of objects worse by > 1 point allowed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--paste-changes-only", action="store_true", help="calibrate with paste_changes_only=True")
    p.add_argument("--out", default="benchmarks/results/keep_bias.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    refiner = load_refiner(args.checkpoint, device="cpu")
    if args.paste_changes_only:
        refiner = refiner.with_options(paste_changes_only=True)
    curve = []
    for bias in args.biases:
        res = run_benchmark(
            args.data,
            kinds=HARM_KINDS + GAIN_KINDS,
            methods=["identity", "segrefiner"],
            max_items=args.max_items,
            model=refiner.with_options(keep_bias=bias),
            device="cpu",
            progress=False,
            per_item=True,
        )
        table = summarise(res)
        curve.append({"keep_bias": bias, "sets": table})
        for s, kinds in table.items():
            row = "  ".join(
                f"{k} {v['iou_change_points']:+6.2f} ({100 * v['worse_by_1pt_share']:3.0f}%)" for k, v in kinds.items()
            )
            print(f"bias {bias:4.2f}  {s:9s} {row}", flush=True)

    def ok(entry) -> bool:
        return all(
            entry["sets"][s][k]["iou_change_points"] >= -args.max_harm
            and entry["sets"][s][k]["worse_by_1pt_share"] <= args.max_worse
            for s in entry["sets"]
            for k in HARM_KINDS
        )

    chosen = next((e["keep_bias"] for e in curve if ok(e)), None)
    print(
        f"chosen keep_bias: {chosen} (smallest meeting harm >= -{args.max_harm} points and "
        f"<= {100 * args.max_worse:.0f}% worse by > 1 point)"
    )
    text = json.dumps(
        {
            "source": refiner.source,
            "max_items": args.max_items,
            "options": refiner.config.to_dict(),
            "curve": curve,
            "chosen": chosen,
        },
        indent=1,
    )
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
