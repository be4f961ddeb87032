"""Tests for the discrete mask diffusion (napari_segrefiner.scheduler / sampling).

Every expected number is derived independently from the reference dossier
(/work/shared/reference/segrefiner.md, section 3) and written out by hand here:

    beta_bar[t] = 0.8 - 0.16 t          t = 0..5  ->  [0.80, 0.64, 0.48, 0.32, 0.16, 0.00]
    beta_bar[-1] = 1                    (the clean state, used by the t = 0 step)

    p_c2f(t) = p (beta_bar[t-1] - beta_bar[t]) / (1 - p beta_bar[t])
    with p = 1 (confidence 1):
        t=5: 0.16 / (1 - 0)    = 0.16
        t=4: 0.16 / (1 - 0.16) = 4/21 = 0.190476...
        t=3: 0.16 / (1 - 0.32) = 4/17 = 0.235294...
        t=2: 0.16 / (1 - 0.48) = 4/13 = 0.307692...
        t=1: 0.16 / (1 - 0.64) = 4/9  = 0.444444...
        t=0: 0.20 / (1 - 0.80) = 1
    F <- F + (1 - F) p_c2f, F_0 = 0:
        after t=5: 0.16; t=4: 0.16 + 0.84 * 4/21 = 0.32; t=3: 0.32 + 0.68 * 4/17 = 0.48;
        t=2: 0.48 + 0.52 * 4/13 = 0.64; t=1: 0.64 + 0.36 * 4/9 = 0.80; t=0: 0.8 + 0.2 * 1 = 1.
"""

from __future__ import annotations

import math

import pytest
import torch

from napari_segrefiner.sampling import denoise, iter_denoise
from napari_segrefiner.scheduler import Schedule, add_noise, reverse_step, timesteps

SCHED = Schedule()  # the official one: T = 6, linspace(0.8, 0, 6)
BETA_BAR = [0.80, 0.64, 0.48, 0.32, 0.16, 0.00]  # reference section 3.1
BIG = 50.0  # |logit| of an oracle: sigmoid(50) == 1.0 exactly in float32 -> confidence 1


def gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def oracle_from_image(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Oracle network: the ground truth is encoded in image channel 0 (> 0 = foreground)."""
    assert x.ndim == 4 and x.shape[1] == 4  # normalised RGB first, then the mask
    assert t.dtype == torch.long and t.shape == (x.shape[0],)
    return torch.where(x[:, :1] > 0, BIG, -BIG)


# --------------------------------------------------------------------------- #
# schedule
# --------------------------------------------------------------------------- #
def test_beta_bar_matches_reference():
    assert SCHED.beta_bar().tolist() == pytest.approx(BETA_BAR, abs=1e-7)
    for t, b in enumerate(BETA_BAR):
        assert SCHED.beta_bar_at(t) == pytest.approx(b, abs=1e-12)
    assert SCHED.beta_bar_at(-1) == 1.0
    with pytest.raises(ValueError, match="timestep"):
        SCHED.beta_bar_at(6)


# --------------------------------------------------------------------------- #
# forward process q(m_t | m_fine)
# --------------------------------------------------------------------------- #
def test_add_noise_fine_fraction_matches_beta_bar():
    # fine = 1, coarse = 0 everywhere, so the mean of m_t is the fraction of pixels that
    # stayed "fine". n = 256 * 256 = 65536 Bernoulli(beta_bar[t]) draws per sample:
    # sd of the fraction = sqrt(b (1 - b) / n) <= sqrt(0.25 / 65536) = 0.00195.
    # Tolerance 5 sd (per t; two-sided 5-sigma false-alarm rate ~6e-7 per check).
    # t is given in reversed order so that a wrong per-sample indexing cannot pass.
    n_side = 256
    n = n_side * n_side
    t = torch.tensor([5, 4, 3, 2, 1, 0])
    fine = torch.ones(6, 1, n_side, n_side)
    coarse = torch.zeros(6, 1, n_side, n_side)
    m = add_noise(fine, coarse, t, schedule=SCHED, generator=gen(1234))
    assert m.shape == fine.shape
    assert set(torch.unique(m).tolist()) <= {0.0, 1.0}
    for i, ti in enumerate(t.tolist()):
        b = BETA_BAR[ti]
        frac = m[i].mean().item()
        if b == 0.0:
            assert frac == 0.0  # t = 5: fully coarse, exactly
        else:
            sd = math.sqrt(b * (1 - b) / n)
            assert abs(frac - b) < 5 * sd, (ti, frac, b, sd)


def test_add_noise_only_mixes_fine_and_coarse_values():
    g = gen(0)
    fine = (torch.rand(4, 1, 32, 32, generator=g) > 0.5).float()
    coarse = (torch.rand(4, 1, 32, 32, generator=g) > 0.5).float()
    m = add_noise(fine, coarse, torch.tensor([0, 1, 2, 3]), schedule=SCHED, generator=gen(1))
    # every pixel shows either the fine or the coarse value; where they agree it is that value
    assert bool(((m == fine) | (m == coarse)).all())
    agree = fine == coarse
    assert torch.equal(m[agree], fine[agree])


def test_add_noise_is_deterministic_and_pure():
    fine = torch.ones(2, 1, 16, 16)
    coarse = torch.zeros(2, 1, 16, 16)
    t = torch.tensor([1, 2])
    copies = (fine.clone(), coarse.clone(), t.clone())
    a = add_noise(fine, coarse, t, schedule=SCHED, generator=gen(7))
    b = add_noise(fine, coarse, t, schedule=SCHED, generator=gen(7))
    c = add_noise(fine, coarse, t, schedule=SCHED, generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)  # 512 independent draws: equal only with prob ~ 0
    assert torch.equal(fine, copies[0]) and torch.equal(coarse, copies[1]) and torch.equal(t, copies[2])


def test_add_noise_rejects_bad_shapes():
    with pytest.raises(ValueError, match="does not match"):
        add_noise(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5), torch.tensor([0]), schedule=SCHED)
    with pytest.raises(ValueError, match="t must have shape"):
        add_noise(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), torch.tensor([0]), schedule=SCHED)


# --------------------------------------------------------------------------- #
# reverse step
# --------------------------------------------------------------------------- #
# p_c2f with confidence 1 and F_prev = 0 (then the new F IS p_c2f); values of the
# reference table (3 decimals) and their exact fractions derived in the module docstring.
P_C2F_EXACT = {5: 0.16, 4: 4 / 21, 3: 4 / 17, 2: 4 / 13, 1: 4 / 9, 0: 1.0}
P_C2F_REFERENCE = {5: 0.16, 4: 0.190, 3: 0.235, 2: 0.308, 1: 0.444, 0: 1.0}


@pytest.mark.parametrize("t", [5, 4, 3, 2, 1, 0])
def test_reverse_step_p_c2f_with_full_confidence(t):
    logits = torch.full((1, 1, 4, 4), BIG)
    res = reverse_step(
        logits, t, coarse=torch.zeros(1, 1, 4, 4), fine_prob=torch.zeros(1, 1, 4, 4), schedule=SCHED, last=(t == 0)
    )
    assert torch.all(res.confidence == 1.0)
    assert res.fine_prob.flatten()[0].item() == pytest.approx(P_C2F_EXACT[t], abs=1e-6)
    assert res.fine_prob.flatten()[0].item() == pytest.approx(P_C2F_REFERENCE[t], abs=5e-4)
    assert torch.allclose(res.fine_prob, res.fine_prob.flatten()[0].expand_as(res.fine_prob))


def test_reverse_step_partial_confidence():
    # logit ln 3 -> sigmoid 3/4 -> confidence 2 |0.75 - 0.5| = 0.5.
    # t = 5: p_c2f = 0.5 * 0.16 / (1 - 0.5 * 0)    = 0.08
    # t = 1: p_c2f = 0.5 * 0.16 / (1 - 0.5 * 0.64) = 0.08 / 0.68 = 0.117647...
    # with F_prev = 0.5 at t = 1: F = 0.5 + 0.5 * 0.117647 = 0.558824
    logits = torch.full((1, 1, 2, 2), math.log(3.0))
    zeros = torch.zeros(1, 1, 2, 2)
    r5 = reverse_step(logits, 5, coarse=zeros, fine_prob=zeros, schedule=SCHED)
    assert r5.confidence.flatten()[0].item() == pytest.approx(0.5, abs=1e-6)
    assert r5.prob.flatten()[0].item() == pytest.approx(0.75, abs=1e-6)
    assert r5.fine_prob.flatten()[0].item() == pytest.approx(0.08, abs=1e-6)
    r1 = reverse_step(logits, 1, coarse=zeros, fine_prob=torch.full_like(zeros, 0.5), schedule=SCHED)
    assert r1.fine_prob.flatten()[0].item() == pytest.approx(0.5 + 0.5 * 0.08 / 0.68, abs=1e-6)
    # a negative logit of the same magnitude has the same confidence (symmetry)
    rn = reverse_step(-logits, 5, coarse=zeros, fine_prob=zeros, schedule=SCHED)
    assert torch.allclose(rn.confidence, r5.confidence)


def test_reverse_step_mixes_with_the_original_coarse_mask():
    # F = 0 (confidence 0: logit 0 -> sigmoid 0.5 -> p_c2f = 0) means "every pixel coarse":
    # the result must be exactly `coarse`, whatever the hard prediction (1 here, since 0 >= 0).
    coarse = torch.zeros(1, 1, 8, 8)
    coarse[..., :4] = 1.0
    zero_logits = torch.zeros(1, 1, 8, 8)
    r = reverse_step(zero_logits, 3, coarse=coarse, fine_prob=torch.zeros_like(coarse), schedule=SCHED, generator=gen(0))
    assert torch.equal(r.fine_prob, torch.zeros_like(coarse))
    assert torch.equal(r.mask, coarse)
    # F = 1 means "every pixel fine": the result is the hard prediction 1[logit >= 0].
    logits = torch.where(torch.arange(8).view(1, 1, 1, 8) < 2, -3.0, 3.0).expand(1, 1, 8, 8)
    r = reverse_step(logits, 3, coarse=coarse, fine_prob=torch.ones_like(coarse), schedule=SCHED, generator=gen(0))
    assert torch.equal(r.mask, (logits >= 0).float())


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
    last = denoise(lambda x, t: logits.expand(x.shape[0], 1, 4, 4), torch.zeros(1, 3, 4, 4), coarse,
                   schedule=SCHED, steps=[5, 4], generator=gen(0))
    assert last.is_last and torch.allclose(last.mask, torch.sigmoid(logits))


def test_reverse_step_is_deterministic_and_pure():
    g0 = gen(0)
    logits = torch.randn(2, 1, 16, 16, generator=g0)
    coarse = (torch.rand(2, 1, 16, 16, generator=g0) > 0.5).float()
    fine_prob = torch.rand(2, 1, 16, 16, generator=g0) * 0.5
    copies = [v.clone() for v in (logits, coarse, fine_prob)]
    a = reverse_step(logits, 3, coarse=coarse, fine_prob=fine_prob, schedule=SCHED, generator=gen(42))
    b = reverse_step(logits, 3, coarse=coarse, fine_prob=fine_prob, schedule=SCHED, generator=gen(42))
    c = reverse_step(logits, 3, coarse=coarse, fine_prob=fine_prob, schedule=SCHED, generator=gen(43))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.fine_prob, b.fine_prob)
    assert not torch.equal(a.mask, c.mask)
    for v, cpy in zip((logits, coarse, fine_prob), copies):
        assert torch.equal(v, cpy)


def test_iter_denoise_is_deterministic_with_a_generator():
    g0 = gen(0)
    image = torch.randn(2, 3, 16, 16, generator=g0)
    coarse = (torch.rand(2, 1, 16, 16, generator=g0) > 0.5).float()
    weight = torch.randn(1, 4, 1, 1, generator=g0)

    def model(x, t):  # a fixed random "network" with moderate confidence
        return (x * weight).sum(1, keepdim=True) + 0.1 * t.view(-1, 1, 1, 1)

    def run(seed):
        return [r.mask for r in iter_denoise(model, image, coarse, schedule=SCHED, steps=timesteps(SCHED),
                                             generator=gen(seed))]

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert any(not torch.equal(x, y) for x, y in zip(a, c))


def test_skipped_steps_use_the_next_visited_timestep():
    # steps [5, 2, 0] with confidence 1:
    #   t=5 -> next 2: p = (0.48 - 0) / (1 - 0) = 0.48          F = 0.48 = beta_bar[2]
    #   t=2 -> next 0: p = (0.80 - 0.48) / (1 - 0.48) = 8/13    F = 0.48 + 0.52 * 8/13 = 0.80
    #   t=0 (last):    p = (1 - 0.8) / (1 - 0.8) = 1             F = 1
    coarse = torch.zeros(1, 1, 4, 4)
    recs = list(iter_denoise(lambda x, t: torch.full((1, 1, 4, 4), BIG), torch.zeros(1, 3, 4, 4), coarse,
                             schedule=SCHED, steps=[5, 2, 0], generator=gen(0)))
    assert [r.fine_prob.flatten()[0].item() for r in recs] == pytest.approx([0.48, 0.80, 1.0], abs=1e-6)


# --------------------------------------------------------------------------- #
# timesteps()
# --------------------------------------------------------------------------- #
def test_timesteps_full_and_hr_global():
    assert timesteps(SCHED) == [5, 4, 3, 2, 1, 0]  # LR / COCO: 6 evaluations
    assert timesteps(SCHED, last=1) == [5, 4, 3, 2, 1]  # HR global stage: 5 evaluations
    assert timesteps(SCHED, 6) == [5, 4, 3, 2, 1, 0]
    assert timesteps(SCHED, 5, last=1) == [5, 4, 3, 2, 1]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_timesteps_fewer_steps(n):
    ts = timesteps(SCHED, n)
    assert len(ts) == n
    assert ts[0] == 5  # always starts from the fully coarse state
    assert all(a > b for a, b in zip(ts, ts[1:]))  # strictly decreasing
    assert set(ts) <= set(range(6))
    if n >= 2:
        assert ts[-1] == 0
    if n == 2:
        assert ts == [5, 0]
    hr = timesteps(SCHED, min(n, 5), last=1)
    assert hr[0] == 5 and (len(hr) == 1 or hr[-1] == 1)


@pytest.mark.parametrize("bad", [0, 7, -1, 2.5, True, "3"])
def test_timesteps_invalid_num_steps(bad):
    with pytest.raises(ValueError, match="steps must be an integer"):
        timesteps(SCHED, bad)


def test_timesteps_invalid_for_hr_and_last():
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 5\]"):
        timesteps(SCHED, 6, last=1)
    with pytest.raises(ValueError, match="last must be"):
        timesteps(SCHED, last=6)
    with pytest.raises(ValueError, match="last must be"):
        timesteps(SCHED, last=-1)
