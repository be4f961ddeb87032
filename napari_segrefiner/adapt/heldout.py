"""Held-out figures of a network on pairs: the full reverse process through the pipeline's batch step.

Each held-out pair's crop and coarse mask go through
:func:`~napari_segrefiner.batch.refine_batch` (every reverse step, the model's keep bias,
its own random stream) and :func:`~napari_segrefiner.pipelines.compose` (the clean-up),
exactly as an instance-mode refinement of that object would, with the encoder's features
computed once beforehand; the answer is scored against the final mask at network
resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..diffusion.scheduler import Schedule, timesteps
from ..engine.batch import PipelineRun, refine_batch
from ..engine.pipelines import compose
from ..models.config import RefineConfig
from .samples import PairTensors

__all__ = ["heldout_ious"]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def heldout_ious(
    network: torch.nn.Module,
    config: RefineConfig,
    schedule: Schedule,
    data: PairTensors,
    indices: Sequence[int],
    *,
    seed: int = 0,
    batch_size: int = 4,
    cancel: Callable[[], bool] | None = None,
    coarse: torch.Tensor | None = None,
) -> list[float]:
    """IoU with its final mask of each pair in ``indices`` after a full refinement.

    Parameters
    ----------
    network : torch.nn.Module
        In eval mode, on the CPU.
    config : RefineConfig
        The pipeline options (keep bias, clean-up, ``paste_changes_only``...).
    schedule : Schedule
    data : PairTensors
    indices : sequence of int
    seed : int
        Pair ``k`` of ``indices`` draws from ``scheduler.stream(seed, k + 1)``.
    batch_size : int
        Objects per network call (``cancel`` is asked before each).
    cancel : callable, optional
        Raises :class:`~napari_segrefiner.sampling.RefineCancelled` when it returns True.
    coarse : Tensor (len(indices), 1, S, S), optional
        Other coarse masks to start from (default: the pairs' own).

    Returns
    -------
    list of float
    """
    idx = list(indices)
    side = int(data.final.shape[-1])
    run = PipelineRun(
        network=network,
        schedule=schedule,
        config=config.replace(batch_size=int(batch_size)),
        steps=tuple(timesteps(schedule)),
        seed=int(seed),
        cancel=cancel,
    )
    labels = [k + 1 for k in range(len(idx))]
    coarse = data.coarse[idx] if coarse is None else coarse
    native = [(coarse[k, 0].numpy() >= 0.5).astype(np.int64) * lab for k, lab in enumerate(labels)]
    features = tuple(f[idx] for f in data.features)
    results = refine_batch(
        run, labels, [(0, side, 0, side)] * len(idx), data.crops[idx], coarse, native, features=features
    )
    out = []
    for k, r in enumerate(results):
        frame = compose(native[k], [r], clean=config.clean)
        out.append(_iou(frame == labels[k], data.final[idx[k], 0].numpy() >= 0.5))
    return out
