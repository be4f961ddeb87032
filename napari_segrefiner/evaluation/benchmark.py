"""Quality benchmark: refine synthetic coarse masks of real val objects and score them.

For every ``--data`` folder (layout of :mod:`napari_segrefiner.training.data`) the ``val`` split is
read as objects (:class:`~napari_segrefiner.training.data.PairFolder`: one per image for binary
sets, one per instance of area >= 64 px for sets with ``labels/``). Each object is
evaluated in a *region*: the whole image for binary sets; for instance sets a crop around
the object (:func:`~napari_segrefiner.evaluation.coarse.evaluation_region`), as the official
LR instance evaluation refines one object at a time. The other instances in that crop are
background of the ground truth. In the region, a coarse mask of every *coarse kind* is
synthesised from the ground truth with a seeded generator, the same in every run and for
every method (:mod:`napari_segrefiner.evaluation.coarse`).

Methods: ``identity`` (the coarse mask itself), ``segrefiner`` (the model, loaded once,
through :func:`~napari_segrefiner.api.refine` with its defaults, ``mode="auto"``, and ``seed=0``) and the
classical peers of :mod:`napari_segrefiner.evaluation.peers`. Peers run only on ``peers_kinds``
(default ``cascadepsp-0.8`` and ``lowres-28``).

Figures per (set, kind, method), all from :func:`~napari_segrefiner.evaluation.metrics.evaluate` on
the region: mean IoU, pooled IoU (sum of intersections / sum of unions), mean Boundary
IoU, mean mBA, mean boundary F, ``gain`` (mean IoU minus the coarse masks' mean IoU),
``worse`` (share of objects whose IoU is lower than their coarse mask's by more than
1e-6) and ``seconds_per_object`` (wall time of the method call only).

This module checks the input, loads the data and the model and runs the sets
(:func:`run_benchmark`, which returns a JSON-ready dict and prints nothing but the tqdm bar
on stderr; the per-object loop is :func:`~napari_segrefiner.evaluation.scoring.score_set`).
The ``napari-segrefiner benchmark`` subcommand is :mod:`.benchmark_cli`; it prints and writes
the results with :mod:`napari_segrefiner.evaluation.report`.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..training.data import PairFolder
from .coarse import (
    DEFAULT_PEERS_KINDS,
    KINDS,
    MIN_PAD,
    REL_PAD,
    BenchmarkError,
    check_kinds,
    checked_names,
    select_objects,
)
from .report import environment, git_commit
from .scoring import WORSE_TOL, score_set

__all__ = ["DEFAULT_OUT", "METHODS", "BenchmarkError", "run_benchmark"]

DEFAULT_OUT = "benchmarks/results/quality"
SPLIT = "val"

METHODS = ("identity", "segrefiner", "grabcut", "random_walker", "densecrf")
PEERS = ("grabcut", "random_walker", "densecrf")


# ------------------------------------------------------------------- methods, data, model


def _peer_functions(methods: Sequence[str]) -> dict[str, Callable]:
    """Name -> refine function of the peers among ``methods``; BenchmarkError if one is missing."""
    wanted = [m for m in methods if m in PEERS]
    if not wanted:
        return {}
    from .peers import available_peers  # lazily: only the benchmark needs the peers

    avail = available_peers()
    missing = [m for m in wanted if m not in avail]
    if missing:
        raise BenchmarkError(f"method {missing[0]!r} is not available here (densecrf needs 'pip install pydensecrf2')")
    return {m: avail[m] for m in wanted}


def _check_methods(methods: Iterable[str] | str | None) -> list[str]:
    """The methods asked for (identity, segrefiner and every available peer for None), checked."""
    if methods is None:
        from .peers import available_peers

        avail = available_peers()
        return [m for m in METHODS if m in ("identity", "segrefiner") or m in avail]
    return checked_names(methods, METHODS, "method")


def _set_names(folders: Sequence[PairFolder]) -> list[str]:
    """The sets' names: their folders' names, made distinct with ``-2``, ``-3``..."""
    names: list[str] = []
    for f in folders:
        base = f.root.resolve().name or "data"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def _open_folders(folders: Sequence[str | os.PathLike]) -> list[PairFolder]:
    """The data folders opened on their val split; BenchmarkError for a missing one."""
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    if not folders:
        raise BenchmarkError("no data folders given")
    out = []
    for f in folders:
        p = Path(f)
        if not p.is_dir():
            raise BenchmarkError(f"data folder not found: {p}")
        try:
            out.append(PairFolder(p, split=SPLIT))
        except (FileNotFoundError, ValueError) as exc:
            raise BenchmarkError(f"{p}: {exc}") from None
    return out


def _load_net(model: Any, device: Any):
    """(refiner, its device, description dict): the benchmark's one :func:`load_refiner` call."""
    from ..models.checkpoint import CheckpointError
    from ..models.config import config_to_dict
    from ..models.refiner import load_refiner

    try:
        refiner = load_refiner(model, device=device)
    except (FileNotFoundError, CheckpointError, ValueError, TypeError) as exc:
        raise BenchmarkError(str(exc).strip("'\"")) from None
    net = refiner.network
    info: dict[str, Any] = {
        "source": refiner.source,
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "pipeline": refiner.config.to_dict(),
        "meta": dict(refiner.meta),
    }
    config = getattr(net, "config", None)
    if config is not None:
        info["config"] = config_to_dict(config)
    return refiner, refiner.device, info


