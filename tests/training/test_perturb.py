"""Tests of napari_segrefiner.training.perturb (CascadePSP-style boundary degradation)."""

import cv2
import numpy as np
import pytest
from _mask_helpers import assert_input_not_mutated, blob, disk, iou, rng

from napari_segrefiner.training import synthesis
from napari_segrefiner.training._perturb_core import _KERNELS
from napari_segrefiner.training.perturb import fill_holes, modify_boundary, modify_boundary_filled, perturb_seg

# ------------------------------------------------------------------ perturb_seg exactness


def naive_perturb(mask, gen, iou_target, max_rounds=250):
    """Whole-image perturb_seg with the module's documented draw order (4 x 9 uniforms a round)."""
    seg = mask.astype(np.uint8)
    ref = seg.copy()
    h, w = seg.shape
    for _ in range(max_rounds):
        for a in gen.random((4, 9)):
            lx, ly = int(a[0] * w), int(a[1] * h)
            rx, ry = lx + 1 + int(a[2] * (w - lx)), ly + 1 + int(a[3] * (h - ly))
            if a[4] < 0.25:
                seg[(ly + ry) // 2, (lx + rx) // 2] = 1 if a[5] >= 0.5 else 0
            kernel = _KERNELS[int(a[7] * 7) * 4 + int(a[8] * 4)]
            op = cv2.dilate if a[6] < 0.5 else cv2.erode
            seg[ly:ry, lx:rx] = op(seg[ly:ry, lx:rx].copy(), kernel)
        i = np.count_nonzero(seg & ref)
        u = np.count_nonzero(seg | ref)
        if (i + 1e-6) / (u + 1e-6) < iou_target:
            break
    return seg.astype(bool)


@pytest.mark.parametrize("case", range(12))
def test_perturb_seg_equals_whole_image_algorithm(case):
    # The region-restricted implementation must reproduce the whole-image one exactly,
    # including blobs grown from far-away seed pixels (low targets run many rounds).
    g = rng(100 + case)
    h, w = (int(v) for v in g.integers(20, 140, 2))
    m = np.zeros((h, w), np.uint8)
    for _ in range(int(g.integers(1, 4))):
        cv2.circle(m, (int(g.integers(w)), int(g.integers(h))), int(g.integers(2, 25)), 1, -1)
    target = [0.8, 0.5, 0.02][case % 3]
    rounds = int(g.integers(5, 60))
    fast = perturb_seg(m, rng=rng(case), iou_target=target, max_rounds=rounds)
    slow = naive_perturb(m, rng(case), target, rounds)
    assert np.array_equal(fast, slow)


def test_perturb_seg_reaches_target_and_reference():
    m = blob()
    out = perturb_seg(m, rng=rng(1), iou_target=0.7)
    assert iou(out, m) < 0.7
    ref = np.zeros_like(m)
    ref[:10, :10] = True  # disjoint reference: IoU 0 after the first round
    out = perturb_seg(m, rng=rng(1), iou_target=0.5, reference=ref)
    assert out.dtype == bool and out.shape == m.shape


def test_kernels_are_the_four_shapes_of_sizes_3_to_9():
    # (s - 3) * 4 + shape: rect s x s, ellipse s x s, flat ellipse (w s, h s // 2), tall ellipse.
    assert len(_KERNELS) == 7 * 4
    for s in range(3, 10):
        rect, ellipse, flat, tall = _KERNELS[(s - 3) * 4 : (s - 2) * 4]
        assert rect.shape == (s, s) and rect.all()
        assert ellipse.shape == (s, s)
        assert flat.shape == (s // 2, s) and tall.shape == (s, s // 2)


# ------------------------------------------------------------------------ modify_boundary


def test_modify_boundary_deterministic_and_seed_dependent():
    m = blob()
    a = modify_boundary(m, rng=rng(7))
    b = modify_boundary(m, rng=rng(7))
    c = modify_boundary(m, rng=rng(8))
    assert a.dtype == bool and a.shape == m.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_modify_boundary_reaches_iou_target():
    m = blob()
    ious = [iou(modify_boundary(m, rng=rng(s)), m) for s in range(12)]
    # The target applies to the polygon mask, so the IoU to the GT scatters around it.
    assert all(0.3 < v < 0.9 for v in ious), ious
    assert np.mean(ious) < 0.82
    assert np.mean(ious) > 0.55
    lower = [iou(modify_boundary(m, rng=rng(s), iou_target=0.5), m) for s in range(6)]
    assert np.mean(lower) < 0.55


def test_modify_boundary_same_for_uint8_0_255_and_bool():
    m = blob()
    a = modify_boundary(m, rng=rng(3))
    b = modify_boundary(m.astype(np.uint8) * 255, rng=rng(3))
    c = modify_boundary(m.astype(np.float32), rng=rng(3))
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_fill_holes_and_filled_variant():
    ring = disk(100, 100, 50, 50, 40) & ~disk(100, 100, 50, 50, 22)
    filled = fill_holes(ring)
    assert np.array_equal(filled, disk(100, 100, 50, 50, 40) | ring)
    hole = disk(100, 100, 50, 50, 15)
    plain_cover = np.mean([modify_boundary(ring, rng=rng(s))[hole].mean() for s in range(6)])
    filled_cover = np.mean([modify_boundary_filled(ring, rng=rng(s))[hole].mean() for s in range(6)])
    assert plain_cover < 0.3  # the polygonised hole contour keeps a hole
    assert filled_cover > 0.7


def test_filled_variant_is_modify_boundary_of_the_filled_mask():
    ring = disk(100, 100, 50, 50, 40) & ~disk(100, 100, 50, 50, 22)
    solid = disk(100, 100, 50, 50, 40)  # the ring with its hole filled, drawn directly
    for s in range(3):
        a = modify_boundary_filled(ring, rng=rng(s), iou_target=0.6, sample_rate=0.2)
        b = modify_boundary(solid, rng=rng(s), iou_target=0.6, sample_rate=0.2)
        assert np.array_equal(a, b)
    with pytest.raises(TypeError):
        modify_boundary_filled(ring, rng=rng(), k=3)


def test_synthesis_reexports_the_perturb_functions():
    # Importers of napari_segrefiner.training.synthesis keep working.
    assert synthesis.modify_boundary is modify_boundary
    assert synthesis.modify_boundary_filled is modify_boundary_filled
    assert synthesis.perturb_seg is perturb_seg
    assert synthesis.fill_holes is fill_holes


@pytest.mark.parametrize(
    "fn",
    [
        lambda m: modify_boundary(m, rng=rng(2)),
        lambda m: modify_boundary_filled(m, rng=rng(2)),
        lambda m: perturb_seg(m, rng=rng(2)),
        lambda m: fill_holes(m),
    ],
)
@pytest.mark.parametrize("dtype", [bool, np.uint8])
def test_inputs_not_mutated(fn, dtype):
    assert_input_not_mutated(fn, dtype)


# ----------------------------------------------------------------------------- errors


def test_errors():
    m = blob(40, 50)
    with pytest.raises(ValueError, match="mask must be 2-D"):
        modify_boundary(np.zeros((4, 4, 3), bool), rng=rng())
    with pytest.raises(ValueError, match="mask must be binary"):
        modify_boundary(np.arange(12).reshape(3, 4), rng=rng())
    with pytest.raises(ValueError, match="must be non-empty"):
        fill_holes(np.zeros((0, 5), bool))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        modify_boundary(m, rng=0)
    with pytest.raises(ValueError, match="iou_target"):
        modify_boundary(m, rng=rng(), iou_target=0)
    with pytest.raises(ValueError, match="iou_target"):
        perturb_seg(m, rng=rng(), iou_target=1.5)
    with pytest.raises(ValueError, match="sample_rate"):
        modify_boundary(m, rng=rng(), sample_rate=0.0)
    with pytest.raises(ValueError, match="reference must have"):
        perturb_seg(m, rng=rng(), reference=np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="max_rounds"):
        perturb_seg(m, rng=rng(), max_rounds=-1)
