"""Adapted models in the user's folder: saved with provenance, listed, loaded by name, validated."""

from __future__ import annotations

import pytest
import torch
from _adapt_helpers import (
    TINY,
    cache,  # noqa: F401 (fixture)
    scene,
    tiny_refiner,
)
from _adapt_helpers import adapted_result as result  # noqa: F401 (fixture)

from napari_segrefiner.adapt import adapt, adapted_folder, adapted_path, list_adapted, save_adapted
from napari_segrefiner.adapt.models import base_identity
from napari_segrefiner.models import registry
from napari_segrefiner.models.adapted import check_name
from napari_segrefiner.models.checkpoint import CheckpointError, save_checkpoint
from napari_segrefiner.models.refiner import load_refiner


def test_saved_model_has_provenance_and_loads_by_name(cache, result):
    path = save_adapted(result, "mine", force=True)
    assert path == cache / "adapted" / "mine.pt" == adapted_path("adapted:mine")
    loaded = load_refiner("adapted:mine", device="cpu")
    assert loaded.source == "adapted:mine" and loaded.config == TINY
    for k, v in result.refiner.network.state_dict().items():
        assert torch.equal(v, loaded.network.state_dict()[k])
    prov = loaded.meta["adapted"]
    assert prov["name"] == "mine" and prov["pairs"] == {"train": 3, "holdout": 1} and prov["steps"] == 2
    assert (
        set(prov["heldout_iou"]) == {"base", "adapted", "base_keep", "adapted_keep"}
        and prov["seed"] == 0
        and prov["date"]
    )
    assert prov["base"]["digest_of"] == "weights" and len(prov["base"]["sha256"]) == 64
    (listed,) = list_adapted()
    assert listed.name == "mine" and listed.source == "adapted:mine" and listed.error is None
    assert "held-out" in listed.label


def test_refine_with_an_adapted_model(cache, result):
    from napari_segrefiner import refine

    save_adapted(result, "r", force=True)
    image, coarse, _ = scene(2)
    out = refine(image, coarse, model="adapted:r", device="cpu")
    assert out.shape == coarse.shape


def test_default_name_is_dated_and_names_are_checked(cache, result):
    path = save_adapted(result, force=True)
    assert path.stem.startswith("adapted-") and path.parent == adapted_folder()
    for bad in ("", "../x", "a/b", "x.pt", ".hidden", "a" * 65, 3):
        with pytest.raises(ValueError, match="name"):
            check_name(bad)
    with pytest.raises(FileExistsError, match="exists"):
        save_adapted(result, path.stem, force=True)
    save_adapted(result, path.stem, force=True, overwrite=True)


def test_a_model_that_did_not_win_is_not_saved_unless_forced(cache, result):
    from dataclasses import replace

    lost = replace(result, kept=False)
    with pytest.raises(ValueError, match="did not beat its base"):
        save_adapted(lost, "lost")
    assert not (cache / "adapted" / "lost.pt").exists()


@pytest.mark.parametrize("content", [b"not a checkpoint at all", "foreign", "nan"])
def test_broken_or_foreign_adapted_files_are_refused_like_any_checkpoint(cache, result, content):
    folder = cache / "adapted"
    folder.mkdir(parents=True)
    path = folder / "bad.pt"
    if content == "foreign":
        torch.save({"weights": torch.ones(3)}, path)
    elif content == "nan":
        net = result.refiner.network
        save_checkpoint(path, net, refine=TINY)
        obj = torch.load(path, weights_only=True)
        key = next(k for k in obj["state_dict"] if not k.startswith("encoder."))
        obj["state_dict"][key] = torch.full_like(obj["state_dict"][key], float("nan"))
        torch.save(obj, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError):
        load_refiner("adapted:bad", device="cpu")
    (listed,) = list_adapted()
    if content != "nan":  # the header of the NaN file is fine: only loading finds the NaN
        assert listed.error and "unusable" in listed.label


def test_adapting_never_changes_the_shipped_weights(cache):
    shipped = registry.resolve(registry.DEFAULT_MODEL)
    digest, stamp = registry.sha256sum(shipped), shipped.stat().st_mtime_ns
    base = load_refiner(None, device="cpu").with_options(size=64, min_area=8, pad=4, context=3.0, context_cap=48)
    from napari_segrefiner.adapt import PairStore

    image, coarse, final = scene(2)
    pairs = PairStore(base.config)
    for k in (1, 2):
        pairs.add(image, coarse, final, k)
    res = adapt(base, pairs, max_steps=1, seed=0)
    assert res.provenance["base"]["sha256"] == digest and res.provenance["base"]["digest_of"] == "file"
    path = save_adapted(res, "from-shipped", force=True)
    assert path.parent == cache / "adapted"
    assert registry.sha256sum(shipped) == digest and shipped.stat().st_mtime_ns == stamp


def test_base_identity_of_a_checkpoint_file(tmp_path):
    net = tiny_refiner().network
    path = tmp_path / "base.pt"
    save_checkpoint(path, net, refine=TINY)
    ref = load_refiner(path, device="cpu")
    ident = base_identity(ref)
    assert ident == {"name": "base", "source": str(path), "sha256": registry.sha256sum(path), "digest_of": "file"}
