"""Adapted models in the user's folder: names checked, missing ones listed, absent folder empty."""

from __future__ import annotations

import pytest
from _adapt_helpers import adapted_result as result  # noqa: F401 (fixture)
from _adapt_helpers import cache  # noqa: F401 (fixture)

from napari_segrefiner.adapt import save_adapted
from napari_segrefiner.models.adapted import ADAPTED_PREFIX, adapted_folder, adapted_path, check_name, list_adapted
from napari_segrefiner.models.refiner import load_refiner


def test_missing_adapted_model_names_those_there_are(cache, result):
    save_adapted(result, "one", force=True)
    with pytest.raises(FileNotFoundError, match="adapted models: one"):
        load_refiner("adapted:two", device="cpu")


def test_listing_an_absent_folder_is_empty(cache):
    assert list_adapted() == []
    assert not adapted_folder().exists()


def test_names_are_checked_and_paths_resolve(cache, result):
    assert check_name("adapted:my-model_1.2") == "my-model_1.2"
    for bad in ("", "-x", "a/b", "x.pt", "a" * 65, 3):
        with pytest.raises(ValueError, match="name must be"):
            check_name(bad)
    path = save_adapted(result, "mine", force=True)
    assert adapted_path("mine") == adapted_path(ADAPTED_PREFIX + "mine") == path == adapted_folder() / "mine.pt"
    (m,) = list_adapted()
    assert (m.name, m.source, m.error) == ("mine", "adapted:mine", None) and "held-out" in m.label


def test_a_foreign_file_is_listed_as_unusable(cache):
    adapted_folder().mkdir(parents=True)
    (adapted_folder() / "junk.pt").write_bytes(b"not a checkpoint")
    (m,) = list_adapted()
    assert m.error and "unusable" in m.label
