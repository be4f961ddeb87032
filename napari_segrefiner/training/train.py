"""Training loop for SegRefiner denoisers (ours or the official network), CPU or CUDA.

Recipe: t ~ U{0..T-1} per sample, m_t = the GT/coarse mixture of the forward process,
loss = BCE + 5 x texture L1 (official), AdamW with linear warm-up, cosine decay and gradient
clipping (the official 4e-4 without them collapses to all-background with small batches,
official issues #4 and #21). Checkpoints hold weights + config + optimizer state + step, so a
run can resume; the best checkpoint by validation IoU is kept separately.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..diffusion.sampling import denoise
from ..diffusion.scheduler import Schedule, add_noise, timesteps
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..models.config import LiteConfig, RefineConfig
from ..models.imaging import normalize
from ..models.nets import build_network
from ..models.refiner import load_refiner, resolve_device
from .data import NativePatches, ObjectCrops, PairFolder
from .losses import refiner_loss

__all__ = ["TrainConfig", "MixedSamples", "batch_iou", "evaluate_batch", "lr_at", "train"]


@dataclass
class TrainConfig:
    """Options of :func:`train` (all have CLI flags of the same name)."""

    data: Sequence[str]
    out: str
    val: Sequence[str] = ()
    iters: int = 5000
    batch_size: int = 8
    lr: float = 2e-4
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0
    warmup: int = 200
    clip: float = 1.0
    patch_fraction: float = 0.25
    size: int = 256
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    init: str | None = None
    resume: bool = False
    arch: str = "lite"
    num_workers: int = 1
    log_every: int = 25
    save_every: int = 250
    val_every: int = 500
    val_items: int = 48
    folder_weights: Sequence[float] | None = None
    windows: Sequence[int] = (256,)
    window_probs: Sequence[float] | None = None
    repeats: int = 1
    t_weights: Sequence[float] | None = None
    wrong_weight: float = 0.0
    threads: int | None = None
    coarse_kind: str = "mixed"
    defaults: dict = field(default_factory=dict)


class MixedSamples(Dataset):
    """Object crops (LR recipe) mixed with native-resolution patches (HR recipe)."""

    def __init__(self, crops: Dataset, patches: Dataset | None, patch_fraction: float, seed: int, length: int):
        self.crops, self.patches = crops, patches
        self.patch_fraction = patch_fraction if patches is not None else 0.0
        self.seed, self.length = seed, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, 7, index])
        if self.patch_fraction and rng.random() < self.patch_fraction:
            return self.patches[int(rng.integers(len(self.patches)))]
        return self.crops[int(rng.integers(len(self.crops)))]


def _window(batch: dict, size: int, gen: torch.Generator) -> dict:
    """Cut a ``size`` x ``size`` window from every sample (same scale, less context).

    The window is centred, when possible, on a random pixel where the coarse mask is wrong
    (that is where the loss has something to teach), else anywhere.
    """
    full = batch["fine"].shape[-1]
    if size >= full:
        return batch
    out = {k: [] for k in batch}
    for i in range(batch["fine"].shape[0]):
        wrong = (batch["fine"][i, 0] != batch["coarse"][i, 0]).nonzero()
        if len(wrong) and torch.rand((), generator=gen) < 0.9:
            cy, cx = wrong[int(torch.randint(len(wrong), (), generator=gen))].tolist()
        else:
            cy, cx = torch.randint(full, (2,), generator=gen).tolist()
        y0 = min(max(cy - size // 2, 0), full - size)
        x0 = min(max(cx - size // 2, 0), full - size)
        for k, v in batch.items():
            out[k].append(v[i, :, y0 : y0 + size, x0 : x0 + size])
    return {k: torch.stack(v) for k, v in out.items()}


def _step(model, opt, batch, fine, *, schedule, gen, device, autocast, clip, t_weights=None, wrong_weight=0.0):
    """One optimisation step on a batch: forward-process mixture at random t, official loss.

    ``t`` is uniform (official) unless ``t_weights`` gives per-timestep sampling weights.
    """
    image = normalize(batch["image"].to(device, non_blocking=True))
    coarse = batch["coarse"].to(device, non_blocking=True)
    if t_weights is None:
        t = torch.randint(0, schedule.num_timesteps, (fine.shape[0],), generator=gen, device=device)
    else:
        w = torch.as_tensor(t_weights, dtype=torch.float, device=device)
        t = torch.multinomial(w, fine.shape[0], replacement=True, generator=gen)
    m_t = add_noise(fine, coarse, t, schedule=schedule, generator=gen)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = model(torch.cat([image, m_t], dim=1), t)
    losses = refiner_loss(logits.float(), fine, coarse=coarse, wrong_weight=wrong_weight)
    opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return logits.detach(), {k: v.detach() for k, v in losses.items()}, gnorm


def lr_at(step: int, *, lr: float, warmup: int, iters: int, min_ratio: float) -> float:
    """Learning rate at ``step``: linear warm-up to ``lr``, then cosine decay to ``min_ratio * lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, iters - warmup)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _lr_at(step: int, cfg: TrainConfig) -> float:
    return lr_at(step, lr=cfg.lr, warmup=cfg.warmup, iters=cfg.iters, min_ratio=cfg.min_lr_ratio)


