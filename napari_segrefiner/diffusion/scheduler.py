"""SegRefiner's discrete mask diffusion as pure functions (never calls a network).

Every pixel is in one of two states, *fine* (it shows the ground-truth value) or *coarse*
(it shows the coarse-mask value). The forward process only moves pixels from fine to coarse;
after ``t`` steps a pixel is still fine with probability ``beta_bar[t]``, with
``beta_bar = linspace(0.8, 0, T)`` and ``T = 6`` (index 5 = fully coarse).

The reverse step follows the official implementation: confidence ``p = 2|sigmoid(l) - 0.5|``,
per-step coarse-to-fine probability ``p (beta_bar[t-1] - beta_bar[t]) / (1 - p beta_bar[t])``
(with ``beta_bar[-1] = 1``), a cumulative fine-state map ``F <- F + (1 - F) p_c2f``, and a fresh
per-pixel draw that shows the hard prediction where ``u < F`` and the ORIGINAL coarse mask
elsewhere. The last step returns the soft prediction ``sigmoid(l)``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Schedule", "ReverseStep", "add_noise", "clamp", "reverse_step", "stream", "timesteps", "uniform"]


def uniform(shape: torch.Size, generator, device: torch.device) -> torch.Tensor:
    """U[0, 1) float32 draws of ``shape`` on ``device``, drawn on the generator's device.

    A CPU generator thus gives the same numbers whatever device the tensors live on, so a
    seed means the same draws on CPU and CUDA (one host-to-device copy per step).

    ``generator`` may also be a sequence of generators, one per sample (``shape[0]``): each
    sample then draws from its own stream, so its numbers do not depend on which other
    samples share the batch (the pipelines give every object its own stream).
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        gens = list(generator)
        if len(gens) != shape[0]:
            raise ValueError(f"got {len(gens)} generators for {shape[0]} samples")
        u = torch.cat([torch.rand((1, *shape[1:]), generator=g, device=g.device, dtype=torch.float32) for g in gens])
        return u if u.device == device else u.to(device, non_blocking=True)
    where = generator.device if generator is not None else device
    u = torch.rand(shape, generator=generator, device=where, dtype=torch.float32)
    return u if u.device == device else u.to(device, non_blocking=True)


