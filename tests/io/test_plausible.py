"""Runs that would run away are refused before any work; every public option is checked.

* A photo passed as the mask, or image and mask swapped, is refused in well under 5 s
  (CLI and API), with a hint; ``--force``/``force=True`` runs it anyway.
* The label scan is linear: 262,144 one-pixel labels go through in well under 5 s (they
  took 36 s, quadratic in the label count).
* A run whose estimated memory exceeds what is available is refused.
* ``chunks``, ``model``, ``previews``, ``autocast``, ``cancel``, ``progress`` and
  ``force`` are validated at the boundary with a message that names them.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import torch
from _cli_helpers import refine_argv

from napari_segrefiner import refine, refine_lazy
from napari_segrefiner.cli.main import main
from napari_segrefiner.io import plausible
from napari_segrefiner.io.plausible import check_label_count, check_memory, estimate_peak_bytes, label_limit


def _photo(side: int, seed: int = 0) -> np.ndarray:
    """A noisy colour picture: nearly every pixel has its own colour."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    base = np.stack([yy * 255 // side, xx * 255 // side, (yy + xx) * 127 // side], axis=-1)
    return np.clip(base + g.integers(-40, 40, (side, side, 3)), 0, 255).astype(np.uint8)


def test_label_limit_rule():
    assert label_limit((10, 10)) == 1024  # small images: up to 1024 labels always pass
    assert label_limit((512, 512)) == 512 * 512 // 16 == 16384
    assert label_limit((3, 100, 200)) == 1250  # the last two axes are the plane
    check_label_count(16384, (512, 512))
    with pytest.raises(ValueError, match=r"16385 labels on 512 x 512 pixels.*swapped.*force=True \(CLI: --force\)"):
        check_label_count(16385, (512, 512))
    check_label_count(10**9, (4, 4), force=True)
    with pytest.raises(TypeError, match="force must be True or False"):
        check_label_count(1, (4, 4), force="yes")


def test_a_photo_as_the_mask_is_refused_by_the_cli_in_milliseconds(tmp_path, tiny_checkpoint, capsys):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), _photo(512)[..., ::-1])
    gray = tmp_path / "mask.png"
    cv2.imwrite(str(gray), (_photo(512)[..., 0] > 128).astype(np.uint8) * 255)
    common = ["--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--threads", "1"]
    for image, mask in ((photo, photo), (gray, photo)):  # the photo twice; image and mask swapped
        start = time.perf_counter()
        code = main(["refine", str(image), str(mask), "-o", str(tmp_path / "out.tif"), *common])
        took = time.perf_counter() - start
        err = capsys.readouterr().err
        assert code == 2 and took < 5.0, (code, took)
        assert "labels on 512 x 512 pixels" in err and "were image and mask swapped" in err and "--force" in err
    assert not (tmp_path / "out.tif").exists()


def test_force_runs_an_implausible_mask_and_the_scan_is_linear(tmp_path, tiny_checkpoint, tiny_model):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), _photo(96)[..., ::-1])
    out = tmp_path / "out.tif"
    assert main(refine_argv(photo, photo, out, tiny_checkpoint, "--force")) == 0
    assert out.is_file()
    labels = np.arange(1, 512 * 512 + 1, dtype=np.int32).reshape(512, 512)  # 262,144 one-pixel labels
    start = time.perf_counter()
    result = refine(np.zeros((512, 512), np.uint8), labels, model=tiny_model, mode="instance", force=True)
    took = time.perf_counter() - start
    assert took < 5.0, f"{took:.1f} s"
    np.testing.assert_array_equal(result, labels)  # all below min_area: left as they are


def test_the_api_refuses_an_implausible_mask_before_loading_anything(tiny_model, monkeypatch):
    from napari_segrefiner.models import refiner

    monkeypatch.setattr(refiner, "load_refiner", lambda *a, **k: pytest.fail("the model was loaded"))
    labels = np.arange(64 * 64, dtype=np.int32).reshape(64, 64) % 2000  # 1999 labels > 1024
    with pytest.raises(ValueError, match="1999 labels on 64 x 64 pixels"):
        refine(np.zeros((64, 64), np.uint8), labels, model="segrefiner-lite")
    with pytest.raises(ValueError, match="labels on 64 x 64"):
        refine_lazy(np.zeros((64, 64), np.uint8), labels, model=tiny_model)


