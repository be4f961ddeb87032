"""Tests for checkpoint reading/writing (napari_segrefiner.models.checkpoint, load_refiner(...).network).

Released-layout files are written from an INDEPENDENT key table generated from the
released network's layer tables and checkpoint key layout (official SegRefiner
DenoiseUNet, ``denoise_model.*`` keys), not from our module.

About file size: the real LR file is 474.6 MB of float32. Writing that per test would be
slow on a shared 2-core machine, so the official-layout file here holds all 455 keys with
their exact names and shapes (453 ``denoise_model.*`` + 2 ``loss_texture.*``), but every
tensor is a view into ONE shared random float32 buffer (at a different offset per key).
``torch.save`` stores a shared storage once, so the file is ~19 MB, while ``torch.load``
returns exactly the same top-level dict of 455 correctly named and shaped float32 tensors
that the released file gives. The loader cannot tell the difference, so this is an honest
stand-in for the layout; the values are random, which is all the equality checks need.
"""

from __future__ import annotations

import dataclasses
import zipfile

import pytest
import torch
from _released_unet import official_key_shapes
from torch import nn

from napari_segrefiner.models import checkpoint as ckpt
from napari_segrefiner.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from napari_segrefiner.models.config import LiteConfig, RefineConfig, UNetConfig
from napari_segrefiner.models.nets import build_network
from napari_segrefiner.models.nets.unet import UNet
from napari_segrefiner.models.refiner import load_refiner

# Section 2.2: Sobel kernels of the texture loss, divided by 4.
SOBEL_X = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]).div(4).view(1, 1, 3, 3)
SOBEL_Y = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]).div(4).view(1, 1, 3, 3)


