"""napari_segrefiner.models.refiner: load_refiner, the Refiner object, device resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_segrefiner import LiteConfig, RefineConfig, Refiner, build_network, iter_refine, load_refiner, refine
from napari_segrefiner.diffusion.scheduler import Schedule
from napari_segrefiner.engine.records import count_records
from napari_segrefiner.models import refiner as refiner_mod


@pytest.fixture
def net():
    torch.manual_seed(0)
    return build_network(LiteConfig.tiny())


def test_shipped_model_loads_with_its_stored_options():
    r = load_refiner(device="cpu")
    assert r.source == "segrefiner-lite" and r.device == torch.device("cpu")
    assert r.config.min_area == 32 and r.config.context == 3.0  # stored with the weights, not official
    assert r.schedule == Schedule(num_timesteps=6) and not r.network.training
    assert r.meta["name"] and "val" in r.meta  # read-only metadata from the checkpoint
    with pytest.raises(TypeError):
        r.meta["x"] = 1  # type: ignore[index]
    assert isinstance(load_refiner(device="cpu").network, torch.nn.Module)


def test_a_callers_network_is_never_moved_or_switched_in_place(net):
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = load_refiner(net, device="cpu")
    assert net.training  # the caller's module keeps its mode...
    assert r.network is not net and not r.network.training  # ...the refiner uses an eval copy
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    net.eval()
    assert load_refiner(net, device="cpu").network is net  # already on the device in eval mode: used as is
    assert r.config == RefineConfig.official() and r.source == "<in-memory network>"


def test_a_refiner_is_passed_through_and_options_do_not_touch_it(tiny_model):
    assert load_refiner(tiny_model, device=None) is tiny_model
    assert load_refiner(tiny_model, device="cpu") is tiny_model
    faster = tiny_model.with_options(batch_size=2)
    assert faster.network is tiny_model.network and tiny_model.config.batch_size == 32
    assert faster.config.batch_size == 2 and faster.config.size == tiny_model.config.size
    with pytest.raises(ValueError, match="size must be a multiple of 8"):
        tiny_model.with_options(size=68)
    with pytest.raises(TypeError, match="unknown options \\['sise'\\]"):
        tiny_model.with_options(sise=64)


def test_device_is_resolved_once_per_front_end_call(monkeypatch, blobs, tiny_checkpoint):
    calls = []
    real = refiner_mod.resolve_device
    monkeypatch.setattr(refiner_mod, "resolve_device", lambda d="auto": calls.append(d) or real(d))
    image, mask = blobs
    refine(image, mask, model=str(tiny_checkpoint), seed=0)
    assert calls == ["auto"]
    calls.clear()
    r = load_refiner(str(tiny_checkpoint), device="cpu")
    refine(image, mask, model=r, seed=0)
    refine(image, mask, model=r, seed=1)
    assert calls == ["cpu"]  # the Refiner carries its device; refine() resolves nothing


def test_unknown_devices_and_sources_are_clear_errors(net):
    with pytest.raises(ValueError, match="'xla' is not supported"):
        load_refiner(net, device="xla")
    with pytest.raises(ValueError, match="not a valid torch device"):
        load_refiner(net, device="gpu7")
    with pytest.raises(TypeError, match="device must be a string"):
        load_refiner(net, device=3)
    with pytest.raises(TypeError, match="model must be None, a name"):
        load_refiner(3.5)
    with pytest.raises(FileNotFoundError, match="neither a registered name"):
        load_refiner("no-such-model.pt")


def test_count_records_matches_what_runs_yield(tiny_model, blobs):
    image, mask = blobs
    n = len(np.unique(mask)) - 1  # objects of the fixture
    # one record per network batch: ceil(objects / batch_size); HR: one per object
    assert count_records("instance", 5, 2) == 3 and count_records("whole", 4, 2) == 2
    assert count_records("hr", 3, 2) == 3 and count_records("instance", 0, 8) == 1
    with pytest.raises(ValueError, match="mode must be one of"):
        count_records("auto", 1, 1)
    for batch in (1, 2, 32):
        recs = list(iter_refine(image, mask, model=tiny_model, seed=0, batch_size=batch, min_area=0))
        assert len(recs) == recs[-1].total == count_records("instance", n, batch)
        assert [r.done_objects for r in recs][-1] == n and recs[-1].done and not any(r.done for r in recs[:-1])


def test_same_seed_same_result_for_any_batch_size(tiny_model, blobs):
    image, mask = blobs
    a = refine(image, mask, model=tiny_model, seed=7, batch_size=1)
    b = refine(image, mask, model=tiny_model, seed=7, batch_size=32)
    np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (checked on a GPU machine when one is lent)")
def test_same_seed_same_draws_on_cpu_and_cuda(tiny_model, blobs):  # pragma: no cover - CPU-only CI
    image, mask = blobs
    cpu = refine(image, mask, model=tiny_model, seed=3)
    gpu = refine(image, mask, model=load_refiner(tiny_model, device="cuda"), seed=3)
    assert (cpu != gpu).mean() < 1e-3  # same draws; only float rounding of the network may differ


def test_refiner_validates_its_parts(net):
    with pytest.raises(TypeError, match="network must be a torch.nn.Module"):
        Refiner("net", RefineConfig(), Schedule(), torch.device("cpu"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config must be a RefineConfig"):
        Refiner(net, {"size": 64}, Schedule(), torch.device("cpu"))  # type: ignore[arg-type]


def test_registered_released_models_bring_their_options(monkeypatch, tmp_path, tiny_checkpoint):
    from napari_segrefiner.models import registry

    monkeypatch.setattr(registry, "resolve", lambda name, cache=None, verify=False: tiny_checkpoint)
    assert load_refiner("segrefiner-lr", device="cpu").config.auto_hr_side == 0  # an object-crop model
    assert (
        load_refiner("segrefiner-hr", device="cpu").config.auto_hr_side
        == load_refiner(str(tiny_checkpoint), device="cpu").config.auto_hr_side
    )
