"""Lazy refinement of a whole-slide-sized image: peak memory and time per object.

Builds a synthetic slide of ``--side`` x ``--side`` px (default 16384) in a zarr store in a
temporary folder (never in the repository): 256 px tiles cut from real dsb2018 val images,
placed in randomly chosen cells until the slide holds about ``--objects`` nuclei (scaled by
area: 20,000 on 16384 x 16384), each nucleus given a seeded coarse mask of the quality
benchmark's coarse kinds, labels numbered in scan order. Then, each in a fresh process:

* ``lazy``: :func:`napari_segrefiner.lazy.refine.refine_lazy` on the zarr arrays, stored chunk by
  chunk into a zarr output (dask threaded scheduler), with the shipped model on the CPU;
* ``memory``: numpy ``refine(mode="instance")`` and ``refine_lazy`` on a small crop of the
  same slide (``--small`` px), which also checks that both give the same bits.

Peak RSS is the process's ``ru_maxrss`` (the whole process: Python, torch, dask, zarr).
Figures go to ``benchmarks/results/lazy.json`` (one entry per slide side) and a table is
printed.

Usage::

    python benchmarks/bench_lazy.py --side 4096          # ~1,250 objects
    nice python benchmarks/bench_lazy.py                 # the full slide: ~20,000 objects (hours on a CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TILE = 256
KINDS = ("cascadepsp-0.8", "lowres-jitter", "dilate-3", "erode-3", "nearperfect")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _refiner(args):
    """The shipped model, or with ``--stub-network`` its options around a network that
    costs nothing (it echoes the mask), to measure everything but the network."""
    import torch

    from napari_segrefiner import load_refiner
    from napari_segrefiner.models.refiner import Refiner

    refiner = load_refiner(None, device="cpu")
    if not args.stub_network:
        return refiner

    class Echo(torch.nn.Module):
        def forward(self, x, t):
            return (x[:, 3:4] * 2.0 - 1.0) * 4.0

    return Refiner(Echo().eval(), refiner.config, refiner.schedule, refiner.device, source="echo")


def _setup(args) -> None:
    """What the CLI's zarr mode does in its process: torch threads, large blocks returned."""
    import torch

    from napari_segrefiner.models.allocator import return_large_blocks

    torch.set_num_threads(args.threads)
    if not args.default_malloc:
        return_large_blocks()


