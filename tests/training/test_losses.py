"""SegRefiner's training loss (napari_segrefiner.training.losses)."""

from __future__ import annotations

import math

import pytest
import torch

from napari_segrefiner.training.losses import refiner_loss, texture_l1


def test_bce_of_a_constant_answer_and_no_texture_on_flat_maps():
    target = torch.ones(1, 1, 8, 8)
    logits = torch.zeros(1, 1, 8, 8)  # p = 0.5 everywhere: BCE = log 2
    out = refiner_loss(logits, target)
    assert out["bce"].item() == pytest.approx(math.log(2), abs=1e-6)
    # flat maps: both gradients are sqrt(1e-4) in the interior, the padded borders differ
    assert out["loss"].item() == pytest.approx(out["bce"].item() + out["texture"].item())
    assert texture_l1(torch.full((1, 1, 8, 8), 50.0), target).item() == pytest.approx(0.0, abs=1e-5)


def test_wrong_pixels_weigh_more_and_shapes_must_match():
    target = torch.zeros(1, 1, 4, 4)
    coarse = target.clone()
    coarse[..., 0, 0] = 1  # one wrong pixel
    logits = torch.zeros(1, 1, 4, 4)
    plain = refiner_loss(logits, target)["bce"].item()
    weighted = refiner_loss(logits, target, coarse=coarse, wrong_weight=15.0)["bce"].item()
    assert weighted == pytest.approx(plain * (15 + 16) / 16, rel=1e-6)  # one pixel of 16 counts 16 times
    with pytest.raises(ValueError, match="does not match target shape"):
        refiner_loss(logits, torch.zeros(1, 1, 4, 5))
