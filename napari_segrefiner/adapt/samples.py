"""What adaptation trains on: the pairs as tensors, their encoder features, coarse variants, batches.

The encoder is frozen, so every pair's crop is encoded once (:func:`encode_pairs`) and each
optimisation step runs the decoder only. Besides the coarse mask a pair started from,
:func:`coarse_variants` synthesises a few more from its final mask (near-perfect ones, so
that good masks are kept; CascadePSP-style and blocky low-resolution ones, so that bad
ones are fixed), with a seeded generator. :class:`Batches` draws training batches: a pair,
one of its coarse masks, a window cut at multiples of 32 px (so the cached feature maps
are cut at the same place at every stride) near a wrong coarse pixel, as
:mod:`~napari_segrefiner.training.train_cached` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..models.imaging import normalize
from ..training.synthesis import make_coarse
from .pairs import Pair

__all__ = ["VARIANT_KINDS", "Batches", "PairTensors", "coarse_variants", "encode_pairs", "keep_variant"]

#: Coarse kinds synthesised from each final mask (``make_coarse`` kinds), with how many of each.
VARIANT_KINDS = (("nearperfect", 2), ("cascadepsp", 2), ("lowres-jitter", 2))


class Cancelled(Exception):
    """The caller's cancel callable said stop."""


@dataclass(frozen=True)
class PairTensors:
    """Every pair at network resolution, and the encoder's features of its crop.

    Attributes
    ----------
    crops : Tensor (N, 3, S, S)
        RGB on 0-255 (float32), as the pipelines hand crops to the network.
    coarse, final : Tensor (N, 1, S, S)
        The masks in {0, 1}.
    features : tuple of Tensor
        ``network.encode(normalize(crops))``, leading axis N.
    """

    crops: torch.Tensor
    coarse: torch.Tensor
    final: torch.Tensor
    features: tuple[torch.Tensor, ...]

    def __len__(self) -> int:
        return int(self.final.shape[0])


def encode_pairs(
    network, pairs: Sequence[Pair], *, batch: int = 4, cancel: Callable[[], bool] | None = None
) -> PairTensors:
    """Stack the pairs and encode their crops once (``batch`` crops per encoder call).

    Raises :class:`Cancelled` when ``cancel()`` returns True (asked before every call).
    """
    crops = torch.stack([torch.from_numpy(np.array(p.image)).permute(2, 0, 1).float() for p in pairs])
    coarse = torch.stack([torch.from_numpy(p.coarse.astype(np.float32))[None] for p in pairs])
    final = torch.stack([torch.from_numpy(p.final.astype(np.float32))[None] for p in pairs])
    encode = getattr(network, "encode", None)
    parts: list[tuple[torch.Tensor, ...]] = []
    with torch.inference_mode():
        for lo in range(0, len(pairs), batch):
            if cancel is not None and cancel():
                raise Cancelled("adaptation cancelled")
            image = normalize(crops[lo : lo + batch])
            parts.append(tuple(encode(image)) if callable(encode) else (image,))
    features = tuple(torch.cat(group).clone() for group in zip(*parts))  # plain tensors, usable with autograd
    return PairTensors(crops, coarse, final, features)


def coarse_variants(
    final: np.ndarray, rng: np.random.Generator, kinds: Sequence[tuple[str, int]] = VARIANT_KINDS
) -> list[np.ndarray]:
    """Coarse masks synthesised from one final mask (empty or unchanged ones are dropped)."""
    out = []
    for kind, count in kinds:
        for _ in range(int(count)):
            m = make_coarse(final, rng=rng, kind=kind)
            if m.any() and not np.array_equal(m, final):
                out.append(m)
    return out


def keep_variant(final: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An already-good coarse mask of one final mask (near-perfect; the final mask itself if that vanishes)."""
    m = make_coarse(final, rng=rng, kind="nearperfect")
    return (m if m.any() else final).astype(np.float32)


def _window_origin(fine: torch.Tensor, coarse: torch.Tensor, size: int, gen: torch.Generator) -> tuple[int, int]:
    """Top-left corner (multiples of 32) of a ``size`` window, near a wrong coarse pixel when there is one."""
    full = fine.shape[-1]
    grid = (full - size) // 32
    wrong = (fine[0] != coarse[0]).nonzero()
    if len(wrong) and torch.rand((), generator=gen) < 0.9:
        cy, cx = wrong[int(torch.randint(len(wrong), (), generator=gen))].tolist()
        gy = min(max(round((cy - size / 2) / 32), 0), grid)
        gx = min(max(round((cx - size / 2) / 32), 0), grid)
    else:
        gy, gx = torch.randint(grid + 1, (2,), generator=gen).tolist()
    return gy * 32, gx * 32


class Batches:
    """Seeded training batches over some of the pairs.

    Parameters
    ----------
    data : PairTensors
    indices : sequence of int
        The training pairs.
    variants : sequence of Tensor (K_i, 1, S, S)
        Synthesised coarse masks per pair of ``data`` (K_i may be 0).
    seed : int
    own_share : float
        Chance that a sample uses the coarse mask its pair started from.
    windows : sequence of int
        Window sides (multiples of 32, at most S), drawn with ``window_probs``.
    pixels : int
        Pixels per batch: a batch holds ``max(1, pixels // side**2)`` windows.
    """

    def __init__(
        self,
        data: PairTensors,
        indices: Sequence[int],
        variants: Sequence[torch.Tensor],
        *,
        seed: int,
        own_share: float = 0.5,
        windows: Sequence[int] = (128, 256),
        window_probs: Sequence[float] = (0.75, 0.25),
        pixels: int = 4 * 128 * 128,
    ):
        self.data, self.indices, self.variants = data, list(indices), list(variants)
        self.own_share = float(own_share)
        full = data.final.shape[-1]
        self.windows = [min(int(w), full) for w in windows]
        self.probs = torch.tensor(window_probs, dtype=torch.float)
        self.pixels = int(pixels)
        self.gen = torch.Generator().manual_seed(int(seed))

    def next(self) -> dict:
        """One batch: ``image`` (normalised), ``fine``, ``coarse`` and ``features``, all windowed."""
        gen, d = self.gen, self.data
        size = self.windows[int(torch.multinomial(self.probs, 1, generator=gen))]
        count = max(1, self.pixels // (size * size))
        out = {"image": [], "fine": [], "coarse": [], "features": [[] for _ in d.features]}
        full = d.final.shape[-1]
        for _ in range(count):
            i = self.indices[int(torch.randint(len(self.indices), (), generator=gen))]
            extra = self.variants[i]
            coarse = d.coarse[i]
            if len(extra) and torch.rand((), generator=gen) >= self.own_share:
                coarse = extra[int(torch.randint(len(extra), (), generator=gen))]
            y0, x0 = _window_origin(d.final[i], coarse, size, gen) if size < full else (0, 0)
            out["image"].append(d.crops[i, :, y0 : y0 + size, x0 : x0 + size])
            out["fine"].append(d.final[i, :, y0 : y0 + size, x0 : x0 + size])
            out["coarse"].append(coarse[:, y0 : y0 + size, x0 : x0 + size])
            for store, f in zip(out["features"], d.features):
                s = full // f.shape[-1]
                store.append(f[i, :, y0 // s : (y0 + size) // s, x0 // s : (x0 + size) // s])
        return {
            "image": normalize(torch.stack(out["image"])),
            "fine": torch.stack(out["fine"]),
            "coarse": torch.stack(out["coarse"]),
            "features": tuple(torch.stack(f) for f in out["features"]),
        }
