"""Chunk-wise scans of big arrays for the lazy path: objects of a labels array, the 8-bit
scaling of an image.

* :func:`scan_block` finds, in one labels block, every label's tight bounds and pixel
  count per plane (:func:`~napari_segrefiner.io.masks.label_table`); :func:`merge_tables`
  merges the tables of all blocks, so an object cut by chunk borders comes out once, whole.
* :func:`image_stats` / :func:`plane_scaling` compute, without holding the image, the
  exact :func:`~napari_segrefiner.io.images.scaling_of` tuple of every plane: the 0.5 and
  99.5 percentiles that :func:`~napari_segrefiner.io.images.as_rgb_uint8` stretches
  non-8-bit images with, found by a two-pass radix selection over float32 keys and
  interpolated as ``numpy.percentile`` does.

Pure numpy; blocks come from dask (``Array.to_delayed``), but nothing here imports it.
"""

from __future__ import annotations

import numpy as np

from ..io.masks import ObjectTable, label_table

__all__ = [
    "default_scaling",
    "image_stats",
    "merge_stats",
    "merge_tables",
    "needed_bins",
    "plane_scaling",
    "scan_block",
]


def scan_block(block: np.ndarray, offset: tuple[int, ...]) -> dict[tuple[int, ...], ObjectTable]:
    """Objects per plane of an nD labels block (planes = the last two axes).

    ``offset`` is the block's first index along every axis; the result maps each plane's
    index along the leading axes to its table (planes without objects are left out).
    """
    lead = block.ndim - 2
    out = {}
    for idx in np.ndindex(*block.shape[:lead]):
        table = label_table(block[idx], (offset[lead], offset[lead + 1]))
        if len(table):
            out[tuple(int(o + i) for o, i in zip(offset[:lead], idx))] = table
    return out


def merge_tables(parts: list[dict[tuple[int, ...], ObjectTable]]) -> dict[tuple[int, ...], ObjectTable]:
    """Merge per-block tables: one entry per object of a plane, bounds and areas combined."""
    by_plane: dict[tuple[int, ...], list[ObjectTable]] = {}
    for part in parts:
        for pos, table in part.items():
            by_plane.setdefault(pos, []).append(table)
    out = {}
    for pos, tables in sorted(by_plane.items()):
        labels = np.concatenate([t.labels for t in tables])
        b = np.concatenate([t.bounds for t in tables])
        area = np.concatenate([t.area for t in tables])
        out[pos] = ObjectTable.grouped(labels, b[:, 0], b[:, 2], area, rows_hi=b[:, 1], cols_hi=b[:, 3])
    return out


# ------------------------------------------------------------------ image scaling ---
_HIGH = 1 << 16


def _keys(f: np.ndarray) -> np.ndarray:
    """float32 -> uint32 keys in the order of the values (-0.0 just before +0.0)."""
    u = np.ascontiguousarray(f, dtype=np.float32).view(np.uint32)
    return np.where(u & np.uint32(0x80000000), ~u, u | np.uint32(0x80000000))


def _from_keys(k: np.ndarray) -> np.ndarray:
    k = np.asarray(k, dtype=np.uint32)
    u = np.where(k & np.uint32(0x80000000), k ^ np.uint32(0x80000000), ~k)
    return u.view(np.float32)


def _channels(block: np.ndarray, rgb_axis: bool) -> tuple[np.ndarray, int]:
    """The values :func:`~.imaging.as_rgb_uint8` takes percentiles of, and their weight
    (a gray pixel counts three times: it is repeated into R, G and B)."""
    if not rgb_axis:
        return block, 3
    c = block.shape[-1]
    if c == 1:
        return block[..., 0], 3
    return block[..., :3], 1


def image_stats(
    block: np.ndarray, offset: tuple[int, ...], lead: int, rgb_axis: bool, bins: dict | None = None
) -> dict:
    """Pass 1 (``bins=None``) or 2 of the percentile search, per plane of an image block.

    Pass 1 gives per plane ``{"n", "min", "max", "finite", "high"}`` (a histogram of the
    keys' high 16 bits); pass 2, given ``bins`` (plane -> high-16 bins to resolve), a
    histogram of the low 16 bits of the keys in each of those bins.
    """
    out = {}
    for idx in np.ndindex(*block.shape[:lead]):
        pos = tuple(int(o + i) for o, i in zip(offset[:lead], idx))
        if bins is not None and pos not in bins:
            continue
        values, weight = _channels(block[idx], rgb_axis)
        f = values.astype(np.float32)
        if bins is None:
            finite = bool(np.isfinite(f).all())
            k = _keys(f).ravel()
            out[pos] = {
                "n": int(f.size) * weight,
                "finite": finite,
                "min": float(f.min()) if f.size else np.inf,
                "max": float(f.max()) if f.size else -np.inf,
                "high": np.bincount(k >> 16, minlength=_HIGH).astype(np.int64) * weight,
            }
        else:
            k = _keys(f).ravel()
            hi = k >> 16
            out[pos] = {
                int(b): np.bincount(k[hi == b] & 0xFFFF, minlength=_HIGH).astype(np.int64) * weight for b in bins[pos]
            }
    return out