def stream(seed: int, key: int) -> torch.Generator:
    """A CPU generator for object ``key`` of a run seeded with ``seed``.

    Derived with numpy's ``SeedSequence([seed, key])``: independent streams per object, the
    same for an object whether it is refined alone or with a thousand others.
    """
    state = np.random.SeedSequence([int(seed), int(key)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


@dataclass(frozen=True)
class Schedule:
    """The linear "stay fine" schedule ``beta_bar = linspace(start, stop, num_timesteps)``.

    Parameters
    ----------
    num_timesteps : int
        T (6 in the released models; the network's embedding table has this many rows).
    start, stop : float
        ``beta_bar[0]`` and ``beta_bar[T - 1]`` (0.8 and 0.0 officially).
    """

    num_timesteps: int = 6
    start: float = 0.8
    stop: float = 0.0

    def __post_init__(self) -> None:
        if self.num_timesteps < 1:
            raise ValueError(f"num_timesteps must be >= 1, got {self.num_timesteps}")
        if not (0.0 <= self.stop <= self.start <= 1.0):
            raise ValueError(f"need 0 <= stop <= start <= 1, got start={self.start}, stop={self.stop}")

    def beta_bar(self, device: torch.device | str | None = None) -> torch.Tensor:
        """``beta_bar[t]`` for ``t = 0..T-1`` (float32)."""
        return torch.linspace(self.start, self.stop, self.num_timesteps, dtype=torch.float64).to(
            device=device, dtype=torch.float32
        )

    def beta_bar_at(self, t: int) -> float:
        """``beta_bar[t]`` as a Python float; ``t = -1`` gives 1.0 (the clean state)."""
        if t == -1:
            return 1.0
        if not 0 <= t < self.num_timesteps:
            raise ValueError(f"timestep must be in [-1, {self.num_timesteps - 1}], got {t}")
        if self.num_timesteps == 1:
            return float(self.start)
        return float(self.start + (self.stop - self.start) * t / (self.num_timesteps - 1))


def timesteps(schedule: Schedule, num_steps: int | None = None, *, last: int = 0) -> list[int]:
    """Reverse-process timesteps, from the coarsest ``T - 1`` down to ``last``.

    Parameters
    ----------
    schedule : Schedule
        The diffusion schedule.
    num_steps : int, optional
        Number of network evaluations. ``None`` means every timestep from ``T - 1`` to
        ``last`` (6 for the LR pipeline, 5 for the HR global stage with ``last=1``). Fewer
        steps skip timesteps evenly; the transition probabilities then use the next
        timestep actually visited.
    last : int
        Final timestep.

    Returns
    -------
    list of int
        Strictly decreasing timesteps.
    """
    top = schedule.num_timesteps - 1
    if not 0 <= last <= top:
        raise ValueError(f"last must be in [0, {top}], got {last}")
    full = top - last + 1
    if num_steps is None:
        num_steps = full
    if not isinstance(num_steps, numbers.Integral) or isinstance(num_steps, bool) or not 1 <= num_steps <= full:
        raise ValueError(f"steps must be an integer in [1, {full}], got {num_steps!r}")
    num_steps = int(num_steps)
    if num_steps == 1:
        return [top]
    return [round(top - i * (top - last) / (num_steps - 1)) for i in range(num_steps)]


def add_noise(
    fine: torch.Tensor,
    coarse: torch.Tensor,
    t: torch.Tensor,
    *,
    schedule: Schedule,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Forward transition q(m_t | m_fine): each pixel shows ``fine`` with prob. ``beta_bar[t]``.

    Parameters
    ----------
    fine, coarse : Tensor of shape (N, 1, H, W)
        Ground-truth and coarse masks in {0, 1}.
    t : Tensor of shape (N,)
        Timestep per sample (long).
    schedule : Schedule
        The schedule.
    generator : torch.Generator, optional
        Source of randomness (on any device; see :func:`uniform`).

    Returns
    -------
    Tensor of shape (N, 1, H, W)
        The mixture ``m_t``.
    """
    if fine.shape != coarse.shape:
        raise ValueError(f"fine shape {tuple(fine.shape)} does not match coarse shape {tuple(coarse.shape)}")
    if t.ndim != 1 or t.shape[0] != fine.shape[0]:
        raise ValueError(f"t must have shape ({fine.shape[0]},), got {tuple(t.shape)}")
    keep = schedule.beta_bar(fine.device)[t].view(-1, *([1] * (fine.ndim - 1)))
    u = uniform(fine.shape, generator, fine.device)
    return torch.where(u < keep, fine, coarse)


@dataclass(frozen=True)
class ReverseStep:
    """Result of one reverse step.

    Attributes
    ----------
    mask : Tensor
        The next network input ``m_{t-1}`` in {0, 1}; on the last step the soft prediction.
    prob : Tensor
        ``sigmoid(logits)``.
    confidence : Tensor
        ``2 |prob - 0.5|``.
    fine_prob : Tensor
        The cumulative fine-state probability ``F`` after this step.
    """

    mask: torch.Tensor
    prob: torch.Tensor
    confidence: torch.Tensor
    fine_prob: torch.Tensor


def reverse_step(
    logits: torch.Tensor,
    timestep: int,
    *,
    coarse: torch.Tensor,
    fine_prob: torch.Tensor,
    schedule: Schedule,
    next_timestep: int | None = None,
    last: bool = False,
    generator: torch.Generator | None = None,
) -> ReverseStep:
    """One reverse step of the official sampler (pure: inputs are not modified).

    Parameters
    ----------
    logits : Tensor of shape (N, 1, H, W)
        Network output at ``timestep``.
    timestep : int
        Current timestep t.
    coarse : Tensor of shape (N, 1, H, W)
        The ORIGINAL coarse mask (the mixing target), in {0, 1}.
    fine_prob : Tensor of shape (N, 1, H, W)
        Cumulative fine-state probability ``F`` before this step (zeros at the start).
    schedule : Schedule
        The schedule.
    next_timestep : int, optional
        The timestep the sampler moves to (default ``timestep - 1``; -1 means clean).
    last : bool
        If True return the soft prediction as ``mask`` and draw nothing.
    generator : torch.Generator or sequence of torch.Generator, optional
        Source of randomness (on any device; one per sample allowed; see :func:`uniform`).

    Returns
    -------
    ReverseStep
    """
    nxt = timestep - 1 if next_timestep is None else next_timestep
    bb_t = schedule.beta_bar_at(timestep)
    bb_next = schedule.beta_bar_at(nxt)
    prob = torch.sigmoid(logits.float())
    confidence = (prob - 0.5).abs() * 2.0
    p_c2f = confidence * (bb_next - bb_t) / (1.0 - confidence * bb_t)
    fine = fine_prob + (1.0 - fine_prob) * p_c2f
    if last:
        return ReverseStep(mask=prob, prob=prob, confidence=confidence, fine_prob=fine)
    hard = (logits >= 0).to(coarse.dtype)
    u = uniform(fine.shape, generator, fine.device)
    mask = torch.where(u < fine, hard, coarse)
    return ReverseStep(mask=mask, prob=prob, confidence=confidence, fine_prob=fine)


def clamp(step: ReverseStep, fixed: torch.Tensor | None, value: torch.Tensor | None) -> ReverseStep:
    """Hold hinted pixels: where ``fixed``, the state is ``value``, already fine and certain.

    Pure: returns a new :class:`ReverseStep` (``step`` itself if ``fixed`` is None).
    """
    if fixed is None:
        return step
    v = value.to(step.mask.dtype)
    return ReverseStep(
        mask=torch.where(fixed, v, step.mask),
        prob=torch.where(fixed, v.to(step.prob.dtype), step.prob),
        confidence=torch.where(fixed, torch.ones_like(step.confidence), step.confidence),
        fine_prob=torch.where(fixed, torch.ones_like(step.fine_prob), step.fine_prob),
    )
