"""Tests for napari_segrefiner.evaluation.metrics.

Every expected value is derived by hand in the comment next to it.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_segrefiner.evaluation import metrics
from napari_segrefiner.evaluation.metrics import boundary_f, boundary_iou, evaluate, iou, mba, pooled_iou


def square(shape, r0, r1, c0, c1):
    """Bool mask with rows r0..r1 and cols c0..c1 (inclusive) set."""
    m = np.zeros(shape, dtype=bool)
    m[r0 : r1 + 1, c0 : c1 + 1] = True
    return m


# --------------------------------------------------------------------------- #
# IoU
# --------------------------------------------------------------------------- #
def test_iou_counts_small_case():
    # pred: 2x2 block (4 px); gt: 2x3 block containing it (6 px).
    # intersection 4, union 6 -> 2/3
    pred = square((4, 4), 0, 1, 0, 1)
    gt = square((4, 4), 0, 1, 0, 2)
    assert iou(pred, gt) == pytest.approx(2 / 3)


def test_iou_square_shifted_by_one_pixel():
    # 10x10 square vs the same square shifted right by 1 px:
    # intersection 10 rows x 9 cols = 90, union 100 + 100 - 90 = 110 -> 9/11
    gt = square((20, 20), 5, 14, 5, 14)
    pred = square((20, 20), 5, 14, 6, 15)
    assert iou(pred, gt) == pytest.approx(9 / 11)


def test_iou_empty_cases():
    empty = np.zeros((5, 5), dtype=bool)
    one = empty.copy()
    one[2, 2] = True
    assert iou(empty, empty) == 1.0  # empty union: both masks agree
    assert iou(one, empty) == 0.0  # I = 0, U = 1
    assert iou(empty, one) == 0.0


@pytest.mark.parametrize(
    "convert",
    [
        lambda m: m.astype(np.uint8),  # {0, 1}
        lambda m: m.astype(np.uint8) * 255,  # {0, 255}
        lambda m: m.astype(np.int64) * 7,  # any positive integer is foreground
        lambda m: m.astype(np.float32),  # float masks hold only 0 and 1
    ],
)
def test_binarisation_rule(convert):
    gt = square((4, 4), 0, 1, 0, 2)  # 6 px
    pred = square((4, 4), 0, 1, 0, 1)  # 4 px -> IoU 4/6 whatever the encoding
    assert iou(convert(pred), convert(gt)) == pytest.approx(2 / 3)


def test_pooled_iou_differs_from_mean_iou():
    # image A: one pixel predicted and true -> I = 1, U = 1, IoU 1
    gt_a = np.zeros((3, 3), dtype=bool)
    gt_a[1, 1] = True
    pred_a = gt_a.copy()
    # image B: 3x3 gt fully missed -> I = 0, U = 9, IoU 0
    gt_b = np.ones((3, 3), dtype=bool)
    pred_b = np.zeros((3, 3), dtype=bool)
    # mean of per-image IoUs = 0.5, pooled = (1 + 0) / (1 + 9) = 0.1
    assert np.mean([iou(pred_a, gt_a), iou(pred_b, gt_b)]) == pytest.approx(0.5)
    assert pooled_iou([pred_a, pred_b], [gt_a, gt_b]) == pytest.approx(0.1)


def test_pooled_iou_mixed_shapes_and_all_empty():
    # shapes may differ between images (only pairs must match)
    a = square((4, 4), 0, 1, 0, 1)  # 4 px, perfect
    b = square((6, 3), 0, 0, 0, 2)  # 3 px
    b_pred = np.zeros((6, 3), dtype=bool)  # missed -> I 0, U 3
    # (4 + 0) / (4 + 3) = 4/7
    assert pooled_iou([a, b_pred], [a, b]) == pytest.approx(4 / 7)
    z = np.zeros((2, 2), dtype=bool)
    assert pooled_iou([z, z], [z, z]) == 1.0


# --------------------------------------------------------------------------- #
# Boundary IoU
# --------------------------------------------------------------------------- #
def test_boundary_iou_shifted_square_touching_border():
    # 7x7 image: diagonal 9.9, 0.02 * 9.9 = 0.198 -> round 0 -> width d = 1.
    # gt: 5x5 square rows 1..5, cols 1..5. Band = 25 - 3x3 interior = 16 (ring).
    # pred: rows 1..5, cols 2..6 (touches the right image border). With the
    # border counted as boundary its interior is rows 2..4, cols 3..5, band 16.
    # Bands intersect in rows 1 and 5, cols 2..5 -> 8 px; gt band col 5 rows
    # 2..4 is pred interior, pred band col 2 rows 2..4 is gt interior.
    # -> 8 / (16 + 16 - 8) = 1/3. (Mask IoU is 20 / 30 = 2/3.)
    gt = square((7, 7), 1, 5, 1, 5)
    pred = square((7, 7), 1, 5, 2, 6)
    assert boundary_iou(pred, gt) == pytest.approx(1 / 3)
    assert iou(pred, gt) == pytest.approx(2 / 3)


def test_boundary_iou_image_border_is_boundary():
    # 6x6 image (d = round(0.02 * 8.49) = 0 -> 1).
    # gt = cols 0..2 (18 px); with zero padding its interior is rows 1..4 col 1
    # (4 px) -> band 14: rows 0 and 5 cols 0..2 (6), col 0 and col 2 rows 1..4 (8).
    # pred = cols 0..3 (24 px); interior rows 1..4 cols 1..2 (8) -> band 16:
    # rows 0 and 5 cols 0..3 (8), cols 0 and 3 rows 1..4 (8).
    # Intersection: rows 0, 5 cols 0..2 (6) + col 0 rows 1..4 (4) = 10.
    # Union 14 + 16 - 10 = 20 -> 0.5. If the border were not boundary, the
    # bands would be col 2 vs col 3 only and the result 0.
    gt = square((6, 6), 0, 5, 0, 2)
    pred = square((6, 6), 0, 5, 0, 3)
    assert boundary_iou(pred, gt) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        # 100x100 image, diagonal 141.42. gt: 20x20 square rows/cols 40..59,
        # pred: same rows, cols 41..60. With band width d:
        # band = 400 - (20 - 2d)^2 each; intersection = (20 x 19 overlap)
        #        minus the union of the two interiors ((20-2d) x (21-2d)).
        # 0.02 -> 2.83 -> d = 3: band 204, I = 380 - 14*15 = 170,
        #         U = 408 - 170 = 238 -> 170/238 = 5/7
        (0.02, 5 / 7),
        # 0.01 -> 1.41 -> d = 1: band 400 - 18^2 = 76; interiors rows 41..58
        #         x cols 41..58 (gt) and 42..59 (pred), union 18 x 19 = 342
        #         -> I = 380 - 342 = 38, U = 152 - 38 = 114 -> 1/3
        #         (d = 2 would give 108 / 180 = 0.6, so d is pinned down)
        (0.01, 1 / 3),
        # 0.0 -> d = max(1, 0) = 1, same as above
        (0.0, 1 / 3),
    ],
)
def test_boundary_iou_band_width_from_ratio(ratio, expected):
    gt = square((100, 100), 40, 59, 40, 59)
    pred = square((100, 100), 40, 59, 41, 60)
    assert boundary_iou(pred, gt, dilation_ratio=ratio) == pytest.approx(expected)


def test_boundary_iou_empty_and_identical():
    z = np.zeros((8, 8), dtype=bool)
    m = square((8, 8), 2, 5, 2, 5)
    assert boundary_iou(z, z) == 1.0  # both bands empty
    assert boundary_iou(m, m) == 1.0
    assert boundary_iou(z, m) == 0.0


# --------------------------------------------------------------------------- #
# mBA
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("h", "w", "radii"),
    [
        # R = 3000 / 300 = 10: 1 + int(9/5 * i) = 1 + int(0, 1.8, 3.6, 5.4, 7.2)
        (1500, 1500, [1, 2, 4, 6, 8]),
        # R = 1200 / 300 = 4: 1 + int(0.6 * i) = 1 + int(0, .6, 1.2, 1.8, 2.4)
        (600, 600, [1, 1, 2, 2, 3]),
        # R = 30 / 300 = 0.1 < 1: negative steps truncate to 0 -> all 1
        (10, 20, [1, 1, 1, 1, 1]),
    ],
)
def test_mba_radius_formula(h, w, radii):
    assert metrics._mba_radii(h, w) == radii


def test_mba_small_square_hand_counted():
    # 7x7 image -> R = 14/300 < 1 -> every radius is 1; the 3x3 ellipse kernel
    # is a cross. gt = 3x3 square rows/cols 2..4.
    # dilation by the cross: 5x5 minus 4 corners = 21 px; erosion: centre only
    # (1 px) -> band 20 px: 9 - 1 = 8 gt pixels + 21 - 9 = 12 background pixels.
    gt = square((7, 7), 2, 4, 2, 4)
    assert mba(gt, gt) == 1.0
    # empty prediction is right on the 12 background band pixels -> 12/20
    assert mba(np.zeros_like(gt), gt) == pytest.approx(0.6)
    # full prediction is right on the 8 foreground band pixels -> 8/20
    assert mba(np.ones_like(gt), gt) == pytest.approx(0.4)


def test_mba_straight_edge_uses_all_radii():
    # 600x600 -> radii [1, 1, 2, 2, 3]. gt = left half (cols 0..299), a single
    # vertical edge; the image border is ignored by OpenCV's morphology. The
    # band for radius r is cols 300-r .. 299+r (2r columns). pred moves the
    # edge one pixel right: only column 300 is wrong, always inside the band.
    # accuracy_r = (2r - 1) / (2r) -> 1/2, 1/2, 3/4, 3/4, 5/6 -> mean 2/3.
    gt = np.zeros((600, 600), dtype=bool)
    gt[:, :300] = True
    pred = np.zeros_like(gt)
    pred[:, :301] = True
    assert mba(pred, gt) == pytest.approx(2 / 3)


def test_mba_without_gt_boundary_is_pixel_accuracy():
    empty = np.zeros((10, 10), dtype=bool)
    full = np.ones((10, 10), dtype=bool)
    assert mba(empty, empty) == 1.0
    assert mba(full, full) == 1.0
    pred = empty.copy()
    pred[0, :] = True  # 10 of 100 pixels wrong -> 0.9
    assert mba(pred, empty) == pytest.approx(0.9)
    assert mba(~pred, full) == pytest.approx(0.9)


# --------------------------------------------------------------------------- #
# boundary F
# --------------------------------------------------------------------------- #
def test_boundary_f_shifted_square_exact_and_tolerant():
    # gt 10x10 at rows/cols 5..14, pred shifted right by 1 (cols 6..15);
    # each contour is a 36 px ring.
    # tolerance 0: shared pixels are rows 5 and 14, cols 6..14 -> 18.
    #   P = R = 18/36 = 0.5 -> F = 0.5
    # tolerance 1: every pred contour pixel is 1 px from a gt contour pixel
    #   (and vice versa) -> F = 1
    gt = square((20, 20), 5, 14, 5, 14)
    pred = square((20, 20), 5, 14, 6, 15)
    assert boundary_f(pred, gt, tolerance=0) == pytest.approx(0.5)
    assert boundary_f(pred, gt, tolerance=1) == pytest.approx(1.0)


def test_boundary_f_known_precision_and_recall():
    # pred = gt square (rows/cols 5..14, contour 36) plus a 3x3 blob at rows and
    # cols 16..18 (contour 8 px, nearest gt contour pixel (14, 14) is
    # sqrt(8) = 2.83 > 1 away).
    # tolerance 1: P = 36/44 = 9/11, R = 36/36 = 1
    # F = 2 * 9/11 / (9/11 + 1) = 18/20 = 0.9
    gt = square((20, 20), 5, 14, 5, 14)
    pred = gt | square((20, 20), 16, 18, 16, 18)
    assert boundary_f(pred, gt, tolerance=1) == pytest.approx(0.9)
    # swapping the roles swaps P and R; F is symmetric
    assert boundary_f(gt, pred, tolerance=1) == pytest.approx(0.9)
    # tolerance 3: of the blob contour only its corner (16, 16) is within 3 px
    # (2.83) of gt corner (14, 14); (16, 17) and (17, 16) are sqrt(13) = 3.61
    # away, the rest further. P = 37/44, R = 1 -> F = (74/44) / (81/44) = 74/81
    assert boundary_f(pred, gt, tolerance=3) == pytest.approx(74 / 81)
    # tolerance 6 covers the farthest blob pixel (18, 18), sqrt(32) = 5.66 -> 1
    assert boundary_f(pred, gt, tolerance=6) == pytest.approx(1.0)


def test_boundary_f_default_tolerance_scales_with_diagonal():
    # 300x400 image: diagonal 500, 0.008 * 500 = 4 px tolerance.
    # A 100x100 square moved right by k px: the middle of the pred left edge is
    # exactly k px from the gt left edge, so F = 1 iff k <= 4.
    gt = square((300, 400), 100, 199, 100, 199)
    shift4 = square((300, 400), 100, 199, 104, 203)
    shift5 = square((300, 400), 100, 199, 105, 204)
    assert boundary_f(shift4, gt) == pytest.approx(1.0)
    assert boundary_f(shift5, gt) < 1.0
    # small image: 0.008 * 28.3 = 0.23 -> clamped to 1 px (shift of 1 is fine)
    gt_small = square((20, 20), 5, 14, 5, 14)
    assert boundary_f(square((20, 20), 5, 14, 6, 15), gt_small) == pytest.approx(1.0)
    assert boundary_f(square((20, 20), 5, 14, 7, 16), gt_small) < 1.0


def test_boundary_f_empty_and_full():
    empty = np.zeros((5, 5), dtype=bool)
    full = np.ones((5, 5), dtype=bool)
    assert boundary_f(empty, empty) == 1.0  # both boundaries empty
    # the frame edge is boundary: a full 5x5 mask has a 16 px contour
    assert boundary_f(full, full) == 1.0
    assert boundary_f(full, empty) == 0.0  # one boundary empty
    assert boundary_f(empty, full) == 0.0


# --------------------------------------------------------------------------- #
# evaluate
# --------------------------------------------------------------------------- #
def test_evaluate_keys_values_and_pooling():
    gt = square((20, 20), 5, 14, 5, 14)
    pred = square((20, 20), 5, 14, 6, 15)
    out = evaluate(pred, gt)
    assert set(out) == {"iou", "biou", "mba", "bf", "intersection", "union"}
    assert out["intersection"] == 90 and out["union"] == 110  # see shifted-square IoU
    assert isinstance(out["intersection"], int) and isinstance(out["union"], int)
    assert out["iou"] == pytest.approx(9 / 11)
    assert out["biou"] == pytest.approx(boundary_iou(pred, gt))
    assert out["mba"] == pytest.approx(mba(pred, gt))
    assert out["bf"] == pytest.approx(1.0)  # default tolerance 1 px on 20x20
    # pooled from the raw counts equals pooled_iou
    other = evaluate(np.zeros((3, 3), bool), np.ones((3, 3), bool))  # I 0, U 9
    pooled = (out["intersection"] + other["intersection"]) / (out["union"] + other["union"])
    assert pooled == pytest.approx(90 / 119)
    assert pooled_iou([pred, np.zeros((3, 3), bool)], [gt, np.ones((3, 3), bool)]) == pytest.approx(pooled)


def test_metrics_do_not_mutate_inputs():
    rng = np.random.default_rng(0)
    pred = rng.random((30, 40)) > 0.5
    gt = rng.integers(0, 2, (30, 40), dtype=np.uint8) * 255
    soft = (rng.random((30, 40)) > 0.5).astype(np.float64)  # a float mask (0 and 1)
    copies = (pred.copy(), gt.copy(), soft.copy())
    evaluate(pred, gt)
    evaluate(soft, gt)
    pooled_iou([pred, soft], [gt, gt])
    for before, after in zip(copies, (pred, gt, soft)):
        np.testing.assert_array_equal(before, after)


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #
ALL_METRICS = [iou, boundary_iou, mba, boundary_f, evaluate]


@pytest.mark.parametrize("fn", ALL_METRICS)
def test_pred_must_be_2d(fn):
    with pytest.raises(ValueError, match=r"pred must be 2-D, got shape \(2, 3, 4\)"):
        fn(np.zeros((2, 3, 4), bool), np.zeros((3, 4), bool))


@pytest.mark.parametrize("fn", ALL_METRICS)
def test_gt_must_be_2d(fn):
    with pytest.raises(ValueError, match=r"gt must be 2-D, got shape \(5,\)"):
        fn(np.zeros((1, 5), bool), np.zeros(5, bool))


@pytest.mark.parametrize("fn", ALL_METRICS)
def test_shape_mismatch(fn):
    with pytest.raises(ValueError, match=r"pred shape \(4, 5\) does not match gt shape \(4, 4\)"):
        fn(np.zeros((4, 5), bool), np.zeros((4, 4), bool))


@pytest.mark.parametrize("fn", ALL_METRICS)
def test_nan_rejected(fn):
    bad = np.zeros((4, 4))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"pred is a float array with values other than 0 and 1 \(e.g. \[nan\]\)"):
        fn(bad, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="gt is a float array with values other than 0 and 1"):
        fn(np.zeros((4, 4)), bad)


def test_floats_other_than_0_and_1_rejected():
    """The package's one rule: soft maps are thresholded by the caller, not guessed here."""
    with pytest.raises(ValueError, match=r"pred is a float array with values other than 0 and 1 \(e.g. \[255.0"):
        iou(np.full((3, 3), 255.0), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"gt is a float array .*-1.0"):
        iou(np.zeros((3, 3)), np.full((3, 3), -1.0))
    with pytest.raises(ValueError, match="pred is a float array"):
        iou(np.full((3, 3), 0.7), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="negative"):
        iou(np.full((3, 3), -1), np.zeros((3, 3)))


