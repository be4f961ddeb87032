"""Tests for the discrete mask diffusion maths (napari_segrefiner.diffusion.scheduler).

Every expected number is derived independently from the published method (SegRefiner,
Wang et al., NeurIPS 2023, and its official sampler) and written out by hand here:

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
from _diffusion_helpers import BETA_BAR, BIG, SCHED, gen  # noqa: E402

from napari_segrefiner.diffusion.scheduler import add_noise, reverse_step, timesteps


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
    r = reverse_step(
        zero_logits, 3, coarse=coarse, fine_prob=torch.zeros_like(coarse), schedule=SCHED, generator=gen(0)
    )
    assert torch.equal(r.fine_prob, torch.zeros_like(coarse))
    assert torch.equal(r.mask, coarse)
    # F = 1 means "every pixel fine": the result is the hard prediction 1[logit >= 0].
    logits = torch.where(torch.arange(8).view(1, 1, 1, 8) < 2, -3.0, 3.0).expand(1, 1, 8, 8)
    r = reverse_step(logits, 3, coarse=coarse, fine_prob=torch.ones_like(coarse), schedule=SCHED, generator=gen(0))
    assert torch.equal(r.mask, (logits >= 0).float())


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


def test_uniform_draws_on_the_generators_device():
    from napari_segrefiner.diffusion.scheduler import uniform

    a = uniform((2, 1, 4, 4), torch.Generator().manual_seed(5), torch.device("cpu"))
    b = torch.rand((2, 1, 4, 4), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.dtype == torch.float32
    # the draws do not depend on how the batch is later split: one draw per step for all samples
    assert torch.equal(uniform((2, 1, 4, 4), torch.Generator().manual_seed(5), torch.device("cpu"))[1], b[1])


def test_each_object_stream_is_the_same_whatever_shares_its_batch():
    from napari_segrefiner.diffusion.scheduler import stream, uniform

    batch = uniform(torch.Size([3, 1, 4, 4]), [stream(0, 5), stream(0, 7), stream(0, 9)], torch.device("cpu"))
    alone = uniform(torch.Size([1, 1, 4, 4]), [stream(0, 7)], torch.device("cpu"))
    assert torch.equal(batch[1], alone[0])
    assert not torch.equal(batch[0], batch[1])  # different objects, different streams
    other_seed = uniform(torch.Size([1, 1, 4, 4]), [stream(1, 7)], torch.device("cpu"))
    assert not torch.equal(other_seed[0], alone[0])
    with pytest.raises(ValueError, match="2 generators for 3 samples"):
        uniform(torch.Size([3, 1, 4, 4]), [stream(0, 5), stream(0, 7)], torch.device("cpu"))
