"""Training data: image/mask folders and the two SegRefiner sampling recipes.

Folder layout (as the sets under ``../shared/data/<set>``)::

    root/images/<id>.<png|jpg|...>   RGB or gray image
    root/masks/<id>.png              binary foreground (0 / non-zero)
    root/labels/<id>.png             optional instance labels (0 = background)
    root/train.txt, root/val.txt     optional split files, one id per line

Datasets (``torch.utils.data.Dataset``; every item a dict of tensors ``image`` uint8
(3, S, S) RGB, not normalised; ``fine`` and ``coarse`` float32 (1, S, S) in {0, 1}):

:class:`ObjectCrops`
    the LR-SegRefiner recipe: one object per item, cropped around its box with jitter,
    resized to S x S, coarse mask synthesised from the native-resolution GT crop.
:class:`NativePatches`
    the HR-SegRefiner patch recipe: an S x S window at native resolution that contains
    both foreground and background.

Determinism: item ``i`` of epoch ``e`` draws all of its randomness from
``numpy.random.default_rng([rng_seed, e, i])``, so results do not depend on worker
count or order. Call ``set_epoch(e)`` before iterating an epoch (with DataLoader
workers, before the iterator is created).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..imaging import as_rgb_uint8
from ..io import IMAGE_EXTENSIONS, read_image, read_labels, read_mask
from .synthesis import COARSE_KINDS, make_coarse, mask_bbox

__all__ = [
    "IMAGE_EXTENSIONS",
    "NativePatches",
    "ObjectCrops",
    "ObjectRef",
    "PairFolder",
]


# ------------------------------------------------------------------------------ folders


@dataclass(frozen=True)
class ObjectRef:
    """One object of a :class:`PairFolder`.

    ``label`` is the instance id in ``labels/<id>.png`` or None for the whole binary
    mask; ``bbox`` = (y0, y1, x0, x1), half-open, when known at indexing time (instances)
    and None otherwise (binary masks: computed at load time).
    """

    image_id: str
    label: int | None = None
    bbox: tuple[int, int, int, int] | None = None
    area: int | None = None


class _LRU:
    """A tiny least-recently-used cache (per process; emptied when pickled)."""

    def __init__(self, maxsize: int):
        self.maxsize = int(maxsize)
        self._d: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key, make):
        if key in self._d:
            self._d.move_to_end(key)
            return self._d[key]
        value = make()
        if self.maxsize > 0:
            self._d[key] = value
            while len(self._d) > self.maxsize:
                self._d.popitem(last=False)
        return value

    def __getstate__(self):
        return {"maxsize": self.maxsize}

    def __setstate__(self, state):
        self.maxsize = state["maxsize"]
        self._d = OrderedDict()


def _stem_map(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            out.setdefault(p.stem, p)
    return out


def _instance_boxes(labels: np.ndarray, min_area: int):
    """Per instance id: (area, (y0, y1, x0, x1)) for ids with area >= min_area."""
    ys, xs = np.nonzero(labels)
    if ys.size == 0:
        return []
    ids = labels[ys, xs]
    order = np.argsort(ids, kind="stable")
    ids, ys, xs = ids[order], ys[order], xs[order]
    uniq, starts, counts = np.unique(ids, return_index=True, return_counts=True)
    y0 = np.minimum.reduceat(ys, starts)
    y1 = np.maximum.reduceat(ys, starts) + 1
    x0 = np.minimum.reduceat(xs, starts)
    x1 = np.maximum.reduceat(xs, starts) + 1
    return [
        (int(u), int(c), (int(a), int(b), int(c0), int(d)))
        for u, c, a, b, c0, d in zip(uniq, counts, y0, y1, x0, x1)
        if c >= min_area
    ]


class PairFolder(Sequence):
    """Objects of an image/mask folder (see the module docstring for the layout).

    Items (:class:`ObjectRef`) are objects: one per image (the union mask) for binary
    sets, one per instance with area >= ``min_area`` px for sets with ``labels/``
    (``use_labels=False`` treats such a set as binary). ``split`` picks ``<split>.txt``;
    ``split=None``, or a folder with neither ``train.txt`` nor ``val.txt``, uses every
    image that has a mask (pairs matched by file stem). ``images`` lists the image ids
    (used by :class:`NativePatches`). Decoded files are kept in a small per-process LRU
    cache of ``cache_size`` entries.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "train",
        *,
        min_area: int = 64,
        use_labels: bool = True,
        cache_size: int = 16,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"root is not a directory: {self.root}")
        images = _stem_map(self.root / "images")
        if not images:
            raise FileNotFoundError(f"no images found in {self.root / 'images'}")
        masks = _stem_map(self.root / "masks")
        labels = _stem_map(self.root / "labels") if use_labels else {}
        self.has_labels = bool(labels)
        if not masks and not labels:
            raise FileNotFoundError(f"no masks found in {self.root / 'masks'}")

        has_splits = any((self.root / f"{s}.txt").is_file() for s in ("train", "val"))
        if split is not None and has_splits:
            split_file = self.root / f"{split}.txt"
            if not split_file.is_file():
                raise FileNotFoundError(f"split file for split={split!r} not found: {split_file}")
            ids = [ln.strip() for ln in split_file.read_text().splitlines() if ln.strip()]
            gt = labels if self.has_labels else masks
            missing = [i for i in ids if i not in images or i not in gt]
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} id(s) of {split_file.name} lack an image or mask, e.g. {missing[0]!r}"
                )
            self.split = split
        else:
            gt = labels if self.has_labels else masks
            ids = sorted(set(images) & set(gt))
            if not ids:
                raise FileNotFoundError(f"no image/mask pairs with matching stems in {self.root}")
            self.split = None
        self.images: list[str] = ids
        self._image_paths = {i: images[i] for i in ids}
        self._mask_paths = {i: masks[i] for i in ids if i in masks}
        self._label_paths = {i: labels[i] for i in ids if i in labels}
        self._cache = _LRU(cache_size)

        items: list[ObjectRef] = []
        if self.has_labels:
            for i in ids:
                for lab, area, box in _instance_boxes(self._labels(i), int(min_area)):
                    items.append(ObjectRef(i, lab, box, area))
        else:
            items = [ObjectRef(i) for i in ids]
        self.items = items

    def __repr__(self) -> str:
        kind = "instances" if self.has_labels else "images"
        return f"PairFolder({str(self.root)!r}, split={self.split!r}: {len(self.images)} images, {len(self)} {kind})"

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    # -- loading (cached)
    def image(self, image_id: str) -> np.ndarray:
        """The (H, W, 3) uint8 RGB image (cached; do not modify).

        Scaled to 8 bits by :func:`~napari_segrefiner.imaging.as_rgb_uint8`, the function
        inference uses, so a 16-bit micrograph is seen the same in training and use.
        """
        p = self._image_paths[image_id]
        return self._cache.get(("image", p), lambda: as_rgb_uint8(read_image(p), name=str(p)))

    def _labels(self, image_id: str) -> np.ndarray:
        p = self._label_paths[image_id]
        return self._cache.get(("labels", p), lambda: read_labels(p))

    def mask(self, image_id: str) -> np.ndarray:
        """The union foreground of an image as bool (cached; do not modify)."""
        if image_id in self._mask_paths:
            p = self._mask_paths[image_id]
            return self._cache.get(("mask", p), lambda: np.asarray(read_mask(p)) != 0)
        return self._labels(image_id) > 0

    def load(self, ref: ObjectRef | int) -> tuple[np.ndarray, np.ndarray]:
        """(image (H, W, 3) uint8 RGB, fine mask (H, W) bool) of one object.

        The mask is a new array for instances (that instance only) and the cached union
        mask for binary items: treat both as read-only.
        """
        if not isinstance(ref, ObjectRef):
            ref = self.items[ref]
        image = self.image(ref.image_id)
        if ref.label is None:
            fine = self.mask(ref.image_id)
        else:
            fine = self._labels(ref.image_id) == ref.label
        if fine.shape != image.shape[:2]:
            raise ValueError(
                f"image and mask sizes differ for {ref.image_id!r}: {image.shape[:2]} vs {fine.shape}"
            )
        return image, fine


