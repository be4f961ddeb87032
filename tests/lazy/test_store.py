"""Writing a lazy result block by block (napari_segrefiner.lazy.store): regions, pyramid levels."""

from __future__ import annotations

import dask.array as da
import numpy as np

from napari_segrefiner.lazy.store import block_regions, pyramid_factors, write_block, write_levels


def test_block_regions_cover_the_array_once():
    arr = da.from_array(np.arange(7 * 10).reshape(7, 10), chunks=(3, 4))
    seen = np.zeros((7, 10), int)
    indices = []
    for idx, ((y0, y1), (x0, x1)), block in block_regions(arr):
        assert np.array_equal(block.compute(), arr[y0:y1, x0:x1].compute())
        seen[y0:y1, x0:x1] += 1
        indices.append(idx)
    assert (seen == 1).all() and indices[-1] == (2, 2) and len(indices) == 9


def test_pyramid_factors_halve_until_the_smallest_side():
    assert pyramid_factors((100, 5000), None, side=4096, smallest=1024) == [1, 2, 4, 8]
    assert pyramid_factors((100, 4000), None, side=4096, smallest=1024) == [1]
    assert pyramid_factors((3, 100, 300), True, side=4096, smallest=64) == [1, 2, 4, 8]  # 300 / 8 = 37 <= 64
    assert pyramid_factors((9000, 9000), False, side=4096, smallest=64) == [1]


def test_every_level_gets_every_factor_th_pixel_whatever_the_blocks():
    full = np.arange(12 * 14, dtype=np.int32).reshape(12, 14)
    levels = [np.zeros((12, 14), np.int32), np.zeros((6, 7), np.int32), np.zeros((3, 4), np.int32)]
    arr = da.from_array(full, chunks=(5, 3))
    for _, region, block in block_regions(arr):
        assert write_levels(block.compute(), levels, [1, 2, 4], region) == 1
    assert np.array_equal(levels[0], full)
    assert np.array_equal(levels[1], full[::2, ::2]) and np.array_equal(levels[2], full[::4, ::4])


def test_write_block_opens_the_store_by_path(tmp_path):
    import zarr

    zarr.create_array(store=str(tmp_path / "o.zarr"), shape=(4, 6), dtype=np.uint8, chunks=(2, 3), fill_value=0)
    write_block(np.full((2, 3), 7, np.uint8), str(tmp_path / "o.zarr"), ((2, 4), (3, 6)))
    out = zarr.open_array(str(tmp_path / "o.zarr"))[:]
    assert out[2:, 3:].tolist() == [[7] * 3] * 2 and out.sum() == 7 * 6
