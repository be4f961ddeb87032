"""Checkpoints that would run away or give silently wrong results are refused at load.

Each case of issue #20 (absurd timesteps, complex/NaN/huge/bool weights) is refused with
a one-line CheckpointError naming the file, in well under 5 s; what the released and
shipped models store loads as before.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from napari_segrefiner.models.checkpoint import NETWORK_RANGES, CheckpointError, load_checkpoint
from napari_segrefiner.models.config import EncDecConfig, LiteConfig
from napari_segrefiner.models.nets import build_network
from napari_segrefiner.models.refiner import load_refiner

TINY = LiteConfig.tiny()


@pytest.fixture(scope="module")
def tiny_state():
    torch.manual_seed(0)
    return build_network(TINY).state_dict()


def _ours(path, state, config=TINY, **changes):
    cfg = {**dataclasses.asdict(config), "arch": config.arch, **changes}
    torch.save(
        {"format": "napari-segrefiner", "version": 2, "config": cfg, "state_dict": state, "refine": {}, "meta": {}},
        path,
    )
    return path


def _refused(path, match):
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=match) as info:
        load_refiner(path, device="cpu")
    took = time.perf_counter() - start
    message = str(info.value)
    assert str(path) in message and len(message.splitlines()) == 1
    assert took < 5.0, f"refused after {took:.1f} s"
    return message


@pytest.mark.parametrize("steps", [65536, 65, 0, -1])
def test_timesteps_outside_what_the_schedule_supports_are_refused(tmp_path, tiny_state, steps):
    _refused(
        _ours(tmp_path / "t.pt", tiny_state, num_timesteps=steps), r"num_timesteps must hold integers in \[1, 64\]"
    )


def test_the_largest_documented_timesteps_load(tmp_path):
    torch.manual_seed(0)
    config = dataclasses.replace(TINY, num_timesteps=64)
    network = build_network(config)
    path = _ours(tmp_path / "t64.pt", network.state_dict(), config)
    assert load_refiner(path, device="cpu").schedule.num_timesteps == 64


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"model_channels": 4096}, r"model_channels must hold integers in \[1, 512\]"),
        ({"channel_mult": [1, 32]}, r"channel_mult must hold integers in \[1, 16\]"),
        ({"channel_mult": [1] * 9}, "channel_mult must have 1 to 8 entries"),
        ({"num_res_blocks": 17}, r"num_res_blocks must hold integers in \[1, 16\]"),
        ({"num_heads": 65}, "num_heads"),
        ({"norm_groups": 129}, "norm_groups"),
        ({"head_channels": 513}, "head_channels"),
        ({"stem_channels": [8, 100000]}, "stem_channels"),
        ({"attention_strides": [512]}, "attention_strides"),
        ({"model_channels": 512, "channel_mult": [8]}, "at most 2048 channels"),
        ({"model_channels": 512, "channel_mult": [4] * 8, "num_res_blocks": 16}, "too large"),
    ],
    ids=lambda c: str(c) if isinstance(c, dict) else None,
)
def test_every_stored_network_number_has_a_documented_range(tmp_path, tiny_state, changes, match):
    _refused(_ours(tmp_path / "c.pt", tiny_state, **changes), match)


def test_encoder_decoder_ranges(tmp_path):
    config = EncDecConfig.tiny()
    state = {}  # refused before the weights are looked at
    _refused(_ours(tmp_path / "e.pt", state, config, time_channels=4096), "time_channels")
    _refused(_ours(tmp_path / "e.pt", state, config, widths=[8, 8, 8, 2000]), "widths")
    assert {"time_channels", "widths", "encoder_taps"} <= set(NETWORK_RANGES)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.bool, torch.int64, torch.uint8])
def test_tensors_that_are_not_real_floating_point_are_refused(tmp_path, tiny_state, dtype):
    state = dict(tiny_state)
    key = next(k for k in state if k.endswith("weight"))
    bad = state[key].to(dtype)
    if dtype == torch.complex64:
        bad = bad + complex(float("nan"), 0.0)  # complex NaN passed the old float-only NaN check
    state[key] = bad
    message = _refused(_ours(tmp_path / "w.pt", state), "real floating point")
    assert repr(key) in message and str(dtype).replace("torch.", "") in message
    with pytest.raises(CheckpointError, match="real floating point"):
        load_checkpoint(tmp_path / "w.pt")  # reading alone refuses it


def test_released_layout_with_a_complex_tensor_is_refused(tmp_path):
    path = tmp_path / "released.pth"
    torch.save({"denoise_model.out.2.bias": torch.zeros(1, dtype=torch.complex64)}, path)
    with pytest.raises(CheckpointError, match="complex64"):
        load_checkpoint(path)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_every_real_floating_dtype_loads(tmp_path, tiny_state, dtype):
    state = {k: v.to(dtype) for k, v in tiny_state.items()}
    assert load_refiner(_ours(tmp_path / "f.pt", state), device="cpu").network.training is False


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_and_infinite_weights_are_refused(tmp_path, tiny_state, value):
    state = dict(tiny_state)
    key = next(k for k in state if k.endswith("bias"))
    state[key] = state[key].clone()
    state[key][0] = value
    _refused(_ours(tmp_path / "n.pt", state), "NaN or infinite values")


@pytest.mark.parametrize("model", ["tiny", "shipped"])
def test_weights_scaled_by_1e30_are_refused_by_the_first_forward_pass(tmp_path, tiny_state, model):
    if model == "tiny":
        state, config = tiny_state, TINY
    else:
        shipped = load_refiner(None, device="cpu").network
        state, config = shipped.state_dict(), shipped.config
    huge = {k: v.float() * 1e30 for k, v in state.items()}  # finite float32 numbers, absurd weights
    assert all(bool(torch.isfinite(v).all()) for v in huge.values())
    _refused(_ours(tmp_path / "huge.pt", huge, config), "NaN or infinite logits")
