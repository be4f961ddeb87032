"""The README's first command: refine the shipped sample and show the result.

``napari-segrefiner demo`` loads the CC0 nuclei micrograph shipped with the package, makes
its seeded coarse mask, refines it with the shipped model, prints IoU before and after and
writes an overlay PNG (coarse | refined | ground truth, contours over the image).
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from .metrics import evaluate

__all__ = ["overlay_panels", "run_demo"]


def _contours(image: np.ndarray, labels: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    out = image.copy()
    for value in np.unique(labels):
        if value == 0:
            continue
        m = (labels == value).astype(np.uint8)
        cs, _ = cv2.findContours(m, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, cs, -1, color, 1)
    return out


def overlay_panels(
    image: np.ndarray, panels: list[tuple[str, np.ndarray, tuple[int, int, int]]], *, zoom: int = 2
) -> np.ndarray:
    """Side-by-side RGB panels, each the image with one labels array's contours and a title."""
    big = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    tiles = []
    for title, labels, color in panels:
        lab = cv2.resize(labels.astype(np.int32), None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
        tile = _contours(big, lab, color)
        bar = np.full((28, tile.shape[1], 3), 255, np.uint8)
        cv2.putText(bar, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.vstack([bar, tile]))
        tiles.append(np.full((tiles[-1].shape[0], 6, 3), 255, np.uint8))
    return np.hstack(tiles[:-1])


def run_demo(
    out: str | Path = "segrefiner_demo.png", *, model=None, device: str = "auto", seed: int = 0, log=print
) -> dict:
    """Refine the shipped sample; returns the figures and writes the overlay PNG."""
    from ..api import refine
    from ..io.sample import coarsen_labels, load_nuclei
    from ..models.refiner import load_refiner

    image, truth = load_nuclei()
    coarse = coarsen_labels(truth, seed=seed)
    refiner = load_refiner(model, device=device)
    t0 = time.perf_counter()
    refined = refine(image, coarse, model=refiner, seed=seed)
    seconds = time.perf_counter() - t0
    before, after = evaluate(coarse > 0, truth > 0), evaluate(refined > 0, truth > 0)
    n = int(len(np.unique(coarse)) - 1)
    log(f"sample: DSB 2018 nuclei ({image.shape[1]}x{image.shape[0]}, {n} objects), model {refiner.source}")
    log(f"IoU  coarse {before['iou']:.3f} -> refined {after['iou']:.3f}")
    log(f"mBA  coarse {before['mba']:.3f} -> refined {after['mba']:.3f}")
    log(f"BIoU coarse {before['biou']:.3f} -> refined {after['biou']:.3f}")
    log(f"{seconds:.2f} s for {n} objects")
    panel = overlay_panels(
        image,
        [
            (f"coarse  IoU {before['iou']:.3f}", coarse, (255, 60, 60)),
            (f"refined IoU {after['iou']:.3f}", refined, (255, 230, 0)),
            ("ground truth", truth, (60, 255, 60)),
        ],
    )
    out = Path(out)
    from ..io.files import atomic_write

    def write_png(tmp: Path) -> None:
        ok, buf = cv2.imencode(".png", panel[..., ::-1])
        if not ok:  # pragma: no cover - OpenCV refuses only impossible layouts
            raise ValueError(f"cannot encode {out.name}")
        buf.tofile(str(tmp))

    atomic_write(out, write_png)
    log(f"wrote {out}")
    return {
        "iou_before": before["iou"],
        "iou_after": after["iou"],
        "mba_before": before["mba"],
        "mba_after": after["mba"],
        "seconds": seconds,
        "objects": n,
        "out": str(out),
    }
