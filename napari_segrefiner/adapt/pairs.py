"""Training pairs from an annotator's corrections: one object's crop, its coarse and its final mask.

A :class:`Pair` is what the network saw and what it should have answered: the object's
crop of the image and its coarse mask, exactly as the instance pipeline cuts them
(:func:`~napari_segrefiner.pipelines.instance_box` of the coarse object, resampled by
:func:`~napari_segrefiner.batch.object_crop` to the network size), and the final mask the
annotator accepted, cut from the same box. :func:`make_pair` builds one from full-frame
arrays (image, coarse labels, final labels, label); :class:`~.store.PairStore` collects them.

Pure numpy/torch (no napari); inputs are never modified.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from ..engine.batch import object_crop
from ..engine.pipelines import instance_box
from ..io.images import as_rgb_uint8
from ..io.masks import as_labels
from ..models.config import RefineConfig

__all__ = ["CROP_OPTIONS", "Pair", "check_mask", "check_pair", "default_crop_config", "make_pair"]


def check_mask(mask: Any, *, name: str, shape: tuple[int, int]) -> np.ndarray:
    """A non-empty 2-D mask or labels array of ``shape`` as int64 labels; ValueError/TypeError naming ``name``."""
    labels = as_labels(mask, name=name, ndim=2, shape=shape)
    if not labels.any():
        raise ValueError(f"{name} is empty (no foreground pixels)")
    return labels


#: The :class:`~napari_segrefiner.config.RefineConfig` options that decide a pair's crop.
CROP_OPTIONS = ("size", "pad", "context", "context_cap")


@functools.lru_cache(maxsize=1)
def default_crop_config() -> RefineConfig:
    """The pipeline options stored with the shipped default model (its crops are the ones to learn on)."""
    from ..models import registry
    from ..models.checkpoint import load_checkpoint

    try:
        return load_checkpoint(registry.resolve(registry.DEFAULT_MODEL))[2]
    except (FileNotFoundError, ValueError):  # a stripped installation: the generic defaults
        return RefineConfig()


def _frozen(arr: np.ndarray) -> np.ndarray:
    out = np.array(arr, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Pair:
    """One object's training pair at network resolution (read-only arrays).

    Attributes
    ----------
    key : str
        Its name in a store (``[A-Za-z0-9._-]``, also the file stem when saved).
    image : ndarray of shape (S, S, 3), uint8
        The object's crop of the image (RGB).
    coarse : ndarray of shape (S, S), bool
        The coarse mask it started from, in the same crop.
    final : ndarray of shape (S, S), bool
        The mask the annotator accepted, in the same crop.
    info : Mapping
        Where it came from (``label``, ``box`` in the frame, ``frame`` shape, ``source``...).
    """

    key: str
    image: np.ndarray
    coarse: np.ndarray
    final: np.ndarray
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_pair(self.image, self.coarse, self.final, key=self.key)
        for name in ("image", "coarse", "final"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))

    @property
    def size(self) -> int:
        """The crop side S."""
        return int(self.final.shape[0])


def _check_key(key: Any) -> str:
    ok = isinstance(key, str) and 0 < len(key) <= 128 and key[0] not in ".-"
    if not ok or any(not (ch.isascii() and (ch.isalnum() or ch in "._-")) for ch in key):
        raise ValueError(f"key must be 1-128 characters of letters, digits, '.', '_' or '-' (not first), got {key!r}")
    return key


def check_pair(image: Any, coarse: Any, final: Any, *, key: str = "pair") -> None:
    """Check the arrays of one pair; ValueError/TypeError naming what is wrong.

    ``image`` must be (S, S, 3) uint8, ``coarse`` and ``final`` (S, S) bool with at least
    one foreground pixel each, all of one side S.
    """
    _check_key(key)
    img, c, f = np.asarray(image), np.asarray(coarse), np.asarray(final)
    if img.dtype != np.uint8:
        raise TypeError(f"pair {key!r}: image must be uint8 RGB, got dtype {img.dtype}")
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1]:
        raise ValueError(f"pair {key!r}: image must have shape (S, S, 3), got {img.shape}")
    for name, m in (("coarse", c), ("final", f)):
        if m.dtype != bool:
            raise TypeError(f"pair {key!r}: {name} must be a bool mask, got dtype {m.dtype}")
        if m.shape != img.shape[:2]:
            raise ValueError(f"pair {key!r}: {name} has shape {m.shape}, the image crop {img.shape[:2]}")
        if not m.any():
            raise ValueError(f"pair {key!r}: {name} mask is empty (no foreground pixel in the crop)")


def _label(label: Any) -> int:
    if isinstance(label, bool) or not isinstance(label, numbers.Integral) or int(label) < 1:
        raise ValueError(f"label must be a positive integer, got {label!r}")
    return int(label)


def make_pair(
    image: Any,
    coarse: Any,
    final: Any,
    label: int,
    *,
    config: RefineConfig | None = None,
    key: str | None = None,
    source: str | None = None,
) -> Pair:
    """One object's :class:`Pair` from full-frame arrays.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        The image (any numeric dtype; scaled as refinement scales it).
    coarse : ndarray of shape (H, W)
        The coarse labels (or binary mask) the object was refined from.
    final : ndarray of shape (H, W)
        The labels the annotator kept (the object is ``final == label``).
    label : int
        The object. It must occur in ``coarse`` and in ``final``.
    config : RefineConfig, optional
        The crop options (``size``, ``pad``, ``context``, ``context_cap``); default those
        of the shipped model (:func:`default_crop_config`). Use the options of the model
        that refined the object (``refiner.config``).
    key : str, optional
        The pair's name (default ``"label<label>"``).
    source : str, optional
        Free text kept in ``info`` (e.g. the layer's name).

    Returns
    -------
    Pair

    Raises
    ------
    ValueError, TypeError
        Naming the parameter: shapes that differ, an empty or non-integer mask, a label
        absent from ``coarse`` or ``final``, or a final object outside the crop of its
        coarse object.
    """
    label = _label(label)
    rgb = as_rgb_uint8(image, name="image")
    c = check_mask(coarse, name="coarse", shape=rgb.shape[:2])
    f = check_mask(final, name="final", shape=rgb.shape[:2])
    key = _check_key(f"label{label}" if key is None else key)
    cfg = default_crop_config() if config is None else config
    if not isinstance(cfg, RefineConfig):
        raise TypeError(f"config must be a RefineConfig, got {type(cfg).__name__}")
    own = c == label
    if not own.any():
        if np.asarray(coarse).dtype != bool:
            values = np.unique(c[c != 0])
            raise ValueError(f"label {label} does not occur in coarse (labels present: {values[:10].tolist()})")
        own = c != 0  # a bool coarse mask is the object itself
    if not (f == label).any():
        raise ValueError(f"label {label} does not occur in final: the accepted object is empty")
    y0, y1, x0, x1 = instance_box(own, cfg, own.shape)
    full = (x1 - x0) == own.shape[1]
    box_rgb = rgb[y0:y1, x0:x1]
    crop, cm = object_crop(box_rgb, own[y0:y1, x0:x1].astype(np.int64), 1, full_width=full, size=cfg.size, device="cpu")
    _, fm = object_crop(
        box_rgb, (f[y0:y1, x0:x1] == label).astype(np.int64), 1, full_width=full, size=cfg.size, device="cpu"
    )
    img = crop[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    cmask, fmask = cm[0, 0].numpy() >= 0.5, fm[0, 0].numpy() >= 0.5
    if not fmask.any():
        raise ValueError(
            f"the final object of label {label} lies outside the crop of its coarse object "
            f"(box {[y0, y1, x0, x1]}): it cannot teach the network that crop"
        )
    if not cmask.any():
        raise ValueError(f"the coarse object of label {label} vanishes at {cfg.size} px (too thin to refine)")
    info = {
        "label": label,
        "box": [int(y0), int(y1), int(x0), int(x1)],
        "frame": list(own.shape),
        "crop": {k: getattr(cfg, k) for k in CROP_OPTIONS},
    }
    if source is not None:
        info["source"] = str(source)
    return Pair(key, img, cmask, fmask, info)
