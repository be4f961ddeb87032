"""Quality benchmark: refine synthetic coarse masks of real val objects and score them.

For every ``--data`` folder (layout of :mod:`napari_segrefiner.training.data`) the ``val`` split is
read as objects (:class:`~napari_segrefiner.training.data.PairFolder`: one per image for binary
sets, one per instance of area >= 64 px for sets with ``labels/``). Each object is
evaluated in a *region*: the whole image for binary sets; for instance sets a crop around
the object (its box padded by ``max(32 px, 1 x its longer side)``, clamped to the image),
as the official LR instance evaluation refines one object at a time. The other instances
in that crop are background of the ground truth.

In the region, a coarse mask of every *coarse kind* (:data:`KINDS`) is synthesised from
the ground truth with a seed derived from (seed, set name, object index, kind) through
:class:`numpy.random.SeedSequence`, so the same objects get the same coarse masks in every
run and for every method. A coarse mask that comes out empty is replaced by the ground
truth dilated by 1 px (counted in ``empty_coarse_replaced``).

Methods: ``identity`` (the coarse mask itself), ``segrefiner`` (the model, loaded once,
through :func:`~napari_segrefiner.api.refine` with ``mode="instance", seed=0``) and the
classical peers of :mod:`napari_segrefiner.evaluation.peers`. Peers run only on ``peers_kinds``
(default ``cascadepsp-0.8`` and ``lowres-28``).

Figures per (set, kind, method), all from :func:`~napari_segrefiner.evaluation.metrics.evaluate` on
the region: mean IoU, pooled IoU (sum of intersections / sum of unions), mean Boundary
IoU, mean mBA, mean boundary F, ``gain`` (mean IoU minus the coarse masks' mean IoU),
``worse`` (share of objects whose IoU is lower than their coarse mask's by more than
1e-6) and ``seconds_per_object`` (wall time of the method call only).

:func:`run_benchmark` does the work and returns a JSON-ready dict (no printing except the
tqdm bar on stderr); :func:`format_table`, :func:`format_markdown` and
:func:`write_results` present it; :func:`add_arguments` / :func:`run_from_args` are the
``napari-segrefiner benchmark`` subcommand.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..training.data import PairFolder
from .metrics import evaluate
from ..training.synthesis import dilate_erode, lowres_mask, mask_bbox, modify_boundary

__all__ = [
    "DEFAULT_OUT",
    "DEFAULT_PEERS_KINDS",
    "KINDS",
    "METHODS",
    "BenchmarkError",
    "add_arguments",
    "coarse_seed",
    "evaluation_region",
    "format_markdown",
    "format_table",
    "make_kind",
    "run_benchmark",
    "run_from_args",
    "select_objects",
    "write_results",
]

DEFAULT_OUT = "benchmarks/results/quality"
SPLIT = "val"
#: Instance crops: the object's box padded by max(MIN_PAD, REL_PAD x its longer side).
MIN_PAD = 32
REL_PAD = 1.0
#: A method "made an object worse" when its IoU is below the coarse IoU by more than this.
WORSE_TOL = 1e-6


class BenchmarkError(ValueError):
    """Bad benchmark input (folder, kind, method, model, device...), reported as one line."""


# ----------------------------------------------------------------------------- coarse kinds


def _lowres_rel(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Box sampled down to 1/8 of its size, but the shorter side to no fewer than 8 px."""
    box = mask_bbox(gt)
    if box is None:
        return np.zeros(gt.shape, bool)
    shorter = min(box[1] - box[0], box[3] - box[2])
    factor = max(1.0, min(8.0, shorter / 8.0))
    return lowres_mask(gt, factor=factor)


