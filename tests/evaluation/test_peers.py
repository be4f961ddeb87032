"""Tests for napari_segrefiner.evaluation.peers (classical refinement baselines)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from napari_segrefiner.evaluation import peers

H = W = 96
CENTRE, RADIUS, COARSE_GROW = 48, 20, 6


def _iou(a, b):
    # tiny inline IoU so these tests do not depend on metrics.py
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


@pytest.fixture(scope="module")
def scene():
    """Bright noisy disk on a dark noisy background, coarse mask = disk + 6 px."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:H, :W]
    disk = (yy - CENTRE) ** 2 + (xx - CENTRE) ** 2 <= RADIUS**2
    base = np.where(disk[..., None], 200, 40).astype(np.int16)
    image = np.clip(base + rng.integers(-15, 16, (H, W, 3)), 0, 255).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * COARSE_GROW + 1,) * 2)
    coarse = cv2.dilate(disk.astype(np.uint8), kernel).astype(bool)
    return image, coarse, disk


ALL_PEERS = sorted(peers.available_peers().items())
PEER_IDS = [name for name, _ in ALL_PEERS]


def test_available_peers_contents():
    found = peers.available_peers()
    assert {"identity", "grabcut", "random_walker"} <= set(found)
    assert ("densecrf" in found) == (peers.densecrf is not None)
    assert all(callable(f) for f in found.values())


@pytest.mark.parametrize(("name", "fn"), ALL_PEERS, ids=PEER_IDS)
def test_peer_returns_bool_mask_and_keeps_inputs(scene, name, fn):
    image, coarse, _ = scene
    image_before, coarse_before = image.copy(), coarse.copy()
    out = fn(image, coarse, seed=0)
    assert isinstance(out, np.ndarray)
    assert out.dtype == bool
    assert out.shape == coarse.shape
    assert out is not coarse
    np.testing.assert_array_equal(image, image_before)
    np.testing.assert_array_equal(coarse, coarse_before)


def test_identity_is_a_copy(scene):
    image, coarse, _ = scene
    out = peers.identity(image, coarse)
    np.testing.assert_array_equal(out, coarse)
    out[0, 0] = not out[0, 0]
    assert coarse[0, 0] != out[0, 0]


def test_coarse_mask_is_a_poor_start(scene):
    # sanity check of the fixture: disk radius 20 vs 26 -> IoU about (20/26)^2 = 0.59
    _, coarse, disk = scene
    assert 0.5 < _iou(coarse, disk) < 0.7


@pytest.mark.parametrize("name", ["grabcut", "random_walker", "densecrf"])
def test_peer_improves_iou_on_clear_disk(scene, name):
    fn = getattr(peers, name)
    if fn is None:
        pytest.skip(f"{name} is not available (optional dependency missing)")
    image, coarse, disk = scene
    before = _iou(coarse, disk)
    after = _iou(fn(image, coarse, seed=0), disk)
    # the disk is trivially separable, so a working peer gets close to 1
    assert after > before + 0.2
    assert after > 0.9


@pytest.mark.parametrize("name", ["grabcut", "random_walker"])
def test_degenerate_masks_fall_back_to_input(scene, name):
    fn = getattr(peers, name)
    image, _, _ = scene
    empty = np.zeros((H, W), dtype=bool)
    full = np.ones((H, W), dtype=bool)  # no background sample anywhere
    np.testing.assert_array_equal(fn(image, empty), empty)
    np.testing.assert_array_equal(fn(image, full), full)


def test_grabcut_seed_is_reproducible(scene):
    image, coarse, _ = scene
    np.testing.assert_array_equal(peers.grabcut(image, coarse, seed=3), peers.grabcut(image, coarse, seed=3))


def test_peers_accept_integer_masks(scene):
    image, coarse, _ = scene
    as_u8 = coarse.astype(np.uint8) * 255
    np.testing.assert_array_equal(peers.grabcut(image, as_u8, seed=0), peers.grabcut(image, coarse, seed=0))


def test_object_touching_border(scene):
    # half disk cut by the left image border: refinement must still work there
    image, coarse, disk = scene
    shift = CENTRE  # move the scene left so the disk centre sits on column 0
    img2 = np.ascontiguousarray(np.roll(image, -shift, axis=1)[:, : W - shift])
    coarse2 = np.roll(coarse, -shift, axis=1)[:, : W - shift]
    disk2 = np.roll(disk, -shift, axis=1)[:, : W - shift]
    for name in ("grabcut", "random_walker"):
        out = getattr(peers, name)(img2, coarse2, seed=0)
        assert _iou(out, disk2) > _iou(coarse2, disk2) + 0.2, name


@pytest.mark.parametrize(
    ("image", "mask", "exc", "match"),
    [
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), bool), ValueError, r"image must have shape \(H, W, 3\)"),
        (np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8), bool), ValueError, r"image must have shape \(H, W, 3\)"),
        (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), bool), TypeError, "image must be uint8"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 1), bool), ValueError, "mask must be 2-D"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9), bool), ValueError, r"mask shape \(8, 9\) does not match"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32), TypeError, "mask must be a bool or integer"),
    ],
)
@pytest.mark.parametrize(("name", "fn"), ALL_PEERS, ids=PEER_IDS)
def test_invalid_inputs(name, fn, image, mask, exc, match):
    with pytest.raises(exc, match=match):
        fn(image, mask)


@pytest.mark.parametrize("name", ["grabcut", "random_walker"])
@pytest.mark.parametrize("bad", [0, -2, 2.5, True])
def test_invalid_margin(scene, name, bad):
    image, coarse, _ = scene
    with pytest.raises(ValueError, match="margin must be a positive integer"):
        getattr(peers, name)(image, coarse, margin=bad)


def test_densecrf_confidence_validated(scene):
    if peers.densecrf is None:
        pytest.skip("pydensecrf2 is not installed")
    image, coarse, _ = scene
    with pytest.raises(ValueError, match=r"confidence must be in \(0.5, 1\)"):
        peers.densecrf(image, coarse, confidence=1.0)
