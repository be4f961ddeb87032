"""The one locked model cache (napari_segrefiner.models.cache): each model loaded once, the newest kept."""

from __future__ import annotations

import threading
import time

import pytest

from napari_segrefiner.models.cache import ModelCache


class Loader:
    """Counts loads; each load takes a while, so that racing threads would both load."""

    def __init__(self):
        self.calls = []

    def __call__(self, source, *, device, cache):
        self.calls.append((source, device, cache))
        time.sleep(0.05)
        return object()


def test_a_model_is_loaded_once_and_the_oldest_goes_first():
    load = Loader()
    models = ModelCache(size=2)
    a = models.get("a.pt", device="cpu", load=load)
    assert models.get("a.pt", device="cpu", load=load) is a and models.loads == 1
    models.get("b.pt", device="cpu", load=load)
    models.get("a.pt", device="cpu", load=load)  # a is now the most recently used
    models.get("c.pt", device="cpu", load=load)  # b goes
    assert list(models) == [("a.pt", "cpu", None), ("c.pt", "cpu", None)] and len(models) == 2
    assert models.loads == 3 and [c[0] for c in load.calls] == ["a.pt", "b.pt", "c.pt"]
    models.clear()
    assert len(models) == 0


def test_threads_asking_for_one_model_load_it_once():
    load = Loader()
    models = ModelCache()
    got = []
    threads = [threading.Thread(target=lambda: got.append(models.get("x.pt", load=load))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(load.calls) == 1 and len({id(g) for g in got}) == 1


def test_keys_count_the_cache_folder_for_registered_names_only_and_put_holds_a_model():
    assert ModelCache.key("segrefiner-lite", "cpu", "/c") == ("segrefiner-lite", "cpu", "/c")
    assert ModelCache.key(None, "cpu", "/c") == (None, "cpu", "/c")  # the shipped default is registered
    assert ModelCache.key("my.pt", "cpu", "/c") == ("my.pt", "cpu", None)
    models = ModelCache(size=1)
    held = object()
    models.put("tiny", held, device="cpu")
    assert models.get("tiny", device="cpu", load=pytest.fail) is held
    with pytest.raises(ValueError, match="size must be >= 1"):
        ModelCache(size=0)