def merge_stats(a: dict, b: dict) -> dict:
    """Combine two :func:`image_stats` results (of either pass)."""
    out = dict(a)
    for pos, s in b.items():
        if pos not in out:
            out[pos] = s
            continue
        t = out[pos]
        if "high" in s:
            out[pos] = {
                "n": t["n"] + s["n"],
                "finite": t["finite"] and s["finite"],
                "min": min(t["min"], s["min"]),
                "max": max(t["max"], s["max"]),
                "high": t["high"] + s["high"],
            }
        else:
            out[pos] = {k: t.get(k, 0) + s.get(k, 0) for k in set(t) | set(s)}
    return out


def _ranks(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy.percentile's (linear) neighbour ranks and weights for q = 0.5 and 99.5."""
    q = np.true_divide(np.asarray((0.5, 99.5)), 100)
    virtual = (n - 1) * q
    prev = np.floor(virtual)
    nxt = prev + 1
    above = virtual >= n - 1
    prev[above] = -1
    nxt[above] = -1
    below = virtual < 0
    prev[below] = 0
    nxt[below] = 0
    gamma = np.asanyarray(virtual - prev, dtype=virtual.dtype)
    prev, nxt = prev.astype(np.intp), nxt.astype(np.intp)
    prev[prev < 0] += n
    nxt[nxt < 0] += n
    return prev, nxt, gamma


def needed_bins(pass1: dict) -> dict:
    """Plane -> the high-16 bins holding the order statistics its percentiles need."""
    out = {}
    for pos, s in pass1.items():
        prev, nxt, _ = _ranks(s["n"])
        cum = np.cumsum(s["high"])
        out[pos] = sorted({int(np.searchsorted(cum, r, side="right")) for r in (*prev, *nxt)})
    return out


def plane_scaling(dtype: np.dtype, pass1: dict | None, pass2: dict | None, *, name: str = "image") -> dict:
    """Plane -> :func:`~.imaging.scaling_of` tuple, from the two passes of :func:`image_stats`.

    Raises
    ------
    ValueError
        If a float plane holds NaN or infinite values.
    """
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return {}
    out = {}
    for pos, s in (pass1 or {}).items():
        if dtype.kind == "f" and not s["finite"]:
            raise ValueError(f"{name} contains NaN or infinite values (plane {pos})")
        if dtype.kind == "f" and s["min"] >= 0.0 and s["max"] <= 1.0:
            out[pos] = ("unit",)
            continue
        prev, nxt, gamma = _ranks(s["n"])
        cum_high = np.cumsum(s["high"])
        a = np.asarray([_order_statistic(int(r), cum_high, pass2[pos]) for r in prev], dtype=np.float32)
        b = np.asarray([_order_statistic(int(r), cum_high, pass2[pos]) for r in nxt], dtype=np.float32)
        diff = b - a  # numpy.percentile's _lerp, operation for operation
        res = np.add(a, diff * gamma)
        np.subtract(b, diff * (1 - gamma), out=res, where=gamma >= 0.5, casting="unsafe", dtype=type(res.dtype))
        lo, hi = res
        if hi <= lo:
            hi = lo + 1.0
        out[pos] = ("stretch", lo, hi)
    return out


def _order_statistic(rank: int, cum_high: np.ndarray, low_hists: dict) -> np.float32:
    """The value of 0-based ``rank`` in sorted order, from the cumulative high-16 histogram
    and the low-16 histograms of the bins that hold the needed ranks."""
    b = int(np.searchsorted(cum_high, rank, side="right"))
    before = int(cum_high[b - 1]) if b else 0
    low = np.cumsum(low_hists[b])
    k = (b << 16) | int(np.searchsorted(low, rank - before, side="right"))
    return _from_keys(np.asarray([k]))[0]


def default_scaling(dtype: np.dtype) -> tuple | None:
    """The scaling of every plane when it does not depend on the pixels (uint8, bool)."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return ("copy",)
    if dtype.kind == "b":
        return ("bool",)
    return None
