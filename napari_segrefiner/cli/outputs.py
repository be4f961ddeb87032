"""What ``napari-segrefiner refine`` reads and writes, planned and checked before any work.

Inputs are read and outputs written through :mod:`napari_segrefiner.io`. Before the model
is loaded, every output path is checked: it may not be (or resolve to) an input file or
lie in an input folder, may not exist unless ``--overwrite`` is given, must have a mask
extension, and no two inputs may map to the same output name.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "CLIError",
    "check_folder_output",
    "check_labels",
    "check_writable",
    "model_source",
    "output_lock",
    "plan_file",
    "plan_folders",
    "read_image",
    "read_mask",
    "request_from_args",
    "warnings_as_notes",
    "within",
    "write_mask",
]


class CLIError(Exception):
    """A user error reported as one line."""


def _read(path: Path, what: str, reader):
    """``reader(path)`` with the CLI's one-line errors for a missing or unreadable file."""
    if not path.is_file():
        raise CLIError(f"{what} file not found: {path}")
    try:
        return reader(path)
    except (ValueError, OSError) as exc:
        raise CLIError(f"cannot read {what} {path}: {exc}") from None


def read_image(path: Path):
    from ..io import files as io

    return _read(path, "image", io.read_image)


def read_mask(path: Path):
    from ..io import files as io

    return _read(path, "mask", io.read_mask)


def write_mask(path: Path, mask, *, overwrite: bool) -> None:
    """:func:`~napari_segrefiner.io.files.write_mask`; without ``overwrite`` never over an existing file."""
    from ..io.files import write_mask

    try:
        write_mask(path, mask, overwrite=overwrite)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    except FileExistsError as exc:
        raise CLIError(f"{exc}; pass --overwrite to replace it") from None


def check_labels(mask, force: bool) -> None:
    """Refuse a mask with implausibly many labels (:mod:`~napari_segrefiner.io.plausible`) unless ``force``."""
    from ..io.plausible import check_label_count, count_labels

    try:
        check_label_count(count_labels(mask), mask.shape, force=force)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


@contextmanager
def output_lock(path: Path, what: str):
    """Hold :class:`~napari_segrefiner.cli.outlock.OutputLock` ``path`` for the block; a held lock is a CLIError."""
    from .outlock import OutputLock, OutputLocked

    lock = OutputLock(path, what)
    try:
        lock.acquire()
    except OutputLocked as exc:
        raise CLIError(str(exc)) from None
    try:
        yield lock
    finally:
        lock.release()


def model_source(args) -> str | None:
    """``--checkpoint`` or ``--model`` (None: the shipped default)."""
    if getattr(args, "checkpoint", None):
        return args.checkpoint
    model = getattr(args, "model", None)
    if isinstance(model, str) and model.startswith("adapted:"):  # an adapted model's file (issue #19)
        from ..models.adapted import adapted_path

        try:
            return str(adapted_path(model))
        except (FileNotFoundError, ValueError) as exc:
            raise CLIError(str(exc)) from None
    return model


def request_from_args(args):
    """The run ``refine``'s arguments describe (file, folder and zarr modes alike), validated.

    Raises
    ------
    CLIError
        For an invalid mode, steps or seed (one line, before anything is read).
    """
    from ..engine.request import RefineRequest

    try:
        return RefineRequest(
            model=model_source(args),
            device=args.device,
            mode=args.mode,
            steps=args.steps,
            seed=args.seed,
            force=args.force,
        )
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None


