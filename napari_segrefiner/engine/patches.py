"""Geometry of the pipelines: boxes grown for context, crop-and-resize, paste-back, HR patch selection.

Tight boxes of masks and labels come from :mod:`napari_segrefiner.io.masks`."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..io.masks import Box

__all__ = ["Box", "crop_resize", "grow_box", "nms_same_size", "paste", "select_patches"]


def grow_box(box: Box, min_side: int, shape: tuple[int, int]) -> Box:
    """Grow ``box`` symmetrically so each side is at least ``min_side`` (clamped to ``shape``).

    Small objects then keep some context around them, as the shipped model saw in training.
    """
    out = []
    for lo, hi, n in ((box[0], box[1], shape[0]), (box[2], box[3], shape[1])):
        side = min(max(hi - lo, int(min_side)), n)
        start = min(max((lo + hi - side) // 2, 0), n - side)
        out += [start, start + side]
    return out[0], out[1], out[2], out[3]


def crop_resize(tensor: torch.Tensor, box: Box, size: int, *, mode: str = "bilinear") -> torch.Tensor:
    """Crop ``tensor`` (1, C, H, W) to ``box`` and resize to ``size`` x ``size``.

    Bilinear uses ``align_corners=False`` and no antialiasing, as the official pipeline.
    """
    y0, y1, x0, x1 = box
    crop = tensor[:, :, y0:y1, x0:x1].float()
    if mode == "nearest":
        return F.interpolate(crop, size=(size, size), mode="nearest")
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)


def paste(values: torch.Tensor, box: Box) -> torch.Tensor:
    """Resize a (S, S) map onto its box: returns a (y1 - y0, x1 - x0) tensor.

    Bilinear with ``align_corners=False`` and pixel centres at +0.5, which equals the
    official ``grid_sample`` paste everywhere inside the box.
    """
    y0, y1, x0, x1 = box
    return F.interpolate(values[None, None].float(), size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)[
        0, 0
    ]


def nms_same_size(corners: np.ndarray, scores: np.ndarray, size: int, iou_thr: float) -> np.ndarray:
    """Greedy non-maximum suppression for square boxes of one side length.

    Parameters
    ----------
    corners : ndarray of shape (N, 2)
        Top-left (y, x) of each box.
    scores : ndarray of shape (N,)
        Higher first.
    size : int
        Box side.
    iou_thr : float
        A box overlapping a kept one by IoU > ``iou_thr`` is dropped.

    Returns
    -------
    ndarray of int
        Indices of the kept boxes, best first.
    """
    order = np.argsort(-scores, kind="stable")
    corners = corners[order].astype(np.int64)
    alive = np.ones(len(order), dtype=bool)
    keep = []
    area = float(size * size)
    for i in range(len(order)):
        if not alive[i]:
            continue
        keep.append(order[i])
        dy = np.clip(size - np.abs(corners[:, 0] - corners[i, 0]), 0, None)
        dx = np.clip(size - np.abs(corners[:, 1] - corners[i, 1]), 0, None)
        inter = (dy * dx).astype(np.float64)
        iou = inter / (2 * area - inter)
        alive &= iou <= iou_thr
    return np.asarray(keep, dtype=np.int64)


def select_patches(
    fine_prob: np.ndarray,
    shape: tuple[int, int],
    *,
    patch: int = 256,
    thr_ratio: float = 0.9,
    iou_thr: float = 0.3,
) -> np.ndarray:
    """HR local-stage patches around low-confidence pixels of the global pass.

    Every pixel of the (s, s) map ``fine_prob`` below ``thr_ratio * max`` is a candidate
    centre; it is scaled to the image (truncating), a ``patch`` x ``patch`` box is centred
    there and shifted inside the image, scored ``1 - F``, and boxes are thinned by NMS.

    Returns
    -------
    ndarray of shape (K, 2)
        Top-left (y, x) corners of the kept boxes, least confident first.
    """
    h, w = shape
    if h < patch or w < patch:
        raise ValueError(f"image {shape} is smaller than the patch size {patch}")
    s_h, s_w = fine_prob.shape
    ys, xs = np.nonzero(fine_prob < thr_ratio * fine_prob.max())
    if ys.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    cy = (ys * (h / s_h)).astype(np.int64)
    cx = (xs * (w / s_w)).astype(np.int64)
    y0 = np.clip(cy - patch // 2, 0, h - patch)
    x0 = np.clip(cx - patch // 2, 0, w - patch)
    scores = 1.0 - fine_prob[ys, xs].astype(np.float64)
    # many centres give the same clamped box: keep the best score of each
    corners = np.stack([y0, x0], axis=1)
    uniq, inverse = np.unique(corners, axis=0, return_inverse=True)
    best = np.full(len(uniq), -np.inf)
    np.maximum.at(best, inverse.ravel(), scores)
    keep = nms_same_size(uniq, best, patch, iou_thr)
    return uniq[keep]
