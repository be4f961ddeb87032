"""The instance, whole and HR pipelines (napari_segrefiner.engine.pipelines), driven through the API.

An oracle network must lead every pipeline back to the truth; the records each run yields
(one per network batch of objects) are checked against the counts count_records promises.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _refine_helpers import Oracle, blob_case, rect, rgb_from_truth

from napari_segrefiner.api import iter_refine, refine
from napari_segrefiner.engine.records import replay
from napari_segrefiner.engine.run import choose_mode
from napari_segrefiner.io.masks import label_table
from napari_segrefiner.models.config import LiteConfig, RefineConfig
from napari_segrefiner.models.nets import build_network


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_network(LiteConfig.tiny()).eval()


# --------------------------------------------------------------------------- #
# oracle refinement back to the truth
# --------------------------------------------------------------------------- #
def test_oracle_instance_mode_recovers_truth():
    truth = rect((160, 160), 20, 60, 20, 60, 1) + rect((160, 160), 90, 140, 95, 145, 2)
    coarse = rect((160, 160), 24, 64, 23, 58, 1)  # shifted and narrowed
    coarse[87:137, 98:148] = 2  # shifted the other way
    coarse[120:140, 95:100] = 2
    img = rgb_from_truth(truth)
    img_before, coarse_before = img.copy(), coarse.copy()
    oracle = Oracle()
    out = refine(img, coarse, model=oracle, mode="instance", seed=0, device="cpu")
    assert np.array_equal(out, truth)
    assert np.array_equal(img, img_before) and np.array_equal(coarse, coarse_before)
    # load_refiner's probe first (a tiny input at the first and last timestep), then both
    # instances batched together: 6 calls of 2 crops at 256 x 256, t = 5..0
    probe, *calls = oracle.calls
    assert probe == ((2, 4, 32, 32), [5, 0])
    assert [c[1] for c in calls] == [[t, t] for t in (5, 4, 3, 2, 1, 0)]
    assert all(c[0] == (2, 4, 256, 256) for c in calls)


def test_oracle_whole_mode_recovers_truth():
    truth = rect((160, 120), 30, 100, 25, 90, 1).astype(bool)
    coarse = rect((160, 120), 36, 104, 20, 84, 1).astype(bool)
    img = rgb_from_truth(truth)
    oracle = Oracle()
    recs = list(iter_refine(img, coarse, model=oracle, mode="whole", seed=0, device="cpu"))
    assert all(r.mode == "whole" for r in recs)
    assert np.array_equal(recs[-1].mask, truth)
    assert all(c[0] == (1, 4, 256, 256) for c in oracle.calls[1:])  # the whole frame, resized (after the probe)


def test_oracle_hr_mode_recovers_truth_with_local_patches():
    # 512 x 512 frame, global pass on the NEAREST 256 x 256 downsample (factor 2, samples the
    # even rows/cols). Truth rows [101, 300): the odd top edge is lost by the downsample,
    # so the global result starts at row 102 (2 * 51). The oracle is unsure in a band around
    # the top edge (rows 96-107, cols 200-299) -> F there is below 0.9 max F -> a native
    # 256 x 256 patch is placed there (it covers rows 0-255 and the band's columns), and the
    # single t = 0 local step fixes row 101. Everything else is exact already.
    truth = rect((512, 512), 101, 300, 200, 300, 1, dtype=np.uint8)
    unsure = rect((512, 512), 96, 108, 200, 300, 1, dtype=bool)
    coarse = rect((512, 512), 107, 306, 194, 294, 1, dtype=np.uint8)
    img = rgb_from_truth(truth, unsure)
    img_before, coarse_before = img.copy(), coarse.copy()
    oracle = Oracle()
    recs = list(iter_refine(img, coarse, model=oracle, mode="hr", seed=0, device="cpu", previews=True))
    assert len(recs) == 1 and recs[0].mode == "hr" and recs[0].steps == (5, 4, 3, 2, 1, 0)
    (obj,) = recs[0].objects
    assert len(obj.states) == 5  # the global steps t = 5..1 (the local step has no full-frame state)
    glob = replay(np.zeros_like(coarse), [obj], 4)  # the global result, pasted to the frame
    diff = glob != truth
    assert diff.sum() == 100 and diff[101, 200:300].all()  # only the odd row was wrong
    assert recs[-1].done and np.array_equal(recs[-1].mask, truth)
    assert recs[-1].mask.dtype == np.uint8
    # after the probe, 5 global calls at 256 x 256, then one local batch of native 256 x 256 patches at t = 0
    calls = oracle.calls[1:]
    assert [c[1] for c in calls[:5]] == [[5], [4], [3], [2], [1]]
    local_shape, local_t = calls[5]
    assert local_shape[1:] == (4, 256, 256) and set(local_t) == {0} and len(calls) == 6
    assert np.array_equal(img, img_before) and np.array_equal(coarse, coarse_before)


def test_auto_mode_choice():
    opts = RefineConfig.official()
    two = rect((100, 100), 10, 30, 10, 30, 1) + rect((100, 100), 50, 90, 50, 90, 2)
    assert choose_mode(label_table(two), [1, 2], opts, two.shape) == "instance"
    small = rect((600, 600), 100, 200, 100, 200, 1)
    assert choose_mode(label_table(small), [1], opts, small.shape) == "instance"
    big = rect((600, 600), 20, 580, 30, 560, 1)  # padded box 600 > 512 on a 600 x 600 image
    assert choose_mode(label_table(big), [1], opts, big.shape) == "hr"
    thin = rect((200, 1000), 20, 180, 30, 970, 1)  # long, but the image is < 256 px high
    assert choose_mode(label_table(thin), [1], opts, thin.shape) == "instance"
    # through the API: the records carry the chosen mode
    oracle = Oracle()
    recs = list(iter_refine(rgb_from_truth(two), two, model=oracle, seed=0, device="cpu"))
    assert {r.mode for r in recs} == {"instance"}
    recs = list(iter_refine(rgb_from_truth(big), big, model=Oracle(), seed=0, device="cpu", previews=False))
    assert {r.mode for r in recs} == {"hr"}
    assert recs[-1].done and (recs[-1].mask == big).mean() > 0.99


# --------------------------------------------------------------------------- #
# records of iter_refine
# --------------------------------------------------------------------------- #
def _check_records(recs):
    total = recs[0].total
    assert all(r.total == total for r in recs)
    assert len(recs) == total
    assert [r.index for r in recs] == list(range(total))
    assert [r.done for r in recs] == [False] * (total - 1) + [True]
    assert recs[-1].mask is not None


@pytest.mark.parametrize("steps,n_steps", [(None, 6), (3, 3), (1, 1)])
@pytest.mark.parametrize("batch", [1, 2])
def test_iter_refine_records_instance(tiny, steps, n_steps, batch):
    img, _ = blob_case()
    mask = rect((96, 96), 5, 30, 5, 30, 1) + rect((96, 96), 40, 60, 50, 90, 2) + rect((96, 96), 70, 90, 10, 40, 3)
    n = 3
    recs = list(
        iter_refine(
            img,
            mask,
            model=tiny,
            seed=0,
            device="cpu",
            size=64,
            steps=steps,
            previews=True,
            batch_size=batch,
            min_area=0,
        )
    )
    assert recs[0].total == -(-n // batch)  # one record per network batch
    _check_records(recs)
    objs = [o for r in recs for o in r.objects]
    assert sorted(o.label for o in objs) == list(range(1, n + 1))  # every object exactly once
    assert [r.done_objects for r in recs] == [min((k + 1) * batch, n) for k in range(len(recs))]
    assert all(len(o.states) == n_steps and o.confidence.shape == (64, 64) for o in objs)  # previews on
    assert len(recs[-1].steps) == n_steps and set(recs[-1].uncertainty) == set(range(1, n + 1))


def test_iter_refine_records_hr():
    truth = rect((512, 512), 101, 300, 200, 300, 1, dtype=bool)
    recs = list(iter_refine(rgb_from_truth(truth), truth, model=Oracle(), mode="hr", seed=0, device="cpu"))
    assert recs[0].total == 1  # one record per object
    _check_records(recs)


def test_previews_off_keeps_no_states(tiny):
    img, mask = blob_case()
    recs = list(iter_refine(img, mask, model=tiny, seed=0, device="cpu", size=64, previews=False, min_area=0))
    _check_records(recs)
    assert all(o.states is None and o.confidence is None for r in recs for o in r.objects)
    assert all(r.mask is None for r in recs[:-1])
    assert recs[-1].mask is not None and recs[-1].mask.dtype == bool


def test_hr_records_with_a_skipped_tiny_object():
    # Two objects in HR mode; the second has <= hr_min_pixels (128) pixels and is skipped.
    # The records must still be numbered 0..total-1 with total = the records yielded.
    truth = rect((512, 512), 101, 300, 200, 300, 1) + rect((512, 512), 400, 405, 400, 405, 2)
    recs = list(iter_refine(rgb_from_truth(truth), truth, model=Oracle(), mode="hr", seed=0, device="cpu"))
    _check_records(recs)


def test_records_when_every_object_is_too_small(tiny):
    img, _ = blob_case()
    mask = rect((96, 96), 10, 20, 10, 20, 1)  # 100 px < min_area 512: nothing to refine
    recs = list(iter_refine(img, mask, model=tiny, seed=0, device="cpu", size=64))
    assert np.array_equal(recs[-1].mask, mask)
    _check_records(recs)


# --------------------------------------------------------------------------- #
# whole mode with many labels: each stays near its coarse object, in its own pieces
# --------------------------------------------------------------------------- #
class Everywhere(torch.nn.Module):
    """Predicts foreground on every pixel (confidence 1)."""

    def forward(self, x, t):
        return torch.full_like(x[:, :1], 50.0)


class Specks(torch.nn.Module):
    """Foreground in scattered 2 x 2 specks all over the crop, background elsewhere."""

    def forward(self, x, t):
        n, _, h, w = x.shape
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        specks = ((yy // 2) * 7 + (xx // 2) * 5) % 13 == 0
        return torch.where(specks, 50.0, -50.0).expand(n, 1, h, w).to(x.dtype)


def _many_labels():
    """14 small objects on a 150 x 200 frame; label 14 is two far-apart pieces."""
    lab = np.zeros((150, 200), np.uint16)
    k = 0
    for r in range(3):
        for c in range(5):
            if k == 13:
                break
            k += 1
            y, x = 8 + 48 * r, 10 + 38 * c
            lab[y : y + 12 + 2 * r, x : x + 10 + c] = k
    lab[140:146, 5:15] = 14
    lab[140:146, 180:190] = 14
    return lab


def _padded_box(m, pad):
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    h, w = m.shape
    return max(rows[0] - pad, 0), min(rows[-1] + 1 + pad, h), max(cols[0] - pad, 0), min(cols[-1] + 1 + pad, w)


def _pieces(m):
    from scipy import ndimage

    pieces, n = ndimage.label(m, structure=np.ones((3, 3), bool))
    return [pieces == i for i in range(1, n + 1)]


@pytest.mark.parametrize("network", [Everywhere, Specks])
def test_whole_mode_keeps_each_label_near_its_coarse_object(network):
    coarse = _many_labels()
    img = np.random.default_rng(0).integers(0, 256, coarse.shape + (3,), dtype=np.uint8)
    pad = 6
    out = refine(img, coarse, model=network().eval(), mode="whole", seed=0, device="cpu", pad=pad)
    assert out.dtype == coarse.dtype and set(np.unique(out)) <= set(np.unique(coarse))
    for lab in range(1, 15):
        own = coarse == lab
        mine = out == lab
        y0, y1, x0, x1 = _padded_box(own, pad)
        inside = np.zeros_like(own)
        inside[y0:y1, x0:x1] = True
        assert not (mine & ~inside).any(), f"label {lab} has pixels outside its padded box"
        pieces = _pieces(mine)
        assert all((p & own).any() for p in pieces), f"label {lab} has a piece away from its coarse object"
        if network is Everywhere:  # the padded boxes do not overlap: each label fills its own, in one
            # piece (label 14's two coarse pieces share one box, a band along the bottom edge)
            assert len(pieces) == 1 and np.array_equal(mine, inside)
    if network is Everywhere:
        # without the limits the first label took the whole background (every label is
        # foreground everywhere and ties keep the first); now most of the frame stays 0
        assert (out == 0).mean() > 0.5


def test_oracle_whole_mode_with_several_labels_recovers_truth():
    truth = rect((160, 160), 20, 60, 20, 60, 1) + rect((160, 160), 90, 140, 95, 145, 2)
    coarse = rect((160, 160), 24, 64, 23, 58, 1)
    coarse[87:137, 98:148] = 2
    out = refine(rgb_from_truth(truth), coarse, model=Oracle(), mode="whole", seed=0, device="cpu")
    assert np.array_equal(out, truth)


def test_whole_mode_previews_follow_the_same_rule():
    coarse = _many_labels()
    img = np.zeros(coarse.shape + (3,), np.uint8)
    recs = list(iter_refine(img, coarse, model=Everywhere().eval(), mode="whole", seed=0, device="cpu", pad=6))
    for rec in recs:
        for lab in (1, 7, 13):
            y0, y1, x0, x1 = _padded_box(coarse == lab, 6)
            outside = rec.mask == lab
            outside[y0:y1, x0:x1] = False
            assert not outside.any()


def test_clean_option_drops_a_stray_speck_and_fills_a_pinhole():
    coarse = rect((96, 96), 20, 70, 25, 75, value=3)
    red = coarse > 0
    red[5, 90] = True  # a stray pixel the oracle calls foreground (inside the crop, off the object)
    red[40, 50] = False  # a pinhole the oracle calls background
    kw = dict(model=Oracle(), seed=0, device="cpu", mode="instance")
    raw = refine(rgb_from_truth(red), coarse, clean=False, **kw)
    cleaned = refine(rgb_from_truth(red), coarse, **kw)  # clean=True is the default
    assert raw[5, 90] == 3 and raw[40, 50] == 0  # the oracle really made both
    assert cleaned[5, 90] == 0 and cleaned[40, 50] == 3
    raw[5, 90], raw[40, 50] = 0, 3
    np.testing.assert_array_equal(cleaned, raw)  # and nothing else changed


class KeepNet(torch.nn.Module):
    """Answers the mask it is given with full confidence: it keeps every coarse pixel."""

    def forward(self, x, t):
        return 50.0 * (2.0 * x[:, 3:4] - 1.0)


def test_paste_changes_only_returns_a_kept_mask_exactly():
    yy, xx = np.mgrid[:150, :170]
    coarse = (((yy - 70) ** 2 / 900 + (xx - 80) ** 2 / 2500) <= 1).astype(np.uint8)  # an ellipse
    coarse[60:64, 20:140:3] = 0  # with fine comb-like detail that a 256-px crop cannot hold
    image = np.zeros((150, 170, 3), np.uint8)
    kw = dict(model=KeepNet().eval(), seed=0, mode="instance", clean=False, context=0.0, pad=40, size=64)
    official = refine(image, coarse, **kw)
    exact = refine(image, coarse, paste_changes_only=True, **kw)
    assert (official != coarse).sum() > 20  # resizing to 64 px and back loses the detail...
    np.testing.assert_array_equal(exact, coarse)  # ...unless only changes are pasted back


class Eroder(torch.nn.Module):
    """Keeps only mask pixels whose 3 x 3 neighbourhood is all mask: erases anything thinner than 3 px."""

    def forward(self, x, t):
        m = x[:, 3:4]
        core = -torch.nn.functional.max_pool2d(-m, 3, stride=1, padding=1)
        return torch.where(core > 0.5, 50.0, -50.0)


def test_whole_mode_never_deletes_an_object_that_instance_mode_keeps():
    # a 1024 x 1024 canvas: a 7 x 7 object (49 px) is under 2 px wide at 256 px, so the whole
    # frame loses it; in its own crop it is large and survives. Whole mode must keep it.
    lab = rect((1024, 1024), 100, 107, 200, 207, 1) + rect((1024, 1024), 400, 700, 300, 800, 2)
    img = rgb_from_truth(lab > 0)
    opts = dict(model=Eroder(), seed=0, device="cpu", min_area=0, clean=False)
    inst = refine(img, lab, mode="instance", **opts)
    whole = refine(img, lab, mode="whole", **opts)
    assert (inst == 1).sum() > 0  # instance mode keeps the small object
    assert np.array_equal(whole == 1, inst == 1)  # whole mode gives it its instance-mode result
    assert 0 < (whole == 2).sum() < (lab == 2).sum()  # the big object is refined (eroded) from the whole frame
