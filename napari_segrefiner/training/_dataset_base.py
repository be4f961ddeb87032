"""What the two training recipes of :mod:`.data` share.

:class:`DatasetBase` turns folders into a ``torch.utils.data.Dataset``: folder weighting and
``epoch_length``, per-item seeding by (``rng_seed``, epoch, index), coarse-mask
synthesis, and the finishing steps (resize to ``size``, horizontal flip, colour jitter,
tensors). Subclasses give the number of items of a folder and the sample of one item.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .folders import PairFolder, as_folders
from .synthesis import COARSE_KINDS, make_coarse


def check_range(value, name):
    """None/0 -> disabled (None); float j -> (1 - j, 1 + j); (lo, hi) -> as is."""
    if value is None or value is False:
        return None
    if isinstance(value, (int, float)):
        j = float(value)
        if not 0.0 <= j < 1.0:
            raise ValueError(f"{name} must be in [0, 1) or a (low, high) pair, got {value!r}")
        return None if j == 0.0 else (1.0 - j, 1.0 + j)
    lo, hi = (float(v) for v in value)
    if not 0.0 < lo <= hi:
        raise ValueError(f"{name} must satisfy 0 < low <= high, got {value!r}")
    return (lo, hi)


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _color_jitter(img: np.ndarray, rng: np.random.Generator, rng_range) -> np.ndarray:
    """Brightness, contrast and saturation factors, each ~ U(range), in that order."""
    lo, hi = rng_range
    b, c, s = rng.uniform(lo, hi, size=3)
    f = img.astype(np.float32) * b
    gray = f @ _LUMA
    f = (f - gray.mean()) * c + gray.mean()
    gray = (f @ _LUMA)[..., None]
    f = (f - gray) * s + gray
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


class DatasetBase(Dataset):
    """What both recipes share: the options below, sampling by index and epoch, finishing.

    Parameters
    ----------
    folders : PairFolder, path, or sequence of them
        The data (paths open their ``train`` split).
    size : int, optional
        Side S of the items (>= 8).
    rng_seed : int, optional
        Seed of every item's random draws: item ``i`` of epoch ``e`` uses
        ``numpy.random.default_rng([rng_seed, e, i])``.
    coarse_kind : str, optional
        ``make_coarse`` kind of the coarse masks (one of ``COARSE_KINDS``).
    hflip : bool, optional
        Flip items horizontally with p = 0.5.
    color_jitter : float, (float, float) or None, optional
        Brightness, contrast and saturation factors ~ U(range); a float j means
        (1 - j, 1 + j); None or 0 disables.
    epoch_length : int or None, optional
        Items per epoch, each drawn at random (folder by ``folder_weights``, then an item
        uniformly); None concatenates the folders.
    folder_weights : sequence of float, optional
        One non-negative weight per folder (default: equal) for ``epoch_length``.
    coarse_options : dict, optional
        Options passed to ``make_coarse``.
    """

    def __init__(
        self,
        folders,
        *,
        size: int = 256,
        rng_seed: int = 0,
        coarse_kind: str = "mixed",
        hflip: bool = True,
        color_jitter=0.1,
        epoch_length: int | None = None,
        folder_weights=None,
        coarse_options: dict | None = None,
    ):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
            raise ValueError(f"size must be an integer >= 8, got {size!r}")
        if coarse_kind not in COARSE_KINDS:
            raise ValueError(f"coarse_kind must be one of {COARSE_KINDS}, got {coarse_kind!r}")
        if epoch_length is not None and (
            isinstance(epoch_length, bool) or not isinstance(epoch_length, (int, np.integer)) or epoch_length < 1
        ):
            raise ValueError(f"epoch_length must be a positive integer or None, got {epoch_length!r}")
        self.folders = as_folders(folders)
        self.size = int(size)
        self.rng_seed = int(rng_seed)
        self.coarse_kind = coarse_kind
        self.coarse_options = dict(coarse_options or {})
        self.hflip = bool(hflip)
        self.color_jitter = check_range(color_jitter, "color_jitter")
        self.epoch_length = None if epoch_length is None else int(epoch_length)
        self.epoch = 0
        counts = [self._count(f) for f in self.folders]
        if sum(counts) == 0:
            raise ValueError("the folders hold no usable items")
        self._offsets = np.cumsum([0] + counts)
        if folder_weights is None:
            w = np.array([1.0 if c else 0.0 for c in counts])
        else:
            w = np.asarray(folder_weights, dtype=float)
            if w.shape != (len(self.folders),) or (w < 0).any() or w.sum() <= 0:
                raise ValueError("folder_weights must hold one non-negative weight per folder")
            w = np.where(np.asarray(counts) > 0, w, 0.0)
        self._weights = w / w.sum()

    # subclasses: number of items in a folder, and the sample for (folder, item, rng)
    def _count(self, folder: PairFolder) -> int:
        raise NotImplementedError

    def _sample(self, folder: PairFolder, j: int, rng: np.random.Generator):
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws the items use.

        Parameters
        ----------
        epoch : int
            The epoch number (part of every item's seed).
        """
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.epoch_length if self.epoch_length is not None else int(self._offsets[-1])

    def locate(self, index: int, rng: np.random.Generator | None = None) -> tuple[int, int]:
        """The folder and the item within it of one dataset item in the current epoch.

        Without ``epoch_length`` the folders are concatenated; with it, each index draws a
        folder by ``folder_weights`` (default: equally likely) and an item uniformly.

        Parameters
        ----------
        index : int
            Dataset item, ``0 <= index < len(self)``.
        rng : numpy.random.Generator, optional
            The item's generator (default: a new one of the item's seed).

        Returns
        -------
        tuple of int
            (folder number, item number within that folder).
        """
        if rng is None:
            rng = self._rng(index)
        if self.epoch_length is None:
            f = int(np.searchsorted(self._offsets, index, side="right") - 1)
            return f, int(index - self._offsets[f])
        f = int(rng.choice(len(self.folders), p=self._weights))
        n = int(self._offsets[f + 1] - self._offsets[f])
        return f, int(rng.integers(n))

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.rng_seed, self.epoch, int(index)])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if isinstance(index, (np.integer,)):
            index = int(index)
        if not isinstance(index, int):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        rng = self._rng(index)
        f, j = self.locate(index, rng)
        image, fine, coarse = self._sample(self.folders[f], j, rng)
        return self._finish(image, fine, coarse, rng)

    def item_with_coarse(self, index: int, count: int) -> dict[str, torch.Tensor]:
        """Item ``index`` with ``count`` coarse masks of the same crop (for feature caches).

        The crop, flip and colour jitter are drawn once; the coarse masks are synthesised
        one after the other from the same native-resolution GT, so they differ. Returns the
        item's ``image`` and ``fine`` and ``coarse`` of shape (count, 1, S, S).
        """
        rng = self._rng(index)
        f, j = self.locate(index, rng)
        image, fine, coarse = self._sample(self.folders[f], j, rng)
        extra = [self._coarse(fine, rng) for _ in range(count - 1)]
        return self._finish(image, fine, coarse, rng, extra=extra)

    def _coarse(self, fine: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return make_coarse(fine, rng=rng, kind=self.coarse_kind, **self.coarse_options)

    def _finish(self, image, fine, coarse, rng, extra=()) -> dict[str, torch.Tensor]:
        """Resize, flip and jitter; ``extra`` coarse masks (same crop) are stacked with ``coarse``."""
        s = self.size
        coarse = [coarse, *extra]
        if image.shape[:2] != (s, s):
            image = cv2.resize(image, (s, s), interpolation=cv2.INTER_LINEAR)
            fine = cv2.resize(fine.astype(np.uint8), (s, s), interpolation=cv2.INTER_NEAREST)
            coarse = [cv2.resize(c.astype(np.uint8), (s, s), interpolation=cv2.INTER_NEAREST) for c in coarse]
        flip = self.hflip and rng.random() < 0.5
        if flip:
            image, fine, coarse = image[:, ::-1], fine[:, ::-1], [c[:, ::-1] for c in coarse]
        if self.color_jitter is not None:
            image = _color_jitter(image, rng, self.color_jitter)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "fine": torch.from_numpy(np.ascontiguousarray(fine, dtype=np.float32)[None]),
            "coarse": torch.stack([torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32)[None]) for c in coarse])
            if extra
            else torch.from_numpy(np.ascontiguousarray(coarse[0], dtype=np.float32)[None]),
        }
