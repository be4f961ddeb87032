"""What each subcommand of ``napari-segrefiner`` does (the parser and the entry point are :mod:`.main`).

Every command takes the parsed arguments and returns the exit code; user errors are raised
as :class:`~.outputs.CLIError` (one line, exit code 2).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .outputs import (
    CLIError,
    check_folder_output,
    check_labels,
    check_writable,
    model_source,
    output_lock,
    plan_file,
    plan_folders,
    read_image,
    read_mask,
    request_from_args,
    warnings_as_notes,
    write_mask,
)

__all__ = ["cmd_benchmark", "cmd_demo", "cmd_download", "cmd_models", "cmd_refine", "cmd_speed", "cmd_train"]


def cmd_refine(args) -> int:

    from ..models.refiner import load_refiner

    image_path, mask_path, out = Path(args.image), Path(args.mask), Path(args.output)
    if args.workers is not None and args.workers < 1:
        raise CLIError(f"--workers must be at least 1, got {args.workers}")
    from .zarr_mode import is_zarr

    if is_zarr(image_path) or is_zarr(mask_path) or is_zarr(out):
        from .zarr_mode import run_zarr

        return run_zarr(image_path, mask_path, out, args)
    if args.chunks is not None:
        raise CLIError("--chunks is for .zarr arrays (zarr mode)")
    folders = image_path.is_dir() or mask_path.is_dir()
    if folders and not (image_path.is_dir() and mask_path.is_dir()):
        missing = next((p for p in (image_path, mask_path) if not p.exists()), None)
        raise CLIError(
            f"folder not found: {missing}" if missing else "IMAGE and MASK must both be files or both be folders"
        )
    if folders:  # resumable: outputs an earlier run made with the same inputs and settings are its own
        from .folder import FolderRun, run_folder
        from .outlock import LOCK_NAME

        check_folder_output(image_path, mask_path, out)  # before the lock creates anything
        with output_lock(out / LOCK_NAME, f"output folder {out}"):  # one run at a time per folder
            run = FolderRun(out, args)
            plan = plan_folders(image_path, mask_path, out, args, owned=run.owned)
            return run_folder(plan, out, args, run)
    if args.workers or args.scheduler:
        raise CLIError("--workers and --scheduler are for folder mode and .zarr arrays; one pair runs here")
    request = request_from_args(args)  # the run, validated before anything is read
    plan_file(image_path, mask_path, out, args)
    image, mask = read_image(image_path), read_mask(mask_path)  # every input problem before the model loads
    check_writable(out, mask)
    check_labels(mask, args.force)  # a photo as the mask (or image and mask swapped): refused in milliseconds
    try:
        refiner = load_refiner(request.model, device=args.device)  # the CLI's one load per run
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise CLIError(str(exc).strip("'\"")) from None
    request = request.replace(model=refiner, device=None)
    if refiner.device.type == "cpu":
        from ..models.threads import cpu_threads, use_threads

        try:
            threads = cpu_threads("cli", requested=args.threads)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        with use_threads(threads):
            return _run_refine(out, request, image, mask, args.overwrite)
    return _run_refine(out, request, image, mask, args.overwrite)


def _run_refine(out: Path, request, image, mask, overwrite: bool) -> int:
    import numpy as np

    from ..engine.run import finish, start
    from ..io.atomic import sweep_temporaries

    try:
        with warnings_as_notes():  # an empty mask is written unchanged, with a note
            last = finish(_with_progress(start(image, mask, request)))
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc)) from None
    sweep_temporaries(out.parent, name=out.name)  # what killed runs writing this output left
    write_mask(out, last.mask, overwrite=overwrite)  # never over a file that appeared meanwhile
    changed = int(np.count_nonzero(np.asarray(last.mask) != np.asarray(mask)))
    print(f"mode={last.mode}: wrote {out} ({changed} pixels changed)")
    return 0


def _with_progress(records):
    """Pass ``records`` through, showing objects done, rate and time left on stderr.

    One bar per run, created at the first record (when the object count is known), so a
    single-file run reports as folder and zarr runs do.
    """
    from tqdm import tqdm

    bar = None
    try:
        for record in records:
            if bar is None:
                bar = tqdm(total=record.total_objects, desc="refining", unit="object", file=sys.stderr)
            bar.update(record.done_objects - bar.n)
            yield record
    finally:
        if bar is not None:
            bar.close()


def cmd_download(args) -> int:
    from ..models.registry import MODELS, cache_dir, fetch

    if args.name not in MODELS:
        raise CLIError(f"unknown model {args.name!r}; registered: {', '.join(MODELS)}")
    try:
        path = fetch(args.name, cache=args.cache, progressbar=True, trust_unknown_hash=args.trust_unknown_hash)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    except Exception as exc:  # network errors, hash mismatch from pooch
        raise CLIError(f"download of {args.name} failed: {exc}") from None
    from ..models.registry import sha256sum

    digest = MODELS[args.name].sha256 or sha256sum(path)
    print(f"{args.name}: {path} (cache folder {cache_dir(args.cache)}; sha256 {digest})")
    return 0


def cmd_models(args) -> int:
    from ..models.registry import MODELS, cache_dir, resolve

    print(f"cache folder: {cache_dir()}  (override with $NAPARI_SEGREFINER_CACHE)")
    for name, info in MODELS.items():
        try:
            where = str(resolve(name))
        except FileNotFoundError:
            where = "not downloaded"
        if info.shipped:
            digest = f"shipped with the package; SHA-256 {info.sha256[:16]}... (checked when first loaded)"
        elif info.sha256 is None:
            digest = "SHA-256 unknown (never published): unverified; download with --trust-unknown-hash"
        else:
            digest = f"SHA-256 {info.sha256[:16]}... (verified when first loaded)"
        print(f"{name:16s} {info.description}\n{'':16s} {where}\n{'':16s} {digest}")
    return 0


def cmd_train(args) -> int:
    from tqdm import tqdm

    from ..training.train import TrainConfig, train

    for d in list(args.data) + list(args.val or []):
        if not Path(d).is_dir():
            raise CLIError(f"data folder not found: {d}")
    cfg = TrainConfig(
        data=args.data,
        val=args.val or (),
        out=args.out,
        iters=args.iters,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup=args.warmup,
        clip=args.clip,
        device=args.device,
        init=args.init,
        resume=args.resume,
        arch=args.arch,
        num_workers=args.workers,
        seed=args.seed,
        bf16=not args.no_bf16,
        windows=tuple(args.windows),
        repeats=args.repeats,
        coarse_kind=args.coarse_kind,
        window_probs=args.window_probs,
        wrong_weight=args.wrong_weight,
        threads=args.threads,
        folder_weights=args.folder_weights,
        patch_fraction=args.patch_fraction,
    )
    bar = tqdm(total=cfg.iters, desc="training", unit="it", file=sys.stderr)

    def progress(step: int, rec: dict) -> None:
        bar.n = step
        bar.set_postfix(loss=rec.get("loss"), iou=rec.get("iou"), val=rec.get("iou_refined"))
        bar.refresh()

    try:
        path = train(cfg, progress=progress)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    finally:
        bar.close()
    print(f"saved {path}")
    return 0


def cmd_demo(args) -> int:
    from ..evaluation.demo import run_demo

    try:
        run_demo(args.output, model=model_source(args), device=args.device, seed=args.seed)
    except FileNotFoundError as exc:
        raise CLIError(str(exc).strip("'\"")) from None
    return 0


def cmd_benchmark(args) -> int:
    from ..evaluation.benchmark_cli import run_from_args

    return run_from_args(args)


def cmd_speed(args) -> int:
    from ..evaluation.speed import run_from_args

    return run_from_args(args)
