"""Command lines and files shared by the CLI tests (folder, zarr and file modes, nothing-lost checks)."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np

ONE_CPU_THREAD = ("--device", "cpu", "--threads", "1")


def refine_argv(image, mask, out, checkpoint, *extra) -> list[str]:
    """``refine IMAGE MASK -o OUT --checkpoint CHECKPOINT`` on one CPU thread, then ``extra``."""
    return ["refine", str(image), str(mask), "-o", str(out), "--checkpoint", str(checkpoint), *ONE_CPU_THREAD, *extra]


def write_pairs(root, n=4, shift=0):
    """root/images/p*.png and root/masks<shift>/p*.png: two discs per image, coarse square labels
    (``shift`` moves the squares: other inputs of the same names)."""
    images, masks = root / "images", root / f"masks{shift or ''}"
    images.mkdir(exist_ok=True)
    masks.mkdir()
    yy, xx = np.mgrid[:64, :80]
    for k in range(n):
        image = np.full((64, 80, 3), 30, np.uint8)
        mask = np.zeros((64, 80), np.uint8)
        for v, (cy, cx) in enumerate([(20 + k, 22), (42, 55 - k)], start=1):
            image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 90] = (220, 120, 200)
            mask[cy - 11 + shift : cy + 11, cx - 11 : cx + 11 - shift] = v
        cv2.imwrite(str(images / f"p{k}.png"), image)
        cv2.imwrite(str(masks / f"p{k}.png"), mask)
    return images, masks


def dead_pid() -> int:
    """The id of a process that has just ended (not reused within the test)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def sample_stores(root, side=None):
    """The shipped sample as zarr arrays ``root/img.zarr``, ``root/lab.zarr`` (64 px chunks; its
    top-left ``side`` x ``side`` px only, when given); returns the arrays written."""
    import zarr

    from napari_segrefiner.io.sample import coarsen_labels, load_nuclei

    img, truth = load_nuclei()
    lab = coarsen_labels(truth, seed=0)
    if side is not None:
        img, lab = img[:side, :side], lab[:side, :side]
    zarr.create_array(store=str(root / "img.zarr"), data=img, chunks=(64, 64, 3))
    zarr.create_array(store=str(root / "lab.zarr"), data=lab, chunks=(64, 64))
    return img, lab
