"""Train the decoder of an encoder-decoder refiner on cached encoder features.

The encoder is frozen, so each training crop is encoded once (:mod:`.feature_cache`) and
every optimisation step runs only the decoder: forward-process mixture at a random
timestep, the official loss (BCE + 5 x texture L1), AdamW with warm-up, cosine decay and
clipping. Windows of 128 px (or the whole 256-px crop) are cut at multiples of 32 px, so
the cached feature maps are cut at the same place at every stride. Resumable: ``<out>.last.pt``
holds the optimiser and the step; ``<out>.log.jsonl`` the figures.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..diffusion.scheduler import Schedule, add_noise
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..models.config import EncDecConfig, RefineConfig
from ..models.imaging import normalize
from ..models.nets import build_network
from .encoder_weights import encoder_state_dict
from .feature_cache import CachedCrops
from .losses import refiner_loss
from .train import batch_iou, evaluate_batch, lr_at

__all__ = ["CachedTrainConfig", "new_encdec", "train_cached"]


@dataclass
class CachedTrainConfig:
    """Options of :func:`train_cached`."""

    crops: str | tuple[str, ...]
    features: str | tuple[str, ...]
    out: str
    encoder: str = "efficientnet-lite0"
    taps: tuple[int, ...] = (4, 8, 16, 32)
    iters: int = 20000
    batch_size: int = 8
    lr: float = 5e-4
    min_lr_ratio: float = 0.05
    warmup: int = 200
    clip: float = 1.0
    windows: tuple[int, ...] = (128, 256)
    window_probs: tuple[float, ...] = (0.75, 0.25)
    seed: int = 0
    threads: int = 1
    log_every: int = 50
    save_every: int = 250
    val_every: int = 1000
    val_data: tuple[str, ...] = ()
    val_items: int = 48
    max_cpu_hours: float | None = None
    init: str | None = None
    defaults: dict = field(default_factory=dict)


def new_encdec(encoder: str, taps: tuple[int, ...], *, seed: int = 0, **decoder) -> torch.nn.Module:
    """An encoder-decoder refiner with the pretrained encoder loaded and a fresh decoder."""
    torch.manual_seed(seed)
    net = build_network(EncDecConfig(encoder=encoder, encoder_taps=tuple(taps), **decoder))
    pretrained = encoder_state_dict(encoder)
    missing = [k for k in net.encoder.state_dict() if k not in pretrained]
    if missing:
        raise ValueError(f"pretrained {encoder} lacks {missing[:3]}")
    net.encoder.load_state_dict(pretrained, strict=False)  # blocks after the deepest tap are not built
    # the shipped file stores float16: train against exactly what will be shipped
    with torch.no_grad():
        for p in net.encoder.parameters():
            p.copy_(p.half().float())
    return net


def _window(batch: dict, size: int, gen: torch.Generator) -> dict:
    """Cut a window at a multiple of 32 px, near a wrong coarse pixel when there is one."""
    full = batch["fine"].shape[-1]
    if size >= full:
        return batch
    grid = (full - size) // 32
    out = {"image": [], "fine": [], "coarse": [], "features": [[] for _ in batch["features"]]}
    for i in range(batch["fine"].shape[0]):
        wrong = (batch["fine"][i, 0] != batch["coarse"][i, 0]).nonzero()
        if len(wrong) and torch.rand((), generator=gen) < 0.9:
            cy, cx = wrong[int(torch.randint(len(wrong), (), generator=gen))].tolist()
            gy = min(max(round((cy - size / 2) / 32), 0), grid)
            gx = min(max(round((cx - size / 2) / 32), 0), grid)
        else:
            gy, gx = torch.randint(grid + 1, (2,), generator=gen).tolist()
        y0, x0 = gy * 32, gx * 32
        for k in ("image", "fine", "coarse"):
            out[k].append(batch[k][i, :, y0 : y0 + size, x0 : x0 + size])
        for store, f in zip(out["features"], batch["features"]):
            s = full // f.shape[-1]
            store.append(f[i, :, y0 // s : (y0 + size) // s, x0 // s : (x0 + size) // s])
    return {
        "image": torch.stack(out["image"]),
        "fine": torch.stack(out["fine"]),
        "coarse": torch.stack(out["coarse"]),
        "features": tuple(torch.stack(f) for f in out["features"]),
    }


def _collate(items: list[dict]) -> dict:
    return {
        "image": torch.stack([it["image"] for it in items]),
        "fine": torch.stack([it["fine"] for it in items]),
        "coarse": torch.stack([it["coarse"] for it in items]),
        "features": tuple(torch.stack(fs) for fs in zip(*[it["features"] for it in items])),
    }


def train_cached(cfg: CachedTrainConfig, *, progress=None) -> Path:
    """Train the decoder; returns the path of the best checkpoint (by validation IoU)."""
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    last_path, log_path = out.with_suffix(".last.pt"), out.with_suffix(".log.jsonl")
    if cfg.init:
        config, state, refine, _ = load_checkpoint(cfg.init)
        model = build_network(config)
        model.load_state_dict({k: v.float() for k, v in state.items()})
    else:
        model = new_encdec(cfg.encoder, cfg.taps, seed=cfg.seed)
        refine = RefineConfig.official()
    refine = refine.replace(**cfg.defaults)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    step, best, cpu_before = 0, -1.0, 0.0
    if last_path.is_file():
        _, state, _, _ = load_checkpoint(last_path)
        model.load_state_dict({k: v.float() for k, v in state.items()})
        extra = torch.load(last_path, map_location="cpu", weights_only=True)
        opt.load_state_dict(extra["optimizer"])
        step, best, cpu_before = int(extra["step"]), float(extra["best"]), float(extra.get("cpu_s", 0.0))
    schedule = Schedule(num_timesteps=model.config.num_timesteps)
    data = CachedCrops(cfg.crops, cfg.features, seed=cfg.seed + 7919 * step, length=(cfg.iters - step) * cfg.batch_size)
    loader = DataLoader(data, batch_size=cfg.batch_size, num_workers=0, collate_fn=_collate, drop_last=True)
    val = _val_batches(cfg, model)
    gen = torch.Generator().manual_seed(cfg.seed + step)
    probs = torch.tensor(cfg.window_probs, dtype=torch.float)
    meta = {"train": {k: v for k, v in asdict(cfg).items() if k != "defaults"}}
    out.parent.mkdir(parents=True, exist_ok=True)
    cpu0, wall0, seen, running = time.process_time(), time.time(), 0, {}
    with open(log_path, "a") as log:
        for full in loader:
            if step >= cfg.iters:
                break
            cpu_s = cpu_before + time.process_time() - cpu0
            if cfg.max_cpu_hours is not None and cpu_s > cfg.max_cpu_hours * 3600:
                break
            batch = _window(full, int(cfg.windows[int(torch.multinomial(probs, 1, generator=gen))]), gen)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, lr=cfg.lr, warmup=cfg.warmup, iters=cfg.iters, min_ratio=cfg.min_lr_ratio)
            image = normalize(batch["image"].float())
            fine, coarse = batch["fine"], batch["coarse"]
            t = torch.randint(0, schedule.num_timesteps, (fine.shape[0],), generator=gen)
            m_t = add_noise(fine, coarse, t, schedule=schedule, generator=gen)
            logits = model.denoise(m_t, t, batch["features"], image)
            losses = refiner_loss(logits, fine)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.clip)
            opt.step()
            step += 1
            seen += fine.shape[0]
            for k, v in losses.items():
                running[k] = running.get(k, 0.0) + float(v.detach())
            running["iou"] = running.get("iou", 0.0) + float(batch_iou((logits >= 0).float(), fine).mean())
            running["n"] = running.get("n", 0) + 1
            if step % cfg.log_every == 0 or step == cfg.iters:
                n = running.pop("n")
                rec = {k: round(v / n, 5) for k, v in running.items()}
                running = {}
                cpu_s = cpu_before + time.process_time() - cpu0
                rec.update(
                    step=step,
                    gnorm=round(float(gnorm), 4),
                    cpu_h=round(cpu_s / 3600, 4),
                    samples_per_s=round(seen / (time.time() - wall0), 2),
                )
                if val and (step % cfg.val_every == 0 or step == cfg.iters):
                    rec.update(_validate(model, val, schedule))
                    if rec["val_score"] > best:
                        best = rec["val_score"]
                        save_checkpoint(out, model, refine=refine, meta={**meta, "step": step, "val": rec})
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if progress:
                    progress(step, rec)
            if step % cfg.save_every == 0 or step == cfg.iters:
                cpu_s = cpu_before + time.process_time() - cpu0
                save_checkpoint(
                    last_path,
                    model,
                    refine=refine,
                    meta={**meta, "step": step},
                    extra={"optimizer": opt.state_dict(), "step": step, "best": best, "cpu_s": cpu_s},
                )
    cpu_s = cpu_before + time.process_time() - cpu0
    save_checkpoint(
        last_path,
        model,
        refine=refine,
        meta={**meta, "step": step},
        extra={"optimizer": opt.state_dict(), "step": step, "best": best, "cpu_s": cpu_s},
    )
    if not val:
        save_checkpoint(out, model, refine=refine, meta={**meta, "step": step})
    return out


def _val_batches(cfg: CachedTrainConfig, model) -> dict:
    """Fixed val crops with CascadePSP (gain) and near-perfect (harm) coarse masks."""
    if not cfg.val_data:
        return {}
    from .data import ObjectCrops, PairFolder

    out = {}
    for kind in ("cascadepsp", "nearperfect"):
        ds = ObjectCrops(
            [PairFolder(v, split="val") for v in cfg.val_data],
            size=256,
            rng_seed=12345,
            coarse_kind=kind,
            hflip=False,
            scale_jitter=None,
            color_jitter=None,
            epoch_length=cfg.val_items,
        )
        items = [ds[i] for i in range(len(ds))]
        out[kind] = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    return out


def _validate(model, val: dict, schedule: Schedule) -> dict:
    rec = {}
    for kind, batch in val.items():
        r = evaluate_batch(model, batch, device=torch.device("cpu"), schedule=schedule)
        rec[f"{kind}_coarse"] = round(r["iou_coarse"], 4)
        rec[f"{kind}_refined"] = round(r["iou_refined"], 4)
    # gain on coarse masks, minus twice the harm on near-perfect ones
    gain = rec["cascadepsp_refined"] - rec["cascadepsp_coarse"]
    harm = max(0.0, rec["nearperfect_coarse"] - rec["nearperfect_refined"])
    rec["val_score"] = round(gain - 2 * harm, 4)
    return rec
