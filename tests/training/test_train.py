"""Training: the official loss, one optimisation step, windows, and a resumable run."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from napari_segrefiner import LiteConfig, build_network, load_refiner
from napari_segrefiner.diffusion.scheduler import Schedule
from napari_segrefiner.training.losses import refiner_loss, sobel_kernels, texture_l1
from napari_segrefiner.training.train import TrainConfig, _step, _window, train


def test_sobel_kernels_are_the_official_ones():
    kx, ky = sobel_kernels()
    # reference section 2.2: rows (1,0,-1),(2,0,-2),(1,0,-1) / 4 and (1,2,1),(0,0,0),(-1,-2,-1) / 4
    assert torch.equal(kx[0, 0] * 4, torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]))
    assert torch.equal(ky[0, 0] * 4, torch.tensor([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]]))


def test_texture_loss_is_zero_for_a_perfect_prediction_and_positive_otherwise():
    target = torch.zeros(1, 1, 16, 16)
    target[..., 4:12, 4:12] = 1
    perfect = (target * 2 - 1) * 100.0  # sigmoid -> exactly 0/1 in float32
    assert float(texture_l1(perfect, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(texture_l1(torch.zeros_like(target), target)) > 0.01


def test_refiner_loss_parts_add_up_and_bce_matches_closed_form():
    target = torch.zeros(1, 1, 8, 8)
    logits = torch.zeros(1, 1, 8, 8)  # sigmoid 0.5 everywhere -> BCE = ln 2
    out = refiner_loss(logits, target)
    assert float(out["bce"]) == pytest.approx(np.log(2.0), rel=1e-6)
    assert float(out["loss"]) == pytest.approx(float(out["bce"] + out["texture"]), rel=1e-6)
    with pytest.raises(ValueError, match="does not match target shape"):
        refiner_loss(logits, torch.zeros(1, 1, 4, 4))


def _tiny_batch(n=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    image = np.zeros((n, 3, size, size), np.uint8)
    fine = np.zeros((n, 1, size, size), np.float32)
    coarse = np.zeros_like(fine)
    for i in range(n):
        y, x = rng.integers(6, size - 14, 2)
        image[i, :, y : y + 10, x : x + 10] = 230
        fine[i, 0, y : y + 10, x : x + 10] = 1
        coarse[i, 0, y - 3 : y + 13, x - 3 : x + 13] = 1
    return {"image": torch.from_numpy(image), "fine": torch.from_numpy(fine), "coarse": torch.from_numpy(coarse)}


def test_training_steps_decrease_the_loss_on_a_tiny_batch():
    torch.manual_seed(0)
    model = build_network(LiteConfig.tiny()).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = _tiny_batch()
    gen = torch.Generator().manual_seed(0)
    kwargs = dict(schedule=Schedule(), gen=gen, device=torch.device("cpu"), autocast=False, clip=1.0)
    first = float(_step(model, opt, batch, batch["fine"], **kwargs)[1]["loss"])
    for _ in range(25):
        last = float(_step(model, opt, batch, batch["fine"], **kwargs)[1]["loss"])
    assert last < 0.8 * first


def test_windows_keep_scale_and_centre_on_wrong_pixels():
    batch = _tiny_batch(n=3, size=32)
    cut = _window(batch, 16, torch.Generator().manual_seed(0))
    assert cut["image"].shape == (3, 3, 16, 16) and cut["fine"].shape == (3, 1, 16, 16)
    for i in range(3):  # a window centred on a wrong pixel (p = 0.9) or anywhere; values are copied, not resampled
        assert set(torch.unique(cut["fine"][i]).tolist()) <= {0.0, 1.0}
    assert _window(batch, 32, torch.Generator()) is batch


def _folder(root, n=6, size=96, seed=0):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    ids = []
    for i in range(n):
        img = np.full((size, size, 3), 30, np.uint8)
        mask = np.zeros((size, size), np.uint8)
        cy, cx = rng.integers(30, size - 30, 2)
        cv2.circle(img, (int(cx), int(cy)), 18, (200, 180, 90), -1)
        cv2.circle(mask, (int(cx), int(cy)), 18, 255, -1)
        cv2.imwrite(str(root / "images" / f"im{i}.png"), img)
        cv2.imwrite(str(root / "masks" / f"im{i}.png"), mask)
        ids.append(f"im{i}")
    (root / "train.txt").write_text("\n".join(ids[:4]))
    (root / "val.txt").write_text("\n".join(ids[4:]))
    return root


def test_train_writes_best_and_resumable_checkpoints(tmp_path):
    data = _folder(tmp_path / "disks")
    out = tmp_path / "run" / "model.pt"
    cfg = TrainConfig(
        data=[str(data)],
        val=[str(data)],
        out=str(out),
        iters=4,
        batch_size=2,
        size=64,
        arch="lite-tiny",
        num_workers=0,
        log_every=2,
        val_every=2,
        val_items=2,
        save_every=2,
        warmup=2,
        patch_fraction=0.5,
        defaults={"min_area": 16},
    )
    seen = []
    path = train(cfg, progress=lambda step, rec: seen.append(step))
    assert path == out and out.is_file() and out.with_suffix(".last.pt").is_file()
    assert seen == [2, 4]
    records = [json.loads(line) for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
    assert {"loss", "bce", "texture", "iou_coarse", "iou_refined"} <= set(records[-1])
    refiner = load_refiner(out, device="cpu")
    assert refiner.config.min_area == 16
    assert refiner.meta["train"]["iters"] == 4
    # resume continues from the last step instead of starting again
    cfg.iters, cfg.resume = 6, True
    seen.clear()
    train(cfg, progress=lambda step, rec: seen.append(step))
    assert seen == [6]
