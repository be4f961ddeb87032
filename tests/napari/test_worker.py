"""The widget's worker side (``_napari/worker.py``) without any viewer: stacks, progress, cancel.

That it imports no GUI package is checked with every other module in test_import_boundaries.py.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_segrefiner._napari.tracking import StepCounter, sync_bar
from napari_segrefiner._napari.worker import RefineJob, RefinementError, Update, all_positions, assemble, iter_job
from napari_segrefiner.engine.request import RefineRequest
from napari_segrefiner.models.cache import ModelCache


@pytest.fixture
def stack_job(blobs, tiny_model):
    """A 3-plane RGB stack job (every plane has objects) and a model cache holding the tiny net."""
    image, mask = blobs
    masks = np.stack([mask, np.roll(mask, 5, axis=1), np.roll(mask, -4, axis=0)])
    job = RefineJob(
        image=np.stack([image] * 3),
        rgb=True,
        mask=masks,
        axes=(1, 2),
        positions=all_positions(masks.shape, (1, 2)),
        request=RefineRequest(model="tiny", device="cpu", seed=0),
    )
    models = ModelCache()
    models.put("tiny", tiny_model, device="cpu")
    return job, models


def test_iter_job_refines_every_plane_of_a_stack(stack_job):
    job, models = stack_job
    mask_before, image_before = job.mask.copy(), job.image.copy()
    gen = iter_job(job, models)
    updates = []
    while True:
        try:
            updates.append(next(gen))
        except StopIteration as stop:
            finals = stop.value
            break
    assert job.positions == ((0,), (1,), (2,))
    assert all(isinstance(u, Update) and u.planes == 3 for u in updates)
    assert [u.pos for u in updates if u.step.done] == list(job.positions)  # each plane once, in order
    assert {u.plane for u in updates} == {0, 1, 2}
    assert all(u.uncertainty is None or u.uncertainty.dtype == np.uint8 for u in updates)
    assert set(finals) == set(job.positions)
    for pos, plane in finals.items():
        assert plane.shape == job.mask.shape[1:] and plane.dtype == job.mask.dtype
        assert not np.array_equal(plane, job.mask[job.index(pos)])  # refined, not passed through
    result = assemble(job, finals)
    assert result.shape == job.mask.shape and result.dtype == job.mask.dtype
    np.testing.assert_array_equal(result[1], finals[(1,)])
    np.testing.assert_array_equal(job.mask, mask_before)  # inputs untouched
    np.testing.assert_array_equal(job.image, image_before)
    assert list(models) == [("tiny", "cpu", None)]  # the cached network was used, nothing loaded


def test_closing_iter_job_mid_run_leaves_inputs_unchanged(stack_job):
    job, models = stack_job
    mask_before, image_before = job.mask.copy(), job.image.copy()
    gen = iter_job(job, models)
    first = next(gen)
    assert first.pos == (0,) and not first.step.done
    gen.close()  # what a worker's quit() amounts to: GeneratorExit at the yield, no error
    with pytest.raises(StopIteration):
        next(gen)
    np.testing.assert_array_equal(job.mask, mask_before)
    np.testing.assert_array_equal(job.image, image_before)


def test_iter_job_reports_planes_without_the_chosen_labels(stack_job):
    job, models = stack_job
    job = job.with_request(labels=(99,))
    with pytest.raises(RefinementError, match="nothing to refine: the chosen labels do not occur"):
        list(iter_job(job, models))


def test_step_counter_counts_steps_over_planes_for_a_progress_bar(stack_job):
    job, models = stack_job
    job = replace(job, mask=job.mask * (np.arange(3) != 1)[:, None, None])  # the middle plane: nothing to refine
    updates = list(iter_job(job, models))
    assert {u.plane for u in updates} == {0, 2}
    counter, counts = StepCounter(), []
    for u in updates:
        counts.append(counter.advance(u))
    first = updates[0].step  # one object per record (CPU batches of 1)
    assert counts[0] == (1, 3 * first.total_objects)  # 3 planes of the first plane's objects, until known better
    assert [n for n, _ in counts] == list(range(1, len(updates) + 1))  # n: objects done so far
    assert counts[-1] == (len(updates), len(updates))  # the skipped plane dropped out of the total

    class Bar:  # what sync_bar uses of a napari progress bar
        n, total = 0, 0

        def update(self, k):
            self.n += k

    bar = Bar()
    for n, total in counts:
        sync_bar(bar, n, total)
        assert (bar.n, bar.total) == (n, total)


def test_a_set_cancel_flag_stops_iter_job_and_takes_no_part_in_equality(stack_job):
    from napari_segrefiner._napari.worker import RefineCancelled

    job, models = stack_job
    twin = replace(job)
    assert twin == job and twin.cancel is not job.cancel  # its own flag, not compared
    gen = iter_job(job, models)
    first = next(gen)
    assert first.plane == 0
    job.cancel.set()  # checked before every network batch and between planes: not a RefinementError
    with pytest.raises(RefineCancelled):
        list(gen)
    job2 = replace(job)
    job2.cancel.set()
    with pytest.raises(RefineCancelled):  # set before the start: nothing runs
        next(iter_job(job2, models))


def test_iter_job_uses_the_gui_thread_count_on_a_cpu_and_restores_it(stack_job, monkeypatch):
    import torch

    from napari_segrefiner._napari import worker

    job, models = stack_job
    seen = []
    real = worker.start

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(worker, "start", spy)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # wins over cores - 1
    before = torch.get_num_threads()
    list(iter_job(job, models))
    assert seen == [3, 3, 3] and torch.get_num_threads() == before


def test_preflight_counts_objects_and_says_why_nothing_runs(stack_job):
    from napari_segrefiner._napari.preflight import check_job, count_objects, estimate_seconds, estimate_text, plane_ids

    job, _ = stack_job
    assert list(plane_ids(np.array([[0, 3], [7, 3]], dtype=np.uint16))) == [3, 7]
    assert list(plane_ids(np.array([[0, 2**40]], dtype=np.int64))) == [2**40]  # large values: np.unique
    assert count_objects(job) == 6  # two labels in each of three planes
    assert check_job(job.with_request(labels=(2,)), "m") == (3, None)
    empty = replace(job, mask=np.zeros_like(job.mask))
    assert check_job(empty, "m") == (0, "the coarse mask 'm' is empty: paint the objects first (one label each)")
    one = replace(job, positions=((1,),), mask=job.mask * (np.arange(3) != 1)[:, None, None])
    assert "nothing to refine in the displayed slice (1,) of 'm'" in check_job(one, "m")[1]
    absent = job.with_request(labels=(9,))
    assert check_job(absent, "m")[1].startswith("label 9 (the selected label) does not occur in the slices of 'm'")
    assert estimate_seconds(300, "segrefiner-lite-v2", None) == pytest.approx(300 * 6 * 0.14)
    assert estimate_seconds(300, "segrefiner-lite", None) == pytest.approx(300 * 6 * 0.05)
    assert estimate_seconds(300, "x.pt", 2, measured=0.1) == pytest.approx(60.0)
    assert estimate_text(300, 252.0, measured=False) == "300 objects on the CPU: about 4 min (nominal speed)"
