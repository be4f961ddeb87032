"""Speed benchmark: the encoder and the per-step decoder, per network, device and batch.

Every network has two parts: ``encode`` runs once per crop, ``denoise`` once per reverse
step. Per-object time at batch B is ``(t_encode(B) + steps x t_denoise(B)) / B`` (the
diffusion maths is negligible next to the network); ``refine`` end to end is timed too
for batch 1. The official UNet and the Lite network pass the image through ``encode``
(it costs nothing); the encoder-decoder refiner runs its pretrained encoder there.
Measurements whose estimated duration exceeds ``--max-seconds`` are skipped and say so.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ..diffusion.sampling import two_parts
from ..models.config import EncDecConfig, LiteConfig, UNetConfig
from ..models.nets import build_network

__all__ = ["CONFIGS", "time_parts", "run_speed", "add_arguments", "run_from_args"]

CONFIGS = {
    "shipped": None,  # the default model with its own weights
    "encdec": EncDecConfig,  # frozen EfficientNet-Lite0 + decoder (the v3 shape)
    "encdec-dino": lambda: EncDecConfig(encoder="dinov2-vits14", encoder_taps=(5, 11)),
    "official": UNetConfig.official,
    "official-ch32": lambda: UNetConfig(model_channels=32),  # same shape, 1/16 of the compute
    "lite": LiteConfig,  # the v1/v2 network
    "lite-tiny": LiteConfig.tiny,
}


def _timed(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def time_parts(
    model, batch: int, *, size: int, device: torch.device, repeats: int, autocast: bool = False
) -> tuple[float, float]:
    """Median wall times of ``encode`` and of one ``denoise`` step at ``batch`` (after a warm-up)."""
    encode, denoise = two_parts(model)
    image = torch.randn(batch, 3, size, size, device=device)
    mask = (torch.rand(batch, 1, size, size, device=device) > 0.5).float()
    t = torch.full((batch,), 5, dtype=torch.long, device=device)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        feats = encode(image)
        denoise(mask, t, feats, image)
        enc = _timed(lambda: encode(image), repeats, device)
        dec = _timed(lambda: denoise(mask, t, feats, image), repeats, device)
    return enc, dec


def _network(name: str, device: torch.device):
    if CONFIGS[name] is None:
        from ..models.refiner import load_refiner

        return load_refiner(None, device=device).network
    torch.manual_seed(0)
    return build_network(CONFIGS[name]()).to(device).eval()


def _refine_once(model, device: torch.device, size: int) -> float:
    from ..api import refine
    from ..models.refiner import load_refiner

    refiner = load_refiner(model, device=device)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    mask = np.zeros((480, 640), bool)
    mask[100:300, 150:400] = True
    refine(image, mask, model=refiner, seed=0, mode="instance")  # warm-up
    t0 = time.perf_counter()
    refine(image, mask, model=refiner, seed=0, mode="instance")
    return time.perf_counter() - t0


def run_speed(
    configs=("shipped", "official-ch32", "lite"),
    devices=("cpu",),
    batches=(1, 32),
    *,
    size: int = 256,
    steps: int = 6,
    repeats: int = 3,
    max_seconds: float = 120.0,
    log=print,
) -> list[dict]:
    """Time every (config, device, batch); returns one row per measurement."""
    rows = []
    for name in configs:
        for dev_name in devices:
            device = torch.device(dev_name)
            model = _network(name, device)
            params = sum(p.numel() for p in model.parameters())
            t1 = None
            for batch in batches:
                est = (t1 or 0.0) * batch * (repeats + 1)
                if t1 is not None and est > max_seconds:
                    row = dict(
                        config=name, device=dev_name, batch=batch, params=params, skipped=f"estimated {est:.0f} s"
                    )
                    log(
                        f"{name:14s} {dev_name:5s} batch {batch:3d}: skipped "
                        f"(estimated {est:.0f} s > {max_seconds:.0f} s)"
                    )
                    rows.append(row)
                    continue
                reps = repeats if t1 is None or t1 * batch < 5 else 1
                enc, dec = time_parts(model, batch, size=size, device=device, repeats=reps)
                if batch == 1:
                    t1 = enc + dec
                row = dict(
                    config=name,
                    device=dev_name,
                    batch=batch,
                    params=params,
                    encode_s=enc,
                    denoise_s=dec,
                    per_object_s=(enc + steps * dec) / batch,
                )
                if batch == 1 and (enc + steps * dec) < max_seconds / 2:
                    row["refine_end_to_end_s"] = _refine_once(model, device, size)
                rows.append(row)
                extra = f", refine() {row['refine_end_to_end_s']:.3f} s" if "refine_end_to_end_s" in row else ""
                log(
                    f"{name:14s} {dev_name:5s} batch {batch:3d}: encoder {enc:7.3f} s, decoder {dec:7.3f} s/step, "
                    f"{row['per_object_s']:7.3f} s/object ({steps} steps){extra}"
                )
    return rows


def add_arguments(parser) -> None:
    """CLI flags of ``napari-segrefiner speed``."""
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["shipped", "official-ch32", "lite"],
        choices=list(CONFIGS),
        help="networks to time: 'shipped' is the default model with its weights; the others random",
    )
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when present")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=120.0, help="skip measurements estimated longer")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's own; the GUI and CLI defaults are printed)",
    )
    parser.add_argument("--out", default="benchmarks/results/speed.json")


def run_from_args(args) -> int:
    """Run from parsed CLI arguments; writes a JSON file."""
    from ..models.threads import available_cores, cpu_threads

    defaults = {"torch_default": torch.get_num_threads(), "gui": cpu_threads("gui"), "cli": cpu_threads("cli"),
                "cores": available_cores()}  # fmt: skip
    print(f"threads: torch's default {defaults['torch_default']}, the plugin uses {defaults['gui']}, the CLI "
          f"{defaults['cli']} ({defaults['cores']} cores; OMP_NUM_THREADS overrides both)")  # fmt: skip
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for d in devices:
        if d == "cuda" and not torch.cuda.is_available():
            print("napari-segrefiner: error: CUDA is not available here", flush=True)
            return 2
    rows = run_speed(args.configs, devices, args.batches, repeats=args.repeats, max_seconds=args.max_seconds)
    out = Path(args.out)
    meta = dict(
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        thread_defaults=defaults,
        machine=platform.machine(),
        processor=platform.processor() or platform.platform(),
        cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        date=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    from ..io.files import atomic_write

    text = json.dumps({"meta": meta, "rows": rows}, indent=2)
    atomic_write(out, lambda tmp: tmp.write_text(text))
    print(f"wrote {out}")
    return 0
