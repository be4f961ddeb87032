"""PairStore: pairs by key, saved and loaded as a training folder, damage named."""

from __future__ import annotations

import numpy as np
import pytest
from _adapt_helpers import TINY, scene, store

from napari_segrefiner.adapt import PairStore
from napari_segrefiner.io.files import write_mask


def test_store_replaces_by_key_and_checks_sides():
    s = store(3)
    assert len(s) == 3 and s.keys == ("label1", "label2", "label3")
    image, coarse, final = scene(3)
    again = s.add(image, coarse, np.where(final == 1, 0, final) + (coarse == 1), 1)
    assert len(s) == 3 and s["label1"] is again
    other = PairStore(TINY.replace(size=96))
    with pytest.raises(ValueError, match="side 64"):
        other.add_pair(again)
    with pytest.raises(TypeError):
        s.add_pair("not a pair")


def test_store_round_trips_as_a_training_folder(tmp_path):
    s = store(3)
    root = s.save(tmp_path / "pairs")
    assert sorted(p.name for p in root.iterdir()) == ["coarse", "images", "masks", "pairs.json", "train.txt"]
    back = PairStore.load(root)
    assert back.keys == s.keys and back.config.size == 64 and back.config.context == TINY.context
    for a, b in zip(s, back):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.coarse, b.coarse)
        assert np.array_equal(a.final, b.final) and a.info == b.info
    from napari_segrefiner.training.folders import PairFolder

    folder = PairFolder(root, split="train")  # the layout of the training folders
    assert len(folder) == 3 and folder.load(0)[1].shape == (64, 64)


def test_store_save_refuses_to_clobber(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        PairStore(TINY).save(tmp_path / "x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        store(2).save(tmp_path / "busy")
    store(2).save(tmp_path / "busy", overwrite=True)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda r: (r / "coarse" / "label2.png").unlink(), "label2.*missing"),
        (lambda r: write_mask(r / "masks" / "label1.png", np.zeros((64, 64), np.uint8)), "final mask is empty"),
        (lambda r: write_mask(r / "coarse" / "label1.png", np.ones((32, 64), bool)), "differ in shape"),
        (lambda r: write_mask(r / "masks" / "label2.png", np.arange(64 * 64).reshape(64, 64) % 3), "not a binary mask"),
        (lambda r: (r / "pairs.json").write_text("{"), "not valid JSON"),
    ],
)
def test_store_load_names_what_is_broken(tmp_path, damage, match):
    root = store(2).save(tmp_path / "p")
    damage(root)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        PairStore.load(root)


def test_store_load_of_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        PairStore.load(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no pairs"):
        PairStore.load(tmp_path / "empty")
