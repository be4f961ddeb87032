"""A first forward pass on a tiny input, before any run: can this network refine at all?

:func:`probe_network` calls a network the way the sampler does (``encode`` once, then
``denoise`` at the first and the last timestep; a plain ``model(x, t)`` is called as
that) on a fixed 32-px input (a gradient image and a square mask), and checks that the
answer is an ``(N, 1, H, W)`` floating-point tensor of finite logits. It runs in
milliseconds for the shipped network and well under a second for the released 118 M
parameter UNet on a CPU, and it catches what would otherwise fail deep inside a run or,
worse, silently empty every object: an object that is not a SegRefiner network, a
network whose output has the wrong shape, and weights that overflow (scaled by 1e30,
say) into infinite or NaN logits.
"""

from __future__ import annotations

import math

import torch

__all__ = ["PROBE_SIDE", "probe_network"]

PROBE_SIDE = 32  # the probe's image side (rounded up to the network's divisor)


def _inputs(side: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    from .imaging import normalize

    ramp = torch.linspace(0.0, 255.0, side, device=device)
    image = torch.stack(
        [
            ramp[None, :].expand(side, side),
            ramp[:, None].expand(side, side),
            torch.full((side, side), 128.0, device=device),
        ]
    )[None].repeat(2, 1, 1, 1)
    mask = torch.zeros(2, 1, side, side, device=device)
    mask[:, :, side // 4 : side - side // 4, side // 4 : side - side // 4] = 1.0
    return normalize(image), mask


def probe_network(
    network, *, num_timesteps: int, device: torch.device | str | None = None, name: str = "model"
) -> None:
    """Run ``network`` once on a tiny fixed input and check its logits.

    Parameters
    ----------
    network : torch.nn.Module or callable
        A network with ``encode(image)`` and ``denoise(mask, t, features, image)``, or a
        callable ``model(x, t) -> logits`` with ``x`` of shape (N, 4, H, W).
    num_timesteps : int
        The schedule's length: the probe asks for timesteps ``num_timesteps - 1`` and 0.
    device : torch.device or str, optional
        Where the input is made (default: the device of the network's first parameter, or
        the CPU).
    name : str
        How messages name the network (the caller's parameter).

    Raises
    ------
    TypeError
        If it cannot be called as a network (e.g. ``torch.nn.Linear``).
    ValueError
        If its answer is not an (N, 1, H, W) floating-point tensor, or holds NaN or
        infinite values (broken or overflowing weights).
    """
    from ..diffusion.sampling import two_parts

    if device is None:
        first = next(iter(network.parameters()), None) if isinstance(network, torch.nn.Module) else None
        device = first.device if first is not None else torch.device("cpu")
    divisor = max(1, int(getattr(getattr(network, "config", None), "divisor", 1) or 1))
    side = divisor * math.ceil(PROBE_SIDE / divisor)
    kind = type(network).__name__
    image, mask = _inputs(side, torch.device(device))
    t = torch.tensor([max(int(num_timesteps) - 1, 0), 0], dtype=torch.long, device=image.device)
    shape = (2, 4, side, side)
    try:
        encode, denoise = two_parts(network)
        with torch.inference_mode():
            logits = denoise(mask, t, encode(image), image)
    except Exception as exc:  # any failure here means it cannot refine
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        how = "encode()/denoise()" if callable(getattr(network, "denoise", None)) else "model(x, t)"
        raise TypeError(
            f"{name} is not a SegRefiner network: {kind} fails when called as {how} on an input of shape {shape}: {msg}"
        ) from None
    want = (2, 1, side, side)
    if not isinstance(logits, torch.Tensor):
        raise ValueError(
            f"{name} is not a SegRefiner network: {kind} returns a {type(logits).__name__}, not a "
            f"tensor of logits of shape {want}"
        )
    if tuple(logits.shape) != want or not logits.is_floating_point():
        raise ValueError(
            f"{name} is not a SegRefiner network: an input of shape {shape} gives {logits.dtype} of "
            f"shape {tuple(logits.shape)}, not floating-point logits of shape {want}"
        )
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(
            f"{name} gives NaN or infinite logits on a plain test input (broken or overflowing "
            "weights); it would empty or fill every object"
        )
