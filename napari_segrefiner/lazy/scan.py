"""Chunk-wise scans of big arrays for the lazy path: objects of a labels array, the 8-bit
scaling of an image.

* :func:`scan_block` finds, in one labels block, every label's tight bounds and pixel
  count per plane; :func:`merge_tables` merges the tables of all blocks, so an object cut
  by chunk borders comes out once, whole.
* :func:`image_stats` / :func:`plane_scaling` compute, without holding the image, the
  exact :func:`~napari_segrefiner.io.images.scaling_of` tuple of every plane: the 0.5 and
  99.5 percentiles that :func:`~napari_segrefiner.io.images.as_rgb_uint8` stretches
  non-8-bit images with, found by a two-pass radix selection over float32 keys and
  interpolated as ``numpy.percentile`` does.

Pure numpy; blocks come from dask (``Array.to_delayed``), but nothing here imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ObjectTable", "image_stats", "merge_stats", "merge_tables", "plane_scaling", "scan_block"]

_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class ObjectTable:
    """Objects of one plane: label, tight bounds ``[y0, y1) x [x0, x1)`` and pixel count.

    All arrays have one entry per object, sorted by label.
    """

    labels: np.ndarray  # int64
    bounds: np.ndarray  # int64 (N, 4): y0, y1, x0, x1
    area: np.ndarray  # int64

    @classmethod
    def empty(cls) -> ObjectTable:
        return cls(np.zeros(0, np.int64), np.zeros((0, 4), np.int64), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.labels)


def as_labels(block: np.ndarray, *, name: str = "labels") -> np.ndarray:
    """A labels block as int64, validated as :func:`~.imaging.check_mask` validates a mask.

    Raises
    ------
    TypeError
        For a dtype other than bool, integer or float.
    ValueError
        For negative labels, labels above 2**63-1, or floats other than 0 and 1.
    """
    arr = np.asarray(block)
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.isin(arr, (0.0, 1.0)).all():
            raise ValueError(f"{name} is a float array with values other than 0 and 1; pass bool or integer labels")
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be a bool or integer array, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
        raise ValueError(f"{name} holds labels above 2**63-1, which are not supported; renumber them")
    out = arr.astype(np.int64)
    if out.size and out.min() < 0:
        raise ValueError(f"{name} has negative values; labels must be >= 0")
    return out


def _table(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, counts: np.ndarray | None = None,
           rows_hi: np.ndarray | None = None, cols_hi: np.ndarray | None = None) -> ObjectTable:
    """Group (label, row, col[, count]) records by label: min/max bounds and summed counts."""
    if values.size == 0:
        return ObjectTable.empty()
    order = np.argsort(values, kind="stable")
    v = values[order]
    starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
    r, c = rows[order], cols[order]
    rh = r if rows_hi is None else rows_hi[order]
    ch = c if cols_hi is None else cols_hi[order]
    bounds = np.stack([np.minimum.reduceat(r, starts), np.maximum.reduceat(rh, starts),
                       np.minimum.reduceat(c, starts), np.maximum.reduceat(ch, starts)], axis=1)
    area = np.add.reduceat(np.ones_like(v) if counts is None else counts[order], starts)
    return ObjectTable(v[starts].astype(np.int64), bounds.astype(np.int64), area.astype(np.int64))


def scan_plane(block: np.ndarray, origin: tuple[int, int]) -> ObjectTable:
    """Objects of a 2-D labels block whose top-left pixel is ``origin`` in the plane."""
    lab = as_labels(block)
    w = lab.shape[1]
    flat = lab.ravel()
    nz = np.flatnonzero(flat)
    rows, cols = np.divmod(nz, w)
    table = _table(flat[nz], rows, cols)
    if len(table):
        b = table.bounds
        b[:, 0] += origin[0]
        b[:, 1] += origin[0] + 1
        b[:, 2] += origin[1]
        b[:, 3] += origin[1] + 1
    return table


def scan_block(block: np.ndarray, offset: tuple[int, ...]) -> dict[tuple[int, ...], ObjectTable]:
    """Objects per plane of an nD labels block (planes = the last two axes).

    ``offset`` is the block's first index along every axis; the result maps each plane's
    index along the leading axes to its table (planes without objects are left out).
    """
    lead = block.ndim - 2
    out = {}
    for idx in np.ndindex(*block.shape[:lead]):
        table = scan_plane(block[idx], (offset[lead], offset[lead + 1]))
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
        out[pos] = _table(labels, b[:, 0], b[:, 2], area, rows_hi=b[:, 1], cols_hi=b[:, 3])
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


def image_stats(block: np.ndarray, offset: tuple[int, ...], lead: int, rgb_axis: bool,
                bins: dict | None = None) -> dict:
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
            out[pos] = {"n": int(f.size) * weight, "finite": finite,
                        "min": float(f.min()) if f.size else np.inf, "max": float(f.max()) if f.size else -np.inf,
                        "high": np.bincount(k >> 16, minlength=_HIGH).astype(np.int64) * weight}
        else:
            k = _keys(f).ravel()
            hi = k >> 16
            out[pos] = {int(b): np.bincount(k[hi == b] & 0xFFFF, minlength=_HIGH).astype(np.int64) * weight
                        for b in bins[pos]}
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
            out[pos] = {"n": t["n"] + s["n"], "finite": t["finite"] and s["finite"], "min": min(t["min"], s["min"]),
                        "max": max(t["max"], s["max"]), "high": t["high"] + s["high"]}
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
    if dtype == bool:
        return ("bool",)
    return None