def released_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A top-level dict in the released layout: 453 denoise_model.* + 2 loss_texture.*."""
    table = official_key_shapes()
    sizes = [int(torch.Size(s).numel()) for s in table.values()]
    stride = 7  # distinct offsets so that no two tensors start with the same values
    g = torch.Generator().manual_seed(seed)
    buf = (torch.rand(max(sizes) + stride * len(sizes), generator=g) - 0.5) * 0.2
    state = {}
    for i, ((key, shape), n) in enumerate(zip(table.items(), sizes)):
        state[f"denoise_model.{key}"] = buf[i * stride : i * stride + n].view(shape)
    state["loss_texture.sobel.conv_x.weight"] = SOBEL_X.clone()
    state["loss_texture.sobel.conv_y.weight"] = SOBEL_Y.clone()
    return state


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    state = released_state()
    assert len(state) == 455
    assert sum(k.startswith("denoise_model.") for k in state) == 453
    assert sum(v.numel() for v in state.values()) == 118_604_691  # section 1.6
    path = tmp_path_factory.mktemp("released") / "segrefiner_lr_latest.pth"
    torch.save(state, path)
    return path, state


def _net_state(state):
    return {k[len("denoise_model.") :]: v for k, v in state.items() if k.startswith("denoise_model.")}


def _x(n=1, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, h, w, generator=g), torch.tensor([5, 0, 3][:n])


# --------------------------------------------------------------------------- #
# released layout
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_released_layout_loads_strictly_and_matches_in_memory_model(released):
    path, state = released
    assert path.stat().st_size < 40e6  # shared storage (see module docstring)
    refiner = load_refiner(path, device="cpu")
    model = refiner.network
    assert isinstance(model, UNet) and model.config == UNetConfig.official()
    assert not model.training
    assert refiner.config == RefineConfig.official() and dict(refiner.meta) == {}
    # every weight went to the tensor of the same name (strict: no missing, no extra)
    net = _net_state(state)
    loaded = model.state_dict()
    assert set(loaded) == set(net)
    assert all(torch.equal(loaded[k], net[k]) for k in net)
    # identical outputs to an in-memory network holding the same weights
    with torch.device("meta"):
        ref = UNet(UNetConfig.official())
    # (clone: the file's tensors are views at arbitrary offsets of one buffer; a misaligned
    # weight can take a different SIMD path and change the last bits of the result)
    ref.load_state_dict({k: v.clone() for k, v in net.items()}, strict=True, assign=True)
    ref.eval()
    x, t = _x()
    with torch.no_grad():
        assert torch.equal(model(x, t), ref(x, t))


@pytest.mark.parametrize("variant", ["state_dict", "module", "state_dict+module", "mmcv_meta"])
def test_released_variants_give_the_same_state(released, tmp_path, variant):
    _, state = released
    obj = state
    if "module" in variant:
        obj = {f"module.{k}": v for k, v in obj.items()}
    if "state_dict" in variant:
        obj = {"state_dict": obj}
    if variant == "mmcv_meta":
        obj = {"meta": {"iter": 120000, "mmdet_version": "2.28.1"}, "state_dict": obj}
    path = tmp_path / "variant.pth"
    torch.save(obj, path)
    config, got, refine, meta = load_checkpoint(path)
    assert config == UNetConfig.official()
    assert refine == RefineConfig.official() and meta == {}
    net = _net_state(state)
    assert set(got) == set(net)  # loss_texture.* dropped, prefixes stripped
    assert all(torch.equal(got[k], net[k]) for k in net)


def test_wrapped_and_prefixed_file_loads_as_a_model(released, tmp_path):
    _, state = released
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model = load_refiner(path).network
    net = _net_state(state)
    sd = model.state_dict()
    assert all(torch.equal(sd[k], net[k]) for k in net)


def test_released_file_missing_a_key_is_refused(released, tmp_path):
    _, state = released
    broken = dict(state)
    del broken["denoise_model.middle_block.1.qkv.weight"]
    path = tmp_path / "missing.pth"
    torch.save(broken, path)
    with pytest.raises(CheckpointError, match=r"1 missing keys.*middle_block\.1\.qkv\.weight"):
        load_refiner(path)


# --------------------------------------------------------------------------- #
# files that are not checkpoints
# --------------------------------------------------------------------------- #
class NotATensor:
    """A custom class: a pickle holding it must be refused by weights_only=True."""

    def __init__(self):
        self.payload = 1


@pytest.fixture
def tiny_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, build_network(LiteConfig.tiny()))
    return path


def test_truncated_file(tiny_file, tmp_path):
    data = tiny_file.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_refiner(bad)


def test_random_bytes(tmp_path):
    bad = tmp_path / "random.pth"
    bad.write_bytes(
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).numpy().tobytes()
    )
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_refiner(bad)


def test_foreign_state_dict(tmp_path):
    resnet_like = {
        "conv1.weight": torch.zeros(64, 3, 7, 7),
        "bn1.weight": torch.ones(64),
        "bn1.running_mean": torch.zeros(64),
        "layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3),
        "fc.weight": torch.zeros(1000, 2048),
    }
    path = tmp_path / "resnet.pth"
    torch.save(resnet_like, path)
    with pytest.raises(CheckpointError, match="not a SegRefiner checkpoint.*conv1.weight"):
        load_refiner(path)


def test_empty_dict(tmp_path):
    path = tmp_path / "empty.pth"
    torch.save({}, path)
    with pytest.raises(CheckpointError, match="no denoise_model"):
        load_refiner(path)


def test_pickle_of_a_list(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2), torch.ones(2)], path)
    with pytest.raises(CheckpointError, match="not a state dict: it holds a list"):
        load_refiner(path)


def test_dict_with_a_non_tensor_value(tmp_path):
    path = tmp_path / "nontensor.pth"
    torch.save({"denoise_model.time_embed.weight": torch.zeros(6, 512), "denoise_model.out.2.bias": "oops"}, path)
    with pytest.raises(CheckpointError, match="not a state dict: entry 'denoise_model.out.2.bias' is a str"):
        load_refiner(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="neither a registered name"):
        load_refiner(tmp_path / "nope.pth")


def test_custom_class_is_refused(tmp_path):
    path = tmp_path / "custom.pth"
    torch.save({"denoise_model.time_embed.weight": NotATensor()}, path)
    # sanity: the file really is a pickle a full (unsafe) load could read
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_refiner(path)


def test_loading_uses_weights_only(tiny_file, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_refiner(tiny_file)
    assert calls and all(c.get("weights_only") is True for c in calls)


# --------------------------------------------------------------------------- #
# our own format
# --------------------------------------------------------------------------- #
SMALL_UNET = UNetConfig(model_channels=32, channel_mult=(1, 2), attention_strides=(2,), norm_groups=8)


@pytest.mark.parametrize("config", [LiteConfig.tiny(), SMALL_UNET], ids=["lite-tiny", "small-unet"])
def test_save_load_round_trip(tmp_path, config):
    torch.manual_seed(5)
    model = build_network(config).eval()
    refine = RefineConfig(min_area=16, pad=8)
    meta = {"recipe": {"lr": 1e-3, "iters": [1, 2, 3]}, "name": "unit-test", "iou": 0.91}
    path = tmp_path / "sub" / "ours.pt"  # parent folder is created
    save_checkpoint(path, model, refine=refine, meta=meta)
    assert not path.with_suffix(".pt.tmp").exists()

    cfg2, state, r2, m2 = load_checkpoint(path)
    assert cfg2 == config and type(cfg2) is type(config)
    assert r2 == refine and m2 == meta

    refiner = load_refiner(path, device="cpu")
    loaded = refiner.network
    assert loaded.config == config
    assert refiner.config == refine and dict(refiner.meta) == meta
    assert refiner.config.min_area == 16 and refiner.config.size == 256 and refiner.source == str(path)
    x, t = _x(n=2, h=2 * config.divisor, w=2 * config.divisor, seed=1)
    with torch.no_grad():
        assert torch.equal(loaded(x, t), model(x, t))


def test_save_half_round_trip(tmp_path):
    torch.manual_seed(6)
    model = build_network(LiteConfig.tiny()).eval()
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    save_checkpoint(full, model)
    save_checkpoint(half, model, half=True, meta={"k": 1})
    assert half.stat().st_size < 0.75 * full.stat().st_size
    _, state, _, meta = load_checkpoint(half)
    assert meta == {"k": 1}
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    loaded = load_refiner(half).network
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    # exactly the network whose weights were rounded to fp16 ...
    rounded = build_network(LiteConfig.tiny())
    rounded.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    rounded.eval()
    x, t = _x(n=2, h=16, w=16, seed=2)
    with torch.no_grad():
        y_loaded, y_rounded, y_full = loaded(x, t), rounded(x, t), model(x, t)
    assert torch.equal(y_loaded, y_rounded)
    # ... and close to the fp32 network (fp16 has an 11-bit significand: rel. error ~5e-4 per
    # weight; through a few layers a few 1e-3 relative to the output scale)
    scale = y_full.abs().max().item()
    assert (y_loaded - y_full).abs().max().item() < 1e-2 * max(scale, 1.0)


def test_save_extra_entries_still_load(tmp_path):
    model = build_network(LiteConfig.tiny())
    path = tmp_path / "extra.pt"
    save_checkpoint(path, model, extra={"optimizer": {"step": torch.tensor(3)}, "epoch": 4})
    loaded = load_refiner(path).network
    assert isinstance(loaded, nn.Module)


def test_save_requires_a_config():
    with pytest.raises(TypeError, match="UNetConfig, LiteConfig or EncDecConfig"):
        save_checkpoint("unused.pt", nn.Linear(2, 2))


def test_our_format_broken_header(tmp_path):
    path = tmp_path / "broken.pt"
    torch.save({"format": "napari-segrefiner", "config": {"arch": "bogus"}, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="broken napari-segrefiner header"):
        load_refiner(path)


def test_our_format_wrong_shape_and_missing_key(tmp_path):
    model = build_network(LiteConfig.tiny())
    state = model.state_dict()
    key = "stem1.weight"
    header = {
        "format": "napari-segrefiner",
        "version": 1,
        "config": {**dataclasses.asdict(LiteConfig.tiny()), "arch": "lite"},
        "defaults": {},
        "meta": {},
    }
    p1 = tmp_path / "shape.pt"
    torch.save({**header, "state_dict": {**state, key: torch.zeros(1, 1, 3, 3)}}, p1)
    with pytest.raises(CheckpointError, match="'stem1.weight' has shape"):
        load_refiner(p1)
    p2 = tmp_path / "missing.pt"
    torch.save({**header, "state_dict": {k: v for k, v in state.items() if k != key}}, p2)
    with pytest.raises(CheckpointError, match="1 missing keys"):
        load_refiner(p2)
    p3 = tmp_path / "unexpected.pt"
    torch.save({**header, "state_dict": {**state, "bogus.weight": torch.zeros(1)}}, p3)
    with pytest.raises(CheckpointError, match="1 unexpected keys"):
        load_refiner(p3)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)
    assert ckpt.FORMAT == "napari-segrefiner"


# --------------------------------------------------------------------------- #
# malformed stored configurations: always a CheckpointError naming the file
# --------------------------------------------------------------------------- #
def _our_file(path, config=None, refine=None, **config_changes):
    """Our format with the tiny network's weights and a (possibly broken) stored header."""
    torch.manual_seed(0)
    model = build_network(LiteConfig.tiny())
    cfg = {**dataclasses.asdict(LiteConfig.tiny()), "arch": "lite", **config_changes} if config is None else config
    torch.save(
        {
            "format": "napari-segrefiner",
            "version": 2,
            "config": cfg,
            "state_dict": model.state_dict(),
            "refine": refine or {},
            "meta": {},
        },
        path,
    )
    return path


