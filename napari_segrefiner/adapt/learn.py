"""Adapt a refiner to an annotator's corrections: fine-tune its decoder on their pairs, on a CPU.

:func:`iter_adapt` (a generator, for a GUI worker) and :func:`adapt` (a function) take a
base model and at least :data:`MIN_PAIRS` pairs of one crop side, and:

1. split the pairs with a seeded permutation into training and held-out pairs (at least one
   held out; ``holdout`` is the share; pairs that name several sources, e.g. images, are
   split by source: :func:`~.checks.split_pairs`);
2. encode every crop once (the encoder is frozen; its features stay in memory) and
   synthesise a few coarse variants of each training pair's final mask
   (:mod:`.samples`);
3. measure the base's held-out IoU (:mod:`.heldout`: the full reverse process through the
   pipeline's batch step);
4. fine-tune some parameters (:mod:`.layers`: the decoder levels of an encoder-decoder
   refiner that fuse the encoder's features; every parameter of a network without a frozen
   encoder, such as the Lite refiner) with the
   official loss, Adam (:mod:`.optim`), warm-up and cosine decay, until ``max_steps`` or the time budget
   (the whole run, evaluations included, ends within about ``seconds``);
5. measure the adapted network's held-out IoU. It is *kept* only if its mean beats the
   base's, and if on near-perfect coarse masks of the same held-out pairs (already good:
   the right answer is to keep them) it loses at most :data:`KEEP_TOLERANCE`; either way
   every figure is reported.

On the CPU the same pairs, seed and ``max_steps`` give the same weights. The base model
and its file are never modified. Saving is :func:`~.models.save_adapted`.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ..diffusion.sampling import RefineCancelled
from ..diffusion.scheduler import add_noise
from ..models.refiner import load_refiner
from ..models.threads import use_threads
from ..training.losses import refiner_loss
from ..training.train import lr_at
from .checks import MIN_PAIRS, check_number, check_pairs, split_pairs
from .heldout import heldout_ious
from .layers import LAYERS, trainable
from .models import base_identity, check_name, save_adapted
from .optim import Adam
from .pairs import CROP_OPTIONS, Pair
from .result import AdaptCancelled, AdaptRecord, AdaptResult
from .samples import VARIANT_KINDS, Batches, Cancelled, coarse_variants, encode_pairs, keep_variant

__all__ = ["DEFAULT_LR", "KEEP_TOLERANCE", "MAX_TRAINABLE", "MIN_PAIRS", "adapt", "iter_adapt", "split_pairs"]

MAX_TRAINABLE = 20_000_000  # the official UNet (118.6 M) is too large to adapt on a CPU
DEFAULT_LR = 2e-4
#: A kept model may lose at most this much mean held-out IoU on already-good masks (noise of a few pairs).
KEEP_TOLERANCE = 0.002
_TIMED = (2, 10, 40)  # after these steps the total is (re-)estimated from the budget (the first two are slow)


def iter_adapt(
    base: Any = None,
    pairs: Any = (),
    *,
    seconds: float = 60.0,
    max_steps: int | None = None,
    seed: int = 0,
    holdout: float = 0.25,
    threads: int | None = None,
    cancel: Callable[[], bool] | None = None,
    lr: float = DEFAULT_LR,
    save: bool = False,
    name: str | None = None,
    cache: Any = None,
    clock: Callable[[], float] | None = None,
    layers: str = "auto",
) -> Iterator[AdaptRecord]:
    """Adapt ``base`` to ``pairs``, yielding an :class:`~.result.AdaptRecord` at every stage and step.

    Parameters
    ----------
    base : None, str, path-like, Refiner or torch.nn.Module
        What :func:`~napari_segrefiner.refiner.load_refiner` takes (``None`` = the shipped
        model; ``"adapted:<name>"`` adapts an adapted model further).
    pairs : PairStore or sequence of Pair
        At least :data:`MIN_PAIRS`, all with the base model's crop side.
    seconds : float
        Time budget of the whole run (> 0); training stops early enough for the final evaluation.
    max_steps : int, optional
        Stop after this many steps (and plan the learning-rate schedule for them).
    seed : int
        Seeds the split, the coarse variants, the batches and the evaluations.
    holdout : float
        Share of pairs held out (in (0, 1); at least one pair, at most all but one).
    threads : int, optional
        torch CPU threads during the run (restored after); default: unchanged.
    cancel : callable, optional
        Asked before every step and network call; when it returns True the run stops and
        yields a last ``"cancelled"`` record (within one step: well under a second).
    lr : float
        Peak learning rate.
    save : bool
        Save a kept model to the user's model folder (``result.path``).
    name, cache :
        Name and model folder for saving (see :func:`~.models.save_adapted`).
    layers : {"auto", "all"}
        What learns (:mod:`.layers`): ``"auto"``, the decoder levels that fuse the encoder's
        features (any other network: all its parameters); ``"all"``, the whole decoder.
    clock : callable, optional
        The clock ``seconds`` is measured on (default ``time.perf_counter``, wall time);
        e.g. the process's CPU time divided by its threads, to budget the work a dedicated
        machine would do whatever else runs.

    Yields
    ------
    AdaptRecord
        ``"encode"``, ``"baseline"``, ``"train"`` (one per step), ``"evaluate"``, then
        ``"done"`` (with ``result``) or ``"cancelled"``.

    Raises
    ------
    ValueError, TypeError
        Raised by this call, before anything runs: fewer than two pairs, crops of other
        sides, a base too large to adapt, or bad options (named in the message).
    """
    seconds = check_number(seconds, "seconds", low=1e-3)
    max_steps = None if max_steps is None else check_number(max_steps, "max_steps", low=1, integer=True)
    seed = check_number(seed, "seed", low=0, high=2**32 - 1, integer=True)
    holdout = check_number(holdout, "holdout", low=1e-6, high=1 - 1e-6)
    threads = None if threads is None else check_number(threads, "threads", low=1, high=1024, integer=True)
    lr = check_number(lr, "lr", low=1e-8, high=1.0)
    if layers not in LAYERS:
        raise ValueError(f"layers must be one of {LAYERS}, got {layers!r}")
    for what, fn in (("cancel", cancel), ("clock", clock)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{what} must be None or a callable, got {type(fn).__name__}")
    refiner = load_refiner(base, device="cpu")
    items = check_pairs(pairs, refiner.config.size)
    if not (callable(getattr(refiner.network, "encode", None)) and callable(getattr(refiner.network, "denoise", None))):
        raise TypeError("base must be a SegRefiner network with encode() and denoise() to be adapted")
    count = sum(p.numel() for p in refiner.network.parameters() if p.requires_grad)
    if count > MAX_TRAINABLE:
        raise ValueError(
            f"base model {refiner.source} has {count / 1e6:.1f} M trainable parameters: too many to "
            "adapt on a CPU; adapt an encoder-decoder model (only its decoder learns) or the Lite model"
        )
    if count == 0:
        raise ValueError(f"base model {refiner.source} has no trainable parameters")
    if save and name is not None:
        check_name(name)  # before a minute of work, not after
    options = dict(
        seconds=seconds,
        max_steps=max_steps,
        seed=seed,
        holdout=holdout,
        cancel=cancel,
        lr=lr,
        save=bool(save),
        name=name,
        cache=cache,
        clock=clock or time.perf_counter,
        layers=layers,
    )
    return _run(refiner, items, threads, options)


def _run(refiner, items: list[Pair], threads: int | None, o: dict) -> Iterator[AdaptRecord]:
    now = o["clock"]
    t0 = now()
    timings: dict[str, float] = {}
    state: dict[str, Any] = {
        "step": 0,
        "total": o["max_steps"],
        "base": None,
        "adapted": None,
        "base_keep": None,
        "adapted_keep": None,
    }

    def record(stage: str, message: str, **extra) -> AdaptRecord:
        return AdaptRecord(
            stage,
            state["step"],
            state["total"],
            now() - t0,
            base_iou=state["base"],
            adapted_iou=state["adapted"],
            base_keep_iou=state["base_keep"],
            adapted_keep_iou=state["adapted_keep"],
            message=message,
            **extra,
        )

    cancel = o["cancel"]
    sources = [p.info.get("source") for p in items]
    train_idx, hold_idx = split_pairs(len(items), o["holdout"], o["seed"], None if None in sources else sources)
    guard = use_threads(threads) if threads else contextlib.nullcontext()
    try:
        with guard:
            yield record("encode", f"encoding {len(items)} crops once")
            base_net, cfg, schedule = refiner.network, refiner.config, refiner.schedule
            data = encode_pairs(base_net, items, cancel=cancel)
            rng = np.random.default_rng(np.random.SeedSequence([o["seed"], 2]))
            variants = [torch.zeros(0, 1, cfg.size, cfg.size)] * len(items)
            for i in train_idx:
                made = coarse_variants(items[i].final, rng)
                if made:
                    variants[i] = torch.from_numpy(np.stack(made).astype(np.float32))[:, None]
            keep = torch.from_numpy(np.stack([keep_variant(items[i].final, rng) for i in hold_idx]))[:, None].float()
            timings["encode"] = now() - t0
            yield record("baseline", f"refining the {len(hold_idx)} held-out pairs with the base model")
            t1 = now()

            def judge(network) -> tuple[float, float]:
                own = heldout_ious(network, cfg, schedule, data, hold_idx, seed=o["seed"], cancel=cancel)
                good = heldout_ious(network, cfg, schedule, data, hold_idx, seed=o["seed"], cancel=cancel, coarse=keep)
                return float(np.mean(own)), float(np.mean(good))

            state["base"], state["base_keep"] = judge(base_net)
            timings["baseline"] = now() - t1
            net, history = yield from _train(
                base_net,
                schedule,
                data,
                train_idx,
                variants,
                o,
                state,
                record,
                t0,
                deadline=t0 + o["seconds"] - 1.2 * timings["baseline"],
            )
            timings["train"] = now() - t1 - timings["baseline"]
            yield record("evaluate", f"refining the {len(hold_idx)} held-out pairs with the adapted model")
            t2 = now()
            state["adapted"], state["adapted_keep"] = judge(net)
            timings["evaluate"] = now() - t2
            used_threads = torch.get_num_threads()
        result = _result(refiner, net, items, train_idx, hold_idx, state, timings, history, o, t0, used_threads)
        if o["save"] and result.kept:
            path = save_adapted(result, o["name"], cache=o["cache"])
            result = AdaptResult(**{**result.__dict__, "path": path})
        yield record("done", result.summary() + (f"; saved {result.path}" if result.path else ""), result=result)
    except (Cancelled, RefineCancelled):
        yield record("cancelled", f"adaptation cancelled after {state['step']} steps; nothing was saved")


def _train(base_net, schedule, data, train_idx, variants, o: dict, state: dict, record, t0: float, *, deadline: float):
    """The optimisation loop (a sub-generator of :func:`_run`): returns (network in eval mode, history)."""
    net = copy.deepcopy(base_net).train()
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    params, state["trained"] = trainable(net, o["layers"])
    opt = Adam(params)
    batches = Batches(data, train_idx, variants, seed=o["seed"] + 1)
    gen = torch.Generator().manual_seed(o["seed"] + 2)
    total = state["total"]
    warmup = max(1, min(10, (total or 100) // 10))
    clock = o["clock"]
    history, started, marks = [], clock(), {}
    cancel = o["cancel"]
    while total is None or state["step"] < total:
        if cancel is not None and cancel():
            raise Cancelled("adaptation cancelled")
        if clock() >= deadline:
            break
        step = state["step"]
        rate = lr_at(step, lr=o["lr"], warmup=warmup, iters=total or 10**9, min_ratio=0.1)
        batch = batches.next()
        t = torch.randint(0, schedule.num_timesteps, (batch["fine"].shape[0],), generator=gen)
        m_t = add_noise(batch["fine"], batch["coarse"], t, schedule=schedule, generator=gen)
        logits = net.denoise(m_t, t, batch["features"], batch["image"])
        loss = refiner_loss(logits, batch["fine"])["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step(rate)
        state["step"] = step + 1
        now = clock()
        value = float(loss.detach())
        history.append({"step": step + 1, "loss": round(value, 5), "lr": rate, "seconds": round(now - t0, 3)})
        if o["max_steps"] is None and state["step"] in _TIMED:  # plan for the steps the budget allows
            marks[state["step"]] = now
            first = min(marks)
            span = (now - marks[first], state["step"] - first) if len(marks) > 1 else (now - started, state["step"])
            per = span[0] / span[1]
            total = state["total"] = state["step"] + max(0, int((deadline - now) / max(per, 1e-6)))
        yield record(
            "train",
            f"step {state['step']}" + (f"/{total}" if total else "") + f", loss {value:.4f}",
            loss=value,
            lr=rate,
        )
    for n, p in net.named_parameters():  # an adapted network looks like a loaded one (and adapts again alike)
        p.requires_grad_(flags[n])
    return net.eval(), history


def _result(refiner, net, items, train_idx, hold_idx, state, timings, history, o, t0, threads) -> AdaptResult:
    from ..models.refiner import Refiner

    kept = state["adapted"] > state["base"] and state["adapted_keep"] >= state["base_keep"] - KEEP_TOLERANCE
    seconds = o["clock"]() - t0
    provenance = {
        "base": base_identity(refiner, cache=o["cache"]),
        "pairs": {"train": len(train_idx), "holdout": len(hold_idx)},
        "steps": state["step"],
        "seconds": round(seconds, 2),
        "budget_s": o["seconds"],
        "max_steps": o["max_steps"],
        "heldout_iou": {k: round(state[k], 6) for k in ("base", "adapted", "base_keep", "adapted_keep")},
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seed": o["seed"],
        "lr": o["lr"],
        "holdout": o["holdout"],
        "threads": threads,
        "trained": state["trained"],
        "layers": o["layers"],
        "variants": [list(v) for v in VARIANT_KINDS],
        "crop": {k: getattr(refiner.config, k) for k in CROP_OPTIONS},
        "pairs_crop": dict(items[0].info.get("crop") or {}),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    adapted = Refiner(
        net,
        refiner.config,
        refiner.schedule,
        refiner.device,
        source="<adapted in memory>",
        meta={"adapted": provenance},
    )
    return AdaptResult(
        adapted,
        refiner,
        kept,
        state["base"],
        state["adapted"],
        state["base_keep"],
        state["adapted_keep"],
        state["step"],
        seconds,
        tuple(items[i].key for i in train_idx),
        tuple(items[i].key for i in hold_idx),
        timings,
        provenance,
        tuple(history),
    )


def adapt(
    base: Any = None,
    pairs: Any = (),
    *,
    seconds: float = 60.0,
    max_steps: int | None = None,
    seed: int = 0,
    holdout: float = 0.25,
    threads: int | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[int, int | None, AdaptRecord], None] | None = None,
    lr: float = DEFAULT_LR,
    clock: Callable[[], float] | None = None,
    layers: str = "auto",
) -> AdaptResult:
    """Adapt ``base`` to ``pairs`` and return the :class:`~.result.AdaptResult` (nothing is saved).

    Takes the arguments of :func:`iter_adapt` (except saving), plus ``progress(step, total,
    record)`` called with every record.

    Raises
    ------
    AdaptCancelled
        When ``cancel()`` returned True.
    ValueError, TypeError
        As :func:`iter_adapt`.
    """
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable, got {type(progress).__name__}")
    for rec in iter_adapt(
        base,
        pairs,
        seconds=seconds,
        max_steps=max_steps,
        seed=seed,
        holdout=holdout,
        threads=threads,
        cancel=cancel,
        lr=lr,
        clock=clock,
        layers=layers,
    ):
        if progress is not None:
            progress(rec.step, rec.total, rec)
        if rec.stage == "cancelled":
            raise AdaptCancelled(rec.message)
        if rec.result is not None:
            return rec.result
    raise RuntimeError("adaptation ended without a result")  # pragma: no cover
