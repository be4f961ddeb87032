"""The denoising networks: the official UNet, the Lite refiner, the encoder-decoder refiner.

Every network has two parts: ``encode(image) -> features``, run once per crop, and
``denoise(mask, t, features, image) -> logits``, run at every reverse step; ``forward(x, t)``
with ``x = cat(image, mask)`` does both. The official UNet and the Lite refiner pass the
normalised image through ``encode`` unchanged. Module names mirror the released
checkpoint keys.
"""

from __future__ import annotations

from torch import nn

from ..config import EncDecConfig, LiteConfig, UNetConfig

__all__ = ["build_network"]


def build_network(config: UNetConfig | LiteConfig | EncDecConfig) -> nn.Module:
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
    from .encdec import EncDecRefiner
    from .lite import LiteRefiner
    from .unet import UNet

    if isinstance(config, UNetConfig):
        return UNet(config)
    if isinstance(config, LiteConfig):
        return LiteRefiner(config)
    if isinstance(config, EncDecConfig):
        return EncDecRefiner(config)
    raise TypeError(f"config must be a UNetConfig, LiteConfig or EncDecConfig, got {type(config).__name__}")
