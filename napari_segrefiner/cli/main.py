"""Command-line tool ``napari-segrefiner``: the parser and the entry point (what the commands do is
:mod:`.commands`; the CLI is the only part of the package that prints and exits).

Subcommands: ``refine`` (one pair or two folders), ``download``, ``models``, ``train``,
``benchmark`` (quality against classical peers), ``speed`` (seconds per forward/object) and ``adapt``
(learn from corrected masks, :mod:`.adapt`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from ..engine.request import DEFAULT_SEED, MODES
from .commands import cmd_benchmark, cmd_demo, cmd_download, cmd_models, cmd_refine, cmd_speed, cmd_train
from .outputs import CLIError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="napari-segrefiner", description="SegRefiner mask refinement")
    p.add_argument("-v", "--verbose", action="store_true", help="log what the pipelines choose")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser(
        "refine",
        help="refine IMAGE with coarse MASK (files, or two folders matched by name)",
        description="Refine a coarse mask (or labels) of an image and write the result. File mode: IMAGE and "
        "MASK are files, -o is the output file. Folder mode: IMAGE and MASK are folders whose files are paired "
        "by name (without extension), -o is the output folder; it is resumable: a rerun with the same inputs and "
        "settings skips the outputs it finished (see segrefiner-manifest.json in the output folder). Zarr mode: "
        "IMAGE and MASK are .zarr arrays (any size, 2-D or stacks), -o is the output .zarr, refined object by "
        "object in instance mode, chunk by chunk, resumably. Outputs are checked before anything runs: an "
        "output may not be an input (or, in folder mode, lie inside an input folder) and existing files are "
        "only replaced with --overwrite. An output folder or .zarr is locked while a run writes it: a second "
        "run into it is refused.",
    )
    r.add_argument(
        "image", metavar="IMAGE", help="image file (PNG, JPEG, TIFF, BMP, .npy), or a folder of them (folder mode)"
    )
    r.add_argument(
        "mask",
        metavar="MASK",
        help="coarse mask or labels file (PNG, TIFF, .npy; 0 = background), or a folder of them named like the images",
    )
    r.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output mask file (.png, .tif, .tiff or .npy; the "
        "extension picks the format), or output folder in folder mode",
    )
    g = r.add_mutually_exclusive_group()
    g.add_argument(
        "--model",
        default=None,
        help="registered model name, or adapted:NAME for a model made by `napari-segrefiner adapt` "
        "(default: the shipped segrefiner-lite)",
    )
    g.add_argument("--checkpoint", default=None, help="checkpoint file (ours or an official .pth)")
    r.add_argument(
        "--mode",
        default="auto",
        choices=MODES,
        help="pipeline: each object in its own crop (instance), the whole frame (whole), "
        "global + native-resolution patches (hr); auto picks (default: auto)",
    )
    r.add_argument("--steps", type=int, default=None, help="number of reverse diffusion steps (default: all)")
    r.add_argument(
        "--device", default="auto", help="auto (CUDA, MPS, then CPU), cpu, cuda, cuda:1, mps (default: auto)"
    )
    r.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"seed of the per-pixel random draws (default: {DEFAULT_SEED})"
    )
    r.add_argument(
        "--ext",
        default=None,
        help="folder mode: output extension .png, .tif, .tiff or .npy "
        "(default: the mask's, or .png for other mask formats)",
    )
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="replace output files that already exist (outputs "
        "the manifest shows finished from the same inputs and settings are still skipped); a replaced "
        "file keeps its permissions",
    )
    r.add_argument(
        "--force",
        action="store_true",
        help="refine a mask with implausibly many labels (more than "
        "max(1024, pixels/16): a photo as the mask, or image and mask swapped) or a run estimated to "
        "need more memory than is available",
    )
    r.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: $OMP_NUM_THREADS, else every core this process may use; shared by the --workers)",
    )
    c = r.add_mutually_exclusive_group()
    c.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="folder and .zarr modes: refine on a local dask cluster of N worker processes, each "
        "loading the model once",
    )
    c.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDR",
        help="folder and .zarr modes: refine on a running dask.distributed cluster (e.g. "
        "tcp://host:8786) whose workers see the same files",
    )
    r.add_argument(
        "--chunks",
        type=int,
        default=None,
        metavar="PX",
        help=".zarr mode: output chunk side in pixels (default: the mask's chunks)",
    )
    r.set_defaults(func=cmd_refine)

    e = sub.add_parser("demo", help="refine the shipped sample, print IoU before/after, write an overlay PNG")
    e.add_argument("-o", "--output", default="segrefiner_demo.png")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--model", default=None)
    g.add_argument("--checkpoint", default=None)
    e.add_argument("--device", default="auto")
    e.add_argument("--seed", type=int, default=DEFAULT_SEED)
    e.set_defaults(func=cmd_demo)

    d = sub.add_parser("download", help="download an official checkpoint (SHA-256 verified)")
    d.add_argument("name")
    d.add_argument("--cache", default=None, help="cache folder (default: $NAPARI_SEGREFINER_CACHE or user cache)")
    d.add_argument("--trust-unknown-hash", action="store_true", help="allow files without a published SHA-256")
    d.set_defaults(func=cmd_download)

    m = sub.add_parser("models", help="list registered models and where their weights are")
    m.set_defaults(func=cmd_models)

    t = sub.add_parser("train", help="train or fine-tune a model on image/mask folders")
    t.add_argument("--data", nargs="+", required=True, help="folders with images/ and masks/ (labels/ optional)")
    t.add_argument("--val", nargs="*", default=None, help="folders whose val split chooses the best checkpoint")
    t.add_argument("--out", required=True)
    t.add_argument("--iters", type=int, default=5000)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--warmup", type=int, default=200)
    t.add_argument("--clip", type=float, default=1.0)
    t.add_argument("--device", default="auto")
    t.add_argument("--init", default=None, help="start from a registered model or checkpoint (fine-tuning)")
    t.add_argument("--resume", action="store_true", help="continue from <out>.last.pt")
    t.add_argument("--arch", default="lite", choices=["lite", "lite-tiny", "official"])
    t.add_argument("--workers", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--windows", type=int, nargs="+", default=[256], help="training window sides (<= 256)")
    t.add_argument("--repeats", type=int, default=1, help="optimizer steps per loaded batch")
    t.add_argument("--window-probs", type=float, nargs="+", default=None, help="probability of each window side")
    t.add_argument("--coarse-kind", default="mixed", help="coarse-mask synthesis kind ('campaign': the lite v2 mix)")
    t.add_argument(
        "--wrong-weight", type=float, default=0.0, help="extra BCE weight on pixels the coarse mask gets wrong"
    )
    t.add_argument("--threads", type=int, default=None, help="torch intra-op threads (1 on a shared CPU)")
    t.add_argument(
        "--folder-weights", type=float, nargs="+", default=None, help="sampling weight of each --data folder"
    )
    t.add_argument("--patch-fraction", type=float, default=0.25, help="share of native-resolution patches (HR recipe)")
    t.add_argument("--no-bf16", action="store_true", help="disable bf16 autocast on CUDA")
    t.set_defaults(func=cmd_train)

    try:
        from ..evaluation.benchmark_cli import add_arguments as add_benchmark
    except ImportError:  # pragma: no cover
        add_benchmark = None
    if add_benchmark is not None:
        b = sub.add_parser("benchmark", help="quality against classical refiners on val splits")
        add_benchmark(b)
        b.set_defaults(func=cmd_benchmark)

    from .adapt import add_arguments as add_adapt  # issue #19
    from .adapt import run_from_args as run_adapt

    a = sub.add_parser("adapt", help="adapt a model to corrected masks (image, coarse and final folders)")
    add_adapt(a)
    a.set_defaults(func=run_adapt)

    from ..evaluation.speed import add_arguments as add_speed

    s = sub.add_parser("speed", help="seconds per forward pass and per refined object")
    add_speed(s)
    s.set_defaults(func=cmd_speed)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 failure, 2 usage error)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"napari-segrefiner: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("napari-segrefiner: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback for the user; set SEGREFINER_DEBUG=1 to see one
        if os.environ.get("SEGREFINER_DEBUG"):
            raise
        print(f"napari-segrefiner: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
