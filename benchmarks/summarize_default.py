"""The README's quality table of the default model beside GrabCut, from run_default_model.sh.

python benchmarks/summarize_default.py [--prefix v3] [--review-against v2r --review-dir DIR]

Reads ``results/<prefix>_<set>.json`` (written with ``--per-item``) and prints a Markdown
table: per set and coarse kind, the coarse input, the model and GrabCut (mean IoU /
Boundary IoU / mBA, x100), the share of objects made worse at all and the share made
worse by more than 1 IoU point; then the review score's Spearman correlation with the IoU
error per set (and another run's, e.g. v2's, for comparison). Also written to
``results/<prefix>_summary.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
SETS = ("davis", "ccp", "dsb2018", "isbi2012")
KINDS = ("cascadepsp-0.8", "lowres-jitter", "lowres-28", "nearperfect")


def _load(folder: Path, prefix: str, name: str) -> dict | None:
    path = folder / f"{prefix}_{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _worse_by(items: list, name: str, kind: str, points: float) -> float:
    d = [
        100 * (it["methods"]["segrefiner"]["iou"] - it["methods"]["identity"]["iou"])
        for it in items
        if it["set"] == name and it["kind"] == kind
    ]
    return float(np.mean(np.asarray(d) < -points)) if d else float("nan")


def table(prefix: str, review: tuple[str, Path] | None) -> str:
    rows = [
        "| set (objects) | coarse | input IoU / BIoU / mBA | model IoU / BIoU / mBA | worse (any; > 1 pt) "
        "| GrabCut IoU / BIoU / mBA |",
        "|---|---|---|---|---|---|",
    ]
    rho = []
    for name in SETS:
        data = _load(RESULTS, prefix, name)
        if data is None:
            continue
        s = data["sets"][name]
        for kind in KINDS:
            if kind not in s["kinds"]:
                continue
            m = s["kinds"][kind]["methods"]

            def three(x):
                return f"{100 * x['iou']:.1f} / {100 * x['biou']:.1f} / {100 * x['mba']:.1f}"

            g = three(m["grabcut"]) if "grabcut" in m else "-"
            worse = f"{100 * m['segrefiner']['worse']:.0f}%; {100 * _worse_by(data['items'], name, kind, 1.0):.0f}%"
            rows.append(
                f"| {name} ({s['used']}) | {kind} | {three(m['identity'])} | **{three(m['segrefiner'])}** "
                f"| {worse} | {g} |"
            )
        other = _load(review[1], review[0], name) if review else None
        theirs = other["sets"][name].get("uncertainty_spearman") if other else None
        rho.append((name, s.get("uncertainty_spearman"), theirs))
    out = "\n".join(rows) + "\n"
    if rho:
        out += "\nReview score vs IoU error (Spearman, all four kinds; higher = the queue puts the worst first):\n\n"
        out += "| set | this model | " + (f"{review[0]} |" if review else "") + "\n"
        out += "|---|---|" + ("---|" if review else "") + "\n"
        for name, mine, theirs in rho:
            cell = "-" if mine is None else f"{mine:+.2f}"
            extra = "" if not review else (" - |" if theirs is None else f" {theirs:+.2f} |")
            out += f"| {name} | {cell} |{extra}\n"
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prefix", default="v3")
    p.add_argument("--review-against", default=None, help="prefix of another model's runs (e.g. v2r)")
    p.add_argument("--review-dir", default=str(RESULTS))
    a = p.parse_args()
    review = (a.review_against, Path(a.review_dir)) if a.review_against else None
    text = table(a.prefix, review)
    print(text, end="")
    (RESULTS / f"{a.prefix}_summary.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
