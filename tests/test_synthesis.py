"""Tests of napari_segrefiner.training.synthesis (coarse-mask synthesis)."""

import cv2
import numpy as np
import pytest

from napari_segrefiner.training import synthesis as syn
from napari_segrefiner.training.synthesis import (
    MIXED_PROBABILITIES,
    dilate_erode,
    fill_holes,
    lowres_mask,
    make_coarse,
    modify_boundary,
    modify_boundary_filled,
    perturb_seg,
)

KINDS = ("cascadepsp", "filled", "lowres", "dilate", "erode", "mixed")


def rng(seed=0):
    return np.random.default_rng(seed)


def iou(a, b):
    u = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / u if u else 1.0


def blob(h=160, w=200):
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (w // 2, h // 2), (w // 3, h // 4), 25, 0, 360, 1, -1)
    cv2.circle(m, (w // 2 + w // 4, h // 2 - h // 5), h // 8, 1, -1)
    return m.astype(bool)


def disk(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def square(n=40, y=15, x=15, side=10):
    m = np.zeros((n, n), bool)
    m[y : y + side, x : x + side] = True
    return m


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
            kernel = syn._KERNELS[int(a[7] * 7) * 4 + int(a[8] * 4)]
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


# ------------------------------------------------------------------ lowres / dilate_erode


def test_lowres_on_disk():
    d = disk(200, 200, 90, 110, 60)
    a = lowres_mask(d, size=28)
    assert a.dtype == bool and iou(a, d) > 0.9
    assert np.array_equal(a, lowres_mask(d, size=28, rng=rng(5)))  # deterministic, rng ignored
    coarse = lowres_mask(d, factor=16)  # 121 px box -> 8 x 8
    assert 0.8 < iou(coarse, d) < iou(a, d)
    ys, xs = np.nonzero(a)
    dy, dx = np.nonzero(d)
    assert ys.min() >= dy.min() and ys.max() <= dy.max() and xs.min() >= dx.min() and xs.max() <= dx.max()


def test_dilate_erode_square_hand_counted():
    sq = square()
    # radius 1 disk = 3x3 cross: the square grows by one row/column on each side, no corners.
    assert dilate_erode(sq, k=1).sum() == 100 + 4 * 10
    assert dilate_erode(sq, k=-1).sum() == 8 * 8
    # radius 2 disk = 13 px (dy^2 + dx^2 <= 4): two rows/columns per side plus one pixel
    # at each corner (offset (1, 1)).
    assert dilate_erode(sq, k=2).sum() == 100 + 4 * 20 + 4
    assert dilate_erode(sq, k=-2).sum() == 6 * 6
    assert np.array_equal(dilate_erode(sq, k=0), sq)
    assert dilate_erode(sq, k=-5).sum() == 0


def test_make_coarse_dilate_erode_kinds():
    sq = square()
    assert make_coarse(sq, rng=rng(), kind="dilate", k=1).sum() == 140
    assert make_coarse(sq, rng=rng(), kind="erode", k=1).sum() == 64
    grown = make_coarse(sq, rng=rng(), kind="dilate")  # k drawn from 1..6
    assert grown.sum() > 100 and (grown & sq).sum() == 100


# --------------------------------------------------------------------------- make_coarse


def test_mixed_probabilities():
    assert set(MIXED_PROBABILITIES) == {"cascadepsp", "filled", "lowres", "dilate", "erode"}
    assert abs(sum(MIXED_PROBABILITIES.values()) - 1.0) < 1e-9
    assert max(MIXED_PROBABILITIES, key=MIXED_PROBABILITIES.get) == "cascadepsp"


@pytest.mark.parametrize("kind", KINDS)
def test_make_coarse_deterministic(kind):
    m = blob(100, 120)
    outs = [make_coarse(m, rng=rng(s), kind=kind) for s in (11, 11)]
    assert np.array_equal(outs[0], outs[1])
    assert outs[0].dtype == bool and outs[0].shape == m.shape


def test_mixed_varies_with_seed():
    m = blob(100, 120)
    outs = {make_coarse(m, rng=rng(s), kind="mixed").tobytes() for s in range(8)}
    assert len(outs) > 4


@pytest.mark.parametrize("kind", KINDS)
def test_empty_full_tiny(kind):
    empty = np.zeros((30, 40), bool)
    out = make_coarse(empty, rng=rng(), kind=kind)
    assert out.dtype == bool and out.shape == empty.shape and not out.any()
    full = np.ones((30, 40), bool)
    out = make_coarse(full, rng=rng(), kind=kind)
    assert out.all() and out is not full
    tiny = np.zeros((30, 40), bool)
    tiny[10, 10:13] = True
    for s in range(5):
        out = make_coarse(tiny, rng=rng(s), kind=kind)
        assert out.dtype == bool and out.shape == tiny.shape
    corner = np.zeros((2, 2), bool)  # image too small to perturb
    corner[0, 0] = True
    assert make_coarse(corner, rng=rng(), kind=kind).shape == (2, 2)


@pytest.mark.parametrize(
    "fn",
    [
        lambda m: modify_boundary(m, rng=rng(2)),
        lambda m: modify_boundary_filled(m, rng=rng(2)),
        lambda m: perturb_seg(m, rng=rng(2)),
        lambda m: fill_holes(m),
        lambda m: lowres_mask(m, factor=6),
        lambda m: dilate_erode(m, k=-3),
        lambda m: make_coarse(m, rng=rng(2), kind="mixed"),
    ],
)
@pytest.mark.parametrize("dtype", [bool, np.uint8])
def test_inputs_not_mutated(fn, dtype):
    m = blob(80, 90).astype(dtype) * (1 if dtype is bool else 255)
    m = m.astype(dtype)
    before = m.copy()
    out = fn(m)
    assert np.array_equal(m, before)
    assert out is not m and not np.shares_memory(out, m)


# ----------------------------------------------------------------------------- errors


def test_errors():
    m = blob(40, 50)
    with pytest.raises(ValueError, match="mask must be a 2-D array"):
        modify_boundary(np.zeros((4, 4, 3), bool), rng=rng())
    with pytest.raises(ValueError, match="mask must be binary"):
        modify_boundary(np.arange(12).reshape(3, 4), rng=rng())
    with pytest.raises(ValueError, match="mask must be binary"):
        lowres_mask(-m.astype(int))
    with pytest.raises(ValueError, match="NaN"):
        dilate_erode(np.full((4, 4), np.nan), k=1)
    with pytest.raises(ValueError, match="must not be empty"):
        fill_holes(np.zeros((0, 5), bool))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        modify_boundary(m, rng=0)
    with pytest.raises(TypeError, match="rng"):
        make_coarse(m, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="iou_target"):
        modify_boundary(m, rng=rng(), iou_target=0)
    with pytest.raises(ValueError, match="iou_target"):
        perturb_seg(m, rng=rng(), iou_target=1.5)
    with pytest.raises(ValueError, match="sample_rate"):
        modify_boundary(m, rng=rng(), sample_rate=0.0)
    with pytest.raises(ValueError, match="reference must have"):
        perturb_seg(m, rng=rng(), reference=np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="either factor or size"):
        lowres_mask(m, factor=4, size=28)
    with pytest.raises(ValueError, match="factor"):
        lowres_mask(m, factor=0.5)
    with pytest.raises(ValueError, match="size"):
        lowres_mask(m, size=0)
    with pytest.raises(ValueError, match="k must be an integer"):
        dilate_erode(m, k=1.5)
    with pytest.raises(ValueError, match="kind must be one of"):
        make_coarse(m, rng=rng(), kind="blur")
    with pytest.raises(ValueError, match="unknown option"):
        make_coarse(m, rng=rng(), kind="cascadepsp", k=3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        make_coarse(m, rng=rng(), kind="erode", k=-2)
