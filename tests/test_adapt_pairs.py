"""Training pairs and their store: what the network saw, validated, saved as a training folder."""

from __future__ import annotations

import numpy as np
import pytest

from _adapt_helpers import TINY, scene, store
from napari_segrefiner.adapt import Pair, PairStore, make_pair
from napari_segrefiner.batch import object_crop
from napari_segrefiner.io import write_mask
from napari_segrefiner.pipelines import instance_box


def test_pair_is_the_network_input_of_the_coarse_object():
    image, coarse, final = scene(3)
    before = (image.copy(), coarse.copy(), final.copy())
    pair = make_pair(image, coarse, final, 2, config=TINY)
    for a, b in zip(before, (image, coarse, final)):
        assert np.array_equal(a, b)  # inputs untouched
    y0, y1, x0, x1 = instance_box(coarse == 2, TINY, coarse.shape)
    crop, cm = object_crop(image[y0:y1, x0:x1], coarse[y0:y1, x0:x1], 2, full_width=False, size=64, device="cpu")
    assert pair.image.shape == (64, 64, 3) and pair.image.dtype == np.uint8
    assert np.array_equal(pair.coarse, cm[0, 0].numpy() >= 0.5)
    assert np.abs(pair.image.astype(float) - crop[0].permute(1, 2, 0).numpy()).max() <= 0.5
    assert pair.final.dtype == bool and pair.final.any() and not np.array_equal(pair.final, pair.coarse)
    assert pair.info["label"] == 2 and pair.info["box"] == [y0, y1, x0, x1] and pair.key == "label2"
    with pytest.raises(ValueError):
        pair.final[0, 0] = True  # read-only


def test_bool_coarse_mask_is_the_object():
    image, coarse, final = scene(1)
    pair = make_pair(image, coarse > 0, final, 1, config=TINY)
    assert pair.coarse.any()


@pytest.mark.parametrize("change, match", [
    (lambda im, c, f: (im, c[:-1], f, 1), "coarse shape"),
    (lambda im, c, f: (im, c, f[:, :-1], 1), "final shape"),
    (lambda im, c, f: (im, c, np.zeros_like(f), 1), "final is empty"),
    (lambda im, c, f: (im, c, f, 9), "label 9 does not occur in coarse"),
    (lambda im, c, f: (im, c, np.where(f == 2, 0, f), 2), "does not occur in final"),
    (lambda im, c, f: (im, c * 0.5, f, 1), "coarse is a float array"),
    (lambda im, c, f: (im, c, f, 0), "label must be a positive integer"),
    (lambda im, c, f: (im, c, f, True), "label must be a positive integer"),
])
def test_make_pair_refuses_bad_input_naming_it(change, match):
    image, coarse, final = scene(2)
    with pytest.raises(ValueError, match=match):
        make_pair(*change(image, coarse, final), config=TINY)


def test_make_pair_refuses_wrong_dtypes_and_keys():
    image, coarse, final = scene(1)
    with pytest.raises(TypeError, match="coarse must be a bool or integer"):
        make_pair(image, coarse.astype(str), final, 1, config=TINY)
    with pytest.raises(ValueError, match="key"):
        make_pair(image, coarse, final, 1, config=TINY, key="../x")
    with pytest.raises(TypeError, match="image must be uint8"):
        Pair("p", np.zeros((8, 8, 3), np.float32), np.ones((8, 8), bool), np.ones((8, 8), bool))
    with pytest.raises(TypeError, match="final must be a bool mask"):
        Pair("p", np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), bool), np.ones((8, 8), np.uint8))


def test_final_object_outside_the_coarse_crop_is_refused():
    image, coarse, final = scene(1)
    far = np.zeros_like(final)
    far[100:110, 0:10] = 1  # nowhere near the coarse square
    with pytest.raises(ValueError, match="outside the crop"):
        make_pair(image, coarse, far, 1, config=TINY)


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


@pytest.mark.parametrize("damage, match", [
    (lambda r: (r / "coarse" / "label2.png").unlink(), "label2.*missing"),
    (lambda r: write_mask(r / "masks" / "label1.png", np.zeros((64, 64), np.uint8)), "final mask is empty"),
    (lambda r: write_mask(r / "coarse" / "label1.png", np.ones((32, 64), bool)), "differ in shape"),
    (lambda r: write_mask(r / "masks" / "label2.png", np.arange(64 * 64).reshape(64, 64) % 3), "not a binary mask"),
    (lambda r: (r / "pairs.json").write_text("{"), "not valid JSON"),
])
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
