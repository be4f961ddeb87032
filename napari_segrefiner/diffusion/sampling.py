"""The reverse-diffusion loop as a generator of typed step records.

``iter_denoise`` encodes every crop once (``network.encode``), evaluates the decoder once
per timestep (``network.denoise``) and yields a :class:`DenoiseStep`; ``denoise`` drains
it. The loop knows nothing about images, crops or napari: it takes normalised image
tensors and coarse masks at network resolution. A plain callable ``model(x, t)`` with
``x = cat(image, mask)`` works too (its "features" are the image itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from .scheduler import Schedule, clamp, reverse_step

__all__ = ["DenoiseStep", "NonFiniteOutputError", "RefineCancelled", "denoise", "iter_denoise", "two_parts"]

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def two_parts(model) -> tuple[Callable, Callable]:
    """``(encode, denoise)`` of a network, or of a plain ``model(x, t)`` callable.

    ``encode(image) -> features`` (a tuple of tensors whose first axis is the sample),
    ``denoise(mask, t, features, image) -> logits``.
    """
    encode, step = getattr(model, "encode", None), getattr(model, "denoise", None)
    if callable(encode) and callable(step):
        return encode, step
    if not callable(model):
        raise TypeError(f"model must be a network or a callable model(x, t), got {type(model).__name__}")
    return (lambda image: (image,)), (
        lambda mask, t, feats, image: model(torch.cat([feats[0], mask.to(feats[0].dtype)], 1), t)
    )


class RefineCancelled(Exception):
    """Raised inside a run when its ``cancel`` callable says stop (between network batches)."""


class NonFiniteOutputError(ArithmeticError):
    """The network returned NaN or infinite logits: the run stops instead of emptying masks."""


@dataclass(frozen=True)
class DenoiseStep:
    """One reverse step of a batch.

    Attributes
    ----------
    index : int
        0-based step number.
    timestep : int
        The timestep the network was evaluated at.
    mask : Tensor of shape (N, 1, H, W)
        Next network input in {0, 1}; on the last step the soft prediction in [0, 1].
    prob : Tensor of shape (N, 1, H, W)
        ``sigmoid`` of this step's logits (the current estimate of the fine mask).
    confidence : Tensor of shape (N, 1, H, W)
        ``2 |prob - 0.5|``.
    fine_prob : Tensor of shape (N, 1, H, W)
        Cumulative fine-state probability ``F``.
    is_last : bool
        True on the final step.
    """

    index: int
    timestep: int
    mask: torch.Tensor
    prob: torch.Tensor
    confidence: torch.Tensor
    fine_prob: torch.Tensor
    is_last: bool


def iter_denoise(
    model: Model,
    image: torch.Tensor,
    coarse: torch.Tensor,
    *,
    schedule: Schedule,
    steps: Sequence[int],
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    start: torch.Tensor | None = None,
    autocast: bool = False,
    batch_size: int = 32,
    cancel: Callable[[], bool] | None = None,
    keep_bias: float = 0.0,
    hints: tuple[torch.Tensor, torch.Tensor] | None = None,
    features: tuple[torch.Tensor, ...] | None = None,
) -> Iterator[DenoiseStep]:
    """Run the reverse process, yielding after every network evaluation.

    Parameters
    ----------
    model : network or callable
        A network with ``encode(image)`` (run once per sample) and ``denoise(mask, t,
        features, image)`` (run per step), or a callable ``model(x, t) -> logits`` with
        ``x`` of shape (N, 4, H, W).
    image : Tensor of shape (N, 3, H, W) or (1, 3, H, W)
        Normalised image; a single image is shared by all N samples (encoded once).
    coarse : Tensor of shape (N, 1, H, W)
        Original coarse mask in {0, 1} (the mixing target of every step).
    schedule : Schedule
        The diffusion schedule.
    steps : sequence of int
        Decreasing timesteps (see :func:`~napari_segrefiner.diffusion.scheduler.timesteps`).
    generator : torch.Generator or sequence of torch.Generator, optional
        Randomness for the per-pixel draws; a sequence gives each sample its own stream.
    start : Tensor, optional
        First network input (default: ``coarse``). The HR local stage starts from the
        global result.
    autocast : bool
        Run the network under bfloat16 autocast (CUDA only).
    batch_size : int
        Network evaluations are chunked to at most this many samples.
    cancel : callable, optional
        Asked before every network batch (encoder and decoder); when it returns True the loop raises
        :class:`RefineCancelled` (so a cancel waits for one batch, not a whole step).
    keep_bias : float
        Added to the logits towards the ORIGINAL coarse mask (``+b`` where it is 1, ``-b``
        where it is 0) before each reverse step: a calibrated "keep" decision that a model
        stores in its :class:`~.config.RefineConfig` (0, the official sampler, by default).
    hints : (Tensor, Tensor), optional
        ``(fixed, value)``, bool (N, 1, H, W): pixels held at ``value``. They are set in
        the coarse mask and the first input (the network sees them), count as fine from the
        start, and are clamped after every step (:func:`~.scheduler.clamp`), so every
        yielded state shows them.

    features : tuple of Tensor, optional
        ``network.encode(image)`` computed by the caller (leading axis N, or 1 when shared):
        the encoder then does not run here.

    Yields
    ------
    DenoiseStep
    """
    if image.ndim != 4 or coarse.ndim != 4 or image.shape[0] not in (1, coarse.shape[0]):
        raise ValueError(
            f"image (N,3,H,W) and coarse (N,1,H,W) must agree, got {tuple(image.shape)} and {tuple(coarse.shape)}"
        )
    if not steps:
        raise ValueError("steps must not be empty")
    n = coarse.shape[0]
    mask = coarse if start is None else start
    fine_prob = torch.zeros_like(coarse, dtype=torch.float32)
    fixed = value = None
    if hints is not None:
        fixed, value = hints
        if fixed.shape != coarse.shape or value.shape != coarse.shape:
            raise ValueError(f"hint maps {tuple(fixed.shape)} must have the coarse shape {tuple(coarse.shape)}")
        coarse = torch.where(fixed, value.to(coarse.dtype), coarse)
        mask = torch.where(fixed, value.to(mask.dtype), mask)
        fine_prob = fixed.to(torch.float32)
    encode, step_fn = two_parts(model)
    device_type = image.device.type
    shared = image.shape[0] == 1 and n > 1  # one image for every sample: encode it once
    if features is None:
        features = []  # per network batch: the encoder's features, computed once
        with torch.inference_mode():
            for lo in range(0, 1 if shared else n, batch_size):
                if cancel is not None and cancel():
                    raise RefineCancelled("the refinement was cancelled")
                with torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
                    features.append(encode(image[lo : lo + batch_size]))
        shared_features = features[0] if shared else None
    else:
        shared_features = features if features[0].shape[0] == 1 and n > 1 else None
        features = [tuple(f[lo : lo + batch_size] for f in features) for lo in range(0, n, batch_size)]

    def chunk(lo: int, hi: int, k: int):
        if shared_features is None:
            return features[k], image[lo:hi] if image.shape[0] > 1 else image
        m = min(hi, n) - lo
        return tuple(f.expand(m, *f.shape[1:]) for f in shared_features), image.expand(m, *image.shape[1:])

    for i, t in enumerate(steps):
        last = i == len(steps) - 1
        with torch.inference_mode():
            tt = torch.full((n,), int(t), dtype=torch.long, device=image.device)
            chunks = []
            for k, lo in enumerate(range(0, n, batch_size)):
                if cancel is not None and cancel():
                    raise RefineCancelled("the refinement was cancelled")
                hi = lo + batch_size
                feats, img = chunk(lo, hi, k)
                with torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
                    chunks.append(step_fn(mask[lo:hi].to(img.dtype), tt[lo:hi], feats, img).float())
            logits = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
            if not bool(torch.isfinite(logits).all()):
                raise NonFiniteOutputError(
                    f"the network returned NaN or infinite logits at timestep {int(t)}: its weights are broken "
                    "(the run was stopped; nothing was changed)"
                )
            if keep_bias:
                logits = logits + keep_bias * (2.0 * coarse.to(logits.dtype) - 1.0)
            res = reverse_step(
                logits,
                int(t),
                coarse=coarse,
                fine_prob=fine_prob,
                schedule=schedule,
                next_timestep=None if last else int(steps[i + 1]),
                last=last,
                generator=generator,
            )
            res = clamp(res, fixed, value)
        mask, fine_prob = res.mask, res.fine_prob
        yield DenoiseStep(
            index=i,
            timestep=int(t),
            mask=res.mask,
            prob=res.prob,
            confidence=res.confidence,
            fine_prob=res.fine_prob,
            is_last=last,
        )


def denoise(model: Model, image: torch.Tensor, coarse: torch.Tensor, **kwargs) -> DenoiseStep:
    """Drain :func:`iter_denoise` and return its last step (same arguments)."""
    *_, last = iter_denoise(model, image, coarse, **kwargs)
    return last
