"""Learning from corrections: a simulated annotator adapts the model, scored on other images.

For every val set: the images are split (seeded; DAVIS by sequence, since frames of one
sequence are near-duplicates) into a *pool* the annotator corrects and *test* images. The
annotator's pairs are pool objects, each with a coarse mask of one of the evaluated kinds
(seeded, cycling through them) and its ground truth as the accepted final mask. The base
model is adapted (:func:`napari_segrefiner.adapt.adapt`: at most ``--seconds`` wall time, on
``--threads`` CPU threads) on the first 20 and the first 50 pairs (nested: the annotator
goes on). Then base and adapted models refine test objects (a seeded subset of at most
``--test-objects``) for every coarse kind, exactly as the quality benchmark does (the
object's region, ``refine(region, coarse, model=..., seed=0)``, seeded coarse masks), and
IoU, Boundary IoU and the made-worse shares are compared. The model an annotator ends up
with is the adapted one only when adaptation kept it (it beat the base on its own held-out
pairs); ``used`` figures are those, ``adapted_raw`` the adapted network's whatever the verdict.

Usage:  python benchmarks/bench_adapt.py --base /work/runs/abl_effnet.pt \\
            --data ../shared/data/davis ../shared/data/ccp ../shared/data/dsb2018 ../shared/data/isbi2012
        python benchmarks/bench_adapt.py --summarize      (rebuilds adapt_summary.md from the JSON files)
Writes  benchmarks/results/adapt_<set>.json and benchmarks/results/adapt_summary.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
# idle OpenMP threads sleep instead of spinning: on a shared machine spinning threads steal the
# cores the working ones need (3x slower encoding measured here under load); set before torch loads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

WEAK = ("cascadepsp-0.8", "lowres-jitter")
GOOD = ("lowres-28", "nearperfect")
KINDS = WEAK + GOOD
TOL = 1e-6


def groups_of(folder, name: str) -> dict[str, list[int]]:
    """Object indices per independent group: a DAVIS sequence, else an image."""
    out: dict[str, list[int]] = {}
    for j, ref in enumerate(folder.items):
        key = ref.image_id.rsplit("_", 1)[0] if name == "davis" else ref.image_id
        out.setdefault(key, []).append(j)
    return out


def split(folder, name: str, want: int, seed: int, share: float = 0.7) -> tuple[list[int], list[int]]:
    """(pool objects in the annotator's order, test objects): whole groups, seeded."""
    from napari_segrefiner.evaluation.coarse import coarse_seed

    groups = groups_of(folder, name)
    rng = np.random.default_rng(coarse_seed(name, 0, "adapt-split", seed))
    keys = [list(groups)[i] for i in rng.permutation(len(groups))]
    pool, test, total = [], [], len(folder)
    for key in keys:
        if len(pool) < want and len(pool) + len(groups[key]) <= max(share * total, len(groups[key])):
            pool += groups[key]
        else:
            test += groups[key]
    return [pool[i] for i in rng.permutation(len(pool))], sorted(test)


def region(folder, j: int):
    """(image, gt) of object j in its evaluation region (as the quality benchmark cuts it)."""
    from napari_segrefiner.evaluation.coarse import evaluation_region
    from napari_segrefiner.io.masks import bounding_box

    ref = folder[j]
    image, fine = folder.load(ref)
    if not folder.has_labels:
        return image, np.asarray(fine, dtype=bool)
    y0, y1, x0, x1 = evaluation_region(ref.bbox or bounding_box(fine), fine.shape)
    return np.ascontiguousarray(image[y0:y1, x0:x1]), np.ascontiguousarray(fine[y0:y1, x0:x1])


def make_pairs(folder, name: str, pool: list[int], count: int, config, seed: int):
    from napari_segrefiner.adapt import make_pair
    from napari_segrefiner.evaluation.coarse import coarse_seed, make_kind

    pairs, kinds = [], []
    for n, j in enumerate(pool):
        if len(pairs) == count:
            break
        kind = KINDS[n % len(KINDS)]
        image, gt = region(folder, j)
        coarse, _ = make_kind(kind, gt, np.random.default_rng(coarse_seed(name + "/annotator", j, kind, seed)))
        try:
            image_id = folder[j].image_id
            source = image_id.rsplit("_", 1)[0] if name == "davis" else image_id  # held out by image / sequence
            pairs.append(make_pair(image, coarse, gt, 1, config=config, key=f"obj{j}", source=source))
            kinds.append(kind)
        except ValueError:  # an object the crop cannot hold (vanishes at network size): the annotator skips it
            continue
    return pairs, kinds


def score(folder, name: str, test: list[int], models: dict, seed: int) -> dict:
    """Per kind and model: per-object IoU and Boundary IoU (and the coarse mask's)."""
    from napari_segrefiner import refine
    from napari_segrefiner.evaluation.coarse import coarse_seed, make_kind
    from napari_segrefiner.evaluation.metrics import boundary_iou, iou

    out = {
        k: {"coarse": {"iou": [], "biou": []}, **{m: {"iou": [], "biou": [], "s": []} for m in models}} for k in KINDS
    }
    for j in test:
        image, gt = region(folder, j)
        for kind in KINDS:
            coarse, _ = make_kind(kind, gt, np.random.default_rng(coarse_seed(name, j, kind, seed)))
            out[kind]["coarse"]["iou"].append(iou(coarse, gt))
            out[kind]["coarse"]["biou"].append(boundary_iou(coarse, gt))
            for m, refiner in models.items():
                t0 = time.perf_counter()
                pred = refine(image, coarse, model=refiner, seed=0)
                out[kind][m]["s"].append(time.perf_counter() - t0)
                out[kind][m]["iou"].append(iou(pred, gt))
                out[kind][m]["biou"].append(boundary_iou(pred, gt))
    return out


def figures(per: dict, model: str) -> dict:
    c, b, a = per["coarse"], per["base"], per[model]
    ai, bi, ci = np.array(a["iou"]), np.array(b["iou"]), np.array(c["iou"])
    return {
        "n": len(ai),
        "iou": float(ai.mean()),
        "biou": float(np.mean(a["biou"])),
        "gain_vs_base_pts": float(100 * (ai - bi).mean()),
        "biou_gain_vs_base_pts": float(100 * (np.mean(a["biou"]) - np.mean(b["biou"]))),
        "worse_than_base": float((ai < bi - TOL).mean()),
        "worse_than_base_by_1pt": float((ai < bi - 0.01).mean()),
        "worse_than_coarse": float((ai < ci - TOL).mean()),
    }


def cpu_clock(threads: int):
    """Seconds of a dedicated ``threads``-core machine: this process's CPU time / threads."""
    return lambda: time.process_time() / threads


def run_set(root: Path, args, base) -> dict:
    from napari_segrefiner.adapt import adapt
    from napari_segrefiner.training.folders import PairFolder

    name = root.resolve().name
    folder = PairFolder(root, split="val")
    pool, test = split(folder, name, max(args.pairs), args.seed)
    test = sorted(np.random.default_rng([args.seed, 99]).permutation(test)[: args.test_objects].tolist())
    all_pairs, pair_kinds = make_pairs(folder, name, pool, max(args.pairs), base.config, args.seed)
    models, runs = {"base": base}, {}
    for count in args.pairs:
        pairs = all_pairs[:count]
        t0 = time.perf_counter()
        c0 = time.process_time()
        res = adapt(
            base,
            pairs,
            seconds=args.seconds,
            seed=args.seed,
            threads=args.threads,
            lr=args.lr,
            clock=cpu_clock(args.threads) if args.clock == "cpu" else None,
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{name} {len(pairs)} pairs: {res.summary()}", file=sys.stderr, flush=True)
        runs[str(count)] = {
            "pairs": len(pairs),
            "pair_kinds": {k: pair_kinds[:count].count(k) for k in KINDS},
            "kept": res.kept,
            "heldout_base_iou": res.base_iou,
            "heldout_adapted_iou": res.adapted_iou,
            "steps": res.steps,
            "budget_clock_s": res.seconds,
            "wall_s": wall,
            "cpu_s": cpu,
            "timings_s": dict(res.timings),
            "train_pairs": len(res.train_keys),
            "holdout_pairs": len(res.holdout_keys),
        }
        models[f"adapted_{count}"] = res.refiner
    per = score(folder, name, test, models, args.seed)
    for count in args.pairs:  # what the annotator ends up with: the adapted model only when it was kept
        for kind in KINDS:
            per[kind][f"used_{count}"] = per[kind][f"adapted_{count}" if runs[str(count)]["kept"] else "base"]
    kinds = {}
    for kind in KINDS:
        entry = {"coarse_iou": float(np.mean(per[kind]["coarse"]["iou"])), "base": figures(per[kind], "base")}
        for count in args.pairs:
            entry[f"adapted_raw_{count}"] = figures(per[kind], f"adapted_{count}")
            entry[f"used_{count}"] = figures(per[kind], f"used_{count}")
        kinds[kind] = entry
    return {
        "set": name,
        "pool_objects": len(pool),
        "test_objects": len(test),
        "test_indices": test,
        "adaptations": runs,
        "kinds": kinds,
    }


def summarize(out_dir: Path) -> Path:
    rows = [
        "| set | pairs | kept | held-out IoU base -> adapted | steps | seconds | "
        + " | ".join(f"{k} IoU gain (BIoU gain), worse" for k in KINDS)
        + " |",
        "|---" * (6 + len(KINDS)) + "|",
    ]
    meta = None
    for path in sorted(out_dir.glob("adapt_*.json")):
        data = json.loads(path.read_text())
        meta = meta or data.get("meta")
        r = data["result"]
        for count, run in r["adaptations"].items():
            cells = []
            for kind in KINDS:
                f = r["kinds"][kind][f"used_{count}"]
                gain, bgain = f["gain_vs_base_pts"], f["biou_gain_vs_base_pts"]
                cells.append(f"{gain:+.2f} ({bgain:+.2f}), {100 * f['worse_than_base']:.0f}%")
            rows.append(
                f"| {r['set']} | {run['pairs']} | {'yes' if run['kept'] else 'no'} | "
                f"{run['heldout_base_iou']:.3f} -> {run['heldout_adapted_iou']:.3f} | {run['steps']} | "
                f"{run['budget_clock_s']:.0f} ({run['wall_s']:.0f} wall) | " + " | ".join(cells) + " |"
            )
    text = [
        "# Learning from corrections (simulated annotator)",
        "",
        f"Base: `{(meta or {}).get('base')}`; {(meta or {}).get('seconds')} s budget on {(meta or {}).get('threads')} "
        "CPU threads per adaptation. Gains are IoU points of the model the annotator ends up with (the adapted "
        "one when it was kept) over the base, on test objects of other images; worse = share of objects whose "
        "IoU dropped below the base's.",
        "",
        *rows,
        "",
    ]
    path = out_dir / "adapt_summary.md"
    path.write_text("\n".join(text))
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="/work/runs/abl_effnet.pt", help="base model: registered name or checkpoint")
    p.add_argument("--data", nargs="+", default=[], help="val sets")
    p.add_argument("--pairs", nargs="+", type=int, default=[20, 50])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="what --seconds measures: CPU time / threads (a dedicated machine; default) or wall time",
    )
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--test-objects", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--summarize", action="store_true", help="only rebuild the markdown summary")
    args = p.parse_args(argv)
    out_dir = Path(args.out)
    if not args.summarize:
        import torch

        from napari_segrefiner.adapt import DEFAULT_LR
        from napari_segrefiner.models.refiner import load_refiner

        args.lr = DEFAULT_LR if args.lr is None else args.lr
        torch.set_num_threads(args.threads)
        base = load_refiner(args.base, device="cpu")
        for root in args.data:
            started = time.perf_counter()
            result = run_set(Path(root), args, base)
            from napari_segrefiner.models.registry import sha256sum

            meta = {
                "benchmark": "adapt",
                "base": args.base,
                "base_sha256": sha256sum(args.base) if Path(args.base).is_file() else None,
                "seconds": args.seconds,
                "clock": args.clock,
                "threads": args.threads,
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "test_objects_max": args.test_objects,
                "lr": args.lr,
                "seed": args.seed,
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "load_average": os.getloadavg(),
                "elapsed_s": time.perf_counter() - started,
                "weak_kinds": WEAK,
                "good_kinds": GOOD,
            }
            path = out_dir / f"adapt_{result['set']}.json"
            path.write_text(json.dumps({"meta": meta, "result": result}, indent=1) + "\n")
            print(f"wrote {path}", file=sys.stderr)
    print(f"wrote {summarize(out_dir)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
