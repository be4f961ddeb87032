"""Do hints help more when the network sees them? IoU after simulated clicks, two ways.

* "network sees hints": the shipped behaviour -- hinted pixels are set in the coarse mask
  and every network input, held in every reverse step, and forced on the result;
* "forced on result only": the network never sees a hint (``pipelines.crop_hints`` is
  replaced by a function that returns None); the hints are still forced on every frame.

Same objects, coarse masks, clicks and seeds (the benchmark's ``--hints`` loop). Usage::

    python benchmarks/bench_hint_conditioning.py --data ../shared/data --clicks 3 --max-items 12

Writes ``benchmarks/results/hints_conditioning.json`` and prints one line per case.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import napari_segrefiner.engine.pipelines as pipelines
from napari_segrefiner.evaluation import benchmark as bm
from napari_segrefiner.io.files import atomic_write


def main() -> None:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(here.parents[1] / "shared" / "data"), help="folder holding the sets")
    ap.add_argument("--sets", nargs="+", default=["dsb2018", "davis", "isbi2012"])
    ap.add_argument("--kinds", nargs="+", default=["cascadepsp-0.8", "lowres-jitter"])
    ap.add_argument("--clicks", type=int, default=3)
    ap.add_argument("--max-items", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(here / "results" / "hints_conditioning.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    original = pipelines.crop_hints
    out: dict[str, dict] = {}
    for sees in (True, False):
        pipelines.crop_hints = original if sees else (lambda *a, **k: None)
        label = "network sees hints" if sees else "forced on result only"
        for s in args.sets:
            r = bm.run_benchmark(
                [str(Path(args.data) / s)],
                kinds=args.kinds,
                methods=["segrefiner"],
                max_items=args.max_items,
                device="cpu",
                progress=False,
                hints=args.clicks,
            )
            for kind, entry in r["sets"][s]["kinds"].items():
                curve = entry["segrefiner_review"]["iou_after_clicks"]
                out[f"{label} / {s} / {kind}"] = curve
                print(
                    f"{label:22s} {s:9s} {kind:15s} " + "  ".join(f"{c}: {100 * v:.1f}" for c, v in curve.items()),
                    flush=True,
                )
    pipelines.crop_hints = original
    text = json.dumps(out, indent=1)
    atomic_write(args.out, lambda tmp: tmp.write_text(text))


if __name__ == "__main__":
    main()
