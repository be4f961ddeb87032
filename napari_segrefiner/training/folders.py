"""Image/mask folders as sequences of objects (the training and benchmark data layer).

Folder layout (as the sets under ``../shared/data/<set>``)::

    root/images/<id>.<png|jpg|...>   RGB or gray image
    root/masks/<id>.png              binary foreground (0 / non-zero)
    root/labels/<id>.png             optional instance labels (0 = background)
    root/train.txt, root/val.txt     optional split files, one id per line

:class:`PairFolder` indexes such a folder as objects (:class:`ObjectRef`: one per image
for binary sets, one per instance for label sets) and loads them through a small
per-process cache; the datasets of :mod:`.data` sample from it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.files import IMAGE_EXTENSIONS, read_image, read_labels, read_mask
from ..io.images import as_rgb_uint8

__all__ = ["ObjectRef", "PairFolder"]


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


def _select_ids(root: Path, split: str | None, images: dict, gt: dict) -> tuple[list[str], str | None]:
    """The image ids of ``split`` (from ``<split>.txt``) or of every pair; and the split used."""
    has_splits = any((root / f"{s}.txt").is_file() for s in ("train", "val"))
    if split is not None and has_splits:
        split_file = root / f"{split}.txt"
        if not split_file.is_file():
            raise FileNotFoundError(f"split file for split={split!r} not found: {split_file}")
        ids = [ln.strip() for ln in split_file.read_text().splitlines() if ln.strip()]
        missing = [i for i in ids if i not in images or i not in gt]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} id(s) of {split_file.name} lack an image or mask, e.g. {missing[0]!r}"
            )
        return ids, split
    ids = sorted(set(images) & set(gt))
    if not ids:
        raise FileNotFoundError(f"no image/mask pairs with matching stems in {root}")
    return ids, None


class PairFolder(Sequence):
    """Objects of an image/mask folder (see the module docstring for the layout).

    Items (:class:`ObjectRef`) are objects: one per image (the union mask) for binary
    sets, one per instance with area >= ``min_area`` px for sets with ``labels/``.
    Decoded files are kept in a small per-process LRU cache.

    Parameters
    ----------
    root : str or os.PathLike
        The folder.
    split : str or None, optional
        Picks ``<split>.txt``; ``None``, or a folder with neither ``train.txt`` nor
        ``val.txt``, uses every image that has a mask (pairs matched by file stem).
    min_area : int, optional
        Smallest instance area in pixels (label sets only).
    use_labels : bool, optional
        ``False`` treats a set with ``labels/`` as binary.
    cache_size : int, optional
        Entries of the decoded-file cache.

    Attributes
    ----------
    images : list of str
        The image ids (used by :class:`~napari_segrefiner.training.data.NativePatches`).
    items : list of ObjectRef
        The objects, in order.
    has_labels : bool
        Whether objects are instances of ``labels/``.
    split : str or None
        The split file used, if any.
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
        ids, self.split = _select_ids(self.root, split, images, labels if self.has_labels else masks)
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
        """The RGB image of one image id (cached; do not modify).

        Scaled to 8 bits by :func:`~napari_segrefiner.io.images.as_rgb_uint8`, the function
        inference uses, so a 16-bit micrograph is seen the same in training and use.

        Parameters
        ----------
        image_id : str
            One of :attr:`images`.

        Returns
        -------
        numpy.ndarray
            (H, W, 3) uint8 RGB.
        """
        p = self._image_paths[image_id]
        return self._cache.get(("image", p), lambda: as_rgb_uint8(read_image(p), name=str(p)))

    def _labels(self, image_id: str) -> np.ndarray:
        p = self._label_paths[image_id]
        return self._cache.get(("labels", p), lambda: read_labels(p))

    def mask(self, image_id: str) -> np.ndarray:
        """The union foreground of one image id (cached; do not modify).

        Parameters
        ----------
        image_id : str
            One of :attr:`images`.

        Returns
        -------
        numpy.ndarray
            (H, W) bool: ``masks/<id>``, or every instance of ``labels/<id>``.
        """
        if image_id in self._mask_paths:
            p = self._mask_paths[image_id]
            return self._cache.get(("mask", p), lambda: np.asarray(read_mask(p)) != 0)
        return self._labels(image_id) > 0

    def load(self, ref: ObjectRef | int) -> tuple[np.ndarray, np.ndarray]:
        """The image and ground-truth mask of one object.

        Parameters
        ----------
        ref : ObjectRef or int
            An item, or its index.

        Returns
        -------
        image : numpy.ndarray
            (H, W, 3) uint8 RGB.
        fine : numpy.ndarray
            (H, W) bool: a new array for instances (that instance only), the cached union
            mask for binary items. Treat both as read-only.
        """
        if not isinstance(ref, ObjectRef):
            ref = self.items[ref]
        image = self.image(ref.image_id)
        if ref.label is None:
            fine = self.mask(ref.image_id)
        else:
            fine = self._labels(ref.image_id) == ref.label
        if fine.shape != image.shape[:2]:
            raise ValueError(f"image and mask sizes differ for {ref.image_id!r}: {image.shape[:2]} vs {fine.shape}")
        return image, fine


def as_folders(folders) -> list[PairFolder]:
    """A list of PairFolder from one folder or path, or a sequence of them (train split)."""
    if isinstance(folders, (PairFolder, str, os.PathLike)):
        folders = [folders]
    out = []
    for f in folders:
        out.append(f if isinstance(f, PairFolder) else PairFolder(f, split="train"))
    if not out:
        raise ValueError("folders must name at least one folder")
    return out
