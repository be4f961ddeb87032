"""segrefiner-lite v3: build the crop cache, encode it, train a decoder on it.

    python benchmarks/train_v3.py cache  --data ../shared/data --out runs/cache
    python benchmarks/train_v3.py encode --cache runs/cache --encoder efficientnet-lite0
    python benchmarks/train_v3.py train  --cache runs/cache --encoder efficientnet-lite0 --out runs/effnet.pt \\
        --iters 5000 --max-cpu-hours 0.75
    python benchmarks/train_v3.py export --init runs/effnet.pt --keep-bias 1.0 \\
        --out napari_segrefiner/weights/segrefiner-lite.pt

The crops are the campaign recipe of v2 (75% object crops, 25% native patches, folder
weights davis 1, ccp 1, humanseg 0.5, dsb2018 1, isbi2012 0.75; ``campaign`` coarse
masks: CascadePSP, filled, near-perfect, low-res + jitter), four coarse masks per crop.
Every stage is resumable (rerun the same command).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from napari_segrefiner.training.data import NativePatches, ObjectCrops
from napari_segrefiner.training.feature_cache import build_cache, encode_cache
from napari_segrefiner.training.train_cached import CachedTrainConfig, new_encdec, train_cached

SETS = ("davis", "ccp", "humanseg", "dsb2018", "isbi2012")
WEIGHTS = (1.0, 1.0, 0.5, 1.0, 0.75)
TAPS = {"efficientnet-lite0": (4, 8, 16, 32), "dinov2-vits14": (5, 11)}
SHORT = {"efficientnet-lite0": "effnet", "dinov2-vits14": "dino"}


_T0 = time.time()


def _say(done: int, total: int) -> None:
    print(f"{done}/{total} {time.time() - _T0:.0f}s", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("stage", choices=("cache", "encode", "train", "export"))
    p.add_argument("--data", default=os.environ.get("SEGREFINER_DATA", "../shared/data"))
    p.add_argument("--cache", default="runs/cache", help="cache folder (train: several, comma-separated)")
    p.add_argument("--out", default=None)
    p.add_argument("--encoder", default="efficientnet-lite0", choices=sorted(TAPS))
    p.add_argument("--items", type=int, default=4000)
    p.add_argument("--iters", type=int, default=5000)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--max-cpu-hours", type=float, default=None)
    p.add_argument("--init", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--keep-bias", type=float, default=None, help="export: the calibrated keep decision")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    cache = Path(a.cache.split(",")[0])
    if a.stage == "cache":
        folders = [str(Path(a.data) / s) for s in SETS]
        common = dict(size=256, coarse_kind="campaign", epoch_length=10**7, folder_weights=list(WEIGHTS))
        crops = ObjectCrops(folders, rng_seed=a.seed, **common)
        patches = NativePatches(folders, rng_seed=a.seed + 1, **common)
        build_cache(cache / "crops", [crops, patches], [0.75, 0.25], items=a.items, count=4, seed=a.seed, progress=_say)
    elif a.stage == "export":
        return _export(a)
    elif a.stage == "encode":
        net = new_encdec(a.encoder, TAPS[a.encoder])
        encode_cache(cache / "crops", net, cache / f"feat-{SHORT[a.encoder]}", progress=_say)
    else:
        caches = [Path(c) for c in a.cache.split(",")]
        cfg = CachedTrainConfig(
            crops=tuple(str(c / "crops") for c in caches),
            features=tuple(str(c / f"feat-{SHORT[a.encoder]}") for c in caches),
            out=a.out or f"runs/{SHORT[a.encoder]}.pt",
            encoder=a.encoder,
            taps=TAPS[a.encoder],
            iters=a.iters,
            lr=a.lr,
            max_cpu_hours=a.max_cpu_hours,
            init=a.init,
            seed=a.seed,
            warmup=a.warmup,
            val_data=tuple(str(Path(a.data) / s) for s in ("davis", "ccp", "dsb2018", "isbi2012")),
            defaults={
                "pad": 20,
                "min_area": 32,
                "context": 3.0,
                "context_cap": 128,
                "paste_changes_only": True,
                "auto_hr_side": 0,
            },
        )
        train_cached(cfg, progress=lambda step, rec: print(rec, flush=True))
    return 0


def _export(a) -> int:
    """The shipped file: float16 weights, the calibrated keep bias, provenance in the metadata."""
    from napari_segrefiner.models.checkpoint import load_checkpoint, save_checkpoint
    from napari_segrefiner.models.nets import build_network
    from napari_segrefiner.models.registry import sha256sum

    config, state, refine, meta = load_checkpoint(a.init)
    net = build_network(config)
    net.load_state_dict({k: v.float() for k, v in state.items()})
    if a.keep_bias is not None:
        refine = refine.replace(keep_bias=a.keep_bias)
    meta = {"name": "segrefiner-lite", "version": 3, "card": "napari_segrefiner/weights/MODEL_CARD.md", **meta}
    out = Path(a.out)
    save_checkpoint(out, net, refine=refine, meta=meta, half=True)
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB, sha256 {sha256sum(out)}, {refine}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
