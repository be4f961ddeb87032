"""The one batch step (napari_segrefiner.engine.batch): crops from a box's own pixels, one random stream
per object, answers pasted onto each object's box."""

from __future__ import annotations

import numpy as np
import torch

from napari_segrefiner.diffusion.scheduler import Schedule, timesteps
from napari_segrefiner.engine.batch import PipelineRun, object_crop, refine_batch
from napari_segrefiner.models.config import RefineConfig


class Echo(torch.nn.Module):
    """Logits +-1 from the state it is given: every pixel's fate is left to the random draws."""

    def forward(self, x, t):
        return x[:, 3:4] * 2.0 - 1.0


def _scene():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    lab = np.zeros((40, 60), np.int64)
    lab[5:20, 5:25] = 1
    lab[18:35, 30:55] = 2
    return rgb, lab


def test_a_crop_is_the_same_whatever_array_its_box_was_read_from():
    rgb, lab = _scene()
    y0, y1, x0, x1 = 10, 38, 25, 58
    from_frame = object_crop(rgb[y0:y1, x0:x1], lab[y0:y1, x0:x1], 2, full_width=False, size=32, device="cpu")
    alone = object_crop(rgb[y0:y1, x0:x1].copy(), lab[y0:y1, x0:x1].copy(), 2, full_width=False, size=32, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(from_frame, alone))
    crop, coarse = from_frame
    assert crop.shape == (1, 3, 32, 32) and coarse.shape == (1, 1, 32, 32)
    assert set(coarse.unique().tolist()) == {0.0, 1.0} and 0 < coarse.mean() < 1


def _refine(labels, boxes):
    rgb, lab = _scene()
    config = RefineConfig(size=32, batch_size=4, clean=False)
    schedule = Schedule()
    run = PipelineRun(Echo().eval(), schedule, config, tuple(timesteps(schedule, 3)), seed=7)
    pairs = [
        object_crop(rgb[a:b, c:d], lab[a:b, c:d], v, full_width=False, size=32, device="cpu")
        for v, (a, b, c, d) in zip(labels, boxes)
    ]
    crops, coarse = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
    return refine_batch(run, labels, boxes, crops, coarse, [lab[a:b, c:d] for a, b, c, d in boxes])


def test_every_object_draws_from_its_own_stream_whatever_its_batch():
    boxes = [(0, 25, 0, 30), (13, 40, 25, 60)]
    together = _refine([1, 2], boxes)
    alone = _refine([2], boxes[1:])
    assert [r.label for r in together] == [1, 2] and together[1].box == boxes[1]
    a, b = together[1].answer, alone[0].answer
    assert a.box == b.box and np.array_equal(a.bits, b.bits) and np.array_equal(a.values, b.values)
    assert all(0.0 <= r.score <= 2.0 for r in together)


def test_a_cpu_evaluates_a_batch_of_objects_a_few_crops_at_a_time():
    from napari_segrefiner.engine.batch import CPU_NETWORK_BATCH, network_batch

    config = RefineConfig(batch_size=32)
    assert network_batch(config, "cpu") == CPU_NETWORK_BATCH < 32
    assert network_batch(RefineConfig(batch_size=2), "cpu") == 2
    assert network_batch(config, torch.device("cuda")) == 32  # a GPU takes the whole batch


def test_how_a_batch_is_split_for_the_network_does_not_change_the_result(tiny_model, monkeypatch):
    from napari_segrefiner import refine
    from napari_segrefiner.engine import batch

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
    labels = np.zeros((80, 96), np.int32)
    for k in range(12):
        y, x = divmod(k, 4)
        labels[4 + 25 * y : 20 + 25 * y, 4 + 23 * x : 20 + 23 * x] = k + 1
    model = tiny_model.with_options(keep_bias=0.2, batch_size=12)
    results = []
    for chunk in (12, 5, 1):
        monkeypatch.setattr(batch, "CPU_NETWORK_BATCH", chunk)
        results.append(refine(image, labels, model=model, seed=4))
    assert (results[0] != labels).any()
    assert all(np.array_equal(r, results[0]) for r in results[1:])
