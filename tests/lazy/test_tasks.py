"""The two tasks of the lazy path (napari_segrefiner.lazy.tasks) and the arrays they read."""

from __future__ import annotations

import dask.array as da
import numpy as np

from napari_segrefiner.engine.compose import ObjectMap
from napari_segrefiner.lazy.tasks import ChunkTask, Source, compose_chunk


def test_source_reads_regions_of_numpy_and_dask_arrays_alike():
    arr = np.arange(6 * 7).reshape(6, 7)
    regions = [(slice(1, 3), slice(2, 6)), (slice(4, 6), slice(0, 1))]
    for src in (Source(arr, "mask"), Source(da.from_array(arr, chunks=3), "mask")):
        got = src.read(regions)
        assert [g.tolist() for g in got] == [arr[r].tolist() for r in regions]


def test_a_chunk_without_refined_objects_is_the_mask_in_its_dtype():
    lab = np.zeros((1, 8, 8), np.uint16)
    lab[0, 2:4, 2:4] = 5
    task = ChunkTask(
        pos=(0,), region=(0, 4, 0, 8), window=(0, 4, 0, 8), refined=(), owners=(), clean=True, dtype="uint16"
    )
    out = compose_chunk(Source(lab, "mask"), [], task)
    assert out.shape == (1, 4, 8) and out.dtype == np.uint16 and np.array_equal(out[0], lab[0, :4])


def test_a_chunk_folds_the_objects_that_meet_it_and_forces_the_hints():
    lab = np.zeros((8, 8), np.int32)
    lab[2:6, 2:6] = 3
    grown = np.zeros((6, 6), np.float32)
    grown[1:5, 0:6] = 0.9  # object 3 grows sideways
    answer = ObjectMap.from_values(3, (1, 7, 1, 7), grown)
    hints = (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.int64))
    hints[0][3, 6] = 2  # "background here"
    task = ChunkTask(
        pos=(),
        region=(0, 8, 0, 8),
        window=(0, 8, 0, 8),
        refined=(3,),
        owners=(3,),
        clean=False,
        dtype="bool",
        hints=hints,
    )
    out = compose_chunk(Source(lab, "mask"), [[answer]], task)
    expected = np.zeros((8, 8), bool)
    expected[2:6, 1:7] = True
    expected[3, 6] = False
    assert out.dtype == bool and np.array_equal(out, expected)
