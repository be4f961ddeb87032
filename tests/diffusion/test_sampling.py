"""Tests for the reverse-diffusion loop (napari_segrefiner.diffusion.sampling) with oracle networks.

The expected fine-state probabilities F after each step are derived by hand in
tests/test_scheduler.py's docstring: 0.16, 0.32, 0.48, 0.64, 0.80, 1.
"""

from __future__ import annotations

import math

import pytest
import torch
from _diffusion_helpers import BIG, SCHED, gen, oracle_from_image  # noqa: E402

from napari_segrefiner.diffusion.sampling import denoise, iter_denoise
from napari_segrefiner.diffusion.scheduler import Schedule, reverse_step, timesteps


def test_loop_mixes_with_original_coarse_not_current_state():
    # The loop starts from `start` (all ones) but the ORIGINAL coarse mask is all zeros.
    # A model with confidence 0 (logit 0) keeps F = 0, so every non-final step must show the
    # coarse mask (zeros). Mixing with the current state (the old "DiffRefinementor"
    # variant) would keep the ones; mixing with the hard prediction 1[0 >= 0] would give ones.
    image = torch.zeros(1, 3, 8, 8)
    coarse = torch.zeros(1, 1, 8, 8)
    start = torch.ones(1, 1, 8, 8)
    seen = []

    def model(x, t):
        seen.append(x[:, 3:].clone())
        return torch.zeros(x.shape[0], 1, *x.shape[2:])

    recs = list(iter_denoise(model, image, coarse, schedule=SCHED, steps=[5, 4, 3], start=start, generator=gen(0)))
    assert torch.equal(seen[0], start)  # first network input = start
    assert torch.equal(recs[0].mask, coarse) and torch.equal(recs[1].mask, coarse)
    assert torch.equal(seen[1], coarse) and torch.equal(seen[2], coarse)


def test_reverse_marginals_follow_beta_bar():
    # Confident oracle predicting 1 everywhere, coarse = 0 everywhere: the fraction of ones in
    # m_{t-1} is the fraction of pixels drawn "fine", i.e. F = beta_bar[t-1] after step t
    # (0.16, 0.32, 0.48, 0.64, 0.80) -- the reverse marginals equal the forward ones.
    # If the draw mixed with the current state instead, the fraction after t=4 would be
    # 1 - 0.84 * 0.68 = 0.4288, not 0.32. n = 65536 pixels -> sd <= 0.00195; tolerance 5 sd.
    n_side = 256
    n = n_side * n_side
    image = torch.zeros(1, 3, n_side, n_side)
    coarse = torch.zeros(1, 1, n_side, n_side)

    def ones(x, t):
        return torch.full((x.shape[0], 1, *x.shape[2:]), BIG)

    recs = list(iter_denoise(ones, image, coarse, schedule=SCHED, steps=[5, 4, 3, 2, 1, 0], generator=gen(3)))
    for rec, f in zip(recs[:-1], [0.16, 0.32, 0.48, 0.64, 0.80]):
        sd = math.sqrt(f * (1 - f) / n)
        assert abs(rec.mask.mean().item() - f) < 5 * sd, (rec.timestep, rec.mask.mean().item(), f)


def test_oracle_reverse_process_recovers_ground_truth_and_F_schedule():
    # ground truth encoded in image channel 0; coarse = a corrupted copy (shifted + a blob)
    n, h, w = 5, 24, 32
    g = gen(11)
    gt = (torch.rand(n, 1, h, w, generator=g) > 0.6).float()
    coarse = torch.roll(gt, shifts=3, dims=-1)
    coarse[:, :, :5, :5] = 1.0
    image = torch.cat([gt * 2 - 1, torch.zeros(n, 2, h, w)], dim=1)
    seen_t, seen_masks = [], []

    def model(x, t):
        seen_t.append(t.tolist())
        seen_masks.append(x[:, 3:].clone())
        return oracle_from_image(x, t)

    before = (image.clone(), coarse.clone())
    recs = list(
        iter_denoise(model, image, coarse, schedule=SCHED, steps=timesteps(SCHED), generator=gen(5), batch_size=2)
    )
    # inputs untouched
    assert torch.equal(image, before[0]) and torch.equal(coarse, before[1])
    # 6 steps t = 5..0; with batch_size 2 the model is called 3 times per step (2 + 2 + 1)
    assert [r.timestep for r in recs] == [5, 4, 3, 2, 1, 0]
    assert [r.index for r in recs] == list(range(6))
    assert [r.is_last for r in recs] == [False] * 5 + [True]
    assert seen_t[:3] == [[5, 5], [5, 5], [5]]
    assert torch.equal(torch.cat(seen_masks[:3]), coarse)  # first network input = coarse mask
    # cumulative F: 0.16, 0.32, 0.48, 0.64, 0.80, then 1.0 after t = 0 (module docstring)
    for rec, f in zip(recs, [0.16, 0.32, 0.48, 0.64, 0.80, 1.0]):
        assert torch.allclose(rec.fine_prob, torch.full_like(rec.fine_prob, f), atol=1e-6), rec.timestep
        assert torch.all(rec.confidence == 1.0)
    # intermediate states are binary mixtures of truth and ORIGINAL coarse
    for rec in recs[:-1]:
        assert bool(((rec.mask == gt) | (rec.mask == coarse)).all())
    # the last step returns sigmoid(+-50): the truth to float precision
    final = recs[-1].mask
    assert torch.equal(final >= 0.5, gt.bool())
    assert (final - gt).abs().max().item() < 1e-6


