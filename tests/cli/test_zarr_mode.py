"""Zarr mode of ``napari-segrefiner refine`` (napari_segrefiner.cli.zarr_mode): one big array, chunk by
chunk, resumable, equal to ``refine(mode="instance")``; see also ``test_nothing_lost.py``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _cli_helpers import refine_argv, sample_stores

from napari_segrefiner.cli.main import main
from napari_segrefiner.cli.manifest import MANIFEST
from napari_segrefiner.cli.zarr_mode import is_zarr


@pytest.fixture
def ckpt(biased_checkpoint):
    return biased_checkpoint


def test_is_zarr_names_stores_and_folders_with_zarr_metadata(tmp_path):
    assert is_zarr(tmp_path / "a.zarr") and is_zarr(tmp_path / "a.zarr" / "0")
    assert not is_zarr(tmp_path / "a.png") and not is_zarr(tmp_path)
    (tmp_path / "zarr.json").write_text("{}")
    assert is_zarr(tmp_path)


@pytest.fixture
def stores(tmp_path):
    return (tmp_path, *sample_stores(tmp_path))


def _zargs(root, ckpt, *extra):
    return refine_argv(root / "img.zarr", root / "lab.zarr", root / "out.zarr", ckpt, "--seed", "3", *extra)


def test_zarr_mode_is_chunk_wise_resumable_and_matches_refine(stores, tiny_model, ckpt, monkeypatch):
    import zarr

    from napari_segrefiner import refine
    from napari_segrefiner.lazy import store

    root, img, lab = stores
    written = []
    real = store.write_block

    def failing(block, folder, region):
        if len(written) == 7:
            raise RuntimeError("disk gone")
        written.append(region)
        real(block, folder, region)

    monkeypatch.setattr(store, "write_block", failing)
    assert main(_zargs(root, ckpt)) == 1
    assert not (root / "out.zarr").exists()  # never a partial output
    partial = root / ".out.zarr.partial"
    assert len(json.loads((partial / MANIFEST).read_text())["done"]) == 7

    resumed = []

    def counting(block, folder, region):
        resumed.append(region)
        real(block, folder, region)

    monkeypatch.setattr(store, "write_block", counting)
    assert main(_zargs(root, ckpt)) == 0
    assert len(resumed) == 20 - 7 and not set(resumed) & set(written)  # 4 x 5 chunks of 64 px
    assert not partial.exists()
    expected = refine(img, lab, model=tiny_model.with_options(keep_bias=0.2), mode="instance", seed=3)
    assert (expected > 0).sum() > 0.8 * (lab > 0).sum() and (expected != lab).any()
    assert np.array_equal(zarr.open_array(str(root / "out.zarr"))[:], expected)

    resumed.clear()
    assert main(_zargs(root, ckpt)) == 0 and resumed == []  # finished: nothing redone


def test_zarr_mode_refuses_foreign_outputs_and_other_modes(stores, ckpt, capsys):
    root, _, _ = stores
    (root / "out.zarr").mkdir()
    assert main(_zargs(root, ckpt)) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(_zargs(root, ckpt, "--mode", "hr")) == 2
    assert "instance mode" in capsys.readouterr().err
    args = _zargs(root, ckpt)
    args[4] = str(root / "lab.zarr" / "out.zarr")
    assert main(args) == 2
    assert "outside the inputs" in capsys.readouterr().err