@contextmanager
def warnings_as_notes():
    """Print the run's ``UserWarning`` s (an empty mask...) as one-line notes, not Python warnings."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        yield
    for w in caught:
        if issubclass(w.category, UserWarning):
            print(f"napari-segrefiner: warning: {w.message}", file=sys.stderr)


# ---------------------------------------------------------------- refine: planning ---
# Every output path is checked before the model is loaded and before the first refinement:
# a refused command writes nothing and leaves every input byte-identical.
def _shown(names: Sequence[str], most: int = 8) -> str:
    more = len(names) - most
    return ", ".join(names[:most]) + (f" ... and {more} more" if more > 0 else "")


def _out_ext(ext: str, what: str) -> str:
    from ..io.files import MASK_EXTENSIONS

    if ext.lower() not in MASK_EXTENSIONS:
        shown = f"extension {ext!r}" if ext else "no extension"
        raise CLIError(f"{what} has {shown}; masks are written as {', '.join(MASK_EXTENSIONS)}")
    return ext


def _inode(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file ``path`` leads to (links followed), None if there is none."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def within(path: Path, folder: Path) -> bool:
    """True if ``path`` is ``folder`` or lies inside it (through links and ``..``)."""
    res, top = path.resolve(), folder.resolve()
    if res == top or top in res.parents:
        return True
    for p in (path, *path.absolute().parents):  # same inode: bind mounts, aliases resolve() misses
        try:
            if os.path.samefile(p, folder):
                return True
        except OSError:
            continue
    return False


def _check_outputs(
    outputs: Sequence[Path], inputs: Sequence[Path], overwrite: bool, owned: Callable[[Path], bool] | None = None
) -> None:
    """Refuse outputs that are inputs, are folders, or exist (without --overwrite).

    ``owned(out)`` True marks an existing output this run made itself (its manifest says
    so): it is not foreign, so it needs no --overwrite; it is still refused if it is an
    input.
    """
    by_path = {p.resolve(): p for p in inputs}  # symlinks and ".." resolved
    by_inode = {key: p for p in inputs if (key := _inode(p)) is not None}  # hard links, bind mounts
    existing = []
    for out in outputs:
        src = by_path.get(out.resolve()) or by_inode.get(_inode(out))
        if src is not None:
            raise CLIError(f"output {out} is the input file {src}; inputs are never overwritten, choose another output")
        if out.is_dir():
            raise CLIError(f"output {out} is a folder, not a mask file")
        parent = next((p for p in out.absolute().parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise CLIError(f"cannot write {out}: {parent} is a file, not a folder")
        if os.path.lexists(out) and not (owned is not None and not out.is_symlink() and owned(out)):
            existing.append(out)
    if existing and not overwrite:
        what = (
            f"output {existing[0]} exists"
            if len(existing) == 1
            else (f"{len(existing)} outputs exist ({_shown([p.name for p in existing])})")
        )
        raise CLIError(f"{what}; pass --overwrite to replace")


def plan_file(image: Path, mask: Path, out: Path, args) -> list[tuple[Path, Path, Path]]:
    if not image.is_file():
        raise CLIError(f"image file not found: {image}")
    if not mask.is_file():
        raise CLIError(f"mask file not found: {mask}")
    if args.ext is not None:
        raise CLIError("--ext is for folder mode; in file mode the extension of -o picks the format")
    if out.is_dir():
        raise CLIError(f"output {out} is a folder; in file mode -o names the output file")
    _out_ext(out.suffix, f"output {out}")
    _check_outputs([out], [image, mask], args.overwrite)
    return [(image, mask, out)]


def _listing(folder: Path) -> dict[str, list[Path]]:
    from ..io.files import IMAGE_EXTENSIONS

    by_stem: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
            by_stem.setdefault(p.stem, []).append(p)
    return by_stem


def check_folder_output(image_dir: Path, mask_dir: Path, out: Path) -> None:
    """Refuse an output folder that is a file or lies in an input folder (nothing is created)."""
    if out.exists() and not out.is_dir():
        raise CLIError(f"output {out} is a file; in folder mode -o names a folder")
    for name, folder in (("IMAGE", image_dir), ("MASK", mask_dir)):
        if within(out, folder):
            raise CLIError(
                f"output folder {out} is (inside) the {name} folder {folder}; choose a folder outside the inputs"
            )


def plan_folders(
    image_dir: Path, mask_dir: Path, out: Path, args, owned: Callable[[Path, Path, Path], bool] | None = None
) -> list[tuple[Path, Path, Path]]:
    """The (image, mask, output) triples of folder mode, checked.

    ``owned(image, mask, output)`` says whether an existing output was made by an earlier
    run with the same inputs and settings (see :mod:`~napari_segrefiner.cli.manifest`).
    """
    from ..io.files import MASK_EXTENSIONS

    ext = args.ext
    if ext is not None:
        ext = _out_ext(ext if ext.startswith(".") else f".{ext}", "--ext")
    check_folder_output(image_dir, mask_dir, out)
    images, masks = _listing(image_dir), _listing(mask_dir)
    for stem, found in masks.items():
        if len(found) > 1 and stem in images:
            raise CLIError(f"several masks named {stem!r} in {mask_dir} ({_shown([p.name for p in found])}); keep one")
    lonely = [p.name for stem, ps in images.items() if stem not in masks for p in ps]
    orphans = [p.name for stem, ps in masks.items() if stem not in images for p in ps]
    if lonely:
        print(
            f"napari-segrefiner: warning: {len(lonely)} image(s) without a mask of the same name in {mask_dir}, "
            f"skipped: {_shown(lonely)}",
            file=sys.stderr,
        )
    if orphans:
        print(
            f"napari-segrefiner: warning: {len(orphans)} mask(s) without an image of the same name in {image_dir}, "
            f"skipped: {_shown(orphans)}",
            file=sys.stderr,
        )
    plan = []
    for stem, ps in images.items():
        if stem not in masks:
            continue
        mask_p = masks[stem][0]
        suffix = ext or (mask_p.suffix if mask_p.suffix.lower() in MASK_EXTENSIONS else ".png")
        plan += [(img_p, mask_p, out / (mask_p.stem + suffix)) for img_p in ps]
    if not plan:
        raise CLIError(f"no image/mask pairs with matching file names in {image_dir} and {mask_dir}")
    targets: dict[Path, list[str]] = {}
    for img_p, _, out_p in plan:
        targets.setdefault(out_p, []).append(img_p.name)
    for out_p, names in targets.items():
        if len(names) > 1:
            raise CLIError(f"images {', '.join(names)} would all be written to {out_p}; rename all but one")
    inputs = sorted({p for img_p, mask_p, _ in plan for p in (img_p, mask_p)})
    by_out = {o: (i, m, o) for i, m, o in plan}
    _check_outputs(
        [o for *_, o in plan], inputs, args.overwrite, None if owned is None else (lambda o: owned(*by_out[o]))
    )
    return plan


def check_writable(out: Path, mask) -> None:
    """Refuse, before refining, a mask the output format cannot hold (refined labels are a
    subset of the input's, with its dtype, so the input decides)."""
    from ..io.files import mask_writer

    try:
        mask_writer(out, mask)  # checks that the format can hold the mask; writes nothing
    except ValueError as exc:
        raise CLIError(str(exc)) from None
