"""Tests of napari_segrefiner.training.synthesis (simple coarse kinds and make_coarse).

The CascadePSP-style boundary degradation has its own tests in ``test_perturb.py``.
"""

import numpy as np
import pytest
from _mask_helpers import assert_input_not_mutated, blob, disk, iou, rng, square

from napari_segrefiner.io.masks import bounding_box
from napari_segrefiner.training import synthesis as syn
from napari_segrefiner.training.synthesis import (
    CAMPAIGN_PROBABILITIES,
    COARSE_KINDS,
    MIXED_PROBABILITIES,
    dilate_erode,
    lowres_jitter,
    lowres_mask,
    make_coarse,
    near_perfect,
    shift_mask,
)

KINDS = COARSE_KINDS  # every kind, including the near-perfect / jitter / campaign ones


def bbox_of(m):
    """Independent of mask_bbox: the extreme indices of the non-zero pixels."""
    ys, xs = np.nonzero(m)
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


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


def test_bounding_box():
    m = np.zeros((7, 9), np.uint8)
    m[2, 3] = m[5, 1] = m[4, 7] = 255
    assert bounding_box(m) == (2, 6, 1, 8)
    assert bounding_box(np.zeros((3, 3), bool)) is None


# ------------------------------------------------------------------------------ shift_mask

# 4 x 5 mask with foreground at (0,0), (1,1), (1,2), (2,4), (3,3).
SHIFT_SRC = np.array(
    [
        [1, 0, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 1, 0],
    ],
    bool,
)


def _only(*pixels):
    out = np.zeros((4, 5), bool)
    for y, x in pixels:
        out[y, x] = True
    return out


@pytest.mark.parametrize(
    "dy, dx, expected",
    [
        (0, 0, SHIFT_SRC),
        # (0,0)->(1,2), (1,1)->(2,3), (1,2)->(2,4); (2,4)->(3,6) and (3,3)->(4,5) leave.
        (1, 2, _only((1, 2), (2, 3), (2, 4))),
        # (0,0) leaves; (1,1)->(0,0), (1,2)->(0,1), (2,4)->(1,3), (3,3)->(2,2).
        (-1, -1, _only((0, 0), (0, 1), (1, 3), (2, 2))),
        (0, 4, _only((0, 4))),  # only (0,0) stays in the frame
        (-3, 0, _only((0, 3))),  # only (3,3) stays in the frame
        (4, 0, _only()),  # a whole height: everything leaves
        (0, -5, _only()),  # a whole width
        (-2, 7, _only()),
    ],
)
def test_shift_mask_exact(dy, dx, expected):
    for src in (SHIFT_SRC, SHIFT_SRC.astype(np.uint8) * 255):
        before = src.copy()
        out = shift_mask(src, dy=dy, dx=dx)
        assert out.dtype == bool and out.shape == (4, 5)
        assert np.array_equal(out, expected)
        assert np.array_equal(src, before) and not np.shares_memory(out, src)


def test_shift_mask_matches_pixel_loop():
    g = rng(4)
    for _ in range(30):
        h, w = (int(v) for v in g.integers(1, 12, 2))
        m = g.random((h, w)) < 0.4
        dy, dx = (int(v) for v in g.integers(-13, 14, 2))
        expected = np.zeros((h, w), bool)
        for y in range(h):
            for x in range(w):
                if m[y, x] and 0 <= y + dy < h and 0 <= x + dx < w:
                    expected[y + dy, x + dx] = True
        assert np.array_equal(shift_mask(m, dy=dy, dx=dx), expected), (h, w, dy, dx)


# ---------------------------------------------------------------------------- near_perfect


def test_near_perfect_stays_close_to_the_input():
    d = disk(80, 80, 40, 40, 25)
    before = d.copy()
    outs = []
    for s in range(60):
        out = near_perfect(d, rng=rng(s))
        assert out.dtype == bool and out.shape == d.shape and not np.shares_memory(out, d)
        assert iou(out, d) >= 0.8, s
        assert np.array_equal(out, near_perfect(d, rng=rng(s)))  # deterministic per seed
        outs.append(out.tobytes())
    assert np.array_equal(d, before)  # never mutated
    assert len(set(outs)) >= 5  # shifts, low-res masks and +-1 px borders all occur
    assert d.tobytes() in outs  # a zero shift returns the mask itself (as a copy)


def test_near_perfect_edge_cases():
    empty = np.zeros((20, 30), bool)
    full = np.ones((20, 30), bool)
    for s in range(40):  # 40 seeds reach every branch, shifts included
        assert not near_perfect(empty, rng=rng(s)).any()
        out = near_perfect(full, rng=rng(s))
        assert out.all() and out is not full


# --------------------------------------------------------------------------- lowres_jitter


def test_lowres_jitter_blocky_within_box_and_shift():
    d = disk(100, 100, 50, 50, 25)
    y0, y1, x0, x1 = bbox_of(d)  # 25..76 on both axes
    before = d.copy()
    for s in range(30):
        out = lowres_jitter(d, rng=rng(s))
        assert out.dtype == bool and out.shape == d.shape
        assert not np.array_equal(out, d)  # degraded: never the input itself
        assert np.array_equal(out, lowres_jitter(d, rng=rng(s)))
        ys, xs = np.nonzero(out)
        # the box, grown by the largest shift (4 px)
        assert ys.min() >= y0 - 4 and ys.max() < y1 + 4 and xs.min() >= x0 - 4 and xs.max() < x1 + 4
        assert 0.5 < iou(out, d) < 1.0
    assert np.array_equal(d, before)


