"""Merge benchmarks/results/quality_<set>_{model,peers}.json into the README's tables.

python benchmarks/summarize.py > benchmarks/results/quality_summary.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SETS = ("davis", "ccp", "dsb2018", "isbi2012")
METHODS = ("identity", "segrefiner", "grabcut", "random_walker", "densecrf")


def load(set_name: str) -> dict:
    kinds: dict = {}
    used = None
    for tag in ("model", "peers"):
        path = RESULTS / f"quality_{set_name}_{tag}.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text())["sets"][set_name]
        used = f"{data['used']} of {data['available']}"
        for kind, entry in data["kinds"].items():
            slot = kinds.setdefault(kind, {"coarse_iou": entry["coarse_iou"], "methods": {}})
            slot["methods"].update(entry["methods"])
    return {"used": used, "kinds": kinds}


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def main() -> int:
    out = []
    out.append("| set (objects) | coarse | method | IoU | gain | pooled IoU | BIoU | mBA | BF | worse | s/object |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in SETS:
        d = load(s)
        for kind in ("cascadepsp-0.8", "lowres-28"):
            if kind not in d["kinds"]:
                continue
            methods = d["kinds"][kind]["methods"]
            for m in METHODS:
                if m not in methods:
                    continue
                r = methods[m]
                out.append(
                    f"| {s} ({d['used']}) | {kind} | {m} | {pct(r['iou'])} | {100 * r['gain']:+.1f} | "
                    f"{pct(r['pooled_iou'])} | {pct(r['biou'])} | {pct(r['mba'])} | {pct(r['bf'])} | "
                    f"{100 * r['worse']:.0f}% | {r['seconds_per_object']:.3f} |"
                )
    out.append("")
    out.append("Other coarse kinds (segrefiner vs its input, mean IoU):")
    out.append("")
    kinds = ("cascadepsp-0.6", "cascadepsp-0.9", "lowres-rel", "dilate-3", "erode-3")
    out.append("| set | " + " | ".join(kinds) + " |")
    out.append("|---|" + "---|" * len(kinds))
    for s in SETS:
        d = load(s)
        cells = []
        for k in kinds:
            e = d["kinds"].get(k, {}).get("methods", {})
            if "segrefiner" in e and "identity" in e:
                cells.append(
                    f"{pct(e['identity']['iou'])} -> {pct(e['segrefiner']['iou'])} "
                    f"(worse {100 * e['segrefiner']['worse']:.0f}%)"
                )
            else:
                cells.append("-")
        out.append(f"| {s} | " + " | ".join(cells) + " |")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
