"""Peak memory of ``refine`` and ``refine_lazy`` on a 2048 x 2048 image with ~2,000 nuclei.

The case: 64 tiles of 256 x 256 px cut from real dsb2018 val images (``--data``, never
copied into the repository) fill a 2048 x 2048 frame, the densest tiles first, until the
frame holds ``--objects`` nuclei (extra nuclei of the last tile are dropped); every nucleus
gets a seeded coarse mask of the quality benchmark's coarse kinds and the labels are
numbered in scan order. The case is written to a temporary folder.

Each path then runs in a fresh process with one torch thread (``OMP_NUM_THREADS=1``):

* ``refine``: ``refine(image, labels, model=..., seed=0)`` (auto picks instance mode);
* ``lazy``: ``refine_lazy(image, labels, model=..., seed=0)`` computed on dask's threaded
  scheduler with one worker thread (as the CLI's zarr mode and the plugin run it).

Each child reports its own peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the
whole process, Python, torch and dask included), its RSS once the model is loaded, and the
seconds of the refinement; the parent checks that both paths gave the same bits.

``--network stand-in`` replaces the network by one that costs nothing (it echoes the coarse
mask as logits), so that the memory of everything but the network's arithmetic can be
shown on the full 2,000 objects in minutes; the shipped model takes 0.3-0.6 s per object
on this project's CPU, so run it on fewer objects (``--objects 100``).

Figures go to ``benchmarks/results/memory.json`` (one entry per path, network and object
count) and a table is printed.

Usage::

    python benchmarks/bench_memory.py --network stand-in                 # 2,000 objects, minutes
    python benchmarks/bench_memory.py --network shipped --objects 100    # the real network
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIDE, TILE = 2048, 256
KINDS = ("cascadepsp-0.8", "lowres-jitter", "dilate-3", "erode-3", "nearperfect")
LIMIT_MB = 1536  # the acceptance bound: 1.5 GB


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


# ----------------------------------------------------------------------------- the case
def _tile_candidates(data: Path, n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """``n`` random 256 px crops of val images: (RGB uint8, ground-truth labels, objects)."""
    from napari_segrefiner.io.files import read_image, read_labels
    from napari_segrefiner.io.images import as_rgb_uint8

    names = (data / "val.txt").read_text().split()
    out = []
    while len(out) < n:
        name = names[int(rng.integers(len(names)))]
        gt = read_labels(data / "labels" / f"{name}.png")
        if min(gt.shape) < TILE:
            continue
        img = as_rgb_uint8(read_image(data / "images" / f"{name}.png"))
        y, x = (int(rng.integers(0, s - TILE + 1)) for s in gt.shape)
        img, gt = img[y : y + TILE, x : x + TILE], gt[y : y + TILE, x : x + TILE]
        ids, counts = np.unique(gt[gt > 0], return_counts=True)
        out.append((img, gt, int(np.count_nonzero(counts >= 32))))
    return out


def _coarse(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seeded coarse masks of every nucleus of at least 32 px (the benchmark's coarse kinds)."""
    from scipy import ndimage as ndi

    from napari_segrefiner.evaluation.coarse import make_kind

    coarse = np.zeros(gt.shape, np.int32)
    for v in np.unique(gt):
        if v == 0 or np.count_nonzero(gt == v) < 32:
            continue
        (sl,) = ndi.find_objects((gt == v).astype(np.int32))
        sl = tuple(slice(max(s.start - 12, 0), s.stop + 12) for s in sl)
        m, _ = make_kind(KINDS[int(rng.integers(len(KINDS)))], gt[sl] == v, rng)
        coarse[sl][m & (coarse[sl] == 0)] = v
    return coarse


def _scan_order(lab: np.ndarray) -> np.ndarray:
    """Labels renumbered 1..k by their first pixel in row-major order."""
    vals, first = np.unique(lab.ravel(), return_index=True)
    keep = vals != 0
    table = np.zeros(int(vals.max()) + 1, np.int32)
    table[vals[keep][np.argsort(first[keep])]] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return table[lab]


