"""Annotator hints: validation, ownership, network-resolution maps, and that they hold.

The unit tests use hand-made arrays whose answers follow from the geometry; the real-data
tests run the shipped model on a dsb2018 val image with hints that contradict what the
network would do (background inside a nucleus, object outside it), so only the clamping
can make them hold.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_segrefiner.annotate.hints import apply_hints, check_hints, crop_hints, owners
from napari_segrefiner.api import iter_refine, refine
from napari_segrefiner.diffusion.sampling import iter_denoise
from napari_segrefiner.diffusion.scheduler import Schedule, timesteps
from napari_segrefiner.io.files import read_image, read_labels

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "dsb2018"
SAMPLE = "fc9269fb2e651cd4a32b65ae164f79b0a2ea823e0a83508c85d7985a6bed43cf"  # 256 x 256, 5 nuclei


# ------------------------------------------------------------------------------ validation


def test_check_hints_refuses_wrong_shape_values_and_dtype():
    with pytest.raises(ValueError, match=r"hints shape \(4, 5\) does not match the mask's shape \(4, 4\)"):
        check_hints(np.zeros((4, 5), np.uint8), shape=(4, 4))
    with pytest.raises(ValueError, match=r"only 0 \(free\), 1 \(object\) and 2 \(background\), got \[3\]"):
        check_hints(np.array([[0, 3], [1, 2]]), shape=(2, 2))
    with pytest.raises(TypeError, match="hints must be an integer array"):
        check_hints(np.zeros((2, 2), np.float32), shape=(2, 2))
    assert check_hints(np.zeros((2, 2), np.int64), shape=(2, 2)) is None  # no hint at all
    h = np.array([[0, 1], [2, 0]], np.int32)
    out = check_hints(h, shape=(2, 2))
    assert out.dtype == np.uint8 and out.tolist() == [[0, 1], [2, 0]]
    out[0, 0] = 2
    assert h[0, 0] == 0  # a copy


def _two_squares():
    labels = np.zeros((40, 60), np.int64)
    labels[5:15, 5:15] = 1
    labels[5:15, 40:50] = 2
    return labels


def test_owner_is_the_coarse_object_or_the_nearest_within_its_crop():
    labels = _two_squares()
    hints = np.zeros_like(labels, dtype=np.uint8)
    hints[10, 10] = 1  # inside object 1
    hints[10, 17] = 1  # 3 px right of object 1 (16 px left of object 2)
    hints[10, 37] = 1  # 3 px left of object 2
    boxes = {1: (0, 25, 0, 25), 2: (0, 25, 35, 60)}
    own = owners(labels, hints, boxes.__getitem__)
    assert own[10, 10] == 1 and own[10, 17] == 1 and own[10, 37] == 2
    assert (own != 0).sum() == 3


def test_owner_refuses_a_click_outside_the_nearest_objects_crop():
    labels = _two_squares()
    hints = np.zeros_like(labels, dtype=np.uint8)
    hints[35, 10] = 1  # nearest is object 1, whose crop ends at row 25
    with pytest.raises(ValueError, match=r"\(y, x\) = \(35, 10\).*outside the crop of the nearest object"):
        owners(labels, hints, {1: (0, 25, 0, 25), 2: (0, 25, 35, 60)}.__getitem__)
    with pytest.raises(ValueError, match="need an object"):
        owners(np.zeros_like(labels), hints, lambda v: (0, 40, 0, 60))


def test_crop_hints_keeps_a_one_pixel_stroke_when_a_crop_is_shrunk():
    hints = np.zeros((300, 300), np.uint8)
    hints[100, 50:250] = 2  # one pixel wide; the crop is shrunk ~2.3x
    own = np.zeros((300, 300), np.int64)
    fixed, value = crop_hints(hints, own, [(0, 300, 0, 300)], [1], 128, "cpu")
    assert fixed.shape == (1, 1, 128, 128) and fixed.dtype == torch.bool
    rows = torch.nonzero(fixed[0, 0].any(dim=1)).flatten().tolist()
    assert rows and all(abs(r - 100 * 128 / 300) <= 1.5 for r in rows)
    assert not bool(value[fixed].any())  # background
    assert crop_hints(np.zeros_like(hints), own, [(0, 300, 0, 300)], [1], 128, "cpu") is None


def test_crop_hints_gives_another_objects_pixels_as_background():
    hints = np.zeros((20, 20), np.uint8)
    hints[2, 2] = 1
    own = np.zeros((20, 20), np.int64)
    own[2, 2] = 7
    f7, v7 = crop_hints(hints, own, [(0, 20, 0, 20)], [7], 20, "cpu")
    f3, v3 = crop_hints(hints, own, [(0, 20, 0, 20)], [3], 20, "cpu")
    assert bool(f7[0, 0, 2, 2]) and bool(v7[0, 0, 2, 2])
    assert bool(f3[0, 0, 2, 2]) and not bool(v3[0, 0, 2, 2])
    assert int(f7.sum()) == 1


def test_apply_hints_forces_background_and_owner():
    frame = np.array([[1, 1, 0], [0, 2, 2]])
    hints = np.array([[2, 0, 1], [0, 0, 0]], np.uint8)
    own = np.array([[0, 0, 2], [0, 0, 0]])
    assert apply_hints(frame.copy(), hints, own).tolist() == [[0, 1, 2], [0, 2, 2]]


# ------------------------------------------------------------------------------ the sampler holds them


class _Says(torch.nn.Module):
    """A network that is sure of one answer everywhere (+/- 30 logits)."""

    def __init__(self, sign: float):
        super().__init__()
        self.sign = sign

    def forward(self, x, t):
        return torch.full_like(x[:, :1], 30.0 * self.sign)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_sampler_holds_hinted_pixels_against_a_sure_network(sign):
    n, s = 2, 16
    image = torch.zeros(n, 3, s, s)
    coarse = torch.zeros(n, 1, s, s)
    coarse[:, :, 4:12, 4:12] = 1
    fixed = torch.zeros(n, 1, s, s, dtype=torch.bool)
    fixed[:, :, 0:3, :] = True
    value = torch.zeros_like(fixed)
    value[:, :, 0:3, :8] = True  # left half object, right half background
    sched = Schedule()
    steps = list(
        iter_denoise(
            _Says(sign),
            image,
            coarse,
            schedule=sched,
            steps=timesteps(sched),
            generator=torch.Generator().manual_seed(0),
            hints=(fixed, value),
        )
    )
    assert len(steps) == 6
    for st in steps:
        assert torch.equal(st.mask[fixed], value[fixed].float())
        assert torch.equal(st.fine_prob[fixed], torch.ones(int(fixed.sum())))
        assert torch.equal(st.confidence[fixed], torch.ones(int(fixed.sum())))
    free = ~fixed
    want = 1.0 if sign > 0 else 0.0
    assert bool(((steps[-1].mask[free] >= 0.5).float() == want).all())  # elsewhere the network has its way


# ------------------------------------------------------------------------------ real data, shipped model


@pytest.fixture(scope="module")
def nuclei():
    if not DATA.is_dir():
        pytest.skip("../shared/data is not here")
    image = read_image(DATA / "images" / f"{SAMPLE}.png")
    truth = read_labels(DATA / "labels" / f"{SAMPLE}.png").astype(np.int64)
    coarse = np.zeros_like(truth)
    for lab in np.unique(truth)[1:]:  # each nucleus grown 2 px: a typical too-large coarse mask
        grown = ndi.binary_dilation(truth == lab, iterations=2) & (coarse == 0)
        coarse[grown] = lab
    hints = np.zeros(truth.shape, np.uint8)
    ids = [int(v) for v in np.unique(truth)[1:]]
    big = max(ids, key=lambda v: int((truth == v).sum()))
    core = ndi.binary_erosion(truth == big, iterations=3)
    ys, xs = np.nonzero(core)
    hints[ys[: len(ys) // 4], xs[: len(xs) // 4]] = 2  # "background" inside a nucleus: the net says object
    ring = ndi.binary_dilation(coarse == big, iterations=4) & ~ndi.binary_dilation(coarse != 0, iterations=1)
    ry, rx = np.nonzero(ring)
    hints[ry[:25], rx[:25]] = 1  # "object" outside it: the net says background
    return image, coarse, hints, big


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["instance", "whole", "hr"])
def test_hints_hold_in_every_step_on_real_nuclei(nuclei, mode):
    image, coarse, hints, big = nuclei
    before = (image.copy(), coarse.copy(), hints.copy())
    labels = [big] if mode == "hr" else None  # HR refines one object at a time: one is enough here
    records = list(iter_refine(image, coarse, seed=0, mode=mode, hints=hints, labels=labels, device="cpu"))
    assert records[-1].done and records[-1].mode == mode
    shown = [r for r in records if r.mask is not None]
    assert len(shown) == len(records)  # previews on: every record has a frame
    for r in shown:
        assert (r.mask[hints == 2] == 0).all(), f"step {r.index}: a background hint was lost"
        assert (r.mask[hints == 1] == big).all(), f"step {r.index}: an object hint was lost"
    assert np.array_equal(image, before[0]) and np.array_equal(coarse, before[1]) and np.array_equal(hints, before[2])
    assert set(records[-1].uncertainty) == ({big} if mode == "hr" else set(np.unique(coarse)[1:].tolist()))


@pytest.mark.slow
def test_without_hints_the_network_would_have_done_otherwise(nuclei):
    """The real-data hints above contradict the model: without them it keeps the nucleus whole."""
    image, coarse, hints, big = nuclei
    plain = refine(image, coarse, seed=0, device="cpu")
    assert (plain[hints == 2] == big).mean() > 0.9
    assert (plain[hints == 1] == 0).mean() > 0.9


def test_bad_hints_are_refused_before_anything_runs(nuclei):
    image, coarse, hints, _ = nuclei
    with pytest.raises(ValueError, match="hints shape"):
        iter_refine(image, coarse, hints=hints[:-1])
    bad = hints.copy()
    bad[0, 0] = 5
    with pytest.raises(ValueError, match=r"hints may hold only"):
        iter_refine(image, coarse, hints=bad)