def _initial_model(cfg: TrainConfig, device) -> tuple[torch.nn.Module, RefineConfig]:
    """The network to train (our own copy, on ``device``) and the pipeline options it keeps."""
    if cfg.init:  # a registered model or a checkpoint: weights (fp16 files upcast) and options
        refiner = load_refiner(cfg.init, device=device)
        return refiner.network, refiner.config
    if cfg.arch == "lite":
        config = LiteConfig()
    elif cfg.arch == "lite-tiny":
        config = LiteConfig.tiny()
    elif cfg.arch == "official":
        from ..models.config import UNetConfig

        config = UNetConfig.official()
    else:
        raise ValueError(f"arch must be 'lite', 'lite-tiny' or 'official', got {cfg.arch!r}")
    return build_network(config).to(device), RefineConfig.official()


def batch_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-sample IoU of two (N, 1, H, W) maps thresholded at 0.5 (1 where both are empty)."""
    p, g = pred.flatten(1) > 0.5, gt.flatten(1) > 0.5
    inter = (p & g).sum(1).float()
    union = (p | g).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


def evaluate_batch(model, batch: dict, *, device, schedule: Schedule, seed: int = 0) -> dict[str, float]:
    """Full reverse process on a batch; mean IoU of the coarse input and of the refinement."""
    image = normalize(batch["image"].to(device))
    coarse = batch["coarse"].to(device)
    gen = torch.Generator().manual_seed(seed)  # CPU draws: the same figures on every device
    model.eval()
    out = denoise(model, image, coarse, schedule=schedule, steps=timesteps(schedule), generator=gen).mask
    model.train()
    fine = batch["fine"].to(device)
    return {"iou_coarse": float(batch_iou(coarse, fine).mean()), "iou_refined": float(batch_iou(out, fine).mean())}


def _val_batch(cfg: TrainConfig):
    if not cfg.val:
        return None
    ds = ObjectCrops(
        [PairFolder(v, split="val") for v in cfg.val],
        size=cfg.size,
        rng_seed=12345,
        coarse_kind="cascadepsp",
        hflip=False,
        scale_jitter=None,
        color_jitter=None,
        epoch_length=cfg.val_items,
    )
    items = [ds[i] for i in range(len(ds))]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def train(cfg: TrainConfig, *, progress: Callable[[int, dict], None] | None = None) -> Path:
    """Train a denoiser; returns the path of the best (or last) checkpoint.

    ``progress(step, record)`` is called at every log step (the CLI draws a bar with it).
    Writes ``<out>`` (best by validation IoU, or last without validation),
    ``<out>.last.pt`` (resumable) and ``<out>.log.jsonl``.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    last_path = out.with_suffix(".last.pt")
    log_path = out.with_suffix(".log.jsonl")
    torch.manual_seed(cfg.seed)  # module initialisation of a fresh network
    model, refine_config = _initial_model(cfg, device)
    model.train()
    refine_config = refine_config.replace(**cfg.defaults)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, eps=1e-8)
    step, best = 0, -1.0
    if cfg.resume and last_path.is_file():
        _, state, _, meta = load_checkpoint(last_path)
        model.load_state_dict({k: v.float() for k, v in state.items()})
        extra = torch.load(last_path, map_location="cpu", weights_only=True)
        opt.load_state_dict(extra["optimizer"])
        step, best = int(extra["step"]), float(extra.get("best", -1.0))
    schedule = Schedule(num_timesteps=model.config.num_timesteps)
    weights = cfg.folder_weights
    crops = ObjectCrops(
        list(cfg.data),
        size=cfg.size,
        rng_seed=cfg.seed,
        epoch_length=10**7,
        folder_weights=weights,
        coarse_kind=cfg.coarse_kind,
    )
    patches = None
    if cfg.patch_fraction > 0:
        patches = NativePatches(
            list(cfg.data),
            size=cfg.size,
            rng_seed=cfg.seed + 1,
            epoch_length=10**7,
            folder_weights=weights,
            coarse_kind=cfg.coarse_kind,
        )
    mixed = MixedSamples(crops, patches, cfg.patch_fraction, cfg.seed + step, (cfg.iters - step) * cfg.batch_size)
    loader = DataLoader(
        mixed,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        drop_last=True,
        persistent_workers=cfg.num_workers > 0,
    )
    val = _val_batch(cfg)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed + step)
    autocast = cfg.bf16 and device.type == "cuda"
    meta = {"train": {k: v for k, v in asdict(cfg).items() if k != "defaults"}, "device": str(device)}
    t0, seen, running = time.time(), 0, {}
    out.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a")
    try:
        cpu_gen = torch.Generator().manual_seed(cfg.seed + 17 + step)
        probs = torch.tensor(cfg.window_probs or [1.0] * len(cfg.windows), dtype=torch.float)
        batches = (fb for fb in loader for _ in range(cfg.repeats))  # each load serves `repeats` steps
        for full_batch in batches:
            if step >= cfg.iters:
                break
            size = int(cfg.windows[int(torch.multinomial(probs, 1, generator=cpu_gen))])
            batch = _window(full_batch, size, cpu_gen)
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, cfg)
            fine = batch["fine"].to(device, non_blocking=True)
            logits, losses, gnorm = _step(
                model,
                opt,
                batch,
                fine,
                schedule=schedule,
                gen=gen,
                device=device,
                autocast=autocast,
                clip=cfg.clip,
                t_weights=cfg.t_weights,
                wrong_weight=cfg.wrong_weight,
            )
            step += 1
            seen += fine.shape[0]
            for k, v in losses.items():
                running[k] = running.get(k, 0.0) + float(v)
            running["iou"] = running.get("iou", 0.0) + float(batch_iou((logits >= 0).float(), fine).mean())
            running["n"] = running.get("n", 0) + 1
            if step % cfg.log_every == 0 or step == cfg.iters:
                n = running.pop("n")
                rec = {k: round(v / n, 5) for k, v in running.items()}
                rec.update(
                    step=step,
                    lr=_lr_at(step - 1, cfg),
                    gnorm=round(float(gnorm), 4),
                    samples_per_s=round(seen / (time.time() - t0), 2),
                    elapsed_s=round(time.time() - t0, 1),
                )
                running = {}
                if val is not None and (step % cfg.val_every == 0 or step == cfg.iters):
                    rec.update(evaluate_batch(model, val, device=device, schedule=schedule))
                    if rec["iou_refined"] > best:
                        best = rec["iou_refined"]
                        save_checkpoint(out, model, refine=refine_config, meta={**meta, "step": step, "val": rec})
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if progress:
                    progress(step, rec)
            if step % cfg.save_every == 0 or step == cfg.iters:
                save_checkpoint(
                    last_path,
                    model,
                    refine=refine_config,
                    meta={**meta, "step": step},
                    extra={"optimizer": opt.state_dict(), "step": step, "best": best},
                )
    finally:
        log.close()
    if val is None:
        save_checkpoint(out, model, refine=refine_config, meta={**meta, "step": step})
    return out
