"""The typed records a refinement yields: one :class:`RefineStep` per network batch of objects.

A run refines its objects batch by batch: each batch is encoded once and taken through
every reverse step, and the record of that batch carries its :class:`ObjectResult` s at
once, so a front end can show every object as soon as it is done. The last record
(``done=True``) holds the whole result. With ``previews=True`` each object also keeps its
diffusion state after every reverse step (at network resolution, packed bits), and
:func:`replay` composes the frame of any step from them (a step slider).

Pure numpy/torch; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..io.masks import Box
from .compose import ObjectMap
from .request import PIPELINES

__all__ = ["ObjectResult", "RefineStep", "confidence_frame", "count_records", "replay"]


@dataclass(frozen=True)
class ObjectResult:
    """One refined object.

    Attributes
    ----------
    label : int
        Its label.
    answer : ObjectMap
        The network's final answer pasted onto its crop box (before the overlap rule and
        the clean-up, which need the other objects).
    score : float
        Review score (:func:`~.scores.review_score`; higher = look at it first).
    box : tuple of int
        Where ``states`` and ``confidence`` lie in the frame (the crop; the whole frame for
        the whole and HR pipelines).
    limit : tuple of int
        Where the object may change (its instance crop; the same as ``box`` in instance mode).
    states : ndarray of uint8 or None
        With previews: ``np.packbits`` of the {0, 1} state after each reverse step, shape
        (steps, ceil(S * S / 8)) for an S x S network input.
    confidence : ndarray of float16 or None
        With previews: the last step's confidence ``2|p - 0.5|``, (S, S).
    """

    label: int
    answer: ObjectMap
    score: float
    box: Box
    limit: Box
    states: np.ndarray | None = None
    confidence: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Side S of the network input (0 without previews)."""
        return 0 if self.confidence is None else int(self.confidence.shape[0])

    def state(self, index: int) -> np.ndarray:
        """The bool (S, S) state after reverse step ``index`` (previews only)."""
        s = self.size
        return np.unpackbits(self.states[index], count=s * s).reshape(s, s).astype(bool)


@dataclass(frozen=True)
class RefineStep:
    """One record of a refinement: a network batch of objects done.

    Attributes
    ----------
    index : int
        0-based record number.
    total : int
        Records of this run (batches; for the HR pipeline, objects).
    mode : str
        The pipeline that runs (``"instance"``, ``"whole"`` or ``"hr"``).
    objects : tuple of ObjectResult
        The objects refined in this batch.
    done_objects : int
        Objects refined so far (this batch included).
    total_objects : int
        Objects this run refines.
    steps : tuple of int
        The timesteps of the reverse process (the HR pipeline's global stage, then ``0``
        for its local patches).
    done : bool
        True on the last record.
    mask : ndarray of shape (H, W) or None
        On the last record: the result, with the input's dtype (and binary value).
    uncertainty : dict of int to float or None
        On the last record: every refined label's review score.
    """

    index: int
    total: int
    mode: str
    objects: tuple[ObjectResult, ...]
    done_objects: int
    total_objects: int
    steps: tuple[int, ...]
    done: bool
    mask: np.ndarray | None = None
    uncertainty: dict[int, float] | None = None


def count_records(mode: str, objects: int, batch_size: int) -> int:
    """Records a run yields: one per network batch (HR: per object); at least 1.

    Raises
    ------
    ValueError
        For a ``mode`` that is not a pipeline (``"instance"``, ``"whole"``, ``"hr"``).
    """
    if mode == "hr":
        return max(1, int(objects))
    if mode in PIPELINES:
        return max(1, -(-int(objects) // int(batch_size)))
    raise ValueError(f"mode must be one of {PIPELINES}, got {mode!r}")


def _paste_bits(state: np.ndarray, box: Box) -> np.ndarray:
    y0, y1, x0, x1 = box
    t = torch.from_numpy(state.astype(np.float32))[None, None]
    return F.interpolate(t, size=(y1 - y0, x1 - x0), mode="nearest")[0, 0].numpy() >= 0.5


def replay(base: np.ndarray, objects: Sequence[ObjectResult], index: int) -> np.ndarray:
    """The frame after reverse step ``index``: every object's state pasted onto ``base``.

    ``base`` is the coarse labels with the refined objects removed; objects are pasted in
    label order (nearest-neighbour, within their ``limit``) onto background pixels only.
    Objects without previews are skipped. Returns a new array.
    """
    out = base.copy()
    for obj in sorted(objects, key=lambda o: o.label):
        if obj.states is None:
            continue
        k = min(index, len(obj.states) - 1)
        fg = _paste_bits(obj.state(k), obj.box)
        y0, y1, x0, x1 = obj.box
        ly0, ly1, lx0, lx1 = obj.limit
        fg = fg[ly0 - y0 : ly1 - y0, lx0 - x0 : lx1 - x0]
        region = out[ly0:ly1, lx0:lx1]
        region[fg & (region == 0)] = obj.label
    return out


def confidence_frame(shape: tuple[int, int], objects: Sequence[ObjectResult]) -> np.ndarray:
    """Per-pixel confidence of the last step (1 away from refined objects; min where they overlap)."""
    out = np.ones(shape, dtype=np.float32)
    for obj in objects:
        if obj.confidence is None:
            continue
        y0, y1, x0, x1 = obj.box
        c = torch.from_numpy(obj.confidence.astype(np.float32))[None, None]
        c = F.interpolate(c, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)[0, 0].numpy()
        np.minimum(out[y0:y1, x0:x1], c, out=out[y0:y1, x0:x1])
    return out
