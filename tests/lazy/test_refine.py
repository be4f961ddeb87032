"""Lazy, object-wise refinement of big arrays (napari_segrefiner.lazy).

The lazy result must be bit-identical to numpy ``refine(..., mode="instance")`` for any
chunking (objects crossing chunk borders, overlapping boxes, clean-up), read the arrays
only around objects, and give the same result on a ``distributed`` cluster, where each
worker loads the model once.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_segrefiner import refine
from napari_segrefiner.lazy.refine import refine_lazy

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model(tiny_model):
    """The tiny network, biased towards the coarse mask: it keeps most objects and changes
    their borders at random, leaving specks the clean-up removes (without the bias it
    erases everything)."""
    return tiny_model.with_options(keep_bias=0.2)


def scene(shape=(150, 190), n=26, seed=0, big=True):
    """Random touching ellipses with sparse labels, a large object, a ring and a speck."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    lab = np.zeros(shape, np.int32)
    values = rng.choice(np.arange(3, 5000), size=n, replace=False)
    for v in values:
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        ry, rx = rng.integers(4, 14, size=2)
        lab[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = v
    if big:
        lab[((yy - 75) / 40) ** 2 + ((xx - 95) / 55) ** 2 <= 1] = 7000  # spans many chunks
        ring = (((yy - 30) / 12) ** 2 + ((xx - 160) / 12) ** 2 <= 1) & (
            ((yy - 30) / 4) ** 2 + ((xx - 160) / 4) ** 2 > 1
        )
        lab[ring] = 7001
    lab[h - 3 : h - 1, 2:5] = 7002  # below min_area: kept as it is
    img = (rng.normal(90, 25, shape + (3,))).clip(0, 255).astype(np.uint8)
    img[lab > 0] = (img[lab > 0] + 100).clip(0, 255)
    return img, lab


@pytest.mark.slow
def test_matches_refine_on_the_sample_with_the_shipped_model():
    """The acceptance check: the shipped model, the sample, chunks of 64 px (its 21 nuclei
    cross chunk borders), 3 network batches: bit-identical to the in-memory result."""
    from napari_segrefiner import load_refiner
    from napari_segrefiner._napari._sample_data import make_sample_data

    (img, _, _), (lab, _, _) = make_sample_data()
    refiner = load_refiner(None, device="cpu")
    opts = dict(seed=0, steps=2, batch_size=8)
    expected = refine(img, lab, model=refiner, mode="instance", **opts)
    got = refine_lazy(img, lab, model=refiner, chunks=64, **opts).compute(scheduler="threads", num_workers=1)
    assert (expected != lab).sum() > 100  # the model really changed something
    assert got.dtype == lab.dtype and got.shape == lab.shape
    assert np.array_equal(got, expected)


@pytest.mark.parametrize(
    "chunks, options",
    [
        (32, {}),
        (48, {"batch_size": 3}),
        (37, {"paste_changes_only": True, "context": 2.0, "context_cap": 80, "batch_size": 5, "keep_bias": 0.2}),
        (64, {"clean": False, "pad": 4}),
        (29, {"keep_bias": 0.1}),  # many changes and specks: the clean-up removes ~1,000 px
    ],
)
def test_matches_refine_for_any_chunking(model, chunks, options):
    img, lab = scene()
    expected = refine(img, lab, model=model, mode="instance", seed=5, **options)
    assert 0 < (expected != lab).sum() and (expected > 0).sum() > 0.1 * (lab > 0).sum()
    got = refine_lazy(img, lab, model=model, seed=5, chunks=chunks, **options).compute(scheduler="sync")
    assert np.array_equal(got, expected)


def test_scene_exercises_overlaps_and_clean_up(model):
    """Guard of the test above: boxes overlap and the clean-up changes the result."""
    from napari_segrefiner.lazy.refine import _as_dask, plan_lazy

    img, lab = scene()
    assert not np.array_equal(
        refine(img, lab, model=model, mode="instance", seed=5),
        refine(img, lab, model=model, mode="instance", seed=5, clean=False),
    )
    plan = plan_lazy(
        _as_dask(img, (32, 32, 3)), _as_dask(lab, (32, 32)), config=model.config, seed=5, steps=(5, 4, 3, 2, 1, 0)
    )
    boxes = [b for batch in plan.batches for b in batch.boxes]
    overlaps = sum(
        (a[0] < b[1]) & (b[0] < a[1]) & (a[2] < b[3]) & (b[2] < a[3])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
    )
    assert overlaps > 10
    assert 7002 not in plan.tables[()].labels[plan.tables[()].area >= model.config.min_area]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["uint16_gray", "float_rgba", "unit_float", "bool_mask", "labels_subset", "zarr"])
