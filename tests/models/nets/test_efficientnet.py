"""EfficientNet-Lite0 features: TensorFlow SAME padding, frozen statistics, the stages' strides."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from napari_segrefiner.models.nets.efficientnet import LITE0_STAGES, EfficientNetLite, FrozenBatchNorm, SameConv


@pytest.mark.parametrize("size", [7, 8, 9, 32, 33])
@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (5, 2)])
def test_same_padding_follows_tensorflow(size, kernel, stride):
    torch.manual_seed(0)
    conv = SameConv(2, 3, kernel, stride=stride, bias=True)
    x = torch.randn(1, 2, size, size + 1)
    out = conv(x)
    # TF: output = ceil(in / stride); the extra pixel of an odd pad goes after (bottom / right)
    assert out.shape[-2:] == (math.ceil(size / stride), math.ceil((size + 1) / stride))
    want = []
    for n in (size, size + 1):
        total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
        want.append((total // 2, total - total // 2))
    padded = F.pad(x, (*want[1], *want[0]))
    torch.testing.assert_close(out, F.conv2d(padded, conv.weight, conv.bias, stride))


def test_frozen_batchnorm_is_eval_mode_batchnorm():
    torch.manual_seed(1)
    ref = torch.nn.BatchNorm2d(5, eps=1e-3).eval()
    with torch.no_grad():
        for t in (ref.weight, ref.bias, ref.running_mean):
            t.copy_(torch.randn(5))
        ref.running_var.copy_(torch.rand(5) + 0.1)
    mine = FrozenBatchNorm(5)
    mine.load_state_dict({k: v for k, v in ref.state_dict().items() if k != "num_batches_tracked"})
    x = torch.randn(2, 5, 4, 4)
    torch.testing.assert_close(mine(x), ref(x))


def test_feature_maps_have_the_strides_and_channels_of_lite0():
    net = EfficientNetLite((4, 8, 16, 32)).eval()
    with torch.inference_mode():
        out = net(torch.rand(1, 3, 64, 96) * 255)
    last_at = {}
    stride = 2
    for _, _, s, _, cout in LITE0_STAGES:
        stride *= s
        last_at[stride] = cout
    assert net.channels == tuple(last_at[s] for s in (4, 8, 16, 32)) == (24, 40, 112, 320)
    assert [tuple(o.shape) for o in out] == [(1, c, 64 // s, 96 // s) for c, s in zip(net.channels, (4, 8, 16, 32))]


def test_blocks_after_the_deepest_stride_are_not_built():
    shallow, full = EfficientNetLite((4, 8)), EfficientNetLite((4, 8, 16, 32))
    assert len(shallow._blocks) < len(full._blocks)
    assert sum(p.numel() for p in shallow.parameters()) < sum(p.numel() for p in full.parameters())


def test_bad_strides_are_refused():
    with pytest.raises(ValueError, match="strides"):
        EfficientNetLite((3,))