def build_case(data: Path, objects: int, seed: int, folder: Path) -> dict:
    """The 2048 x 2048 frame with ``objects`` nuclei (image.npy, labels.npy in ``folder``)."""
    rng = np.random.default_rng(seed)
    cells = (SIDE // TILE) ** 2
    tiles = sorted(_tile_candidates(data, 6 * cells, rng), key=lambda t: -t[2])[:cells]
    image = np.zeros((SIDE, SIDE, 3), np.uint8)
    labels = np.zeros((SIDE, SIDE), np.int32)
    offset = 0
    for k, (img, gt, _) in enumerate(tiles):
        y, x = divmod(k, SIDE // TILE)
        coarse = _coarse(gt, rng)
        coarse[coarse > 0] += offset
        offset = int(coarse.max(initial=offset))
        image[y * TILE : (y + 1) * TILE, x * TILE : (x + 1) * TILE] = img
        labels[y * TILE : (y + 1) * TILE, x * TILE : (x + 1) * TILE] = coarse
    labels = _scan_order(labels)
    labels[labels > objects] = 0  # the first ``objects`` nuclei in scan order
    np.save(folder / "image.npy", image)
    np.save(folder / "labels.npy", labels)
    sizes = np.bincount(labels.ravel())[1:]
    return {
        "side": SIDE,
        "objects": int(labels.max()),
        "tiles": len(tiles),
        "seed": seed,
        "median_object_px": int(np.median(sizes)),
        "largest_object_px": int(sizes.max()),
    }


# ----------------------------------------------------------------------------- a child
def _refiner(network: str):
    import torch

    from napari_segrefiner import load_refiner
    from napari_segrefiner.models.refiner import Refiner

    refiner = load_refiner(None, device="cpu")
    if network == "shipped":
        return refiner

    class StandIn(torch.nn.Module):
        """Echoes the coarse mask as confident logits: no arithmetic worth measuring."""

        def forward(self, x, t):
            return (x[:, 3:4] * 2.0 - 1.0) * 4.0

    return Refiner(StandIn().eval(), refiner.config, refiner.schedule, refiner.device, source="stand-in")


def child(path: str, network: str, folder: Path) -> dict:
    """Run one path on the case in ``folder``; returns its figures (printed as JSON by main)."""
    import torch

    torch.set_num_threads(1)
    image, labels = np.load(folder / "image.npy"), np.load(folder / "labels.npy")
    refiner = _refiner(network)
    loaded_mb = _rss_mb()
    t0 = time.perf_counter()
    if path == "refine":
        from napari_segrefiner import refine

        out = refine(image, labels, model=refiner, seed=0)
    else:
        from napari_segrefiner import refine_lazy

        out = refine_lazy(image, labels, model=refiner, seed=0).compute(scheduler="threads", num_workers=1)
    seconds = time.perf_counter() - t0
    np.save(folder / f"out_{path}_{network}.npy", out)
    objects = int(np.count_nonzero(np.bincount(labels.ravel())[1:]))
    return {
        "path": path,
        "network": network,
        "objects": objects,
        "peak_mb": round(_rss_mb(), 1),
        "loaded_mb": round(loaded_mb, 1),
        "seconds": round(seconds, 1),
        "s_per_object": round(seconds / max(objects, 1), 4),
    }


def _run_child(path: str, network: str, folder: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, __file__, "--child", path, "--network", network, "--case", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{path} ({network}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, default=2000, help="nuclei in the frame (default 2,000)")
    p.add_argument("--network", choices=["stand-in", "shipped"], default="stand-in")
    p.add_argument("--paths", nargs="+", choices=["refine", "lazy"], default=["refine", "lazy"])
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "dsb2018")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "results" / "memory.json")
    p.add_argument("--child", choices=["refine", "lazy"], help=argparse.SUPPRESS)
    p.add_argument("--case", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.network, args.case)))
        return 0
    if not (args.data / "val.txt").is_file():
        raise SystemExit(f"dsb2018 not found at {args.data} (--data DIR: images/, labels/, val.txt)")
    with tempfile.TemporaryDirectory(prefix="segrefiner-memory-") as tmp:
        folder = Path(tmp)
        case = build_case(args.data, args.objects, args.seed, folder)
        print(
            f"case: {SIDE} x {SIDE} px, {case['objects']} nuclei from {case['tiles']} dsb2018 val tiles "
            f"(median {case['median_object_px']} px, largest {case['largest_object_px']} px)"
        )
        runs = [_run_child(path, args.network, folder) for path in args.paths]
        if len(runs) == 2:
            same = np.array_equal(
                np.load(folder / f"out_refine_{args.network}.npy"), np.load(folder / f"out_lazy_{args.network}.npy")
            )
            for r in runs:
                r["identical_results"] = bool(same)
    print(f"{'path':8s} {'network':9s} {'objects':>7s} {'peak RSS':>10s} {'model loaded':>13s} {'s/object':>9s}")
    for r in runs:
        flag = "" if r["peak_mb"] <= LIMIT_MB else f"  OVER {LIMIT_MB} MB"
        print(
            f"{r['path']:8s} {r['network']:9s} {r['objects']:7d} {r['peak_mb']:8.0f} MB {r['loaded_mb']:10.0f} MB "
            f"{r['s_per_object']:9.4f}{flag}"
        )
    if len(runs) == 2:
        print(f"refine and refine_lazy bit-identical: {runs[0]['identical_results']}")
    _save(args.out, case, runs)
    return 0


def _save(out: Path, case: dict, runs: list[dict]) -> None:
    """Merge into ``out``: one entry per (path, network, objects), newest wins."""
    from napari_segrefiner.io.atomic import atomic_write

    old = json.loads(out.read_text()) if out.is_file() else {}
    entries = {(e["path"], e["network"], e["objects"]): e for e in old.get("runs", [])}
    for r in runs:
        entries[(r["path"], r["network"], r["objects"])] = {**r, "case": case}
    import platform

    import torch

    text = json.dumps(
        {
            "limit_mb": LIMIT_MB,
            "threads": 1,
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "runs": sorted(entries.values(), key=lambda e: (e["network"], e["objects"], e["path"])),
        },
        indent=1,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: tmp.write_text(text + "\n"))


if __name__ == "__main__":
    sys.exit(main())
