"""The encoder-decoder refiner: encoder once per crop, decoder per step, hints held in every mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_segrefiner.api import refine
from napari_segrefiner.models.checkpoint import save_checkpoint
from napari_segrefiner.models.config import EncDecConfig
from napari_segrefiner.models.nets import build_network
from napari_segrefiner.models.refiner import load_refiner


class Counting(torch.nn.Module):
    """Wraps a network's encode and denoise and counts the samples each one sees."""

    def __init__(self, net):
        super().__init__()
        self.net, self.encoded, self.denoised = net, [], []
        self.config = net.config

    def encode(self, image):
        self.encoded.append(image.shape[0])
        return self.net.encode(image)

    def denoise(self, mask, t, feats, image):
        self.denoised.append(mask.shape[0])
        return self.net.denoise(mask, t, feats, image)

    def forward(self, x, t):  # the forward contract (the load-time probe calls it)
        return self.net(x, t)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_network(EncDecConfig.tiny()).eval()


def _scene(n=3, size=128):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    lab = np.zeros((size, size), np.int32)
    for k in range(n):
        y, x = 10 + 38 * k, 15 + 30 * k
        lab[y : y + 20, x : x + 24] = k + 1
    return img, lab


@pytest.mark.parametrize("batch", [1, 2, 8])
def test_instance_mode_encodes_each_crop_once_and_decodes_each_step(net, batch):
    img, lab = _scene()
    counting = Counting(net).eval()
    refiner = load_refiner(counting, device="cpu").with_options(batch_size=batch, min_area=0, size=64)
    counting.encoded.clear(), counting.denoised.clear()  # the load-time probe ran the network once
    refine(img, lab, model=refiner, mode="instance", steps=None)
    assert sum(counting.encoded) == 3  # three objects: one encoder pass each, whatever the batch
    assert sum(counting.denoised) == 3 * 6  # every object through all six reverse steps
    assert max(counting.encoded) <= batch


def test_whole_and_hr_modes_encode_their_shared_frame_once(net):
    img, lab = _scene()
    counting = Counting(net).eval()
    refiner = load_refiner(counting, device="cpu").with_options(min_area=0, size=64, batch_size=2)
    counting.encoded.clear(), counting.denoised.clear()  # the load-time probe ran the network once
    refine(img, lab, model=refiner, mode="whole")
    assert counting.encoded == [1]  # one frame for the three labels
    assert sum(counting.denoised) == 3 * 6
    counting.encoded.clear(), counting.denoised.clear()
    big_img = np.random.default_rng(1).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    one = np.zeros((256, 256), np.uint8)
    one[40:200, 60:220] = 1
    refine(big_img, one, model=refiner, mode="hr", hr_patch=64, hr_min_pixels=0)
    # the global input once for its five steps, then every local patch once for its single t=0 step
    assert counting.encoded[0] == 1 and counting.denoised[:5] == [1] * 5
    assert sum(counting.encoded[1:]) == sum(counting.denoised[5:]) > 0


@pytest.mark.parametrize("mode", ["instance", "whole", "hr"])
def test_hints_hold_with_the_encoder_decoder_network(net, tmp_path, mode):
    path = tmp_path / "encdec.pt"
    save_checkpoint(path, net)
    img = np.random.default_rng(2).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    lab = np.zeros((256, 256), np.int32)
    lab[30:120, 40:140] = 1
    lab[150:230, 120:220] = 2
    hints = np.zeros(lab.shape, np.uint8)
    hints[60:70, 60:70] = 2  # background inside object 1
    hints[135:145, 140:150] = 1  # object next to object 2 (nearest), inside its crop
    hints[200:205, 200:205] = 2
    opts = dict(model=str(path), device="cpu", seed=0, hints=hints, size=64, min_area=0)
    if mode == "hr":
        opts.update(hr_patch=64, hr_min_pixels=0)
        lab = (lab == 1).astype(np.int32)  # HR refines one object after the other: keep it small
        hints[135:145, 140:150] = 0
    out = refine(img, lab, mode=mode, **opts)
    assert (out[hints == 2] == 0).all()
    assert (out[hints == 1] != 0).all()