# ----------------------------------------------------------------------------- datasets


def _as_folders(folders) -> list[PairFolder]:
    if isinstance(folders, (PairFolder, str, os.PathLike)):
        folders = [folders]
    out = []
    for f in folders:
        out.append(f if isinstance(f, PairFolder) else PairFolder(f, split="train"))
    if not out:
        raise ValueError("folders must name at least one folder")
    return out


def _check_range(value, name):
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


def _color_jitter(img: np.ndarray, rng: np.random.Generator, rng_range) -> np.ndarray:
    """Brightness, contrast and saturation factors, each ~ U(range), in that order."""
    lo, hi = rng_range
    b, c, s = rng.uniform(lo, hi, size=3)
    f = img.astype(np.float32) * b
    gray = f @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    f = (f - gray.mean()) * c + gray.mean()
    gray = (f @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    f = (f - gray) * s + gray
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


class _Base(Dataset):
    def __init__(
        self,
        folders,
        *,
        size: int,
        rng_seed: int,
        coarse_kind: str,
        hflip: bool,
        color_jitter,
        epoch_length: int | None,
        folder_weights,
        coarse_options: dict | None,
    ):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
            raise ValueError(f"size must be an integer >= 8, got {size!r}")
        if coarse_kind not in COARSE_KINDS:
            raise ValueError(f"coarse_kind must be one of {COARSE_KINDS}, got {coarse_kind!r}")
        if epoch_length is not None and (
            isinstance(epoch_length, bool) or not isinstance(epoch_length, (int, np.integer)) or epoch_length < 1
        ):
            raise ValueError(f"epoch_length must be a positive integer or None, got {epoch_length!r}")
        self.folders = _as_folders(folders)
        self.size = int(size)
        self.rng_seed = int(rng_seed)
        self.coarse_kind = coarse_kind
        self.coarse_options = dict(coarse_options or {})
        self.hflip = bool(hflip)
        self.color_jitter = _check_range(color_jitter, "color_jitter")
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
        """Select the epoch whose random draws the items use."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.epoch_length if self.epoch_length is not None else int(self._offsets[-1])

    def locate(self, index: int, rng: np.random.Generator | None = None) -> tuple[int, int]:
        """(folder number, item number) of dataset item ``index`` in the current epoch.

        Without ``epoch_length`` the folders are concatenated; with it, each index draws a
        folder by ``folder_weights`` (default: equally likely) and an item uniformly.
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

    def _coarse(self, fine: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return make_coarse(fine, rng=rng, kind=self.coarse_kind, **self.coarse_options)

    def _finish(self, image, fine, coarse, rng) -> dict[str, torch.Tensor]:
        s = self.size
        if image.shape[:2] != (s, s):
            image = cv2.resize(image, (s, s), interpolation=cv2.INTER_LINEAR)
            fine = cv2.resize(fine.astype(np.uint8), (s, s), interpolation=cv2.INTER_NEAREST)
            coarse = cv2.resize(coarse.astype(np.uint8), (s, s), interpolation=cv2.INTER_NEAREST)
        flip = self.hflip and rng.random() < 0.5
        if flip:
            image, fine, coarse = image[:, ::-1], fine[:, ::-1], coarse[:, ::-1]
        if self.color_jitter is not None:
            image = _color_jitter(image, rng, self.color_jitter)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "fine": torch.from_numpy(np.ascontiguousarray(fine, dtype=np.float32)[None]),
            "coarse": torch.from_numpy(np.ascontiguousarray(coarse, dtype=np.float32)[None]),
        }


class ObjectCrops(_Base):
    """LR-SegRefiner object crops (SegRefiner's LoadObjectData recipe, plus mild jitter).

    Per item: take the object's box (y0, y1, x0, x1); per axis the crop side is
    ``min(max(b + pad, min(context * max(bh, bw), context_cap)) * s, image side)`` with
    ``b`` the box side on that axis and ``s`` ~ U(scale_jitter) (never below ``b``):
    ``b + pad`` is the official recipe (the object plus up to ``pad`` px jitter), and
    small objects such as nuclei get at least ``context`` times their size, up to
    ``context_cap`` px, so the network sees their surroundings. The crop offset is drawn
    uniformly among the positions that keep the whole object inside the crop and the
    crop inside the image. The coarse mask is synthesised (``make_coarse`` of kind
    ``coarse_kind``) from the native-resolution GT crop; then image (bilinear) and both
    masks (nearest) are resized to ``size`` x ``size`` ignoring the aspect ratio,
    flipped horizontally with p = 0.5 if ``hflip``, and the image gets brightness,
    contrast and saturation factors ~ U(color_jitter) (a float j means (1-j, 1+j)).
    ``coarse_at="resized"`` synthesises the coarse mask on the resized ``size`` x
    ``size`` GT instead (not the official order; for tiny objects such as nuclei the
    native-resolution synthesis is much harsher: the coarse polygon of a 40-pixel
    contour has 3 vertices).
    Objects of label images are single instances (other instances are background).
    An image whose mask is empty gives a whole-image crop with empty masks.
    """

    def __init__(
        self,
        folders,
        *,
        size: int = 256,
        rng_seed: int = 0,
        coarse_kind: str = "mixed",
        hflip: bool = True,
        scale_jitter=(0.9, 1.2),
        color_jitter=0.1,
        pad: int = 40,
        context: float = 3.0,
        context_cap: int = 128,
        epoch_length: int | None = None,
        folder_weights=None,
        coarse_options: dict | None = None,
        coarse_at: str = "native",
    ):
        if coarse_at not in ("native", "resized"):
            raise ValueError(f"coarse_at must be 'native' or 'resized', got {coarse_at!r}")
        self.coarse_at = coarse_at
        if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
            raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
        self.pad = int(pad)
        self.context = float(context)
        self.context_cap = int(context_cap)
        self.scale_jitter = _check_range(scale_jitter, "scale_jitter")
        super().__init__(
            folders,
            size=size,
            rng_seed=rng_seed,
            coarse_kind=coarse_kind,
            hflip=hflip,
            color_jitter=color_jitter,
            epoch_length=epoch_length,
            folder_weights=folder_weights,
            coarse_options=coarse_options,
        )

    def _count(self, folder: PairFolder) -> int:
        return len(folder)

    def crop_box(self, bbox, shape, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """The crop (y0, y1, x0, x1) for an object box in an image of ``shape``."""
        y0, y1, x0, x1 = bbox
        big = max(y1 - y0, x1 - x0)
        s = 1.0 if self.scale_jitter is None else float(rng.uniform(*self.scale_jitter))
        out = []
        for lo, hi, n in ((y0, y1, shape[0]), (x0, x1, shape[1])):
            b = hi - lo
            side = max(b + self.pad, min(self.context * big, self.context_cap))
            side = int(round(side * s))
            side = min(max(side, b), n)
            start = int(rng.integers(max(0, hi - side), min(lo, n - side) + 1))
            out += [start, start + side]
        return out[0], out[1], out[2], out[3]

    def _sample(self, folder: PairFolder, j: int, rng: np.random.Generator):
        ref = folder[j]
        image, fine = folder.load(ref)
        bbox = ref.bbox if ref.bbox is not None else mask_bbox(fine)
        if bbox is None:
            h, w = fine.shape
            return image, np.zeros((h, w), bool), np.zeros((h, w), bool)
        cy0, cy1, cx0, cx1 = self.crop_box(bbox, fine.shape, rng)
        img = image[cy0:cy1, cx0:cx1]
        gt = fine[cy0:cy1, cx0:cx1]
        if self.coarse_at == "resized":
            s = self.size
            img = cv2.resize(img, (s, s), interpolation=cv2.INTER_LINEAR)
            gt = cv2.resize(gt.view(np.uint8), (s, s), interpolation=cv2.INTER_NEAREST).view(bool)
        coarse = self._coarse(gt, rng)
        return img, gt, coarse


class NativePatches(_Base):
    """HR-SegRefiner patches (SegRefiner's LoadPatchData patch recipe).

    Per item (one per image; the union mask, also for label sets): a random window of
    ``size`` x ``size`` native pixels (for images smaller than ``size`` a window of half
    the shorter side, later resized to ``size``, as in the official code), re-drawn up
    to ``max_tries`` times until the GT inside holds both foreground and background;
    if that fails the window is centred on a random boundary pixel (if there is one).
    The coarse mask is ``make_coarse`` of the GT patch (the official code also uses
    crops of pre-computed whole-image coarse masks half of the time). Then flip and
    colour jitter as in :class:`ObjectCrops`.
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
        max_tries: int = 20,
        epoch_length: int | None = None,
        folder_weights=None,
        coarse_options: dict | None = None,
    ):
        self.max_tries = int(max_tries)
        super().__init__(
            folders,
            size=size,
            rng_seed=rng_seed,
            coarse_kind=coarse_kind,
            hflip=hflip,
            color_jitter=color_jitter,
            epoch_length=epoch_length,
            folder_weights=folder_weights,
            coarse_options=coarse_options,
        )

    def _count(self, folder: PairFolder) -> int:
        return len(folder.images)

    def window(self, mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """A (y0, y1, x0, x1) window of the mask with foreground and background if possible."""
        h, w = mask.shape
        win = self.size if min(h, w) >= self.size else max(1, min(h, w) // 2)
        for _ in range(max(1, self.max_tries)):
            y = int(rng.integers(h - win + 1))
            x = int(rng.integers(w - win + 1))
            n = int(np.count_nonzero(mask[y : y + win, x : x + win]))
            if 0 < n < win * win:
                return y, y + win, x, x + win
        # Fallback: centre on a random boundary pixel (foreground next to background).
        m8 = mask.astype(np.uint8)
        edge = cv2.dilate(m8, np.ones((3, 3), np.uint8)) != cv2.erode(m8, np.ones((3, 3), np.uint8))
        ys, xs = np.nonzero(edge)
        if ys.size:
            k = int(rng.integers(ys.size))
            y = min(max(int(ys[k]) - win // 2, 0), h - win)
            x = min(max(int(xs[k]) - win // 2, 0), w - win)
        return y, y + win, x, x + win

    def _sample(self, folder: PairFolder, j: int, rng: np.random.Generator):
        image_id = folder.images[j]
        image = folder.image(image_id)
        mask = folder.mask(image_id)
        y0, y1, x0, x1 = self.window(mask, rng)
        gt = mask[y0:y1, x0:x1]
        return image[y0:y1, x0:x1], gt, self._coarse(gt, rng)
