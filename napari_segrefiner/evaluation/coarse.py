"""What the quality benchmark refines: coarse-kind registry, seeds, object selection, regions.

The benchmark (:mod:`napari_segrefiner.evaluation.benchmark`) never reads a coarse mask from
disk: for every object it synthesises one per *coarse kind* (:data:`KINDS`) from the ground
truth, with a seed from :func:`coarse_seed`, so that every run and every method sees the
same masks. This module holds that registry and how a kind is made (:func:`make_kind`),
which objects of a set are used (:func:`select_objects`) and the crop an instance is
evaluated in (:func:`evaluation_region`).

Seeds are derived through :class:`numpy.random.SeedSequence` from integers only; a name
(set, kind) enters as ``_key(name)``: the first 8 bytes of its SHA-256, little-endian
(Python's ``hash()`` is salted per process).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable

import numpy as np

from ..io.masks import bounding_box
from ..training.synthesis import dilate_erode, lowres_jitter, lowres_mask, modify_boundary, near_perfect

__all__ = [
    "DEFAULT_PEERS_KINDS",
    "KINDS",
    "MIN_PAD",
    "REL_PAD",
    "BenchmarkError",
    "coarse_seed",
    "evaluation_region",
    "make_kind",
    "select_objects",
]

#: Instance crops: the object's box padded by max(MIN_PAD, REL_PAD x its longer side).
MIN_PAD = 32
REL_PAD = 1.0


class BenchmarkError(ValueError):
    """Bad benchmark input (folder, kind, method, model, device...), reported as one line.

    Defined here, at the bottom of the benchmark's modules, so that the kind checks can
    raise it; :mod:`napari_segrefiner.evaluation.benchmark` re-exports it.
    """


# ----------------------------------------------------------------------------- coarse kinds


def _lowres_rel(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Box sampled down to 1/8 of its size, but the shorter side to no fewer than 8 px."""
    box = bounding_box(gt)
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
    "lowres-jitter": (
        "lowres_jitter: box to 8-32 px, nearest/bilinear back, 1-4 px shift (a segmenter's blocky mask)",
        lambda gt, rng: lowres_jitter(gt, rng=rng),
    ),
    "nearperfect": (
        "near_perfect: GT shifted 0-2 px, low-res 28-64, or +-1 px (already good: keep it)",
        lambda gt, rng: near_perfect(gt, rng=rng),
    ),
}

#: The kinds the classical peers run on by default (they are slow).
DEFAULT_PEERS_KINDS = ("cascadepsp-0.8", "lowres-28")


def _key(text: str) -> int:
    """A stable 64-bit integer for a string (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def coarse_seed(set_name: str, index: int, kind: str, seed: int = 0) -> np.random.SeedSequence:
    """The seed of the coarse mask of one object of a set.

    Parameters
    ----------
    set_name : str
        Name of the set (its folder's name).
    index : int
        Index of the object among the folder's val objects.
    kind : str
        Coarse kind (a key of :data:`KINDS`).
    seed : int, optional
        Base seed of the run (default 0).

    Returns
    -------
    numpy.random.SeedSequence
        ``SeedSequence([seed, _key(set_name), index, _key(kind)])``.
    """
    return np.random.SeedSequence([int(seed), _key(set_name), int(index), _key(kind)])


def make_kind(kind: str, gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Coarse mask of ``kind`` for a ground-truth mask.

    Parameters
    ----------
    kind : str
        Coarse kind (a key of :data:`KINDS`).
    gt : numpy.ndarray, shape (H, W), bool
        Ground-truth mask.
    rng : numpy.random.Generator
        Randomness of the synthesis (unused by the deterministic kinds).

    Returns
    -------
    mask : numpy.ndarray, shape (H, W), bool
        The coarse mask.
    replaced : bool
        True when the synthesis gave an empty mask and the ground truth dilated by 1 px
        was used instead.

    Raises
    ------
    BenchmarkError
        For an unknown kind.
    """
    if kind not in KINDS:
        raise BenchmarkError(f"unknown coarse kind {kind!r}; known: {', '.join(KINDS)}")
    coarse = np.asarray(KINDS[kind][1](gt, rng), dtype=bool)
    if not coarse.any():
        return dilate_erode(gt, k=1), True
    return coarse, False


# ------------------------------------------------------------------------------ kind names


def checked_names(values: Iterable[str] | str, known: Iterable[str], label: str) -> list[str]:
    """``values`` (one name or several) without repeats, in order; BenchmarkError naming
    ``label`` ("coarse kind", "method"...) for an unknown name or none at all."""
    if isinstance(values, str):
        values = [values]
    names: list[str] = []
    for v in values:
        if v not in names:
            names.append(v)
    known = list(known)
    bad = [v for v in names if v not in known]
    if bad:
        raise BenchmarkError(f"unknown {label} {bad[0]!r}; known: {', '.join(known)}")
    if not names:
        raise BenchmarkError(f"no {label}s given")
    return names


def check_kinds(kinds: Iterable[str] | str | None, what: str = "kind") -> list[str]:
    """The coarse kinds asked for (all of :data:`KINDS` for None), checked."""
    if kinds is None:
        return list(KINDS)
    return checked_names(kinds, KINDS, f"coarse {what}")


# --------------------------------------------------------------------------- objects, crops


def select_objects(n_available: int, max_items: int | None, set_name: str, seed: int = 0) -> list[int]:
    """Indices of the objects of a set to use: all, or a seeded random subset.

    Parameters
    ----------
    n_available : int
        Number of objects in the set.
    max_items : int or None
        How many to use; None (or at least ``n_available``) means all.
    set_name : str
        Name of the set (enters the seed, so every set gets its own subset).
    seed : int, optional
        Base seed of the run (default 0).

    Returns
    -------
    list of int
        Sorted, distinct indices; the same for the same arguments in every run.
    """
    if max_items is None or max_items >= n_available:
        return list(range(n_available))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _key(set_name), _key("select")]))
    return sorted(int(i) for i in rng.choice(n_available, size=int(max_items), replace=False))


def evaluation_region(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The crop an instance is evaluated in.

    Parameters
    ----------
    box : tuple of int
        The instance's box ``(y0, y1, x0, x1)`` (ends exclusive).
    shape : tuple of int
        ``(H, W)`` of the image.

    Returns
    -------
    tuple of int
        ``(y0, y1, x0, x1)``: the box padded by ``max(MIN_PAD, REL_PAD x longer box side)``
        on every side, clamped to the image.
    """
    y0, y1, x0, x1 = box
    pad = max(MIN_PAD, int(math.ceil(REL_PAD * max(y1 - y0, x1 - x0))))
    return max(0, y0 - pad), min(shape[0], y1 + pad), max(0, x0 - pad), min(shape[1], x1 + pad)
