"""The rectangle dilate/erode engine behind :func:`.perturb.perturb_seg` (CascadePSP).

Works in place on uint8 0/1 images. The foreground is tracked as a few mutually distant
boxes so that each operation touches only the neighbourhood of the foreground, with
exactly the result of filtering whole rectangles (see :func:`_perturb_inplace`).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..io.masks import bounding_box

# perturb_seg's random structuring elements: size s ~ U{3..9}, shape one of four equally
# likely ones. Index = (s - 3) * 4 + shape.
_MIN_SE, _MAX_SE = 3, 9
_N_SIZES = _MAX_SE - _MIN_SE + 1


def _build_kernels() -> list[np.ndarray]:
    kernels = []
    for s in range(_MIN_SE, _MAX_SE + 1):
        # OpenCV sizes are (width, height).
        kernels.append(cv2.getStructuringElement(cv2.MORPH_RECT, (s, s)))
        kernels.append(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (s, s)))
        kernels.append(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (s, s // 2)))
        kernels.append(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (s // 2, s)))
    return kernels


_KERNELS = _build_kernels()
# Largest distance (per axis) one dilation/erosion can reach: 9 // 2.
_REACH = _MAX_SE // 2
# Two foreground regions closer than 2 * _REACH (Chebyshev) can interact through one
# operation; regions are tracked separately only when they are farther apart than this.
_SEPARATION = 2 * _REACH + 2


def _boxes_close(a: list[int], b: list[int]) -> bool:
    # Chebyshev gap between the nearest pixels of two half-open boxes <= _SEPARATION.
    return (
        b[0] - a[1] < _SEPARATION
        and a[0] - b[1] < _SEPARATION
        and b[2] - a[3] < _SEPARATION
        and a[2] - b[3] < _SEPARATION
    )


def _merge_boxes(boxes: list[list[int]]) -> list[list[int]]:
    changed = True
    while changed and len(boxes) > 1:
        changed = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if _boxes_close(a, b):
                    boxes[i] = [min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    changed = True
                    break
            if changed:
                break
    return boxes


def _perturb_inplace(
    seg: np.ndarray,
    ref_box: tuple[int, int, int, int] | None,
    ref_sub: np.ndarray | None,
    boxes: list[list[int]],
    rng: np.random.Generator,
    iou_target: float,
    max_rounds: int,
) -> None:
    """CascadePSP's perturb_seg on a uint8 0/1 image, modified in place.

    Algorithm (per round, 4 operations, at most ``max_rounds`` rounds): a rectangle with
    x0 ~ U{0..W-1}, x1 ~ U{x0+1..W} (same for y) over the WHOLE image; with probability
    0.25 its centre pixel is set to 0 or 1 (equally likely); then with probability 0.5 a
    dilation, else an erosion, of the rectangle's content only (the rectangle border is
    neutral) with a random structuring element. After each round stop once
    IoU(seg, reference) < iou_target, with IoU = (I + 1e-6) / (U + 1e-6).

    Speed: instead of filtering whole rectangles, the foreground is tracked as a few
    mutually distant boxes ("regions"; the object, and blobs grown from far seed pixels),
    and each operation is applied only to (rectangle) x (region expanded by the kernel
    reach). Pixels farther than the kernel reach from any foreground are background and
    stay background under both operations, and regions farther apart than twice the
    reach cannot interact, so this gives exactly the same result as filtering whole
    rectangles (tests compare against a whole-image implementation), at a cost that
    scales with the object, not with the image.
    """
    h, w = seg.shape
    ref_area = int(cv2.countNonZero(ref_sub)) if ref_sub is not None else 0
    kernels = _KERNELS
    reach = _REACH
    for _ in range(max_rounds):
        draws = rng.random((4, 9)).tolist()
        for a0, a1, a2, a3, a4, a5, a6, a7, a8 in draws:
            lx = int(a0 * w)
            ly = int(a1 * h)
            rx = lx + 1 + int(a2 * (w - lx))
            ry = ly + 1 + int(a3 * (h - ly))
            if a4 < 0.25:
                cy = (ly + ry) // 2
                cx = (lx + rx) // 2
                if a5 < 0.5:
                    seg[cy, cx] = 0  # outside every region this pixel is 0 already
                else:
                    seg[cy, cx] = 1
                    boxes.append([cy, cy + 1, cx, cx + 1])
                    boxes = _merge_boxes(boxes)
            dilate = a6 < 0.5
            kernel = kernels[min(int(a7 * _N_SIZES), _N_SIZES - 1) * 4 + min(int(a8 * 4), 3)]
            grown = False
            new_boxes = []
            for box in boxes:
                by0, by1, bx0, bx1 = box
                # No foreground of this region inside the rectangle: nothing can change.
                if ly >= by1 or ry <= by0 or lx >= bx1 or rx <= bx0:
                    new_boxes.append(box)
                    continue
                y0 = max(ly, by0 - reach)
                y1 = min(ry, by1 + reach)
                x0 = max(lx, bx0 - reach)
                x1 = min(rx, bx1 + reach)
                sub = seg[y0:y1, x0:x1]
                if dilate:
                    seg[y0:y1, x0:x1] = cv2.dilate(sub, kernel)
                    if y0 < by0 or y1 > by1 or x0 < bx0 or x1 > bx1:
                        box = [min(y0, by0), max(y1, by1), min(x0, bx0), max(x1, bx1)]
                        grown = True
                else:
                    seg[y0:y1, x0:x1] = cv2.erode(sub, kernel)
                new_boxes.append(box)
            boxes = _merge_boxes(new_boxes) if grown else new_boxes

        # Tighten the regions, drop empty ones, count the foreground, test the IoU.
        tight = []
        seg_area = 0
        for by0, by1, bx0, bx1 in boxes:
            sub = seg[by0:by1, bx0:bx1]
            n = int(cv2.countNonZero(sub))
            if n == 0:
                continue
            seg_area += n
            x, y, bw, bh = cv2.boundingRect(sub)
            tight.append([by0 + y, by0 + y + bh, bx0 + x, bx0 + x + bw])
        boxes = tight
        if ref_sub is not None:
            ry0, ry1, rx0, rx1 = ref_box
            inter = int(cv2.countNonZero(cv2.bitwise_and(seg[ry0:ry1, rx0:rx1], ref_sub)))
        else:
            inter = 0
        union = ref_area + seg_area - inter
        if (inter + 1e-6) / (union + 1e-6) < iou_target:
            break


def perturb_core(
    seg: np.ndarray,
    reference: np.ndarray,
    rng: np.random.Generator,
    iou_target: float,
    max_rounds: int,
    window: tuple[int, int, int, int] | None = None,
) -> None:
    """Run perturb_seg on the uint8 0/1 ``seg`` in place against uint8 0/1 ``reference``.

    ``window`` optionally bounds both foregrounds (saves whole-image scans).
    """
    h, w = seg.shape
    if h <= 2 or w <= 2:  # as in CascadePSP: too small to perturb
        return
    wy0, wy1, wx0, wx1 = window if window is not None else (0, h, 0, w)

    def box_in_window(a: np.ndarray) -> tuple[int, int, int, int] | None:
        b = bounding_box(a[wy0:wy1, wx0:wx1])
        return None if b is None else (b[0] + wy0, b[1] + wy0, b[2] + wx0, b[3] + wx0)

    seg_box = box_in_window(seg)
    boxes = [] if seg_box is None else [list(seg_box)]
    ref_box = box_in_window(reference)
    ref_sub = None
    if ref_box is not None:
        ref_sub = np.ascontiguousarray(reference[ref_box[0] : ref_box[1], ref_box[2] : ref_box[3]])
    _perturb_inplace(seg, ref_box, ref_sub, boxes, rng, iou_target, max_rounds)