def _tiles(data: Path, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` 256 px tiles (RGB uint8, coarse int32 labels 1..k in scan order) of val images."""
    from scipy import ndimage as ndi

    from napari_segrefiner.evaluation.coarse import make_kind
    from napari_segrefiner.io.files import read_image, read_labels
    from napari_segrefiner.io.images import as_rgb_uint8

    rng = np.random.default_rng(seed)
    names = (data / "val.txt").read_text().split()
    out = []
    while len(out) < n:
        name = names[int(rng.integers(len(names)))]
        img = as_rgb_uint8(read_image(data / "images" / f"{name}.png"))
        gt = read_labels(data / "labels" / f"{name}.png")
        y, x = (int(rng.integers(0, s - TILE + 1)) for s in gt.shape)
        img, gt = img[y : y + TILE, x : x + TILE], gt[y : y + TILE, x : x + TILE]
        coarse = np.zeros(gt.shape, np.int32)
        ids = [v for v in np.unique(gt) if v and (gt == v).sum() >= 32]
        if not ids:
            continue
        for v in ids:
            (sl,) = ndi.find_objects((gt == v).astype(np.int32))
            pad = 12
            sl = tuple(slice(max(s.start - pad, 0), s.stop + pad) for s in sl)
            kind = KINDS[int(rng.integers(len(KINDS)))]
            m, _ = make_kind(kind, gt[sl] == v, rng)
            coarse[sl][m] = v
        out.append((img, _relabel_scan_order(coarse)))
    return out


def _relabel_scan_order(lab: np.ndarray):
    """Labels renumbered 1..k by their first pixel in row-major order."""
    flat = lab.ravel()
    vals, first = np.unique(flat, return_index=True)
    keep = vals != 0
    order = np.argsort(first[keep])
    lut = np.zeros(int(vals.max()) + 1, np.int64)
    lut[vals[keep][order]] = np.arange(1, keep.sum() + 1)
    return lut[lab].astype(np.int32)


def build_slide(root: Path, side: int, target: int, chunk: int, data: Path, seed: int) -> dict:
    """Write image.zarr (uint8 RGB) and labels.zarr (uint32) under ``root``; returns facts."""
    import zarr

    rng = np.random.default_rng(seed)
    pool = _tiles(data, 160, seed)
    mean = np.mean([t[1].max() for t in pool])
    cells = (side // TILE) ** 2
    n_cells = min(cells, int(round(target / mean)))
    chosen = np.zeros(cells, bool)
    chosen[rng.choice(cells, size=n_cells, replace=False)] = True
    per_row = side // TILE
    img_z = zarr.create_array(
        store=str(root / "image.zarr"), shape=(side, side, 3), dtype=np.uint8, chunks=(chunk, chunk, 3), fill_value=0
    )
    lab_z = zarr.create_array(
        store=str(root / "labels.zarr"), shape=(side, side), dtype=np.uint32, chunks=(chunk, chunk), fill_value=0
    )
    next_id = 1
    band = chunk // TILE
    for b0 in range(0, per_row, band):
        img = np.zeros((band * TILE, side, 3), np.uint8)
        lab = np.zeros((band * TILE, side), np.uint32)
        for r in range(b0, min(b0 + band, per_row)):
            for c in range(per_row):
                if not chosen[r * per_row + c]:
                    continue
                t_img, t_lab = pool[int(rng.integers(len(pool)))]
                y, x = (r - b0) * TILE, c * TILE
                img[y : y + TILE, x : x + TILE] = t_img
                k = int(t_lab.max())
                lab[y : y + TILE, x : x + TILE] = np.where(t_lab > 0, t_lab + (next_id - 1), 0)
                next_id += k
        rows = slice(b0 * TILE, min(b0 + band, per_row) * TILE)
        img_z[rows] = img[: rows.stop - rows.start]
        lab_z[rows] = lab[: rows.stop - rows.start]
    del img, lab
    return {"side": side, "chunk": chunk, "tiles": int(n_cells), "objects": next_id - 1}


def _child(mode: str, root: Path, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--_child",
        mode,
        "--_root",
        str(root),
        "--threads",
        str(args.threads),
        "--workers",
        str(args.workers),
        "--small",
        str(args.small),
        "--seed",
        str(args.seed),
    ]
    if args.default_malloc:
        cmd.append("--default-malloc")
    if args.stub_network:
        cmd.append("--stub-network")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{mode} run failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_lazy(root: Path, args) -> dict:
    import dask
    import dask.array as da
    import zarr

    from napari_segrefiner.lazy.refine import refine_lazy

    _setup(args)
    refiner = _refiner(args)
    image, labels = zarr.open_array(str(root / "image.zarr")), zarr.open_array(str(root / "labels.zarr"))
    base = _peak_mb()
    t0, c0, load0 = time.perf_counter(), _cpu_s(), os.getloadavg()[0]
    last = [0.0]
    totals = [0]

    def progress(done: int, total: int) -> None:
        totals[0] = total
        now = time.perf_counter()
        if now - last[0] > 60 or done == total:
            last[0] = now
            print(
                f"  {done}/{total} objects, {now - t0:.0f} s, peak RSS {_peak_mb():.0f} MB", file=sys.stderr, flush=True
            )

    result = refine_lazy(image, labels, model=refiner, seed=args.seed, progress=progress)
    planned = time.perf_counter() - t0
    out = zarr.create_array(
        store=str(root / "refined.zarr"),
        shape=result.shape,
        dtype=result.dtype,
        chunks=labels.chunks,
        fill_value=0,
        overwrite=True,
    )
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        da.store(result, out, lock=False)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    objects = totals[0]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "scan_s": planned,
        "objects": objects,
        "s_per_object": wall / max(objects, 1),
        "cpu_s_per_object": cpu / max(objects, 1),
        "peak_rss_mb": _peak_mb(),
        "rss_before_mb": base,
        "load_before": load0,
        "load_after": os.getloadavg()[0],
    }


def run_memory(root: Path, args) -> dict:
    """numpy refine and refine_lazy on the small crop of the slide with the most objects."""
    import dask
    import zarr

    from napari_segrefiner import refine
    from napari_segrefiner.lazy.refine import refine_lazy

    _setup(args)
    refiner = _refiner(args)
    labels = zarr.open_array(str(root / "labels.zarr"))
    side, s = labels.shape[0], args.small
    best, corner = -1, (0, 0)
    for y in range(0, side - s + 1, s):
        for x in range(0, min(side, 4 * s) - s + 1, s):
            n = len(np.unique(labels[y : y + s, x : x + s]))
            if n > best:
                best, corner = n, (y, x)
    y, x = corner
    lab = labels[y : y + s, x : x + s]
    img = zarr.open_array(str(root / "image.zarr"))[y : y + s, x : x + s]
    _, counts = np.unique(lab[lab > 0], return_counts=True)
    objects = int((counts >= refiner.config.min_area).sum())
    base = _peak_mb()
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), _cpu_s()
    expected = refine(img, lab, model=refiner, mode="instance", seed=args.seed)
    t_mem, c_mem = time.perf_counter() - t0, _cpu_s() - c0
    peak_mem = _peak_mb()
    t0, c0 = time.perf_counter(), _cpu_s()
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        got = refine_lazy(img, lab, model=refiner, seed=args.seed, chunks=min(1024, s)).compute()
    t_lazy, c_lazy = time.perf_counter() - t0, _cpu_s() - c0
    return {
        "side": s,
        "corner": list(corner),
        "objects": objects,
        "memory_s": t_mem,
        "memory_s_per_object": t_mem / objects,
        "memory_cpu_s_per_object": c_mem / objects,
        "memory_peak_rss_mb": peak_mem,
        "rss_before_mb": base,
        "lazy_s": t_lazy,
        "lazy_s_per_object": t_lazy / objects,
        "lazy_cpu_s_per_object": c_lazy / objects,
        "identical": bool(np.array_equal(got, expected)),
        "changed_px": int((expected != lab).sum()),
        "load_before": load0,
        "load_after": os.getloadavg()[0],
    }


def _key(args) -> str:
    return (
        f"{args.side}"
        + ("-default-malloc" if args.default_malloc else "")
        + ("-stub-network" if args.stub_network else "")
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", type=int, default=16384, help="slide side in px (a multiple of --chunk)")
    p.add_argument("--objects", type=int, default=20000, help="objects on a 16384 px slide (scaled by area)")
    p.add_argument("--chunk", type=int, default=1024, help="zarr chunk side (a multiple of 256)")
    p.add_argument("--small", type=int, default=1024, help="side of the in-memory comparison crop")
    p.add_argument("--data", default="/work/shared/data/dsb2018")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--workers", type=int, default=1, help="dask threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default=None, help="folder for the zarr stores (default: a new temporary folder)")
    p.add_argument("--skip-memory", action="store_true", help="no in-memory comparison")
    p.add_argument(
        "--stub-network",
        action="store_true",
        help="a network that costs nothing (echoes the mask): measures all but the network",
    )
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's adaptive mmap threshold (the CLI fixes it; see napari_segrefiner.models.allocator)",
    )
    p.add_argument("--out", default=str(HERE / "results" / "lazy.json"))
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_root", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        run = run_lazy if args._child == "lazy" else run_memory
        print(json.dumps(run(Path(args._root), args)))
        return 0
    if args.side % args.chunk or args.chunk % TILE:
        p.error("--side must be a multiple of --chunk, and --chunk a multiple of 256")
    target = int(round(args.objects * (args.side / 16384) ** 2))
    root = Path(tempfile.mkdtemp(prefix="segrefiner-lazy-", dir=args.tmp))
    try:
        t0 = time.perf_counter()
        slide = build_slide(root, args.side, target, args.chunk, Path(args.data), args.seed)
        slide["build_s"] = time.perf_counter() - t0
        print(
            f"slide {args.side} px: {slide['objects']} objects in {slide['tiles']} tiles ({slide['build_s']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        small = None if args.skip_memory else _child("memory", root, args)
        if small:
            print(f"small {args.small} px: {small}", file=sys.stderr, flush=True)
        lazy = _child("lazy", root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    import torch

    entry = {
        "slide": slide,
        "lazy": lazy,
        "small": small,
        "threads": args.threads,
        "workers": args.workers,
        "malloc": "glibc default" if args.default_malloc else "mmap threshold 1 MiB (as the CLI)",
        "network": "echo stub (costs nothing)" if args.stub_network else "shipped segrefiner-lite",
        "cpu": os.cpu_count(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results[_key(args)] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    key = _key(args)
    print(
        "| slide | objects | peak RSS | wall s/object | CPU s/object | in-memory, small image: wall / CPU s/object, "
        "peak RSS | ratio (CPU) | identical |"
    )
    print("|---|---|---|---|---|---|---|---|")
    if small:
        mem = (
            f"{small['memory_s_per_object']:.3f} / {small['memory_cpu_s_per_object']:.3f} "
            f"({small['objects']} objects, {small['side']} px), {small['memory_peak_rss_mb']:.0f} MB"
        )
        ratio = f"{lazy['cpu_s_per_object'] / small['memory_cpu_s_per_object']:.2f}"
    else:
        mem, ratio = "-", "-"
    print(
        f"| {key} px | {lazy['objects']} | {lazy['peak_rss_mb']:.0f} MB | {lazy['s_per_object']:.3f} | "
        f"{lazy['cpu_s_per_object']:.3f} | {mem} | {ratio} | {small['identical'] if small else '-'} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
