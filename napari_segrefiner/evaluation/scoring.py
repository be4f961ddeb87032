"""The quality benchmark's inner loop: score every method on the chosen objects of one set.

:func:`score_set` takes one opened set (a :class:`~napari_segrefiner.training.data.PairFolder`)
and the objects :func:`~napari_segrefiner.evaluation.coarse.select_objects` chose, cuts each
object's region, makes its coarse masks (:mod:`napari_segrefiner.evaluation.coarse`), runs
every method on them, scores the results with
:func:`~napari_segrefiner.evaluation.metrics.evaluate` and accumulates the figures per
(kind, method). :func:`~napari_segrefiner.evaluation.benchmark.run_benchmark` checks the
input, loads the model and calls it once per set.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..io.masks import bounding_box
from .coarse import KINDS, coarse_seed, evaluation_region, make_kind
from .interactive import click_curve, spearman
from .metrics import evaluate, iou

__all__ = ["WORSE_TOL", "score_set"]

#: A method "made an object worse" when its IoU is below the coarse IoU by more than this.
WORSE_TOL = 1e-6


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


def _region(image: np.ndarray, fine: np.ndarray, box, instance: bool):
    """(image, gt, [y0, y1, x0, x1]) of the region an object is evaluated in."""
    if instance:
        y0, y1, x0, x1 = evaluation_region(box, fine.shape)
        img = np.ascontiguousarray(image[y0:y1, x0:x1])
        gt = np.ascontiguousarray(fine[y0:y1, x0:x1])
        return img, gt, [y0, y1, x0, x1]
    return image, np.asarray(fine, dtype=bool), [0, fine.shape[0], 0, fine.shape[1]]


def _predict(method: str, img: np.ndarray, coarse: np.ndarray, net: Any, peer_fns: dict[str, Callable]):
    """One method's mask for one region and coarse mask."""
    if method == "identity":
        return coarse.copy()
    return peer_fns[method](img, coarse, seed=0)


class _Review:
    """SegRefiner's review score and IoU error per object, and its IoU after each click."""

    def __init__(self, clicks: int):
        self.score: list[float] = []
        self.error: list[float] = []
        self.after: list[list[float]] = [[] for _ in range(clicks + 1)]

    def add(self, masks: list, uncertainty: float, gt: np.ndarray) -> None:
        ious = [iou(m, gt) for m in masks]
        self.score.append(uncertainty)
        self.error.append(1.0 - ious[0])
        for i, v in enumerate(ious[: len(self.after)]):
            self.after[i].append(v)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uncertainty_spearman": spearman(self.score, self.error)}
        if len(self.after) > 1:
            out["iou_after_clicks"] = {str(i): float(np.mean(v)) for i, v in enumerate(self.after) if v}
        return out


def _kind_entry(
    kind: str, replaced: int, digest, coarse_acc: _Acc, accs: dict[str, _Acc], review: _Review | None = None
) -> dict[str, Any]:
    """The results of one coarse kind of a set."""
    entry: dict[str, Any] = {
        "description": KINDS[kind][0],
        "empty_coarse_replaced": replaced,
        "coarse_digest": digest.hexdigest()[:16],
    }
    if coarse_acc.iou:
        c = coarse_acc.summary()
        entry["coarse_iou"] = c["iou"]
        entry["coarse_pooled_iou"] = c["pooled_iou"]
        entry["methods"] = {m: acc.summary() for m, acc in accs.items()}
        if review is not None and review.score:
            entry["segrefiner_review"] = review.summary()
    else:
        entry["coarse_iou"] = None
        entry["methods"] = {}
    return entry


def score_set(
    folder,
    name: str,
    indices: Sequence[int],
    kinds: Sequence[str],
    methods: Sequence[str],
    p_kinds: Sequence[str],
    peer_fns: dict[str, Callable],
    net: Any,
    seed: int,
    bar,
    items: list | None,
    clicks: int = 0,
) -> dict[str, Any]:
    """Score every method on the chosen objects of one set.

    Parameters
    ----------
    folder : napari_segrefiner.training.data.PairFolder
        The set, opened on its val split.
    name : str
        Name of the set (enters the coarse masks' seeds).
    indices : sequence of int
        The objects to use (from :func:`~napari_segrefiner.evaluation.coarse.select_objects`).
    kinds : sequence of str
        Coarse kinds, checked.
    methods : sequence of str
        Methods, checked.
    p_kinds : sequence of str
        The kinds on which the classical peers run.
    peer_fns : dict
        Peer name -> refine function, for the peers among ``methods``.
    net : Refiner or None
        The loaded SegRefiner (used for ``"segrefiner"``).
    seed : int
        Base seed of the coarse masks.
    bar : tqdm.tqdm
        Progress bar, advanced by one per (object, kind).
    items : list or None
        When a list, one record per (object, kind) with every method's figures is appended.
    clicks : int
        Simulated clicks after SegRefiner's first result (:func:`~.interactive.click_curve`);
        the IoU after each and the review score's rank correlation with the IoU error go
        under ``"segrefiner_review"`` of each kind.

    Returns
    -------
    dict
        The set's entry of the results (``"available"``, ``"used"``, ``"indices"``,
        ``"objects"``, ``"kinds"``...; see
        :func:`~napari_segrefiner.evaluation.benchmark.run_benchmark`).
    """
    instance = bool(folder.has_labels)
    accs = {k: {m: _Acc() for m in methods if m not in peer_fns or k in p_kinds} for k in kinds}
    coarse_acc = {k: _Acc() for k in kinds}
    reviews = {k: _Review(clicks) for k in kinds}
    all_review = _Review(0)
    replaced = dict.fromkeys(kinds, 0)
    digests = {k: hashlib.sha256() for k in kinds}
    objects, used = [], []
    skipped = 0
    for j in indices:
        ref = folder[j]
        image, fine = folder.load(ref)
        box = ref.bbox if ref.bbox is not None else bounding_box(fine)
        if box is None:  # an image with an empty mask: nothing to refine or score
            skipped += 1
            bar.update(len(kinds))
            continue
        img, gt, region = _region(image, fine, box, instance)
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
                record = {
                    "set": name,
                    "index": int(j),
                    "image_id": ref.image_id,
                    "label": ref.label,
                    "region": region,
                    "kind": kind,
                    "replaced": was_replaced,
                    "methods": {},
                }
            for method, acc in accs[kind].items():
                t0 = time.perf_counter()
                failure = None
                try:
                    if method == "segrefiner":  # refine()'s defaults: what users meet (mode="auto")
                        masks, unc, first = click_curve(img, coarse, gt, net, clicks)
                        pred = masks[0]
                        reviews[kind].add(masks, unc, gt)
                        all_review.add(masks[:1], unc, gt)
                    else:
                        pred = _predict(method, img, coarse, net, peer_fns)
                except Exception as exc:  # keep the run going; counted and reported
                    failure = f"{ref.image_id}/{ref.label}/{kind}: {type(exc).__name__}: {exc}"
                    pred = coarse
                seconds = time.perf_counter() - t0
                if method == "segrefiner" and failure is None:
                    seconds = first  # the clicks' extra refinements are not the method's speed
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
        "kinds": {k: _kind_entry(k, replaced[k], digests[k], coarse_acc[k], accs[k], reviews[k]) for k in kinds},
        "uncertainty_spearman": spearman(all_review.score, all_review.error),
    }
