"""Encoder features computed once per training crop, kept on disk for decoder training.

The encoder of an encoder-decoder refiner is frozen, so the features of a training crop
do not change during training: :func:`build_cache` draws crops from the usual recipes
(object crops and native patches, with their flip and colour jitter, ``count`` coarse
masks per crop), runs the encoder once per crop and writes everything to memory-mapped
``.npy`` files. :class:`CachedCrops` then serves (image, fine, coarse, features) items
without running the encoder again; each item picks one of its crop's coarse masks.

The build is resumable: ``progress.json`` records how many crops are complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..models.imaging import normalize

__all__ = ["CachedCrops", "build_cache", "encode_cache"]


def _open(path: Path, shape: tuple, dtype) -> np.memmap:
    """A writable memory-mapped ``.npy`` (created, or reopened to continue)."""
    if not path.exists():
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    return np.load(path, mmap_mode="r+")


def build_cache(
    out: str | Path,
    recipes: list,
    weights: list[float],
    *,
    items: int,
    count: int = 4,
    seed: int = 0,
    progress=None,
) -> Path:
    """Write ``items`` training crops and ``count`` coarse masks of each to ``out``.

    Parameters
    ----------
    out : path
        Folder (created); a partial cache of the same settings is continued.
    recipes : list of Dataset
        Item sources with ``item_with_coarse(index, count)`` (``ObjectCrops``,
        ``NativePatches``), all of the same ``size``.
    weights : list of float
        Share of crops drawn from each recipe.
    items, count, seed : int
        Crops, coarse masks per crop, seed of the recipe choice.
    progress : callable, optional
        ``progress(done, items)`` every 64 crops.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    size = recipes[0].size
    settings = {"items": items, "count": count, "seed": seed, "size": size, "weights": list(weights)}
    state = _state(out / "progress.json", settings)
    images = _open(out / "images.npy", (items, 3, size, size), np.uint8)
    fine = _open(out / "fine.npy", (items, size * size // 8), np.uint8)
    coarse = _open(out / "coarse.npy", (items, count, size * size // 8), np.uint8)
    w = np.asarray(weights, dtype=float) / float(np.sum(weights))
    choices = np.random.default_rng(seed).choice(len(recipes), size=items, p=w)
    done = int(state["done"])
    while done < items:
        stop = min(done + 64, items)
        for i in range(done, stop):
            item = recipes[choices[i]].item_with_coarse(i, count)
            images[i] = item["image"].numpy()
            fine[i] = np.packbits(item["fine"].numpy().ravel() > 0.5)
            coarse[i] = np.packbits(item["coarse"].numpy().reshape(count, -1) > 0.5, axis=1)
        done = _commit(out / "progress.json", state, stop, (images, fine, coarse))
        if progress is not None:
            progress(done, items)
    return out


def encode_cache(crops: str | Path, network, out: str | Path, *, batch: int = 16, progress=None) -> Path:
    """Run ``network.encode`` once on every crop of ``crops``; features (float16) go to ``out``."""
    crops, out = Path(crops), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cstate = json.loads((crops / "progress.json").read_text())
    items, size = cstate["done"], cstate["settings"]["size"]
    settings = {
        "crops": str(crops.resolve()),
        "items": items,
        "encoder": network.config.encoder,
        "taps": list(network.config.encoder_taps),
    }
    state = _state(out / "progress.json", settings)
    images = np.load(crops / "images.npy", mmap_mode="r")
    network.eval()
    with torch.inference_mode():
        probe = network.encode(normalize(torch.zeros(1, 3, size, size)))
    feats = [_open(out / f"features{k}.npy", (items, *f.shape[1:]), np.float16) for k, f in enumerate(probe)]
    done = int(state["done"])
    while done < items:
        stop = min(done + batch, items)
        with torch.inference_mode():
            f = network.encode(normalize(torch.from_numpy(np.array(images[done:stop])).float()))
        for store, tensor in zip(feats, f):
            store[done:stop] = tensor.numpy().astype(np.float16)
        done = _commit(out / "progress.json", state, stop, feats)
        if progress is not None:
            progress(done, items)
    return out


def _state(path: Path, settings: dict) -> dict:
    state = json.loads(path.read_text()) if path.exists() else {"settings": settings, "done": 0}
    if state["settings"] != settings:
        raise ValueError(f"{path.parent} holds a cache of other settings: {state['settings']}")
    return state


def _commit(path: Path, state: dict, done: int, arrays) -> int:
    for arr in arrays:
        arr.flush()
    state["done"] = done
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)
    return done


class _Store:
    """One crop cache and (optionally) its features, memory-mapped."""

    def __init__(self, folder: Path, features: Path | None):
        state = json.loads((folder / "progress.json").read_text())
        self.size = int(state["settings"]["size"])
        self.count = int(state["settings"]["count"])
        self.n = int(state["done"])
        self.images = np.load(folder / "images.npy", mmap_mode="r")
        self.fine = np.load(folder / "fine.npy", mmap_mode="r")
        self.coarse = np.load(folder / "coarse.npy", mmap_mode="r")
        self.features = []
        if features is not None:
            fstate = json.loads((features / "progress.json").read_text())
            self.n = min(self.n, int(fstate["done"]))
            self.features = [np.load(p, mmap_mode="r") for p in sorted(features.glob("features*.npy"))]


class CachedCrops(Dataset):
    """Items of crop caches (:func:`build_cache`) and their features (:func:`encode_cache`).

    Item ``i`` draws a crop (uniformly over all caches) and one of its coarse masks from
    ``default_rng([seed, i])``. Returns ``image`` uint8 (3, S, S), ``fine`` and ``coarse``
    float32 (1, S, S) and ``features`` (a tuple of float32 maps; empty without features).

    Parameters
    ----------
    folder : path or sequence of paths
        Crop cache folder(s).
    features : path or sequence of paths, optional
        The matching features folder(s), one per crop cache.
    """

    def __init__(self, folder, features=None, *, seed: int = 0, length: int | None = None):
        folders = [Path(folder)] if isinstance(folder, (str, Path)) else [Path(f) for f in folder]
        if features is None:
            feats = [None] * len(folders)
        else:
            feats = [Path(features)] if isinstance(features, (str, Path)) else [Path(f) for f in features]
        if len(feats) != len(folders):
            raise ValueError(f"got {len(feats)} features folders for {len(folders)} crop caches")
        self.stores = [_Store(f, g) for f, g in zip(folders, feats)]
        if len({(s.size, s.count) for s in self.stores}) != 1:
            raise ValueError("the crop caches differ in crop size or coarse masks per crop")
        self.size, self.count = self.stores[0].size, self.stores[0].count
        self.offsets = np.cumsum([0] + [s.n for s in self.stores])
        self.n = int(self.offsets[-1])
        if self.n == 0:
            raise ValueError(f"{folders} hold no finished crops")
        self.seed = int(seed)
        self.length = self.n if length is None else int(length)

    def __len__(self) -> int:
        return self.length

    def _bits(self, packed: np.ndarray) -> torch.Tensor:
        s = self.size
        return torch.from_numpy(np.unpackbits(packed)[: s * s].reshape(1, s, s).astype(np.float32))

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, int(index)])
        j = int(rng.integers(self.n))
        k = int(rng.integers(self.count))
        store = self.stores[int(np.searchsorted(self.offsets, j, side="right")) - 1]
        j -= int(self.offsets[self.stores.index(store)])
        return {
            "image": torch.from_numpy(np.array(store.images[j])),
            "fine": self._bits(store.fine[j]),
            "coarse": self._bits(store.coarse[j, k]),
            "features": tuple(torch.from_numpy(np.array(f[j], dtype=np.float32)) for f in store.features),
        }