def _cascade(target: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    return lambda gt, rng: modify_boundary(gt, rng=rng, iou_target=target)


#: name -> (description, f(gt_bool, rng) -> coarse bool mask)
KINDS: dict[str, tuple[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]] = {
    "cascadepsp-0.6": ("modify_boundary(iou_target=0.6)", _cascade(0.6)),
    "cascadepsp-0.8": ("modify_boundary(iou_target=0.8)", _cascade(0.8)),
    "cascadepsp-0.9": ("modify_boundary(iou_target=0.9)", _cascade(0.9)),
    "lowres-28": (
        "lowres_mask(size=28): object box to 28x28 and back (a mask head's output)",
        lambda gt, rng: lowres_mask(gt, size=28),
    ),
    "lowres-rel": ("lowres_mask(factor=min(8, shorter box side / 8), >= 1): box to 1/8, >= 8 px", _lowres_rel),
    "dilate-3": ("dilate_erode(k=3): boundary 3 px out", lambda gt, rng: dilate_erode(gt, k=3)),
    "erode-3": ("dilate_erode(k=-3): boundary 3 px in", lambda gt, rng: dilate_erode(gt, k=-3)),
}

METHODS = ("identity", "segrefiner", "grabcut", "random_walker", "densecrf")
PEERS = ("grabcut", "random_walker", "densecrf")
DEFAULT_PEERS_KINDS = ("cascadepsp-0.8", "lowres-28")


def _key(text: str) -> int:
    """A stable 64-bit integer for a string (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def coarse_seed(set_name: str, index: int, kind: str, seed: int = 0) -> np.random.SeedSequence:
    """The seed of the coarse mask of object ``index`` (in the folder's val objects) of a set."""
    return np.random.SeedSequence([int(seed), _key(set_name), int(index), _key(kind)])


def make_kind(kind: str, gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Coarse mask of ``kind`` for ``gt``; returns (mask, replaced) where ``replaced`` says that
    the synthesis gave an empty mask and the GT dilated by 1 px was used instead."""
    if kind not in KINDS:
        raise BenchmarkError(f"unknown coarse kind {kind!r}; known: {', '.join(KINDS)}")
    coarse = np.asarray(KINDS[kind][1](gt, rng), dtype=bool)
    if not coarse.any():
        return dilate_erode(gt, k=1), True
    return coarse, False


# --------------------------------------------------------------------------- objects, crops


def select_objects(n_available: int, max_items: int | None, set_name: str, seed: int = 0) -> list[int]:
    """Sorted indices of the objects to use: all, or a seeded random subset of ``max_items``."""
    if max_items is None or max_items >= n_available:
        return list(range(n_available))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _key(set_name), _key("select")]))
    return sorted(int(i) for i in rng.choice(n_available, size=int(max_items), replace=False))


def evaluation_region(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of an instance's evaluation crop: its box padded by
    ``max(MIN_PAD, REL_PAD x longer box side)`` on every side, clamped to the image."""
    y0, y1, x0, x1 = box
    pad = max(MIN_PAD, int(math.ceil(REL_PAD * max(y1 - y0, x1 - x0))))
    return max(0, y0 - pad), min(shape[0], y1 + pad), max(0, x0 - pad), min(shape[1], x1 + pad)


# ------------------------------------------------------------------------------ validation


def _unique(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _check_kinds(kinds: Iterable[str] | None, what: str = "kind") -> list[str]:
    if kinds is None:
        return list(KINDS)
    if isinstance(kinds, str):
        kinds = [kinds]
    kinds = _unique(kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise BenchmarkError(f"unknown coarse {what} {bad[0]!r}; known: {', '.join(KINDS)}")
    if not kinds:
        raise BenchmarkError(f"no coarse {what}s given")
    return kinds


def _peer_functions(methods: Sequence[str]) -> dict[str, Callable]:
    wanted = [m for m in methods if m in PEERS]
    if not wanted:
        return {}
    from .peers import available_peers  # lazily: only the benchmark needs the peers

    avail = available_peers()
    missing = [m for m in wanted if m not in avail]
    if missing:
        raise BenchmarkError(
            f"method {missing[0]!r} is not available here (densecrf needs 'pip install pydensecrf2')"
        )
    return {m: avail[m] for m in wanted}


def _check_methods(methods: Iterable[str] | None) -> list[str]:
    if methods is None:
        from .peers import available_peers

        avail = available_peers()
        return [m for m in METHODS if m in ("identity", "segrefiner") or m in avail]
    if isinstance(methods, str):
        methods = [methods]
    methods = _unique(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise BenchmarkError(f"unknown method {bad[0]!r}; known: {', '.join(METHODS)}")
    if not methods:
        raise BenchmarkError("no methods given")
    return methods


def _set_names(folders: Sequence[PairFolder]) -> list[str]:
    names: list[str] = []
    for f in folders:
        base = f.root.resolve().name or "data"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def _open_folders(folders: Sequence[str | os.PathLike]) -> list[PairFolder]:
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
    from ..checkpoint import CheckpointError
    from ..config import config_to_dict
    from ..refiner import load_refiner

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
    from ..refiner import resolve_device

    try:
        return resolve_device(device)
    except ValueError as exc:
        raise BenchmarkError(str(exc)) from None


# ------------------------------------------------------------------------------ metadata


def _git_commit() -> dict[str, Any] | None:
    """HEAD of the repository holding this package, if it is a git checkout (read-only git)."""
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(status.strip())}


def _environment(device) -> dict[str, Any]:
    import cv2
    import torch

    from .. import __version__

    env = {
        "napari_segrefiner": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "torch_threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.platform(),
        "device": str(device),
    }
    if getattr(device, "type", None) == "cuda":
        env["cuda_device"] = torch.cuda.get_device_name(device)
    return env


# ------------------------------------------------------------------------------ the run


class _Acc:
    """Per-object figures of one (set, kind, method)."""

    __slots__ = ("iou", "biou", "mba", "bf", "inter", "union", "seconds", "worse", "delta", "failures")

    def __init__(self):
        self.iou, self.biou, self.mba, self.bf = [], [], [], []
        self.inter, self.union, self.seconds, self.delta = [], [], [], []
        self.worse = 0
        self.failures: list[str] = []

    def add(self, m: dict, seconds: float, coarse_iou: float) -> None:
        self.iou.append(m["iou"])
        self.biou.append(m["biou"])
        self.mba.append(m["mba"])
        self.bf.append(m["bf"])
        self.inter.append(m["intersection"])
        self.union.append(m["union"])
        self.seconds.append(seconds)
        self.delta.append(m["iou"] - coarse_iou)
        if m["iou"] < coarse_iou - WORSE_TOL:
            self.worse += 1

    def summary(self) -> dict[str, Any]:
        n = len(self.iou)
        union = sum(self.union)
        out = {
            "n": n,
            "iou": float(np.mean(self.iou)),
            "pooled_iou": 1.0 if union == 0 else sum(self.inter) / union,
            "biou": float(np.mean(self.biou)),
            "mba": float(np.mean(self.mba)),
            "bf": float(np.mean(self.bf)),
            "gain": float(np.mean(self.delta)),
            "worse": self.worse / n,
            "seconds_per_object": float(np.mean(self.seconds)),
            "failures": len(self.failures),
        }
        if self.failures:
            out["failure_examples"] = self.failures[:5]
        return out


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
) -> dict[str, Any]:
    """Run the quality benchmark; returns the results as a JSON-ready dict.

    Parameters
    ----------
    folders : sequence of path-like
        Data folders (``images/``, ``masks/``, optional ``labels/``, ``val.txt``); their
        ``val`` split is used. The set name is the folder's name.
    kinds : iterable of str, optional
        Coarse kinds (keys of :data:`KINDS`); default all.
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
        Kinds on which the classical peers run; default :data:`DEFAULT_PEERS_KINDS` (those
        of them in ``kinds``).
    per_item : bool
        Also return every object's figures under ``"items"`` (large for full runs).

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
    kinds = _check_kinds(kinds)
    if peers_kinds is None:
        p_kinds = [k for k in DEFAULT_PEERS_KINDS if k in kinds]
    else:
        peers_kinds = [peers_kinds] if isinstance(peers_kinds, str) else list(peers_kinds)
        p_kinds = [k for k in _check_kinds(peers_kinds, "peers kind") if k in kinds] if peers_kinds else []
    methods = _check_methods(methods)
    if max_items is not None and (
        isinstance(max_items, bool) or not isinstance(max_items, (int, np.integer)) or max_items < 1
    ):
        raise BenchmarkError(f"max_items must be a positive integer, got {max_items!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise BenchmarkError(f"seed must be an integer, got {seed!r}")
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
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": _git_commit(),
        "environment": _environment(dev),
        "model": model_info,
        "split": SPLIT,
        "seed": int(seed),
        "max_items": None if max_items is None else int(max_items),
        "kinds": {k: KINDS[k][0] for k in kinds},
        "methods": methods,
        "peers_kinds": p_kinds,
        "segrefiner_call": "refine(region_image, coarse, model=<loaded once>, mode='instance', seed=0)",
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
            sets[name] = _run_set(
                folder, name, indices, kinds, methods, p_kinds, peer_fns, net, dev, seed, bar,
                items if per_item else None,
            )
    finally:
        bar.close()
    meta["elapsed_s"] = time.perf_counter() - started
    result = {"meta": meta, "sets": sets}
    if per_item:
        result["items"] = items
    return result


def _run_set(folder, name, indices, kinds, methods, p_kinds, peer_fns, net, dev, seed, bar, items) -> dict:
    instance = bool(folder.has_labels)
    accs = {k: {m: _Acc() for m in methods if m not in PEERS or k in p_kinds} for k in kinds}
    coarse_acc = {k: _Acc() for k in kinds}
    replaced = dict.fromkeys(kinds, 0)
    digests = {k: hashlib.sha256() for k in kinds}
    objects, used = [], []
    skipped = 0
    for j in indices:
        ref = folder[j]
        image, fine = folder.load(ref)
        box = ref.bbox if ref.bbox is not None else mask_bbox(fine)
        if box is None:  # an image with an empty mask: nothing to refine or score
            skipped += 1
            bar.update(len(kinds))
            continue
        if instance:
            y0, y1, x0, x1 = evaluation_region(box, fine.shape)
            img = np.ascontiguousarray(image[y0:y1, x0:x1])
            gt = np.ascontiguousarray(fine[y0:y1, x0:x1])
            region = [y0, y1, x0, x1]
        else:
            img, gt = image, np.asarray(fine, dtype=bool)
            region = [0, fine.shape[0], 0, fine.shape[1]]
        objects.append([ref.image_id, ref.label])
        used.append(int(j))
        for kind in kinds:
            rng = np.random.default_rng(coarse_seed(name, j, kind, seed))
            coarse, was_replaced = make_kind(kind, gt, rng)
            replaced[kind] += int(was_replaced)
            digests[kind].update(np.packbits(coarse).tobytes())
            c_metrics = evaluate(coarse, gt)
            coarse_acc[kind].add(c_metrics, 0.0, c_metrics["iou"])
            record = None
            if items is not None:
                record = {"set": name, "index": int(j), "image_id": ref.image_id, "label": ref.label,
                          "region": region, "kind": kind, "replaced": was_replaced, "methods": {}}
            for method, acc in accs[kind].items():
                t0 = time.perf_counter()
                failure = None
                try:
                    if method == "identity":
                        pred = coarse.copy()
                    elif method == "segrefiner":
                        from ..api import refine

                        pred = refine(img, coarse, model=net, mode="instance", seed=0)
                    else:
                        pred = peer_fns[method](img, coarse, seed=0)
                except Exception as exc:  # keep the run going; counted and reported
                    failure = f"{ref.image_id}/{ref.label}/{kind}: {type(exc).__name__}: {exc}"
                    pred = coarse
                seconds = time.perf_counter() - t0
                m = c_metrics if method == "identity" else evaluate(np.asarray(pred, dtype=bool), gt)
                acc.add(m, seconds, c_metrics["iou"])
                if failure:
                    acc.failures.append(failure)
                if record is not None:
                    record["methods"][method] = {k: m[k] for k in ("iou", "biou", "mba", "bf")} | {"seconds": seconds}
            if record is not None:
                record["coarse_iou"] = c_metrics["iou"]
                items.append(record)
            bar.update(1)
    out_kinds = {}
    for kind in kinds:
        entry: dict[str, Any] = {
            "description": KINDS[kind][0],
            "empty_coarse_replaced": replaced[kind],
            "coarse_digest": digests[kind].hexdigest()[:16],
        }
        if coarse_acc[kind].iou:
            c = coarse_acc[kind].summary()
            entry["coarse_iou"] = c["iou"]
            entry["coarse_pooled_iou"] = c["pooled_iou"]
            entry["methods"] = {m: acc.summary() for m, acc in accs[kind].items()}
        else:
            entry["coarse_iou"] = None
            entry["methods"] = {}
        out_kinds[kind] = entry
    return {
        "root": str(folder.root),
        "split": folder.split,
        "instance": instance,
        "region": "object crop" if instance else "whole image",
        "available": len(folder),
        "used": len(objects),
        "skipped_empty_gt": skipped,
        "indices": used,
        "objects": objects,
        "kinds": out_kinds,
    }


# ---------------------------------------------------------------------------- presentation

_COLUMNS = (  # (header, key, format)
    ("IoU", "iou", "pct"),
    ("pooled IoU", "pooled_iou", "pct"),
    ("BIoU", "biou", "pct"),
    ("mBA", "mba", "pct"),
    ("BF", "bf", "pct"),
    ("gain", "gain", "signed"),
    ("worse", "worse", "share"),
    ("s/obj", "seconds_per_object", "sec"),
)


def _fmt(value: Any, how: str) -> str:
    if value is None:
        return "-"
    if how == "pct":
        return f"{100 * value:.1f}"
    if how == "signed":
        return f"{100 * value:+.1f}"
    if how == "share":
        return f"{100 * value:.0f}%"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.001:
        return f"{value:.3f}"
    return "<0.001"


def _headline(results: dict) -> str:
    meta = results["meta"]
    env = meta["environment"]
    git = meta.get("git") or {}
    commit = git.get("commit", "")[:10] + (" (dirty)" if git.get("dirty") else "") if git else "unknown"
    model = meta.get("model")
    model_txt = f"{model['source']} ({model['parameters'] / 1e6:.2f} M params)" if model else "not run"
    return (
        f"{meta['date']}, commit {commit}, model {model_txt}, device {env['device']} "
        f"({env['torch_threads']} torch threads), torch {env['torch']}, seed {meta['seed']}"
    )


def _block_title(name: str, s: dict, kind: str, k: dict) -> str:
    coarse = "-" if k["coarse_iou"] is None else f"{100 * k['coarse_iou']:.1f}"
    extra = f", {k['empty_coarse_replaced']} empty coarse replaced" if k["empty_coarse_replaced"] else ""
    return f"{name} / {kind}: {s['used']} of {s['available']} objects ({s['region']}), coarse IoU {coarse}{extra}"


def format_table(results: dict) -> str:
    """Plain-text tables, one block per (set, kind); figures x100 except s/obj."""
    lines = [f"quality benchmark: {_headline(results)}", ""]
    headers = ["method"] + [c[0] for c in _COLUMNS]
    for name, s in results["sets"].items():
        for kind, k in s["kinds"].items():
            lines.append(_block_title(name, s, kind, k))
            rows = [headers]
            for method, fig in k["methods"].items():
                flag = f" ({fig['failures']} failed)" if fig.get("failures") else ""
                rows.append([method + flag] + [_fmt(fig[key], how) for _, key, how in _COLUMNS])
            widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
            for r in rows:
                cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
                lines.append("  " + "  ".join(cells))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def format_markdown(results: dict) -> str:
    """Markdown: a header line and one table per set (rows: kind x method)."""
    out = [
        "<!-- written by `napari-segrefiner benchmark`; figures x100 except s/obj -->",
        f"Quality benchmark, {_headline(results)}.",
        "",
        "IoU, Boundary IoU, mBA and boundary F are means over objects (x100); pooled IoU = sum of "
        "intersections / sum of unions; gain = mean IoU change over the coarse input; worse = share of "
        "objects whose IoU dropped; s/obj = seconds per object of the method call.",
        "",
    ]
    head = "| coarse | method | " + " | ".join(c[0] for c in _COLUMNS) + " |"
    rule = "|---|---|" + "---:|" * len(_COLUMNS)
    for name, s in results["sets"].items():
        out.append(f"#### {name} ({s['split'] or 'all'} split, {s['used']} of {s['available']} objects, {s['region']})")
        out.append("")
        out.append(head)
        out.append(rule)
        for kind, k in s["kinds"].items():
            for method, fig in k["methods"].items():
                cells = [_fmt(fig[key], how) for _, key, how in _COLUMNS]
                out.append(f"| {kind} | {method} | " + " | ".join(cells) + " |")
        replaced = {kind: k["empty_coarse_replaced"] for kind, k in s["kinds"].items() if k["empty_coarse_replaced"]}
        if replaced:
            out.append("")
            out.append("Empty coarse masks replaced by the GT dilated by 1 px: "
                       + ", ".join(f"{kind} {n}" for kind, n in replaced.items()) + ".")
        out.append("")
    return "\n".join(out)


def write_results(results: dict, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<out>.json`` and ``<out>.md``; returns both paths."""
    base = Path(out)
    if base.suffix in (".json", ".md"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    json_path = base.parent / (base.name + ".json")
    md_path = base.parent / (base.name + ".md")
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    md_path.write_text(format_markdown(results))
    return json_path, md_path


# ---------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``napari-segrefiner benchmark``."""
    parser.add_argument("--data", nargs="+", action="extend", required=True, metavar="DIR",
                        help="data folders (their val split is used); repeatable")
    parser.add_argument("--kinds", nargs="+", default=None, metavar="KIND",
                        help=f"coarse kinds (default all: {', '.join(KINDS)})")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help=f"methods (default all available: {', '.join(METHODS)})")
    parser.add_argument("--peers-kinds", nargs="+", default=None, metavar="KIND",
                        help=f"kinds the classical peers run on (default {' '.join(DEFAULT_PEERS_KINDS)}; "
                        "'all' or 'none')")
    parser.add_argument("--max-items", type=int, default=None, metavar="N",
                        help="seeded random subset of N objects per set (default all)")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, help="registered model name (default: the shipped segrefiner-lite)")
    g.add_argument("--checkpoint", default=None, help="checkpoint file")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default auto)")
    parser.add_argument("--threads", type=int, default=None, help="torch and OpenCV threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of object selection and coarse masks")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output path without extension (default {DEFAULT_OUT})")
    parser.add_argument("--per-item", action="store_true", help="also store every object's figures in the JSON")
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
        )
    except BenchmarkError as exc:
        print(f"napari-segrefiner: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(results), end="")
    json_path, md_path = write_results(results, args.out)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m napari_segrefiner.evaluation.benchmark ...`` (same flags as the subcommand)."""
    parser = argparse.ArgumentParser(prog="napari-segrefiner benchmark", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
