"""A store of training pairs (one per accepted object), saved as a small training folder.

Folder layout (the layout of the training folders, plus the starting masks)::

    folder/images/<key>.png   the object's crop (RGB, S x S)
    folder/masks/<key>.png    the final mask, 0/255
    folder/coarse/<key>.png   the coarse mask it started from, 0/255
    folder/train.txt          the keys, one per line
    folder/pairs.json         crop options and where each pair came from

so :class:`~napari_segrefiner.training.folders.PairFolder` reads it as a binary set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write
from ..io.files import read_image, read_mask, write_mask
from ..models.config import RefineConfig
from .pairs import CROP_OPTIONS, Pair, default_crop_config, make_pair

__all__ = ["PAIRS_FORMAT", "PairStore"]

PAIRS_FORMAT = "napari-segrefiner-pairs"


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    def write(tmp: Path) -> None:
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
        if not ok:  # pragma: no cover - OpenCV refuses only impossible layouts
            raise ValueError(f"cannot encode {path.name} as PNG")
        buf.tofile(str(tmp))

    atomic_write(path, write)


class PairStore:
    """Training pairs of one result (keep one per result layer), keyed by name.

    Parameters
    ----------
    config : RefineConfig, optional
        The crop options of the model that refined the objects (``refiner.config``);
        default those of the shipped model. Every pair of a store has the same crop side.

    Notes
    -----
    Adding a pair under an existing key replaces it (an object accepted again after an
    edit teaches its latest answer). Arrays passed in are never modified; pairs are
    read-only.
    """

    def __init__(self, config: RefineConfig | None = None):
        cfg = default_crop_config() if config is None else config
        if not isinstance(cfg, RefineConfig):
            raise TypeError(f"config must be a RefineConfig, got {type(cfg).__name__}")
        self.config = cfg
        self._pairs: dict[str, Pair] = {}

    # -- reading
    def __len__(self) -> int:
        return len(self._pairs)

    def __iter__(self) -> Iterator[Pair]:
        return iter(list(self._pairs.values()))

    def __contains__(self, key: object) -> bool:
        return key in self._pairs

    def __getitem__(self, key: str) -> Pair:
        return self._pairs[key]

    def __repr__(self) -> str:
        return f"PairStore({len(self)} pairs, size={self.config.size})"

    @property
    def keys(self) -> tuple[str, ...]:
        """The pairs' keys, in the order they were first added."""
        return tuple(self._pairs)

    @property
    def pairs(self) -> tuple[Pair, ...]:
        """The pairs, in the order they were first added."""
        return tuple(self._pairs.values())

    # -- changing
    def add(
        self, image: Any, coarse: Any, final: Any, label: int, *, key: str | None = None, source: str | None = None
    ) -> Pair:
        """Add (or replace) the pair of one accepted object; see :func:`~.pairs.make_pair`.

        Returns
        -------
        Pair
            The pair stored.
        """
        return self.add_pair(make_pair(image, coarse, final, label, config=self.config, key=key, source=source))

    def add_pair(self, pair: Pair) -> Pair:
        """Add (or replace) a ready :class:`~.pairs.Pair` (its side must be the store's ``size``)."""
        if not isinstance(pair, Pair):
            raise TypeError(f"pair must be a Pair, got {type(pair).__name__}")
        if pair.size != self.config.size:
            raise ValueError(f"pair {pair.key!r} has side {pair.size}, this store holds {self.config.size}-px crops")
        self._pairs[pair.key] = pair
        return pair

    def remove(self, key: str) -> None:
        """Forget one pair (KeyError if absent)."""
        del self._pairs[key]

    def clear(self) -> None:
        """Forget every pair."""
        self._pairs.clear()

    # -- files
    def save(self, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the pairs as a training folder (see the module docstring); returns it.

        Raises
        ------
        ValueError
            If the store is empty.
        FileExistsError
            If ``folder`` holds files already and ``overwrite`` is False.
        """
        if not self._pairs:
            raise ValueError("the pair store is empty: nothing to save")
        root = Path(folder)
        if root.exists() and not root.is_dir():
            raise FileExistsError(f"folder {root} is a file")
        if root.is_dir() and any(root.iterdir()) and not overwrite:
            raise FileExistsError(f"folder {root} is not empty; pass overwrite=True to write the pairs into it")
        for sub in ("images", "masks", "coarse"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for key, pair in self._pairs.items():
            _write_png(root / "images" / f"{key}.png", pair.image)
            write_mask(root / "masks" / f"{key}.png", pair.final)
            write_mask(root / "coarse" / f"{key}.png", pair.coarse)
        header = {
            "format": PAIRS_FORMAT,
            "version": 1,
            "crop": {k: getattr(self.config, k) for k in CROP_OPTIONS},
            "pairs": {k: dict(p.info) for k, p in self._pairs.items()},
        }
        atomic_write(root / "pairs.json", lambda tmp: Path(tmp).write_text(json.dumps(header, indent=1) + "\n"))
        atomic_write(root / "train.txt", lambda tmp: Path(tmp).write_text("".join(f"{k}\n" for k in self._pairs)))
        return root

    @classmethod
    def load(cls, folder: str | os.PathLike, *, config: RefineConfig | None = None) -> PairStore:
        """Read a folder written by :meth:`save` (or laid out the same way), validated.

        Parameters
        ----------
        folder : path-like
            The folder (``images/``, ``masks/``, ``coarse/``; ``train.txt`` lists the keys,
            else every stem of ``masks/``).
        config : RefineConfig, optional
            Crop options of the store (default: those in ``pairs.json``, else the shipped
            model's).

        Raises
        ------
        FileNotFoundError
            For a missing folder, key list entry or file.
        ValueError
            For a pair whose files are not (S, S) of one side, masks that are not binary or
            are empty, or sides that differ between pairs (the message names the file).
        """
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"pair folder not found: {root}")
        header: dict = {}
        if (root / "pairs.json").is_file():
            try:
                header = json.loads((root / "pairs.json").read_text())
            except ValueError as exc:
                raise ValueError(f"{root / 'pairs.json'} is not valid JSON: {exc}") from None
            if not isinstance(header, dict) or header.get("format") != PAIRS_FORMAT:
                raise ValueError(f"{root / 'pairs.json'} is not a {PAIRS_FORMAT} header")
        keys = _keys(root)
        if config is None:
            base = default_crop_config()
            crop = header.get("crop") or {}
            config = base.replace(**{k: v for k, v in crop.items() if k in CROP_OPTIONS}) if crop else base
        store = cls(config)
        info = header.get("pairs") or {}
        for key in keys:
            image = _read_rgb(root / "images", key)
            final = _read_binary(root / "masks", key)
            coarse = _read_binary(root / "coarse", key)
            if not (image.shape[:2] == final.shape == coarse.shape):
                raise ValueError(
                    f"pair {key!r} in {root}: image {image.shape[:2]}, final {final.shape} and coarse "
                    f"{coarse.shape} differ in shape"
                )
            store.add_pair(Pair(key, image, coarse, final, info.get(key) or {}))
        return store


def _keys(root: Path) -> list[str]:
    listing = root / "train.txt"
    if listing.is_file():
        keys = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
    else:
        keys = sorted(p.stem for p in (root / "masks").glob("*.png")) if (root / "masks").is_dir() else []
    if not keys:
        raise ValueError(f"{root} holds no pairs (no train.txt entries and no masks/*.png)")
    return keys


def _find(folder: Path, key: str) -> Path:
    path = folder / f"{key}.png"
    if not path.is_file():
        raise FileNotFoundError(f"pair {key!r}: {path} is missing")
    return path


def _read_rgb(folder: Path, key: str) -> np.ndarray:
    from ..io.images import as_rgb_uint8

    path = _find(folder, key)
    return as_rgb_uint8(read_image(path), name=str(path))


def _read_binary(folder: Path, key: str) -> np.ndarray:
    path = _find(folder, key)
    mask = read_mask(path)
    if mask.dtype != bool and not mask.any():
        mask = mask != 0  # all background: the pair's check names it empty
    if mask.dtype != bool:
        raise ValueError(f"{path} is not a binary mask (values {np.unique(mask)[:5].tolist()}...): expected 0/255")
    return mask
