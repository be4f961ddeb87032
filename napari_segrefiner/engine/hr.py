"""The high-resolution pipeline (HR-SegRefiner), one object at a time.

A global pass on the nearest-downsampled frame (t = 5..1, encoded once for every object),
then one t = 0 step on native-resolution 256 patches around low-confidence pixels, merged
by averaging. Inputs are validated by :func:`~.run.start`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..annotate.hints import Hints
from ..annotate.scores import review_score
from ..diffusion.sampling import denoise, iter_denoise, two_parts
from ..diffusion.scheduler import stream
from ..io.masks import bounding_box
from ..models.imaging import normalize
from .batch import PipelineRun, network_batch
from .cleanup import clean_labels
from .compose import ObjectMap
from .patches import select_patches
from .pipelines import ordered
from .records import ObjectResult, RefineStep

__all__ = ["run_hr"]


def _hr_local(
    image,
    m_global: torch.Tensor,
    fine_prob: torch.Tensor,
    run: PipelineRun,
    generator,
    held: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Refine native-resolution patches around uncertain pixels; returns the merged bool frame.

    ``held`` = (fixed, value) native (H, W) bool maps of this object's hints.
    """
    patch = run.config.hr_patch
    h, w = m_global.shape
    corners = select_patches(
        fine_prob.cpu().numpy(), (h, w), patch=patch, thr_ratio=run.config.hr_thr_ratio, iou_thr=run.config.hr_iou
    )
    kept = []
    for y0, x0 in corners:
        piece = m_global[y0 : y0 + patch, x0 : x0 + patch]
        if bool(piece.any()) and not bool(piece.all()):
            kept.append((int(y0), int(x0)))
    if not kept:
        return m_global
    imgs = torch.cat([image[:, :, y : y + patch, x : x + patch] for y, x in kept])
    masks = torch.stack([m_global[y : y + patch, x : x + patch] for y, x in kept])[:, None].float()
    patch_hints = None
    if held is not None:
        patch_hints = tuple(torch.stack([m[y : y + patch, x : x + patch] for y, x in kept])[:, None] for m in held)
    soft = denoise(
        run.network,
        normalize(imgs),
        masks,
        schedule=run.schedule,
        steps=[0],
        generator=generator,
        autocast=run.autocast,
        batch_size=network_batch(run.config, run.device),
        cancel=run.cancel,
        keep_bias=run.config.keep_bias,
        hints=patch_hints,
    ).mask[:, 0]
    acc = torch.zeros((h, w), device=soft.device)
    cnt = torch.zeros((h, w), device=soft.device)
    for k, (y, x) in enumerate(kept):
        acc[y : y + patch, x : x + patch] += soft[k]
        cnt[y : y + patch, x : x + patch] += 1
    merged = acc / cnt.clamp(min=1) >= 0.5
    return torch.where(cnt > 0, merged, m_global)


def run_hr(
    image: torch.Tensor, labels: np.ndarray, ids: Sequence[int], run: PipelineRun, *, cast, hints: Hints | None = None
) -> Iterator[RefineStep]:
    """High-resolution pipeline, one object at a time (global pass + local patches).

    The global pass sees the whole frame downsampled (nearest) to the network size; it is
    encoded once for every object. ``hints`` are held in the global steps (at the network
    size) and in the local patches (native).
    """
    size = run.config.size
    h, w = labels.shape
    lab_t = torch.from_numpy(labels).to(image.device)
    ids = [lab for lab in ids if int((lab_t == lab).sum()) > run.config.hr_min_pixels]  # others stay as they are
    ids = ordered(ids, run.order)
    finish = cast if hints is None else (lambda f: cast(hints.apply(f)))
    steps = tuple(run.steps)
    if not ids:
        yield RefineStep(0, 1, "hr", (), 0, 0, steps + (0,), True, finish(labels.copy()), {})
        return
    small = normalize(F.interpolate(image, size=(size, size), mode="nearest"))
    with torch.inference_mode():  # one global input for every object: encoded once
        shared = two_parts(run.network)[0](small)
    out = labels.copy()
    scores: dict[int, float] = {}
    for n, lab in enumerate(ids):
        m = lab_t == lab
        coarse = (F.interpolate(m[None, None].float(), size=(size, size), mode="nearest") >= 0.5).float()
        gen = stream(run.seed, lab)
        held = native = None
        if hints is not None:
            held = hints.maps([(0, h, 0, w)], [lab], size, image.device)
            obj = torch.from_numpy(hints.owner == lab).to(image.device)
            bg = torch.from_numpy((hints.values == 2) | ((hints.owner != 0) & (hints.owner != lab))).to(image.device)
            native = (obj | bg, obj)
        states, last = [], None
        for step in iter_denoise(
            run.network,
            small,
            coarse,
            schedule=run.schedule,
            steps=list(steps),
            generator=gen,
            autocast=run.autocast,
            cancel=run.cancel,
            keep_bias=run.config.keep_bias,
            hints=held,
            features=shared,
        ):
            if run.previews:
                states.append(np.packbits((step.mask >= 0.5).cpu().numpy()[0, 0], axis=None))
            last = step
        scores[int(lab)] = float(review_score(last.prob, coarse)[0])
        m_global = F.interpolate(last.mask, size=(h, w), mode="nearest")[0, 0] >= 0.5
        if native is not None:
            m_global = torch.where(native[0], native[1], m_global)
        result = _hr_local(image, m_global, last.fine_prob[0, 0], run, gen, native).cpu().numpy()
        out[(out == lab) & ~result] = 0
        out[result & (out == 0)] = lab
        if run.config.clean:
            out = clean_labels(out, labels, [lab])
        if hints is not None:
            hints.apply(out)
        frame = (0, h, 0, w)
        mine = out == lab
        y0, y1, x0, x1 = box = bounding_box(mine | (labels == lab)) or frame  # compact: not the whole frame
        answer = ObjectMap.from_values(lab, box, mine[y0:y1, x0:x1].astype(np.float32))
        conf = last.confidence.cpu().numpy()[0, 0].astype(np.float16) if run.previews else None
        obj_result = ObjectResult(
            int(lab), answer, scores[int(lab)], frame, frame, np.stack(states) if run.previews else None, conf
        )
        done = n + 1 == len(ids)
        yield RefineStep(
            n,
            len(ids),
            "hr",
            (obj_result,),
            n + 1,
            len(ids),
            steps + (0,),
            done,
            finish(out.copy()) if done else None,
            dict(scores) if done else None,
        )