def test_last_step_returns_soft_sigmoid():
    logits = torch.linspace(-3, 3, 16).view(1, 1, 4, 4)
    coarse = torch.zeros(1, 1, 4, 4)
    r = reverse_step(logits, 0, coarse=coarse, fine_prob=torch.zeros_like(coarse), schedule=SCHED, last=True)
    assert torch.allclose(r.mask, torch.sigmoid(logits))
    assert torch.allclose(r.prob, torch.sigmoid(logits))
    # soft: strictly between 0 and 1 and not binary
    assert 0.0 < r.mask.min().item() and r.mask.max().item() < 1.0
    # the loop's final record is soft too (a model with moderate logits)
    last = denoise(
        lambda x, t: logits.expand(x.shape[0], 1, 4, 4),
        torch.zeros(1, 3, 4, 4),
        coarse,
        schedule=SCHED,
        steps=[5, 4],
        generator=gen(0),
    )
    assert last.is_last and torch.allclose(last.mask, torch.sigmoid(logits))


def test_iter_denoise_is_deterministic_with_a_generator():
    g0 = gen(0)
    image = torch.randn(2, 3, 16, 16, generator=g0)
    coarse = (torch.rand(2, 1, 16, 16, generator=g0) > 0.5).float()
    weight = torch.randn(1, 4, 1, 1, generator=g0)

    def model(x, t):  # a fixed random "network" with moderate confidence
        return (x * weight).sum(1, keepdim=True) + 0.1 * t.view(-1, 1, 1, 1)

    def run(seed):
        return [
            r.mask
            for r in iter_denoise(model, image, coarse, schedule=SCHED, steps=timesteps(SCHED), generator=gen(seed))
        ]

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert any(not torch.equal(x, y) for x, y in zip(a, c))


def test_skipped_steps_use_the_next_visited_timestep():
    # steps [5, 2, 0] with confidence 1:
    #   t=5 -> next 2: p = (0.48 - 0) / (1 - 0) = 0.48          F = 0.48 = beta_bar[2]
    #   t=2 -> next 0: p = (0.80 - 0.48) / (1 - 0.48) = 8/13    F = 0.48 + 0.52 * 8/13 = 0.80
    #   t=0 (last):    p = (1 - 0.8) / (1 - 0.8) = 1             F = 1
    coarse = torch.zeros(1, 1, 4, 4)
    recs = list(
        iter_denoise(
            lambda x, t: torch.full((1, 1, 4, 4), BIG),
            torch.zeros(1, 3, 4, 4),
            coarse,
            schedule=SCHED,
            steps=[5, 2, 0],
            generator=gen(0),
        )
    )
    assert [r.fine_prob.flatten()[0].item() for r in recs] == pytest.approx([0.48, 0.80, 1.0], abs=1e-6)


def test_cancel_is_asked_before_every_batch_and_stops_the_loop():
    from napari_segrefiner.diffusion.sampling import RefineCancelled

    calls = []

    def net(x, t):
        calls.append(x.shape[0])
        return torch.zeros(x.shape[0], 1, *x.shape[2:])

    image, coarse = torch.zeros(5, 3, 8, 8), torch.ones(5, 1, 8, 8)
    asked = []

    def cancel():
        asked.append(len(calls))
        return len(calls) == 2  # stop after the second batch of the first step

    loop = iter_denoise(net, image, coarse, schedule=Schedule(), steps=[5, 4], batch_size=2, cancel=cancel)
    with pytest.raises(RefineCancelled):
        next(loop)
    # asked before each of the 3 encoder batches (a plain callable's encoder costs nothing),
    # then before each decoder batch: the third decoder batch never ran
    assert calls == [2, 2] and asked == [0, 0, 0, 0, 1, 2]


def test_keep_bias_pulls_every_step_towards_the_coarse_mask():
    # the network says "foreground" with logit 1 everywhere; the coarse mask is half 0, half 1
    def net(x, t):
        return torch.ones(x.shape[0], 1, *x.shape[2:])

    coarse = torch.zeros(1, 1, 4, 4)
    coarse[..., 2:] = 1
    image = torch.zeros(1, 3, 4, 4)
    free = denoise(net, image, coarse, schedule=Schedule(), steps=[0])
    kept = denoise(net, image, coarse, schedule=Schedule(), steps=[0], keep_bias=2.0)
    s1, s3 = 1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(-3.0))
    assert torch.allclose(free.prob, torch.full_like(free.prob, s1))
    # logit 1 - 2 = -1 where the coarse mask is 0, 1 + 2 = 3 where it is 1
    assert torch.allclose(kept.prob[..., :2], torch.full((1, 1, 4, 2), 1 - s1))
    assert torch.allclose(kept.prob[..., 2:], torch.full((1, 1, 4, 2), s3))
