"""Zarr mode of ``napari-segrefiner refine``: one big array, chunk by chunk, resumable.

``refine big.zarr labels.zarr -o out.zarr`` refines the labels with
:func:`~napari_segrefiner.lazy.refine.refine_lazy` (instance mode) and writes every output chunk
into a hidden sibling ``.out.zarr.partial`` as soon as it is composed; the finished chunks
are noted in that folder's ``segrefiner-manifest.json``. When every chunk is written the
folder is renamed to ``out.zarr``, so ``out.zarr`` is never partial. A stopped run, started
again with the same inputs and settings, writes only the chunks that are missing (a chunk's
objects are refined again only if that chunk needs them); a finished one is not redone.

The output is locked for the run (``.segrefiner-lock-<name>`` beside it,
:mod:`~napari_segrefiner.cli.outlock`): a second run into it is refused. An existing output is
replaced only with ``--overwrite``, also when it appeared while this run was refining (the
finished result then stays in the hidden folder, and a rerun with ``--overwrite`` puts it
in place without refining again). What a killed run left (the lock, temporary files, an
old output being replaced) is cleaned by the next run.

Zarr chunk files are written atomically by zarr itself; ``--workers N`` / ``--scheduler
ADDR`` compute on a dask cluster whose workers see the same files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from .manifest import MANIFEST, model_id
from .outlock import LOCK_NAME
from .outputs import CLIError, model_source, output_lock, request_from_args, warnings_as_notes, within

__all__ = ["is_zarr", "run_zarr"]

_META = ("zarr.json", ".zarray", ".zgroup")


def is_zarr(path: Path) -> bool:
    """A path that names a zarr array (``*.zarr``, a folder inside one, or a folder with zarr metadata)."""
    if any(part.endswith(".zarr") for part in Path(path).parts):
        return True
    return Path(path).is_dir() and any((Path(path) / m).is_file() for m in _META)


def _open(path: Path, what: str):
    import zarr

    if not path.exists():
        raise CLIError(f"{what} not found: {path}")
    try:
        arr = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises many kinds for a folder that is not a store
        raise CLIError(f"cannot read {what} {path} as zarr: {exc}") from None
    if not hasattr(arr, "shape"):
        names = sorted(getattr(arr, "array_keys", lambda: [])())
        raise CLIError(
            f"{what} {path} is a zarr group; name the array in it (e.g. {path / (names[0] if names else '0')})"
        )
    return arr


def _fingerprint(path: Path) -> str:
    """Sizes and modification times of every file of a store (cheap; no data is read)."""
    digest = hashlib.sha256()
    root = Path(path)
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            st = p.stat()
            digest.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class _Progress:
    """Done chunks of a zarr run, saved atomically at most every ``every`` seconds."""

    def __init__(self, folder: Path, settings: dict, *, every: float = 2.0):
        self.path = folder / MANIFEST
        self.settings = json.loads(json.dumps(settings))
        self.done: set[str] = set()
        self.complete = False
        self.every = every
        self._saved = 0.0

    @classmethod
    def read(cls, folder: Path) -> dict | None:
        try:
            data = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("format") == 1 else None

    def add(self, key: str) -> None:
        self.done.add(key)
        if time.monotonic() - self._saved >= self.every:
            self.save()

    def save(self) -> None:
        from ..io.atomic import atomic_write

        text = json.dumps(
            {"format": 1, "settings": self.settings, "done": sorted(self.done), "complete": self.complete}
        )
        atomic_write(self.path, lambda tmp: tmp.write_text(text))
        self._saved = time.monotonic()


def _key(idx: tuple) -> str:
    return ".".join(str(i) for i in idx)


def run_zarr(image_path: Path, mask_path: Path, out: Path, args) -> int:
    """Refine one zarr array pair into ``out`` (see the module docstring); returns the exit code."""
    for path, what in ((image_path, "IMAGE"), (mask_path, "MASK")):
        if not is_zarr(path):
            raise CLIError(f"zarr mode: {what} must be a .zarr array too, got {path}")
    if not out.name.endswith(".zarr"):
        raise CLIError(f"zarr mode: the output must be a .zarr folder, got {out}")
    if args.ext is not None:
        raise CLIError("--ext is for folder mode")
    try:
        request_from_args(args).check_lazy()
    except ValueError as exc:
        raise CLIError(f"zarr mode: {exc}") from None
    for path, what in ((image_path, "IMAGE"), (mask_path, "MASK")):
        if within(out, path) or within(path, out):
            raise CLIError(f"output {out} is (inside) the {what} {path}; choose an output outside the inputs")
    image, mask = _open(image_path, "image"), _open(mask_path, "mask")
    if tuple(image.shape[: len(mask.shape)]) != tuple(mask.shape) or len(image.shape) not in (
        len(mask.shape),
        len(mask.shape) + 1,
    ):
        raise CLIError(f"image shape {tuple(image.shape)} does not match the mask's {tuple(mask.shape)}")
    if len(mask.shape) < 2:
        raise CLIError(f"the mask must have at least 2 dimensions, got shape {tuple(mask.shape)}")
    if args.chunks is not None and args.chunks < 16:
        raise CLIError(f"--chunks must be at least 16 px, got {args.chunks}")
    from .. import __version__

    settings = {
        "model": model_id(model_source(args)),
        "device": str(args.device),
        "seed": args.seed,
        "steps": args.steps,
        "chunks": args.chunks,
        "version": __version__,
        "image": {"path": str(image_path.absolute()), "files": _fingerprint(image_path)},
        "mask": {"path": str(mask_path.absolute()), "files": _fingerprint(mask_path)},
    }
    settings = json.loads(json.dumps(settings))
    with output_lock(out.parent / f"{LOCK_NAME}-{out.name}", f"output {out}"):  # one run at a time per output
        return _locked_run(image, mask, out, settings, args)


def _locked_run(image, mask, out: Path, settings: dict, args) -> int:
    from ..io.atomic import sweep_temporaries

    sweep_temporaries(out.parent, name=out.name)  # an old output a killed --overwrite run was replacing
    if out.exists():
        old = _Progress.read(out)
        if old is not None and old.get("complete") and old.get("settings") == settings:
            print(f"{out} is already done with these inputs and settings; nothing to do")
            return 0
        if not args.overwrite:
            raise CLIError(f"output {out} exists; pass --overwrite to replace")
    partial = out.parent / f".{out.name}.partial"
    state = _Progress(partial, settings)
    previous = _Progress.read(partial) if partial.exists() else None
    if partial.exists() and previous is None:
        raise CLIError(f"{partial} exists and is not an unfinished run of napari-segrefiner; remove it")
    if previous is not None and previous.get("settings") == settings:
        sweep_temporaries(partial)  # the manifest's temporary file, if a kill came while it was saved
        state.done = set(previous.get("done", []))
        print(f"resuming: {len(state.done)} chunk(s) of {out.name} already written", file=sys.stderr)
    elif previous is not None:
        shutil.rmtree(partial)  # our own unfinished run with other inputs or settings
    return _refine_into(image, mask, out, partial, state, args)


def _refine_into(image, mask, out: Path, partial: Path, state: _Progress, args) -> int:
    import zarr
    from tqdm import tqdm

    from ..io.atomic import temp_name
    from ..lazy.cluster import get_client, local_cluster, worker_threads
    from ..lazy.refine import start_lazy
    from ..models.refiner import load_refiner
    from ..models.threads import cpu_threads, use_threads

    try:
        threads = cpu_threads("cli", requested=args.threads)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    distributed = bool(args.workers or args.scheduler)
    try:
        refiner = load_refiner(model_source(args), device="cpu" if distributed else args.device)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise CLIError(str(exc).strip("'\"")) from None
    from ..models.allocator import return_large_blocks

    return_large_blocks()  # a long run: freed network batches go back to the system
    cluster = client = None
    bar = tqdm(desc="refining", unit="object", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        if args.workers:
            cluster, client = local_cluster(args.workers)
        elif args.scheduler:
            client = get_client(args.scheduler)
        model: Any = refiner
        if client is not None:
            per = worker_threads(threads, args.workers or max(1, len(client.scheduler_info().get("workers", {}))))
            client.run(_set_threads, per)
            client.run(return_large_blocks)
            model = model_source(args)
        try:
            with use_threads(threads) if client is None and refiner.device.type == "cpu" else nullcontext():
                request = request_from_args(args).replace(model=model, device=None if client is None else args.device)
                with warnings_as_notes():  # an empty mask is written unchanged, with a note
                    result = start_lazy(image, mask, request, chunks=args.chunks, client=client, progress=progress)
                chunk_shape = tuple(c[0] for c in result.chunks)
                if not (partial / "zarr.json").is_file():
                    zarr.create_array(
                        store=str(partial),
                        shape=result.shape,
                        dtype=result.dtype,
                        chunks=chunk_shape,
                        fill_value=0,
                        overwrite=True,
                    )
                state.save()
                _write_missing(result, partial, state, client)
        except (ValueError, TypeError) as exc:
            raise CLIError(str(exc)) from None
    finally:
        bar.close()
        if partial.exists():
            state.save()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    state.complete = True
    state.save()
    if out.exists() or out.is_symlink():  # checked again: it may have appeared while this run was refining
        if not args.overwrite:
            raise CLIError(
                f"output {out} appeared while this run was refining; it was not replaced (the finished "
                f"result is in {partial}: rerun with --overwrite to put it in place)"
            )
        trash = temp_name(out)  # the old output goes only once the new one is complete
        os.replace(out, trash)
        os.replace(partial, out)
        if trash.is_dir() and not trash.is_symlink():
            shutil.rmtree(trash)
        else:
            trash.unlink()
    else:
        os.replace(partial, out)
    print(f"wrote {out} (shape {tuple(result.shape)}, {len(state.done)} chunks)")
    return 0


def _write_missing(result, partial: Path, state: _Progress, client) -> None:
    import dask
    from dask import delayed
    from dask.callbacks import Callback

    from ..lazy.store import block_regions, write_block

    writes, names = [], {}
    for idx, region, block in block_regions(result):
        key = _key(idx)
        if key in state.done:
            continue
        name = f"segrefiner-write-{key}-{id(state)}"
        writes.append(delayed(write_block, pure=True)(block, str(partial), region, dask_key_name=name))
        names[name] = key
    if not writes:
        return
    if client is None:

        class Done(Callback):
            def _posttask(self, key, result, dsk, state_, worker_id):
                if key in names:
                    state.add(names[key])

        with Done(), dask.config.set(scheduler="threads", num_workers=1):
            dask.compute(*writes)
        return
    from distributed import as_completed

    futures = client.compute(writes)
    by_future = {f: names[w.key] for f, w in zip(futures, writes)}
    try:
        for fut in as_completed(futures, loop=client.loop):
            fut.result()
            state.add(by_future[fut])
    finally:
        client.cancel(futures)


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(int(n))
