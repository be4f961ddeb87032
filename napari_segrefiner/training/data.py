"""Training datasets: the two SegRefiner sampling recipes over image/mask folders.

The folders (layout, objects, caching) are :mod:`.folders`; :class:`PairFolder` and
:class:`ObjectRef` are re-exported here. Datasets (``torch.utils.data.Dataset``; every
item a dict of tensors ``image`` uint8 (3, S, S) RGB, not normalised; ``fine`` and
``coarse`` float32 (1, S, S) in {0, 1}):

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

from typing import Any

import cv2
import numpy as np

from ..io.files import IMAGE_EXTENSIONS
from ..io.masks import bounding_box
from ._dataset_base import DatasetBase, check_range
from .folders import ObjectRef, PairFolder

__all__ = [
    "IMAGE_EXTENSIONS",
    "NativePatches",
    "ObjectCrops",
    "ObjectRef",
    "PairFolder",
]


class ObjectCrops(DatasetBase):
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

    Parameters
    ----------
    folders : PairFolder, path, or sequence of them
        As for :class:`~napari_segrefiner.training._dataset_base._Base`.
    scale_jitter : (float, float), float or None, optional
        Range of the crop scale ``s`` (a float j means (1 - j, 1 + j); None: 1).
    pad : int, optional
        Context added to the box side, in pixels (>= 0).
    context, context_cap : float, int, optional
        Smallest crop side as a multiple of the box's longer side, and its cap in px.
    coarse_at : {"native", "resized"}, optional
        Where the coarse mask is synthesised.
    **common
        The options both recipes share (``size``, ``rng_seed``, ``coarse_kind``, ...):
        see :class:`~napari_segrefiner.training._dataset_base._Base`.
    """

    def __init__(
        self,
        folders,
        *,
        scale_jitter=(0.9, 1.2),
        pad: int = 40,
        context: float = 3.0,
        context_cap: int = 128,
        coarse_at: str = "native",
        **common: Any,
    ):
        if coarse_at not in ("native", "resized"):
            raise ValueError(f"coarse_at must be 'native' or 'resized', got {coarse_at!r}")
        self.coarse_at = coarse_at
        if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
            raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
        self.pad = int(pad)
        self.context = float(context)
        self.context_cap = int(context_cap)
        self.scale_jitter = check_range(scale_jitter, "scale_jitter")
        super().__init__(folders, **common)

    def _count(self, folder: PairFolder) -> int:
        return len(folder)

    def crop_box(self, bbox, shape, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """The crop for an object box (the rule of the class docstring).

        Parameters
        ----------
        bbox : (int, int, int, int)
            The object's half-open box (y0, y1, x0, x1).
        shape : (int, int)
            The image's (height, width).
        rng : numpy.random.Generator
            Draws the scale and the offset.

        Returns
        -------
        tuple of int
            The half-open crop (y0, y1, x0, x1): inside the image, holding the box.
        """
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
        bbox = ref.bbox if ref.bbox is not None else bounding_box(fine)
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


class NativePatches(DatasetBase):
    """HR-SegRefiner patches (SegRefiner's LoadPatchData patch recipe).

    Per item (one per image; the union mask, also for label sets): a random window of
    ``size`` x ``size`` native pixels (for images smaller than ``size`` a window of half
    the shorter side, later resized to ``size``, as in the official code), re-drawn up
    to ``max_tries`` times until the GT inside holds both foreground and background;
    if that fails the window is centred on a random boundary pixel (if there is one).
    The coarse mask is ``make_coarse`` of the GT patch (the official code also uses
    crops of pre-computed whole-image coarse masks half of the time). Then flip and
    colour jitter as in :class:`ObjectCrops`.

    Parameters
    ----------
    folders : PairFolder, path, or sequence of them
        As for :class:`~napari_segrefiner.training._dataset_base._Base`.
    max_tries : int, optional
        Random windows tried before the boundary fallback.
    **common
        The options both recipes share (``size``, ``rng_seed``, ``coarse_kind``, ...):
        see :class:`~napari_segrefiner.training._dataset_base._Base`.
    """

    def __init__(self, folders, *, max_tries: int = 20, **common: Any):
        self.max_tries = int(max_tries)
        super().__init__(folders, **common)

    def _count(self, folder: PairFolder) -> int:
        return len(folder.images)

    def window(self, mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """A window of the mask that holds foreground and background if possible.

        Parameters
        ----------
        mask : numpy.ndarray
            (H, W) bool union mask of the image.
        rng : numpy.random.Generator
            Draws the window positions.

        Returns
        -------
        tuple of int
            The half-open window (y0, y1, x0, x1), square, inside the image.
        """
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