def test_a_run_that_does_not_fit_in_memory_is_refused(tiny_model, monkeypatch, blobs):
    image, mask = blobs
    need = estimate_peak_bytes((64, 64), 2, size=64)
    assert need == 2 * 64 * 64 * plausible.BYTES_PER_CROP_PIXEL + 64 * 64 * plausible.BYTES_PER_FRAME_PIXEL
    check_memory((64, 64), 2, size=64, available=need)
    with pytest.raises(ValueError, match="refining 2 objects at once needs at least"):
        check_memory((64, 64), 2, size=64, available=need - 1)
    monkeypatch.setattr(plausible, "available_bytes", lambda device=None: need - 1)
    with pytest.raises(ValueError, match=r"2 objects at once.*swapped.*force=True"):
        refine(image, mask, model=tiny_model, mode="instance", min_area=1)
    out = refine(image, mask, model=tiny_model, mode="instance", min_area=1, force=True)
    assert out.shape == mask.shape
    refine(image, mask, model=tiny_model, mode="instance", labels=[1], min_area=1)  # one object fits


def test_available_memory_is_known_here():
    assert plausible.available_bytes("cpu") > 0


# ------------------------------------------------------------------- options at the boundary
@pytest.mark.parametrize(
    "chunks, error, match",
    [
        (0, ValueError, "chunks must be at least 16 px"),
        ((64, 0), ValueError, "chunks must be at least 16 px"),
        (-5, ValueError, "chunks"),
        ("64", TypeError, "chunks must be None, an int or a pair"),
        ((16, 16, 16), TypeError, "chunks must be None, an int or a pair"),
        (16.0, TypeError, "chunks"),
        (True, TypeError, "chunks"),
    ],
)
def test_refine_lazy_checks_chunks(tiny_model, blobs, chunks, error, match):
    image, mask = blobs
    with pytest.raises(error, match=match):
        refine_lazy(image, mask, model=tiny_model, chunks=chunks)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"progress": 5}, TypeError, "progress must be None or a callable"),
        ({"autocast": "yes"}, TypeError, "autocast must be True or False"),
        ({"force": 1}, TypeError, "force must be True or False"),
    ],
)
def test_refine_lazy_checks_its_other_options(tiny_model, blobs, kwargs, error, match):
    image, mask = blobs
    with pytest.raises(error, match=match):
        refine_lazy(image, mask, model=tiny_model, **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"previews": "no"}, TypeError, "previews must be True or False"),
        ({"autocast": 1}, TypeError, "autocast must be True or False"),
        ({"force": None}, TypeError, "force must be True or False"),
        ({"cancel": 5}, TypeError, "cancel must be None or a callable"),
    ],
)
def test_refine_checks_its_flags(tiny_model, blobs, kwargs, error, match):
    from napari_segrefiner import iter_refine

    image, mask = blobs
    with pytest.raises(error, match=match):
        iter_refine(image, mask, model=tiny_model, **kwargs)
    if "previews" in kwargs:  # iter_refine's own: refine returns no records to preview
        with pytest.raises(TypeError, match=rf"unknown options \['{next(iter(kwargs))}'\]"):
            refine(image, mask, model=tiny_model, **kwargs)
    else:
        with pytest.raises(error, match=match):
            refine(image, mask, model=tiny_model, **kwargs)


class _WrongShape(torch.nn.Module):
    def forward(self, x, t):
        return x[:, :2]


class _NaN(torch.nn.Module):
    def forward(self, x, t):
        return torch.full_like(x[:, :1], float("nan"))


@pytest.mark.parametrize(
    "model, error, match",
    [
        (
            torch.nn.Linear(2, 2),
            TypeError,
            r"model is not a SegRefiner network: Linear fails when called as model\(x, t\)",
        ),
        (torch.nn.Conv2d(4, 1, 3, padding=1), TypeError, "model is not a SegRefiner network: Conv2d"),
        (
            _WrongShape(),
            ValueError,
            r"model is not a SegRefiner network: .* shape \(2, 2, 32, 32\), not .* \(2, 1, 32, 32\)",
        ),
        (_NaN(), ValueError, "model gives NaN or infinite logits"),
    ],
)
def test_a_model_that_is_not_a_segrefiner_network_is_refused_naming_model(blobs, model, error, match):
    image, mask = blobs
    with pytest.raises(error, match=match):
        refine(image, mask, model=model, device="cpu")
    with pytest.raises(error, match=match):
        refine_lazy(image, mask, model=model, device="cpu")
