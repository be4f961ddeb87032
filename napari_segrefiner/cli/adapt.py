"""``napari-segrefiner adapt``: make an adapted model from folders of image, coarse and final masks.

Files of the three folders are paired by stem. The objects of a pair of masks are the
labels of the final mask, each matched with the coarse label of the same value (when the
coarse mask is binary: with the coarse pieces that overlap it); a binary final mask is
one object. ``--pairs DIR`` reads a pair folder written by :meth:`PairStore.save` instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

__all__ = ["add_arguments", "pairs_from_folders", "run_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``napari-segrefiner adapt``."""
    parser.add_argument("--images", metavar="DIR", help="images (matched with the masks by file stem)")
    parser.add_argument("--coarse", metavar="DIR", help="coarse masks or labels the objects started from")
    parser.add_argument("--final", metavar="DIR", help="final masks or labels (what the annotator accepted)")
    parser.add_argument("--pairs", metavar="DIR", help="a saved pair folder instead of --images/--coarse/--final")
    parser.add_argument(
        "--base",
        default=None,
        metavar="NAME|PATH",
        help="model to adapt: registered name, adapted:NAME or checkpoint (default: the shipped model)",
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget of the whole run (default 60)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the variants and the batches")
    parser.add_argument("--holdout", type=float, default=0.25, help="share of pairs held out to judge (default 0.25)")
    parser.add_argument("--name", default=None, help="name of the adapted model (default adapted-<date>)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: $OMP_NUM_THREADS or all)")
    parser.add_argument("--save-pairs", metavar="DIR", default=None, help="also write the pairs to this folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an adapted model of the same name")


def _stems(folder: Path, flag: str) -> dict[str, Path]:
    from ..io.files import IMAGE_EXTENSIONS

    if not folder.is_dir():
        raise ValueError(f"{flag}: folder not found: {folder}")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            out.setdefault(p.stem, p)
    return out


def _objects(coarse: np.ndarray, final: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(label, coarse object, final object) of every object of one pair of masks."""
    from scipy import ndimage as ndi

    if final.dtype == bool:
        return [(1, coarse != 0, final)] if (coarse != 0).any() and final.any() else []
    out = []
    pieces = ndi.label(coarse != 0, structure=np.ones((3, 3)))[0] if coarse.dtype == bool else None
    for label in np.unique(final[final != 0]).tolist():
        own = final == label
        if pieces is None:
            c = coarse == label
        else:
            touched = np.unique(pieces[own & (pieces != 0)])
            c = np.isin(pieces, touched[touched != 0])
        if c.any():
            out.append((int(label), c, own))
    return out


def _key(text: str) -> str:
    key = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in text)[:120]
    return key if key[:1].isalnum() else f"p{key}"


def pairs_from_folders(images: Path, coarse: Path, final: Path, config) -> tuple[object, list[str]]:
    """A :class:`~.store.PairStore` of every object in the folders, and notes on what was skipped."""
    from ..adapt.store import PairStore
    from ..io.files import read_image, read_mask

    imgs, cs, fs = _stems(images, "--images"), _stems(coarse, "--coarse"), _stems(final, "--final")
    stems = sorted(set(imgs) & set(cs) & set(fs))
    if not stems:
        raise ValueError(f"no file stem occurs in all of {images}, {coarse} and {final}")
    store, notes = PairStore(config), []
    for stem in stems:
        image, c, f = read_image(imgs[stem]), read_mask(cs[stem]), read_mask(fs[stem])
        if c.shape != image.shape[:2] or f.shape != image.shape[:2]:
            raise ValueError(f"{stem}: image {image.shape[:2]}, coarse {c.shape} and final {f.shape} differ in shape")
        for label, cm, fm in _objects(c, f):
            try:
                store.add(image, cm, fm, 1, key=_key(f"{stem}-{label}" if f.dtype != bool else stem), source=stem)
            except ValueError as exc:
                notes.append(f"{stem} label {label}: {exc}")
    return store, notes


def run_from_args(args: argparse.Namespace) -> int:
    """Run the subcommand; returns 0 (a model was made, kept or not) or 2 (bad input)."""
    from ..adapt.learn import iter_adapt
    from ..adapt.store import PairStore
    from ..models.checkpoint import CheckpointError
    from ..models.refiner import load_refiner
    from ..models.threads import cpu_threads

    def fail(msg: str) -> int:
        print(f"napari-segrefiner: error: {msg}", file=sys.stderr)
        return 2

    folders = (args.images, args.coarse, args.final)
    if args.pairs and any(folders):
        return fail("give either --pairs or --images/--coarse/--final")
    if not args.pairs and not all(folders):
        return fail("adapt needs --images, --coarse and --final (or --pairs)")
    try:
        threads = cpu_threads("cli", requested=args.threads)
        base = load_refiner(args.base, device="cpu")
        if args.pairs:
            store, notes = PairStore.load(args.pairs, config=base.config), []
        else:
            store, notes = pairs_from_folders(Path(args.images), Path(args.coarse), Path(args.final), base.config)
        for note in notes[:10]:
            print(f"skipped {note}", file=sys.stderr)
        print(f"{len(store)} pairs", file=sys.stderr)
        if args.save_pairs:
            print(f"pairs written to {store.save(args.save_pairs, overwrite=args.overwrite)}", file=sys.stderr)
        runs = iter_adapt(
            base,
            store,
            seconds=args.seconds,
            max_steps=args.max_steps,
            seed=args.seed,
            holdout=args.holdout,
            threads=threads,
            save=False,
        )
    except (FileNotFoundError, FileExistsError, CheckpointError, ValueError, TypeError) as exc:
        return fail(str(exc).strip("'\""))
    last = None
    for rec in runs:
        if rec.stage != "train" or rec.step % 25 == 0:
            print(f"[{rec.seconds:5.1f} s] {rec.message}", file=sys.stderr)
        last = rec
    result = last.result
    print(result.summary())
    if not result.kept:
        print("the base model stays in use; nothing was saved")
        return 0
    try:
        path = result.save(args.name, overwrite=args.overwrite)
    except (FileExistsError, ValueError) as exc:
        return fail(str(exc))
    print(
        f"saved {path}; refine with it: napari-segrefiner refine ... --model adapted:{path.stem} "
        f"(or --checkpoint {path})"
    )
    return 0