def _resolved_device(device: Any) -> Any:
    """``device`` as a torch.device (when no model is loaded); BenchmarkError if unusable."""
    from ..models.refiner import resolve_device

    try:
        return resolve_device(device)
    except ValueError as exc:
        raise BenchmarkError(str(exc)) from None


# ------------------------------------------------------------------------------ the run


def run_benchmark(
    folders: Sequence[str | os.PathLike],
    *,
    kinds: Iterable[str] | None = None,
    methods: Iterable[str] | None = None,
    max_items: int | None = None,
    model: Any = None,
    device: Any = "auto",
    seed: int = 0,
    progress: bool = True,
    peers_kinds: Iterable[str] | None = None,
    per_item: bool = False,
    hints: int = 0,
) -> dict[str, Any]:
    """Run the quality benchmark; returns the results as a JSON-ready dict.

    Parameters
    ----------
    folders : sequence of path-like
        Data folders (``images/``, ``masks/``, optional ``labels/``, ``val.txt``); their
        ``val`` split is used. The set name is the folder's name.
    kinds : iterable of str, optional
        Coarse kinds (keys of :data:`~napari_segrefiner.evaluation.coarse.KINDS`); default all.
    methods : iterable of str, optional
        Subset of :data:`METHODS`; default identity, segrefiner and every available peer.
    max_items : int, optional
        Use a seeded random subset of this many objects per set (the same for every method).
    model : None, str, path-like or torch.nn.Module
        The SegRefiner network (loaded once): None = the shipped default, a registered
        name, a checkpoint file, or a loaded module. Unused without ``"segrefiner"``.
    device : str or torch.device
        Device of the network (``"auto"``, ``"cpu"``, ``"cuda"``...).
    seed : int
        Base seed of object selection and coarse masks.
    progress : bool
        Show a tqdm progress bar on stderr.
    peers_kinds : iterable of str, optional
        Kinds on which the classical peers run; default
        :data:`~napari_segrefiner.evaluation.coarse.DEFAULT_PEERS_KINDS` (those of them in ``kinds``).
    per_item : bool
        Also return every object's figures under ``"items"`` (large for full runs).
    hints : int
        After SegRefiner's result, place this many simulated clicks one by one on the
        largest error region and refine again with them
        (:func:`~napari_segrefiner.evaluation.interactive.click_curve`); the mean IoU after
        each click goes under ``"segrefiner_review"`` of each kind. Whatever ``hints``,
        that entry holds the rank correlation of the review score with the IoU error.

    Returns
    -------
    dict
        ``{"meta": {...}, "sets": {name: {"available", "used", "objects", "kinds": {kind:
        {"coarse_iou", "empty_coarse_replaced", "coarse_digest", "methods": {method:
        {"n", "iou", "pooled_iou", "biou", "mba", "bf", "gain", "worse",
        "seconds_per_object", "failures"}}}}}}}``. Figures are fractions in [0, 1].

    Raises
    ------
    BenchmarkError
        For bad input (missing folder or split, unknown kind or method, unavailable peer,
        unusable model or device), before any object is processed.
    """
    kinds = check_kinds(kinds)
    if peers_kinds is None:
        p_kinds = [k for k in DEFAULT_PEERS_KINDS if k in kinds]
    else:
        peers_kinds = [peers_kinds] if isinstance(peers_kinds, str) else list(peers_kinds)
        p_kinds = [k for k in check_kinds(peers_kinds, "peers kind") if k in kinds] if peers_kinds else []
    methods = _check_methods(methods)
    if max_items is not None and (
        isinstance(max_items, bool) or not isinstance(max_items, (int, np.integer)) or max_items < 1
    ):
        raise BenchmarkError(f"max_items must be a positive integer, got {max_items!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise BenchmarkError(f"seed must be an integer, got {seed!r}")
    if isinstance(hints, bool) or not isinstance(hints, (int, np.integer)) or not 0 <= hints <= 50:
        raise BenchmarkError(f"hints must be an integer in [0, 50], got {hints!r}")
    if hints and "segrefiner" not in methods:
        raise BenchmarkError("hints needs the segrefiner method")
    peer_fns = _peer_functions(methods)
    pfolders = _open_folders(folders)
    names = _set_names(pfolders)

    net = None
    model_info = None
    if "segrefiner" in methods:
        net, dev, model_info = _load_net(model, device)
    else:
        dev = _resolved_device(device)

    started = time.perf_counter()
    meta: dict[str, Any] = {
        "benchmark": "quality",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "git": git_commit(),
        "environment": environment(dev),
        "model": model_info,
        "split": SPLIT,
        "seed": int(seed),
        "max_items": None if max_items is None else int(max_items),
        "kinds": {k: KINDS[k][0] for k in kinds},
        "methods": methods,
        "peers_kinds": p_kinds,
        "segrefiner_call": "refine(region_image, coarse, model=<loaded once>, seed=0) (mode auto)",
        "hints": int(hints),
        "review_score": "expected error per object pixel + changed share (scores.review_score); "
        "uncertainty_spearman = rank correlation with 1 - IoU",
        "peer_call": "f(region_image, coarse, seed=0)",
        "seeds": (
            "objects: SeedSequence([seed, key(set), key('select')]); coarse: SeedSequence([seed, key(set), "
            "object index in the val objects, key(kind)]); key = first 8 bytes of sha256(name), little-endian"
        ),
        "region": (
            f"binary sets: the whole image; instance sets: the object's box padded by max({MIN_PAD} px, "
            f"{REL_PAD:g} x its longer side), clamped"
        ),
        "worse_tolerance": WORSE_TOL,
    }

    plan = []
    for folder, name in zip(pfolders, names):
        plan.append((folder, name, select_objects(len(folder), max_items, name, seed)))
    total = sum(len(idx) for _, _, idx in plan) * len(kinds)

    from tqdm import tqdm

    bar = tqdm(total=total, desc="benchmark", unit="obj", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    sets: dict[str, Any] = {}
    items: list[dict] = []
    try:
        for folder, name, indices in plan:
            sets[name] = score_set(
                folder,
                name,
                indices,
                kinds,
                methods,
                p_kinds,
                peer_fns,
                net,
                seed,
                bar,
                items if per_item else None,
                clicks=int(hints),
            )
    finally:
        bar.close()
    meta["elapsed_s"] = time.perf_counter() - started
    result = {"meta": meta, "sets": sets}
    if per_item:
        result["items"] = items
    return result
