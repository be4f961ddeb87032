"""Writing a lazy result into a zarr store, block by block: shared by the CLI's zarr mode and the plugin.

* :func:`block_regions` walks the blocks of a dask array with the region each one covers;
* :func:`pyramid_factors` gives the downsampling factors of a result's levels (1 first),
  so that a viewer reads only what it shows of a big plane;
* :func:`write_levels` writes one block into every level (nearest-neighbour subsampling:
  labels stay labels), :func:`write_block` into the zarr array at a path (what a dask
  worker of another process can open).

Regions are one ``(start, stop)`` per axis. zarr writes every chunk file atomically.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["block_regions", "pyramid_factors", "write_block", "write_levels"]

Region = tuple[tuple[int, int], ...]


def block_regions(arr) -> Iterator[tuple[tuple[int, ...], Region, object]]:
    """``(block index, region, delayed block)`` for every block of the dask array ``arr``."""
    starts = [np.concatenate([[0], np.cumsum(c)]) for c in arr.chunks]
    blocks = arr.to_delayed()
    for idx in np.ndindex(*blocks.shape):
        region = tuple((int(starts[d][i]), int(starts[d][i + 1])) for d, i in enumerate(idx))
        yield tuple(int(i) for i in idx), region, blocks[idx]


def pyramid_factors(shape: Sequence[int], pyramid: bool | None, *, side: int, smallest: int) -> list[int]:
    """Downsampling factors of a result's levels, 1 first.

    ``pyramid`` None: levels only when a plane side exceeds ``side``; True: always; False:
    never. Factors double until the largest plane side is at most ``smallest``.
    """
    top = max(int(n) for n in shape[-2:])
    if pyramid is False or (pyramid is None and top <= side):
        return [1]
    factors = [1]
    while top // factors[-1] > smallest:
        factors.append(factors[-1] * 2)
    return factors


def write_levels(block: np.ndarray, arrays: Sequence, factors: Sequence[int], region: Region) -> int:
    """Write ``block`` (at ``region`` of level 0) into every level ``arrays[k]`` (factor ``factors[k]``).

    Level ``k`` holds every ``factors[k]``-th pixel of the planes (the last two axes).
    Returns 1 (a count for progress).
    """
    block = np.asarray(block).reshape(tuple(b - a for a, b in region))
    arrays[0][tuple(slice(a, b) for a, b in region)] = block
    lead = tuple(slice(a, b) for a, b in region[:-2])
    (y0, _), (x0, _) = region[-2:]
    for arr, f in zip(arrays[1:], factors[1:]):
        ys, xs = -(-y0 // f), -(-x0 // f)  # the first level pixels inside the block
        sub = block[..., ys * f - y0 :: f, xs * f - x0 :: f]
        if sub.size:
            arr[lead + (slice(ys, ys + sub.shape[-2]), slice(xs, xs + sub.shape[-1]))] = sub
    return 1


def write_block(block: np.ndarray, path: str, region: Region) -> int:
    """Write ``block`` at ``region`` of the zarr array stored at ``path`` (opened here: picklable)."""
    import zarr

    return write_levels(block, [zarr.open_array(path, mode="r+")], [1], region)
