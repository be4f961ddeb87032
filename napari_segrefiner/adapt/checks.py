"""Checks of what adaptation is given, and the seeded split of the pairs."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .pairs import Pair

__all__ = ["MIN_PAIRS", "check_number", "check_pairs", "split_pairs"]

MIN_PAIRS = 2  # one to learn from, one to judge by


def split_pairs(n: int, holdout: float, seed: int, groups: Sequence[Any] | None = None) -> tuple[list[int], list[int]]:
    """Seeded (train, held-out) indices of ``n`` pairs.

    ``k = max(1, round(holdout * n))`` pairs are held out, at most ``n - 1``. With ``groups``
    (one value per pair, e.g. the image it came from) of at least two values, whole groups
    are held out, in a seeded order, until at least ``k`` pairs are (at least one group is
    left to train on): pairs of one image look alike, so judging on other images is honest.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xADA]))
    k = min(n - 1, max(1, int(round(holdout * n))))
    names = list(dict.fromkeys(groups)) if groups is not None else []
    if len(names) < 2:
        order = rng.permutation(n).tolist()
        return sorted(order[k:]), sorted(order[:k])
    held: list[int] = []
    for g in [names[i] for i in rng.permutation(len(names))][:-1]:
        if len(held) >= k:
            break
        held += [i for i in range(n) if groups[i] == g]
    return sorted(set(range(n)) - set(held)), sorted(held)


def check_pairs(pairs: Any, size: int) -> list[Pair]:
    """``pairs`` (a PairStore or Pairs) as a list; ValueError/TypeError saying what is wrong with them."""
    items = list(pairs.pairs) if hasattr(pairs, "pairs") else list(pairs) if isinstance(pairs, Iterable) else None
    if items is None:
        raise TypeError(f"pairs must be a PairStore or a sequence of Pair, got {type(pairs).__name__}")
    bad = next((p for p in items if not isinstance(p, Pair)), None)
    if bad is not None:
        raise TypeError(f"pairs must hold Pair objects, got a {type(bad).__name__}")
    if len(items) < MIN_PAIRS:
        raise ValueError(
            f"pairs: adapting needs at least {MIN_PAIRS} pairs (one to learn from, one held out to "
            f"judge the result), got {len(items)}; accept more objects first"
        )
    sides = sorted({p.size for p in items})
    if len(sides) > 1:
        raise ValueError(
            f"pairs have crops of different sides {sides}: they were made for different models; "
            "adapt with pairs of one store"
        )
    if sides[0] != size:
        raise ValueError(
            f"pairs have {sides[0]}-px crops but the base model refines {size}-px crops: make the pairs "
            "with the base model's options (PairStore(config=refiner.config))"
        )
    keys = [p.key for p in items]
    if len(set(keys)) != len(keys):
        raise ValueError("pairs hold the same key twice")
    return items


def check_number(value: Any, name: str, *, low: float, high: float = math.inf, integer: bool = False) -> Any:
    """``value`` as a float (or int) in [low, high]; ValueError naming ``name`` otherwise (NaN too)."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'} in [{low}, {high}], got {value!r}")
    return int(value) if integer else float(value)