def test_inputs_like_refine(model, kind, tmp_path):
    img, lab = scene(seed=1)
    kwargs = {}
    rng = np.random.default_rng(2)
    if kind == "uint16_gray":
        img = (img[..., 1].astype(np.uint16) * 200 + rng.integers(0, 300, lab.shape)).astype(np.uint16)
    elif kind == "float_rgba":
        img = np.concatenate([img * 3.5 - 40.0, np.ones(lab.shape + (1,))], axis=-1)
    elif kind == "unit_float":
        img = (img / 255.0).astype(np.float32)
    elif kind == "bool_mask":
        lab = lab == lab[75, 95]
    elif kind == "labels_subset":
        kwargs["labels"] = [7000, int(np.unique(lab)[3])]
    expected = refine(img, lab, model=model, mode="instance", seed=9, **kwargs)
    assert not np.array_equal(expected, lab)
    if kind == "zarr":
        import zarr

        img = zarr.create_array(store=str(tmp_path / "img.zarr"), data=img, chunks=(40, 40, 3))
        lab = zarr.create_array(store=str(tmp_path / "lab.zarr"), data=lab, chunks=(40, 40))
    got = refine_lazy(img, lab, model=model, seed=9, chunks=40, **kwargs).compute(scheduler="sync")
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_stacks_are_refined_plane_by_plane(model):
    import dask.array as da

    planes = [scene(seed=s, n=12, big=False) for s in (3, 4)]
    img = np.stack([p[0] for p in planes])
    lab = np.stack([p[1] for p in planes]).astype(np.uint16)
    lab[1, :40] = 0
    expected = np.stack([refine(i, m, model=model, mode="instance", seed=2) for i, m in zip(img, lab)])
    img_d = da.from_array(img, chunks=(2, 50, 60, 3))  # leading axis chunked by 2: planes are split here
    got = refine_lazy(img_d, da.from_array(lab, chunks=(1, 64, 64)), model=model, seed=2).compute(scheduler="sync")
    assert got.shape == lab.shape and np.array_equal(got, expected)


def test_reads_only_around_objects(model, monkeypatch):
    """Memory follows objects, not the frame: no read covers the whole frame, and only the
    chunks that hold objects are composed from network results."""
    from napari_segrefiner.lazy import tasks as lazy_tasks

    img, lab = scene(n=10, big=False)
    areas = []
    original = lazy_tasks.Source.read

    def spy(self, regions):
        out = original(self, regions)
        areas.extend(
            a.shape[-2] * a.shape[-1] if a.ndim == 2 or self.name == "mask" else a.shape[0] * a.shape[1] for a in out
        )
        return out

    monkeypatch.setattr(lazy_tasks.Source, "read", spy)
    expected = refine(img, lab, model=model, mode="instance", seed=1)
    got = refine_lazy(img, lab, model=model, seed=1, chunks=32).compute(scheduler="sync")
    assert np.array_equal(got, expected)
    assert areas and max(areas) < lab.size / 2


def test_result_is_an_ordinary_dask_array(model, tmp_path):
    """Slices, arithmetic and da.store into zarr work on the result like on any dask array."""
    import dask.array as da
    import zarr

    img, lab = scene(n=12, big=False)
    expected = refine(img, lab, model=model, mode="instance", seed=1)
    result = refine_lazy(img, lab, model=model, seed=1, chunks=40)
    assert result.chunks == ((40, 40, 40, 30), (40, 40, 40, 40, 30))
    assert np.array_equal(result[10:100, 20:90].compute(scheduler="sync"), expected[10:100, 20:90])
    target = zarr.create_array(
        store=str(tmp_path / "out.zarr"), shape=result.shape, dtype=result.dtype, chunks=(40, 40)
    )
    da.store(result, target, lock=False, scheduler="sync")
    assert np.array_equal(target[:], expected)


