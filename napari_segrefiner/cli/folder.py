"""Folder mode of ``napari-segrefiner refine``: many image/mask pairs, resumable, on a cluster.

The output folder is locked for the run (:mod:`~napari_segrefiner.cli.outlock`): a second run
into it is refused. Each output is written to a temporary file
(:func:`~napari_segrefiner.io.atomic.write_temp`), recorded in the output folder's manifest
(:mod:`~napari_segrefiner.cli.manifest`) with the identity of that file, and only then moved
into place, never over a file that appeared meanwhile (unless ``--overwrite``). A rerun
with the same inputs and settings skips the outputs it finished and still refuses (without
``--overwrite``) every existing output whose file is not the one it recorded. Temporary
files a killed run left are removed first (:func:`~napari_segrefiner.io.atomic.sweep_temporaries`).

Without ``--workers``/``--scheduler`` the pairs are refined one after the other in this
process. ``--workers N`` starts a local cluster of N worker processes, ``--scheduler ADDR``
uses a running ``dask.distributed`` scheduler (whose workers must see the same files);
each worker loads the model once and refines whole pairs (:func:`refine_file`).
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from .manifest import MANIFEST, Manifest, model_id
from .outputs import CLIError, check_writable, model_source, read_image, read_mask, request_from_args

__all__ = ["FolderRun", "refine_file", "run_folder"]


class FolderRun:
    """The manifest of a folder run, with its settings computed when first needed."""

    def __init__(self, out: Path, args):
        self.out = Path(out)
        self.args = args
        self._manifest: Manifest | None = None

    def settings(self) -> dict[str, Any]:
        from .. import __version__
        from ..models.refiner import resolve_device

        try:
            device = resolve_device(self.args.device).type
        except (ValueError, TypeError):
            device = str(self.args.device)
        return {
            "model": model_id(model_source(self.args)),
            "device": device,
            "mode": self.args.mode,
            "steps": self.args.steps,
            "seed": self.args.seed,
            "version": __version__,
        }

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = Manifest(self.out / MANIFEST, self.settings())
        return self._manifest

    def status(self, image: Path, mask: Path, out: Path) -> str | None:
        """``"done"`` if ``out`` is the file an earlier run with these inputs and settings recorded."""
        return self.manifest.status(out.name, out, {"image": image, "mask": mask})

    def owned(self, image: Path, mask: Path, out: Path) -> bool:
        """For :func:`~.cli_plan.plan_folders`: an existing output this run made (and skips)."""
        return self.status(image, mask, out) is not None


def refine_file(spec, image_p: Path, mask_p: Path, out_p: Path, request) -> dict:
    """Refine one pair into a temporary file beside its output (in this process or a dask worker).

    ``request`` is the run's :class:`~napari_segrefiner.engine.request.RefineRequest` (its
    model is ``spec``'s). Returns ``{"temp": path, "output": file_id, "notes": [...]}`` (the
    caller records the file and moves it into place; ``notes``: warnings such as an empty
    mask, whose result is the mask unchanged) or ``{"error": message}`` for a pair that
    cannot be refined (unreadable file, a mask the output format cannot hold...).
    """
    import warnings

    from ..engine.run import finish, start
    from ..io.atomic import write_temp
    from ..io.files import mask_writer
    from ..lazy.cluster import refiner_for
    from .manifest import file_id

    try:
        image, mask = read_image(Path(image_p)), read_mask(Path(mask_p))
        check_writable(Path(out_p), mask)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            last = finish(start(image, mask, request.replace(model=refiner_for(spec), device=None)))
        tmp = write_temp(Path(out_p), mask_writer(Path(out_p), last.mask))
    except (CLIError, ValueError, TypeError) as exc:
        return {"error": str(exc)}
    try:
        notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        return {"temp": str(tmp), "output": file_id(tmp), "notes": notes}
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _load(args, device: str):
    from ..models.refiner import load_refiner

    try:
        return load_refiner(model_source(args), device=device)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise CLIError(str(exc).strip("'\"")) from None


def run_folder(plan, out: Path, args, run: FolderRun) -> int:
    """Refine every planned pair not finished before; returns the exit code."""
    from tqdm import tqdm

    from ..io.atomic import place, sweep_temporaries
    from ..lazy.cluster import ModelSpec, get_client, local_cluster, worker_threads
    from ..models.threads import cpu_threads, use_threads

    todo, done = [], 0
    for item in plan:
        if run.status(*item) == "done":
            done += 1
        else:
            todo.append(item)
    swept = sweep_temporaries(out)  # what killed runs left (this run holds the folder's lock)
    if done or swept:
        print(
            f"resuming: {done} of {len(plan)} outputs already done"
            + (f", {swept} stale temporary file(s) removed" if swept else ""),
            file=sys.stderr,
        )
    request = request_from_args(args)
    try:
        threads = cpu_threads("cli", requested=args.threads)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    from ..models.allocator import return_large_blocks

    distributed = bool(args.workers or args.scheduler)
    refiner = _load(args, "cpu" if distributed else args.device)  # checks the model before any work
    return_large_blocks()  # a long run: freed network batches go back to the system
    manifest = run.manifest
    failed = 0
    bar = tqdm(total=len(plan), initial=done, desc="refining", unit="image", file=sys.stderr)

    def finished(item, result: dict) -> None:
        nonlocal failed
        img_p, mask_p, out_p = item
        if "error" in result:
            failed += 1
            print(f"skipped {img_p.name}: {result['error']}", file=sys.stderr)
        else:  # recorded first: whenever this run stops, a file it put in place is in the manifest
            for note in result.get("notes", ()):
                print(f"note on {img_p.name}: {note}", file=sys.stderr)
            manifest.record(out_p.name, {"image": img_p, "mask": mask_p}, result["output"])
            try:
                place(result["temp"], out_p, overwrite=args.overwrite)
            except FileExistsError as exc:
                manifest.forget(out_p.name)
                failed += 1
                print(f"skipped {img_p.name}: {exc}; pass --overwrite to replace it", file=sys.stderr)
        bar.update(1)

    cluster = client = None
    try:
        if not distributed:
            spec = ModelSpec(refiner=refiner)
            with use_threads(threads) if refiner.device.type == "cpu" else nullcontext():
                for item in todo:
                    finished(item, refine_file(spec, *item, request))
        else:
            from distributed import as_completed

            if args.workers:
                cluster, client = local_cluster(args.workers)
            else:
                client = get_client(args.scheduler)
            workers = max(1, len(client.scheduler_info().get("workers", {})) or 1)
            client.run(return_large_blocks)
            spec = ModelSpec(
                source=model_source(args), device=args.device, threads=worker_threads(threads, args.workers or workers)
            )
            futures = {client.submit(refine_file, spec, *item, request, pure=False): item for item in todo}
            try:
                for fut in as_completed(list(futures), loop=client.loop):
                    finished(futures[fut], fut.result())
            finally:
                client.cancel(list(futures))
    finally:
        bar.close()
        manifest.save()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    print(f"refined {len(todo) - failed}/{len(plan)} images into {out}" + (f" ({done} already done)" if done else ""))
    return 1 if todo and failed == len(todo) else 0
