"""Models per process, clients and progress (napari_segrefiner.lazy.cluster)."""

from __future__ import annotations

import pytest

from napari_segrefiner.lazy import cluster
from napari_segrefiner.lazy.cluster import ModelSpec, Progress, get_client, refiner_for, report, worker_threads


def test_a_model_is_loaded_once_per_process_and_options_apply_per_task(tiny_checkpoint):
    cluster.clear_models()
    before = cluster.model_loads()
    spec = ModelSpec(source=str(tiny_checkpoint), device="cpu", options=(("batch_size", 3),))
    a = refiner_for(spec)
    b = refiner_for(ModelSpec(source=str(tiny_checkpoint), device="cpu", options=(("batch_size", 5),)))
    assert cluster.model_loads() == before + 1 and a.network is b.network
    assert a.config.batch_size == 3 and b.config.batch_size == 5
    cluster.clear_models()


def test_an_in_memory_model_is_used_as_it_is(tiny_model):
    got = refiner_for(ModelSpec(refiner=tiny_model, options=(("pad", 4),)))
    assert got.network is tiny_model.network and got.config.pad == 4


def test_progress_counts_objects_of_its_run_only():
    seen = []
    tracker = Progress(lambda done, total: seen.append((done, total)), 5).attach()
    report(tracker.token, 2)
    report("another run", 9)
    report(None, 9)
    report(tracker.token, 3)  # done: it detaches itself
    report(tracker.token, 1)
    assert seen == [(2, 5), (5, 5)]


def test_clients_and_threads():
    assert get_client(None) is None
    with pytest.raises(TypeError, match="client must be None, an address or a distributed.Client"):
        get_client(3)
    assert worker_threads(8, 3) == 2 and worker_threads(1, 4) == 1