@pytest.mark.parametrize(
    "changes",
    [
        {"num_heads": 0},  # ZeroDivisionError while building
        {"norm_groups": 0},
        {"model_channels": -8},  # RuntimeError: negative dimension
        {"stem_channels": [8, -1]},
        {"norm_groups": 3},  # ValueError from GroupNorm
        {"num_heads": 3},
        {"channel_mult": []},  # builds, but cannot run
        {"channel_mult": [1, "a"]},
        {"head_channels": 0},  # runs, but gives no output channel
        {"in_channels": 3},
        {"out_channels": 2},
        {"num_timesteps": 0},
        {"dropout": 2.0},
        {"model_channels": True},
        {"num_res_blocks": 10**9},  # refused before building (would take forever)
        {"model_channels": 10**12},
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_unbuildable_network_config_is_a_checkpoint_error(tmp_path, changes):
    path = _our_file(tmp_path / "broken.pt", **changes)
    with pytest.raises(CheckpointError, match="broken.pt") as info:
        load_refiner(path, device="cpu")
    assert len(str(info.value).splitlines()) == 1


def test_official_unet_layout_config_still_builds(tmp_path):
    # the same meta-device check passes a valid small UNet (and the lite/official ones above)
    torch.manual_seed(0)
    path = tmp_path / "unet.pt"
    save_checkpoint(path, build_network(SMALL_UNET))
    assert load_refiner(path, device="cpu").network.config == SMALL_UNET


@pytest.mark.parametrize(
    "refine,match",
    [
        ({"size": 4096}, "size must be in"),
        ({"min_area": 1e9}, "min_area must be an integer"),
        ({"context": float("nan")}, "context must be a finite number"),
        ({"bogus": 1}, "unknown options"),
        ({"size": 100}, "size 100 is not a multiple of 8"),
        ({"hr_patch": 100}, "hr_patch 100 is not a multiple of 8"),
    ],
)
def test_invalid_stored_refine_config_is_a_checkpoint_error(tmp_path, refine, match):
    path = _our_file(tmp_path / "opts.pt", refine=refine)
    with pytest.raises(CheckpointError, match=match):
        load_refiner(path, device="cpu")
