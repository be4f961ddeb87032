"""Pairs from a review: the accepted objects (and the re-refined objects that were kept) of a result.

GUI-free: the napari side calls :func:`pairs_from_review` with the arrays of a result
layer and its :class:`~napari_segrefiner.review.ReviewQueue`, in its own thread or not.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models.config import RefineConfig
from .store import PairStore

__all__ = ["ReviewPairs", "accepted_labels", "pairs_from_review"]


@dataclass(frozen=True)
class ReviewPairs:
    """What :func:`pairs_from_review` did.

    Attributes
    ----------
    store : PairStore
        The store the pairs went into.
    added : tuple of int
        Labels whose pair was added or replaced.
    skipped : dict of int to str
        Labels that gave no pair, and why (e.g. the object was deleted in the result).
    """

    store: PairStore
    added: tuple[int, ...]
    skipped: dict


def accepted_labels(queue: Any) -> tuple[int, ...]:
    """The labels a :class:`~napari_segrefiner.review.ReviewQueue` marks accepted, in review order."""
    status = getattr(queue, "status", None)
    if not isinstance(status, dict):
        raise TypeError(f"queue must be a ReviewQueue, got {type(queue).__name__}")
    return tuple(label for label in getattr(queue, "order", tuple(status)) if status[label] == "accepted")


def _labels(values: Iterable[Any], name: str) -> list[int]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or int(v) < 1:
            raise ValueError(f"{name} must hold positive integer labels, got {v!r}")
        out.append(int(v))
    return out


def pairs_from_review(
    image: Any,
    coarse: Any,
    result: Any,
    queue: Any = None,
    *,
    kept: Iterable[int] = (),
    store: PairStore | None = None,
    config: RefineConfig | None = None,
    source: str | None = None,
) -> ReviewPairs:
    """Add a pair for every accepted object of ``queue`` and every object in ``kept``.

    Parameters
    ----------
    image : ndarray (H, W), (H, W, 3) or (H, W, 4)
        The image the result was refined on.
    coarse : ndarray (H, W)
        The coarse labels the result was refined from (for re-refined objects: the labels
        of that re-run).
    result : ndarray (H, W)
        The result labels as the annotator left them (the final masks).
    queue : ReviewQueue, optional
        Its accepted labels become pairs.
    kept : iterable of int
        Further labels to learn from (objects re-refined and then kept).
    store : PairStore, optional
        Where to add them (default: a new store with ``config``). A label already in it
        (key ``label<label>``) is replaced: the latest answer counts.
    config : RefineConfig, optional
        Crop options of a new store (the refining model's ``refiner.config``).
    source : str, optional
        Kept in each pair's ``info`` (e.g. the layer's name).

    Returns
    -------
    ReviewPairs
        Objects that cannot give a pair (absent from the result or the coarse labels, an
        answer outside the crop of the coarse object...) are listed in ``skipped`` with
        the reason; bad arrays (shapes, dtypes) raise instead.

    Raises
    ------
    ValueError, TypeError
        For arrays of different shapes or dtypes that are not masks, naming the parameter.
    """
    from ..io.images import as_rgb_uint8
    from .pairs import check_mask

    rgb = as_rgb_uint8(image, name="image")
    c = check_mask(coarse, name="coarse", shape=rgb.shape[:2])
    f = check_mask(result, name="result", shape=rgb.shape[:2])
    wanted = list(dict.fromkeys(_labels(accepted_labels(queue), "queue") if queue is not None else []))
    wanted += [v for v in _labels(kept, "kept") if v not in wanted]
    if store is None:
        store = PairStore(config)
    elif not isinstance(store, PairStore):
        raise TypeError(f"store must be a PairStore, got {type(store).__name__}")
    added, skipped = [], {}
    if len(wanted) <= 32:  # a few objects (a widget's Accept): no sort of a whole big plane
        present_c, present_f = ({v for v in wanted if (m == v).any()} for m in (c, f))
    else:
        present_c, present_f = set(np.unique(c).tolist()), set(np.unique(f).tolist())
    for label in wanted:
        if label not in present_f:
            skipped[label] = "not in the result (deleted?)"
            continue
        if label not in present_c:
            skipped[label] = "not in the coarse labels (drawn from scratch: no coarse mask to learn from)"
            continue
        try:
            store.add(rgb, c, f, label, key=f"label{label}", source=source)
        except ValueError as exc:
            skipped[label] = str(exc)
            continue
        added.append(label)
    return ReviewPairs(store, tuple(added), skipped)
