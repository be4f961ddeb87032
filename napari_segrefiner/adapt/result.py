"""What adaptation reports: a progress record per step and the result at the end."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["STAGES", "AdaptCancelled", "AdaptRecord", "AdaptResult"]

#: The stages of a run, in order; a run ends with "done" or "cancelled".
STAGES = ("encode", "baseline", "train", "evaluate", "done", "cancelled")


class AdaptCancelled(Exception):
    """:func:`~.learn.adapt` was cancelled (its ``cancel`` callable returned True)."""


@dataclass(frozen=True, eq=False)
class AdaptResult:
    """The outcome of one adaptation.

    Attributes
    ----------
    refiner : Refiner
        The adapted network with the base's pipeline options (eval mode, CPU), ready to
        refine with; ``refiner.meta["adapted"]`` is :attr:`provenance`.
    base : Refiner
        The base model as loaded (never modified).
    kept : bool
        True when the adapted network beat the base on the held-out pairs (mean IoU) without
        losing more than ``KEEP_TOLERANCE`` on their near-perfect coarse masks.
    base_iou, adapted_iou : float
        Mean held-out IoU of the base and of the adapted network (the pairs' own coarse masks).
    base_keep_iou, adapted_keep_iou : float
        The same from near-perfect coarse masks of the held-out pairs (keeping good masks).
    steps : int
        Optimisation steps done.
    seconds : float
        Wall time of the whole run (encoding, both held-out evaluations, training).
    train_keys, holdout_keys : tuple of str
        Which pairs trained and which judged.
    timings : Mapping
        Seconds of each stage (``encode``, ``baseline``, ``train``, ``evaluate``).
    provenance : Mapping
        What an adapted checkpoint stores under ``meta["adapted"]``.
    history : tuple of dict
        ``{"step", "loss", "lr", "seconds"}`` per step.
    path : Path or None
        Where it was saved, when :func:`~.learn.iter_adapt` saved it.
    """

    refiner: Any
    base: Any
    kept: bool
    base_iou: float
    adapted_iou: float
    base_keep_iou: float
    adapted_keep_iou: float
    steps: int
    seconds: float
    train_keys: tuple[str, ...]
    holdout_keys: tuple[str, ...]
    timings: Mapping[str, float] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[dict, ...] = ()
    path: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "timings", MappingProxyType(dict(self.timings)))
        object.__setattr__(self, "provenance", MappingProxyType(dict(self.provenance)))

    @property
    def gain(self) -> float:
        """``adapted_iou - base_iou`` (IoU as a fraction)."""
        return self.adapted_iou - self.base_iou

    def summary(self) -> str:
        """One line: held-out IoU base -> adapted (and on good masks), and whether it was kept."""
        if self.kept:
            verdict = "kept"
        elif self.adapted_iou > self.base_iou:
            verdict = "not kept (it spoils already-good masks)"
        else:
            verdict = "not kept (no better than the base)"
        return (
            f"held-out IoU on {len(self.holdout_keys)} pairs: base {self.base_iou:.4f}, adapted "
            f"{self.adapted_iou:.4f} ({100 * self.gain:+.2f} points); on good masks {self.base_keep_iou:.4f} -> "
            f"{self.adapted_keep_iou:.4f}; {self.steps} steps in {self.seconds:.1f} s: {verdict}"
        )

    def save(
        self,
        name: str | None = None,
        *,
        cache: str | os.PathLike | None = None,
        overwrite: bool = False,
        force: bool = False,
    ) -> Path:
        """Save to the user's model folder; see :func:`~.models.save_adapted`."""
        from .models import save_adapted

        return save_adapted(self, name, cache=cache, overwrite=overwrite, force=force)


@dataclass(frozen=True)
class AdaptRecord:
    """One progress report of :func:`~.learn.iter_adapt`.

    Attributes
    ----------
    stage : str
        One of :data:`STAGES`.
    step : int
        Optimisation steps done so far.
    total : int or None
        Steps planned (``max_steps``, or estimated from the time budget once the first
        steps are timed; None before).
    seconds : float
        Since the run started.
    loss, lr : float or None
        Of the last step (``"train"`` records).
    base_iou, adapted_iou : float or None
        Held-out mean IoU, once measured.
    base_keep_iou, adapted_keep_iou : float or None
        Held-out mean IoU from near-perfect coarse masks, once measured.
    message : str
        A line for a status bar.
    result : AdaptResult or None
        On the ``"done"`` record.
    """

    stage: str
    step: int
    total: int | None
    seconds: float
    loss: float | None = None
    lr: float | None = None
    base_iou: float | None = None
    adapted_iou: float | None = None
    base_keep_iou: float | None = None
    adapted_keep_iou: float | None = None
    message: str = ""
    result: AdaptResult | None = None

    @property
    def fraction(self) -> float | None:
        """``step / total`` for a progress bar (None while the total is unknown)."""
        return None if not self.total else min(1.0, self.step / self.total)
