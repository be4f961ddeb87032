"""Classical mask refiners used as comparison baselines ("peers").

Only the benchmark imports this module; the refinement engine never does.

Every peer has the signature ``f(image, mask, *, seed=None) -> np.ndarray``:

* ``image`` -- ``(H, W, 3)`` ``uint8`` RGB image;
* ``mask`` -- ``(H, W)`` coarse mask (``bool``; integer masks are read as
  ``mask > 0``);
* ``seed`` -- optional integer for peers with a random component (GrabCut's
  GMM initialisation); ignored by the deterministic ones;
* returns a new ``(H, W)`` ``bool`` mask; the inputs are never modified.

The GrabCut and random-walker peers trust the coarse mask up to a *margin*:
pixels deeper than ``margin`` inside the mask are sure foreground, pixels
farther than ``margin`` outside are sure background, and only the band between
them is re-labelled. The default margin grows with the object
(``max(3, round(0.15 * equivalent diameter))``) and both peers work on the
bounding box of the band plus a margin of context, so their cost scales with
the object, not with the image.

``densecrf`` needs the optional ``pydensecrf2`` package (``pip install
napari-segrefiner[peers]``); when it is missing, ``densecrf`` is ``None`` and
:func:`available_peers` leaves it out.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["available_peers", "densecrf", "grabcut", "identity", "random_walker"]

try:  # the pydensecrf2 distribution installs the ``pydensecrf`` module
    import pydensecrf.densecrf as _dcrf
except ImportError:  # pragma: no cover - depends on the environment
    _dcrf = None


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _check_inputs(image, mask) -> tuple[np.ndarray, np.ndarray]:
    """Validate (image, mask); return read-only views (never mutated)."""
    img = np.asarray(image)
    msk = np.asarray(mask)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {img.shape}")
    if img.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got dtype {img.dtype}")
    if msk.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {msk.shape}")
    if msk.shape != img.shape[:2]:
        raise ValueError(f"mask shape {msk.shape} does not match image shape {img.shape[:2]}")
    if msk.dtype.kind not in "biu":
        raise TypeError(f"mask must be a bool or integer array, got dtype {msk.dtype}")
    if msk.dtype != bool:
        msk = msk > 0
    return img, msk


def _default_margin(mask: np.ndarray) -> int:
    """Trusted-band half width: 15% of the equivalent diameter, at least 3 px."""
    area = int(np.count_nonzero(mask))
    diameter = 2.0 * math.sqrt(area / math.pi)
    return max(3, int(round(0.15 * diameter)))


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _trimap(mask: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    """Sure-FG and sure-BG masks cropped to the band's bounding box plus context.

    Returns ``(sure_fg, sure_bg, crop)`` where the two masks are already cropped.
    The erosion treats the image border as outside (so a mask touching the
    border is not trusted there any more than elsewhere).
    """
    kernel = _disk(margin)
    m8 = mask.astype(np.uint8)
    eroded = cv2.erode(m8, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    dilated = cv2.dilate(m8, kernel).astype(bool)
    rows = np.flatnonzero(dilated.any(axis=1))
    cols = np.flatnonzero(dilated.any(axis=0))
    h, w = mask.shape
    r0, r1 = max(0, rows[0] - margin), min(h, rows[-1] + 1 + margin)
    c0, c1 = max(0, cols[0] - margin), min(w, cols[-1] + 1 + margin)
    crop = (slice(r0, r1), slice(c0, c1))
    return eroded[crop], ~dilated[crop], crop


def _resolve_margin(margin, mask: np.ndarray) -> int:
    if margin is None:
        return _default_margin(mask)
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 1:
        raise ValueError(f"margin must be a positive integer, got {margin!r}")
    return int(margin)


# --------------------------------------------------------------------------- #
# peers
# --------------------------------------------------------------------------- #
def identity(image, mask, *, seed=None) -> np.ndarray:
    """Return the coarse mask unchanged (the "no refinement" baseline).

    Parameters
    ----------
    image : numpy.ndarray, shape (H, W, 3), uint8
        RGB image (validated, otherwise unused).
    mask : numpy.ndarray, shape (H, W), bool
        Coarse mask.
    seed : int, optional
        Ignored.

    Returns
    -------
    numpy.ndarray, shape (H, W), bool
        A copy of `mask`.
    """
    _, msk = _check_inputs(image, mask)
    return msk.copy()


def grabcut(image, mask, *, seed=None, margin: int | None = None, iterations: int = 5) -> np.ndarray:
    """Refine a mask with OpenCV GrabCut initialised from the coarse mask.

    The mask is eroded by `margin` (sure foreground) and dilated by `margin`
    (outside is sure background); the band in between is probable foreground
    where the coarse mask is set and probable background elsewhere. GrabCut
    runs on the bounding box of the dilated mask plus `margin` of context.

    Parameters
    ----------
    image : numpy.ndarray, shape (H, W, 3), uint8
        RGB image.
    mask : numpy.ndarray, shape (H, W), bool
        Coarse mask.
    seed : int, optional
        Seeds OpenCV's RNG (``cv2.setRNGSeed``), which GrabCut uses to
        initialise its colour models, for reproducible results.
    margin : int, optional
        Half width in pixels of the band that may change; default
        ``max(3, round(0.15 * equivalent diameter of the mask))``.
    iterations : int, optional
        GrabCut iterations (default 5).

    Returns
    -------
    numpy.ndarray, shape (H, W), bool
        Refined mask. Pixels outside the crop are background. If the mask is
        empty, or GrabCut cannot run because a class has no samples (for
        example the dilated mask covers the whole image), a copy of the coarse
        mask is returned.
    """
    img, msk = _check_inputs(image, mask)
    if not msk.any():
        return msk.copy()
    m = _resolve_margin(margin, msk)
    sure_fg, sure_bg, crop = _trimap(msk, m)
    coarse = msk[crop]
    gc = np.where(coarse, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    gc[sure_fg] = cv2.GC_FGD
    gc[sure_bg] = cv2.GC_BGD
    # OpenCV expects BGR; the colour models do not care about channel order,
    # but keep the conventional layout. cvtColor returns a new array.
    bgr = cv2.cvtColor(np.ascontiguousarray(img[crop]), cv2.COLOR_RGB2BGR)
    if seed is not None:
        cv2.setRNGSeed(int(seed))
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(bgr, gc, None, bgd_model, fgd_model, int(iterations), cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return msk.copy()
    out = np.zeros_like(msk)
    out[crop] = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    return out


def random_walker(image, mask, *, seed=None, margin: int | None = None, beta: float = 130.0) -> np.ndarray:
    """Refine a mask with the random-walker segmentation of scikit-image.

    Seeds come from the coarse mask: label 1 (foreground) where the mask eroded
    by `margin` is set, label 2 (background) outside the mask dilated by
    `margin`; the band in between is solved for. The walker runs on the
    RGB image (scaled to [0, 1]) cropped to the band's bounding box plus
    `margin` of context, with the Jacobi-preconditioned conjugate-gradient
    solver (``mode="cg_j"``, no extra dependency).

    Parameters
    ----------
    image : numpy.ndarray, shape (H, W, 3), uint8
        RGB image.
    mask : numpy.ndarray, shape (H, W), bool
        Coarse mask.
    seed : int, optional
        Ignored (the random walker is deterministic).
    margin : int, optional
        Half width in pixels of the band that may change; default
        ``max(3, round(0.15 * equivalent diameter of the mask))``.
    beta : float, optional
        Edge-weight penalty of the random walker (default 130).

    Returns
    -------
    numpy.ndarray, shape (H, W), bool
        Refined mask. If the mask is empty, or there are no foreground or no
        background seeds (object thinner than ``2 * margin`` or filling the
        crop), a copy of the coarse mask is returned.
    """
    from skimage.segmentation import random_walker as _skimage_random_walker

    img, msk = _check_inputs(image, mask)
    if not msk.any():
        return msk.copy()
    m = _resolve_margin(margin, msk)
    sure_fg, sure_bg, crop = _trimap(msk, m)
    if not sure_fg.any() or not sure_bg.any():
        return msk.copy()
    labels = np.zeros(sure_fg.shape, dtype=np.int32)
    labels[sure_fg] = 1
    labels[sure_bg] = 2
    data = img[crop].astype(np.float64) / 255.0
    with warnings.catch_warnings():
        # skimage warns when the band is tiny or already fully determined
        warnings.simplefilter("ignore", UserWarning)
        result = _skimage_random_walker(data, labels, beta=float(beta), mode="cg_j", channel_axis=-1)
    out = np.zeros_like(msk)
    out[crop] = result == 1
    return out


def densecrf(
    image,
    mask,
    *,
    seed=None,
    confidence: float = 0.9,
    iterations: int = 5,
) -> np.ndarray:
    """Refine a mask with a fully connected CRF (Kraehenbuehl & Koltun 2011).

    The unary term is ``-log p`` with ``p = confidence`` for the coarse label
    and ``1 - confidence`` for the other; the pairwise terms are a Gaussian
    smoothness kernel (``sxy=3, compat=3``) and a bilateral appearance kernel
    (``sxy=80, srgb=13, compat=10``), the usual DeepLab settings. Mean-field
    inference runs for `iterations` steps on the whole image.

    Parameters
    ----------
    image : numpy.ndarray, shape (H, W, 3), uint8
        RGB image.
    mask : numpy.ndarray, shape (H, W), bool
        Coarse mask.
    seed : int, optional
        Ignored (inference is deterministic).
    confidence : float, optional
        Probability given to the coarse label in the unary term (default 0.9).
    iterations : int, optional
        Mean-field iterations (default 5).

    Returns
    -------
    numpy.ndarray, shape (H, W), bool
        Refined mask.
    """
    img, msk = _check_inputs(image, mask)
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence!r}")
    h, w = msk.shape
    prob_fg = np.where(msk, confidence, 1.0 - confidence).astype(np.float32).ravel()
    unary = -np.log(np.stack([1.0 - prob_fg, prob_fg]))  # label 0 = bg, 1 = fg
    crf = _dcrf.DenseCRF2D(w, h, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=3, compat=3)
    crf.addPairwiseBilateral(sxy=80, srgb=13, rgbim=np.ascontiguousarray(img), compat=10)
    q = np.asarray(crf.inference(int(iterations)), dtype=np.float32).reshape(2, h, w)
    return q[1] > q[0]


if _dcrf is None:  # pragma: no cover - depends on the environment
    densecrf = None  # type: ignore[assignment]


def available_peers() -> dict[str, Callable]:
    """Peers that can run in this environment.

    Returns
    -------
    dict of str to callable
        ``{"identity": identity, "grabcut": grabcut, "random_walker":
        random_walker}`` plus ``"densecrf"`` when ``pydensecrf2`` is installed.
        Each value has the signature ``f(image, mask, *, seed=None)``.
    """
    peers: dict[str, Callable] = {
        "identity": identity,
        "grabcut": grabcut,
        "random_walker": random_walker,
    }
    if densecrf is not None:
        peers["densecrf"] = densecrf
    return peers