def test_progress_counts_objects(model):
    img, lab = scene()
    seen = []
    out = refine_lazy(img, lab, model=model, seed=0, chunks=64, batch_size=4, progress=lambda d, n: seen.append((d, n)))
    out.compute(scheduler="sync")
    total = seen[-1][1]
    assert seen[-1][0] == total and total == sum(1 for v in np.unique(lab) if v and (lab == v).sum() >= 32)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) == -(-total // 4)


@pytest.mark.parametrize(
    "case, error",
    [
        ("shape", "does not match"),
        ("missing_label", "do not occur"),
        ("steps", "steps"),
    ],
)
def test_bad_input_is_refused_before_any_refinement(model, case, error):
    img, lab = scene(n=5, big=False)
    kwargs = {}
    if case == "shape":
        img = img[:-1]
    elif case == "missing_label":
        kwargs["labels"] = [1]
    elif case == "steps":
        kwargs["steps"] = 99
    with pytest.raises(ValueError, match=error):
        refine_lazy(img, lab, model=model, **kwargs)


def test_object_maps_are_compact_and_exact():
    from napari_segrefiner.engine.compose import ObjectMap

    v = np.random.default_rng(0).random((40, 30)).astype(np.float32)
    m = ObjectMap.from_values(5, (10, 50, 3, 33), v)
    dense = m.dense()
    fg = v >= 0.5
    assert np.array_equal(dense[fg], v[fg]) and np.array_equal(dense >= 0.5, fg)
    assert m.nbytes < v.nbytes


@pytest.mark.slow
def test_distributed_cluster_matches_threads_and_loads_the_model_once_per_worker(tiny_checkpoint):
    distributed = pytest.importorskip("distributed")
    from napari_segrefiner.lazy.cluster import local_cluster, model_loads

    img, lab = scene()
    opts = dict(seed=4, chunks=48, batch_size=4, keep_bias=0.2)
    expected = refine_lazy(img, lab, model=str(tiny_checkpoint), device="cpu", **opts).compute(scheduler="threads")
    assert (expected > 0).sum() > 0.8 * (lab > 0).sum()
    cluster, client = local_cluster(2)
    try:
        client.run(torch.set_num_threads, 1)
        seen = []
        out = refine_lazy(
            img,
            lab,
            model=str(tiny_checkpoint),
            device="cpu",
            client=client,
            progress=lambda d, n: seen.append(d),
            **opts,
        )
        got = client.compute(out).result()
        loads = client.run(model_loads)
        assert np.array_equal(got, expected)
        assert len(loads) == 2 and set(loads.values()) == {1}  # once per worker process
        deadline = distributed.metrics.time() + 10
        while (not seen or seen[-1] < 25) and distributed.metrics.time() < deadline:
            import time

            time.sleep(0.05)  # progress events travel through the scheduler
        assert seen and seen[-1] == sum(1 for v in np.unique(lab) if v and (lab == v).sum() >= 32)
    finally:
        client.close()
        cluster.close()


def test_an_empty_mask_comes_back_unchanged_with_a_warning(model):
    img, lab = scene(n=5, big=False)
    empty = np.zeros_like(lab)
    with pytest.warns(UserWarning, match="mask is empty"):
        out = refine_lazy(img, empty, model=model, chunks=64)
    got = out.compute(scheduler="sync")
    assert got.dtype == empty.dtype and got.shape == empty.shape and not got.any()


def _hints_for(lab: np.ndarray) -> np.ndarray:
    """Object hints on and next to objects, background hints inside others (a few strokes)."""
    hints = np.zeros(lab.shape, np.uint8)
    ids = [v for v in np.unique(lab) if v]
    for k, v in enumerate(ids[:6]):
        ys, xs = np.nonzero(lab == v)
        if k % 2:
            hints[ys[: len(ys) // 3], xs[: len(xs) // 3]] = 2  # "this part is background"
        else:
            y, x = int(ys.max()), int(xs[np.argmax(ys)])
            hints[min(y + 2, lab.shape[0] - 1), x] = 1  # "the object reaches here": just outside it
            hints[ys[0], xs[0]] = 1
    return hints


@pytest.mark.parametrize("chunks", [32, 64])
def test_lazy_hints_equal_in_memory_hints_bit_for_bit(model, chunks):
    img, lab = scene()
    hints = _hints_for(lab)
    assert (hints == 1).any() and (hints == 2).any()
    expected = refine(img, lab, model=model, mode="instance", seed=2, hints=hints)
    without = refine(img, lab, model=model, mode="instance", seed=2)
    assert not np.array_equal(expected, without)  # the hints really changed the result
    got = refine_lazy(img, lab, model=model, seed=2, hints=hints, chunks=chunks).compute(scheduler="sync")
    assert np.array_equal(got, expected)


def test_refine_and_refine_lazy_with_default_arguments_give_the_same_bits(model):
    """Only the model is given (a tiny one): the seed, mode, steps and options are both defaults."""
    img, lab = scene()
    expected = refine(img, lab, model=model)
    got = refine_lazy(img, lab, model=model).compute(scheduler="sync")
    assert (expected != lab).any() and np.array_equal(got, expected)


@pytest.mark.slow
def test_refine_and_refine_lazy_with_no_arguments_at_all_give_the_same_bits():
    """The README's promise with nothing but the arrays: the shipped model, seed 0, all steps."""
    from napari_segrefiner._napari._sample_data import make_sample_data

    (img, _, _), (lab, _, _) = make_sample_data()
    expected = refine(img, lab)
    got = refine_lazy(img, lab).compute(scheduler="sync")
    assert (expected != lab).sum() > 100 and np.array_equal(got, expected)
