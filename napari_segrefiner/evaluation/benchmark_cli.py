"""The ``napari-segrefiner benchmark`` subcommand: its flags, and a run that prints and writes the results.

The benchmark itself is :func:`~.benchmark.run_benchmark`; the tables and files are
:mod:`.report`'s.
"""

from __future__ import annotations

import argparse
import sys

from .benchmark import DEFAULT_OUT, METHODS, run_benchmark
from .coarse import DEFAULT_PEERS_KINDS, KINDS, BenchmarkError
from .report import format_table, write_results

__all__ = ["add_arguments", "run_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``napari-segrefiner benchmark``."""
    parser.add_argument(
        "--data",
        nargs="+",
        action="extend",
        required=True,
        metavar="DIR",
        help="data folders (their val split is used); repeatable",
    )
    parser.add_argument(
        "--kinds", nargs="+", default=None, metavar="KIND", help=f"coarse kinds (default all: {', '.join(KINDS)})"
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="METHOD",
        help=f"methods (default all available: {', '.join(METHODS)})",
    )
    parser.add_argument(
        "--peers-kinds",
        nargs="+",
        default=None,
        metavar="KIND",
        help=f"kinds the classical peers run on (default {' '.join(DEFAULT_PEERS_KINDS)}; 'all' or 'none')",
    )
    parser.add_argument(
        "--max-items",
        type=int,
        default=None,
        metavar="N",
        help="seeded random subset of N objects per set (default all)",
    )
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, help="registered model name (default: the shipped segrefiner-lite)")
    g.add_argument("--checkpoint", default=None, help="checkpoint file")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default auto)")
    parser.add_argument("--threads", type=int, default=None, help="torch and OpenCV threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of object selection and coarse masks")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output path without extension (default {DEFAULT_OUT})")
    parser.add_argument("--per-item", action="store_true", help="also store every object's figures in the JSON")
    parser.add_argument(
        "--hints",
        type=int,
        default=0,
        metavar="K",
        help="simulate K annotator clicks on the largest errors after SegRefiner's result and "
        "report IoU after each (default 0)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments: print the tables, write JSON + Markdown.

    Returns 0 on success and 2 (after a one-line message on stderr) on bad input.
    """
    peers_kinds = getattr(args, "peers_kinds", None)
    if peers_kinds is not None:
        if peers_kinds == ["all"]:
            peers_kinds = args.kinds if args.kinds is not None else list(KINDS)
        elif peers_kinds == ["none"]:
            peers_kinds = []
    threads = getattr(args, "threads", None)
    try:
        if threads is not None:
            if threads < 1:
                raise BenchmarkError(f"--threads must be >= 1, got {threads}")
            import cv2
            import torch

            torch.set_num_threads(threads)
            cv2.setNumThreads(threads)
        results = run_benchmark(
            args.data,
            kinds=args.kinds,
            methods=args.methods,
            max_items=args.max_items,
            model=getattr(args, "checkpoint", None) or getattr(args, "model", None),
            device=args.device,
            seed=args.seed,
            progress=not getattr(args, "no_progress", False),
            peers_kinds=peers_kinds,
            per_item=getattr(args, "per_item", False),
            hints=getattr(args, "hints", 0),
        )
    except BenchmarkError as exc:
        print(f"napari-segrefiner: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(results), end="")
    json_path, md_path = write_results(results, args.out)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0