def test_empty_array_rejected():
    with pytest.raises(ValueError, match=r"pred must be non-empty, got shape \(0, 3\)"):
        iou(np.zeros((0, 3), bool), np.zeros((0, 3), bool))


def test_non_numeric_dtype_rejected():
    with pytest.raises(TypeError, match=r"pred must be a bool, integer or float \(0/1\) array"):
        iou(np.full((2, 2), "a"), np.zeros((2, 2), bool))


def test_pooled_iou_errors():
    m = np.zeros((3, 3), bool)
    with pytest.raises(ValueError, match="preds has 2 masks but gts has 1"):
        pooled_iou([m, m], [m])
    with pytest.raises(ValueError, match="at least one mask"):
        pooled_iou([], [])
    with pytest.raises(ValueError, match=r"preds\[1\] shape \(3, 4\) does not match gts\[1\] shape \(3, 3\)"):
        pooled_iou([m, np.zeros((3, 4), bool)], [m, m])
    with pytest.raises(ValueError, match=r"gts\[0\] must be 2-D"):
        pooled_iou([m], [np.zeros((1, 3, 3), bool)])


@pytest.mark.parametrize("bad", [-0.01, float("nan"), float("inf")])
def test_dilation_ratio_rejected(bad):
    m = np.zeros((4, 4), bool)
    with pytest.raises(ValueError, match="dilation_ratio must be a finite number >= 0"):
        boundary_iou(m, m, dilation_ratio=bad)


def test_dilation_ratio_type_rejected():
    m = np.zeros((4, 4), bool)
    with pytest.raises(TypeError, match="dilation_ratio must be a real number"):
        boundary_iou(m, m, dilation_ratio="0.02")


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_tolerance_rejected(bad):
    m = np.zeros((4, 4), bool)
    with pytest.raises(ValueError, match="tolerance must be a finite number >= 0"):
        boundary_f(m, m, tolerance=bad)


def test_tolerance_type_rejected():
    m = np.zeros((4, 4), bool)
    with pytest.raises(TypeError, match="tolerance must be a real number"):
        boundary_f(m, m, tolerance=True)