def test_lowres_jitter_without_shift_stays_in_box_and_is_coarse():
    d = disk(100, 100, 50, 50, 25)
    y0, y1, x0, x1 = bbox_of(d)
    for s in range(10):
        out = lowres_jitter(d, rng=rng(s), size=(4, 4), shift=(0, 0))
        inside = np.zeros_like(d)
        inside[y0:y1, x0:x1] = True
        assert not (out & ~inside).any()
        assert not np.array_equal(out, d)
        # A 4-px rendering of a 51-px disk loses most of the circle's detail.
        assert iou(out, d) < 0.97


def test_lowres_jitter_edge_cases():
    empty = np.zeros((20, 30), bool)
    full = np.ones((20, 30), bool)
    assert not lowres_jitter(empty, rng=rng()).any()
    out = lowres_jitter(full, rng=rng())
    assert out.all() and out is not full


# --------------------------------------------------------------------------- make_coarse


def test_mixed_probabilities():
    assert set(MIXED_PROBABILITIES) == {"cascadepsp", "filled", "lowres", "dilate", "erode"}
    assert abs(sum(MIXED_PROBABILITIES.values()) - 1.0) < 1e-9
    assert max(MIXED_PROBABILITIES, key=MIXED_PROBABILITIES.get) == "cascadepsp"


def test_campaign_probabilities():
    assert set(CAMPAIGN_PROBABILITIES) == {"cascadepsp", "filled", "nearperfect", "lowres-jitter", "dilate", "erode"}
    assert abs(sum(CAMPAIGN_PROBABILITIES.values()) - 1.0) < 1e-9
    assert all(p > 0 for p in CAMPAIGN_PROBABILITIES.values())
    assert set(CAMPAIGN_PROBABILITIES) <= set(COARSE_KINDS)


@pytest.fixture
def spies(monkeypatch):
    """Replace every kind's function in synthesis by a recorder: (kind, options) per call."""
    calls = []

    def spy(name):
        def record(mask, **kw):
            kw.pop("rng", None)
            kind = name
            if name == "dilate_erode":
                kind = "dilate" if kw["k"] > 0 else "erode"
            calls.append((kind, kw))
            return np.asarray(mask, bool).copy()

        return record

    names = {
        "modify_boundary": "cascadepsp",
        "modify_boundary_filled": "filled",
        "lowres_mask": "lowres",
        "near_perfect": "nearperfect",
        "lowres_jitter": "lowres-jitter",
        "dilate_erode": "dilate_erode",
    }
    for attr, name in names.items():
        monkeypatch.setattr(syn, attr, spy(name))
    return calls


@pytest.mark.parametrize("kind, table", [("campaign", CAMPAIGN_PROBABILITIES), ("mixed", MIXED_PROBABILITIES)])
def test_mixtures_draw_every_kind_at_its_frequency(spies, kind, table):
    m = blob(40, 50)
    n = 4000
    for s in range(n):
        make_coarse(m, rng=rng(s), kind=kind)
    assert len(spies) == n
    counts = {}
    for name, _ in spies:
        counts[name] = counts.get(name, 0) + 1
    assert set(counts) == set(table)
    for name, p in table.items():
        # binomial sd <= sqrt(0.25 / 4000) = 0.008: 0.03 is more than 3.5 sd
        assert abs(counts[name] / n - p) < 0.03, (name, counts[name] / n, p)
    for name, kw in spies:
        if name in ("dilate", "erode"):
            assert 1 <= abs(kw["k"]) <= 6
        elif name == "lowres":
            assert set(kw) == {"factor"} and 4.0 <= kw["factor"] <= 16.0
        else:
            assert kw == {}


def test_mixture_options_reach_the_boundary_kinds_only(spies):
    m = blob(40, 50)
    for s in range(300):
        make_coarse(m, rng=rng(s), kind="campaign", iou_target=0.5, sample_rate=0.2)
    seen = {name for name, _ in spies}
    assert seen == set(CAMPAIGN_PROBABILITIES)
    for name, kw in spies:
        if name in ("cascadepsp", "filled"):
            assert kw == {"iou_target": 0.5, "sample_rate": 0.2}
        elif name in ("dilate", "erode"):
            assert set(kw) == {"k"}
        else:
            assert kw == {}


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
        lambda m: lowres_mask(m, factor=6),
        lambda m: dilate_erode(m, k=-3),
        lambda m: shift_mask(m, dy=2, dx=-1),
        lambda m: near_perfect(m, rng=rng(2)),
        lambda m: lowres_jitter(m, rng=rng(2)),
        lambda m: make_coarse(m, rng=rng(2), kind="mixed"),
        lambda m: make_coarse(m, rng=rng(2), kind="campaign"),
    ],
)
@pytest.mark.parametrize("dtype", [bool, np.uint8])
def test_inputs_not_mutated(fn, dtype):
    assert_input_not_mutated(fn, dtype)


# ----------------------------------------------------------------------------- errors


def test_errors():
    m = blob(40, 50)
    with pytest.raises(ValueError, match="mask has negative values"):
        lowres_mask(-m.astype(int))
    with pytest.raises(ValueError, match="mask must be binary"):
        lowres_mask(m.astype(int) + np.eye(40, 50, dtype=int) * 2)
    with pytest.raises(ValueError, match=r"values other than 0 and 1 \(e.g. \[nan"):
        dilate_erode(np.full((4, 4), np.nan), k=1)
    with pytest.raises(TypeError, match="rng"):
        make_coarse(m, rng=np.random.RandomState(0))
    with pytest.raises(TypeError, match="rng"):
        near_perfect(m, rng=0)
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
    with pytest.raises(ValueError, match="unknown option"):
        make_coarse(m, rng=rng(), kind="nearperfect", size=4)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        make_coarse(m, rng=rng(), kind="erode", k=-2)
