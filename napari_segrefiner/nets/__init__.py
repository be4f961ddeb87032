"""The denoising networks: the official UNet, the CPU-first Lite refiner and their blocks.

Both map ``(N, 4, H, W)`` (normalised RGB + mask) and ``(N,)`` long timesteps to
``(N, 1, H, W)`` logits. Module names mirror the released checkpoint keys.
"""

from __future__ import annotations

from torch import nn

from ..config import LiteConfig, UNetConfig

__all__ = ["build_network"]


def build_network(config: UNetConfig | LiteConfig) -> nn.Module:
    """Instantiate the network described by ``config`` (random weights).

    Parameters
    ----------
    config : UNetConfig or LiteConfig
        The architecture.

    Returns
    -------
    torch.nn.Module
        A :class:`~napari_segrefiner.nets.unet.UNet` or
        :class:`~napari_segrefiner.nets.lite.LiteRefiner`; its ``config`` attribute is
        ``config``.

    Raises
    ------
    TypeError
        If ``config`` is neither.
    """
    from .lite import LiteRefiner
    from .unet import UNet

    if isinstance(config, UNetConfig):
        return UNet(config)
    if isinstance(config, LiteConfig):
        return LiteRefiner(config)
    raise TypeError(f"config must be a UNetConfig or LiteConfig, got {type(config).__name__}")
