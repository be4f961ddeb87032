"""Before a run: is the mask a plausible labels image, and does the run fit in memory?

Two slips make runs that never end or end in the out-of-memory killer: passing a photo as
the mask (every colour or grey level becomes a "label" spread over the whole frame: tens
of thousands to millions of them) and swapping image and mask. Both are caught before any
refinement, by checks linear in the pixels:

* **Label count.** A mask with more than ``max(1024, H * W / 16)`` labels is refused
  (:func:`label_limit`): an object refinement can change needs some room, and a labels
  image whose objects average fewer than 16 pixels is a photo or noise, not a
  segmentation (objects below the pipelines' ``min_area``, 512 px by default, are left as
  they are anyway). Up to 1024 labels always pass, however small the image.
* **Memory.** A run holds, for every object it refines at once (instance and whole mode),
  its crop at the network's input size ``S`` and the sampler's state: measured here, 64
  bytes per ``S * S`` crop pixel with the shipped network and 81 with the
  encoder-decoder one (its features), i.e. 4.2-5.3 MB per object at ``S = 256``; plus the
  frames it composes, about :data:`BYTES_PER_FRAME_PIXEL` bytes per image pixel.
  :func:`estimate_peak_bytes` is the lower of these figures
  (:data:`BYTES_PER_CROP_PIXEL`; the network's activations come on top), so a run it
  refuses, because the estimate exceeds the memory available now
  (:func:`available_bytes`), would not fit.

``force=True`` (CLI: ``--force``) skips both checks.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BYTES_PER_CROP_PIXEL",
    "BYTES_PER_FRAME_PIXEL",
    "FREE_LABELS",
    "MIN_PIXELS_PER_LABEL",
    "available_bytes",
    "check_label_count",
    "check_memory",
    "count_labels",
    "estimate_peak_bytes",
    "label_limit",
]

MIN_PIXELS_PER_LABEL = 16
FREE_LABELS = 1024
BYTES_PER_CROP_PIXEL = 64
BYTES_PER_FRAME_PIXEL = 64
_FORCE = "pass force=True (CLI: --force) to run it anyway"


def _check_force(force) -> bool:
    if not isinstance(force, (bool, np.bool_)):
        raise TypeError(f"force must be True or False, got {type(force).__name__} {force!r}")
    return bool(force)


def label_limit(shape: tuple[int, ...]) -> int:
    """The most labels a plausible ``(H, W)`` labels image holds: ``max(1024, H * W // 16)``."""
    h, w = (int(s) for s in shape[-2:])
    return max(FREE_LABELS, h * w // MIN_PIXELS_PER_LABEL)


def count_labels(mask: np.ndarray) -> int:
    """Distinct non-zero values of a bool or integer ``mask``: a table of seen values when
    they are small (linear), else one sort (``numpy.unique`` is slower: 7 s for 12 M pixels)."""
    arr = np.asarray(mask).ravel()
    if arr.size == 0:
        return 0
    if arr.dtype == bool:
        return int(arr.any())
    if arr.dtype.kind in "iu" and int(arr.min()) >= 0 and int(arr.max()) <= 2 * arr.size + (1 << 16):
        seen = np.zeros(int(arr.max()) + 1, dtype=bool)
        seen[arr] = True
        return int(np.count_nonzero(seen[1:]))
    ordered = np.sort(arr)
    distinct = int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1
    return distinct - int(np.any(ordered == 0))


def check_label_count(count: int, shape: tuple[int, ...], *, force: bool = False, name: str = "mask") -> None:
    """Refuse ``count`` labels in an ``(H, W)`` plane if more than :func:`label_limit` allows.

    Raises
    ------
    ValueError
        Unless ``force``; the message suggests that image and mask may be swapped.
    TypeError
        If ``force`` is not a bool.
    """
    if _check_force(force):
        return
    limit = label_limit(shape)
    if count > limit:
        h, w = (int(s) for s in shape[-2:])
        raise ValueError(
            f"{name} has {count} labels on {h} x {w} pixels, more than the {limit} a labels image of "
            f"that size plausibly holds (one per {MIN_PIXELS_PER_LABEL} pixels): is it a photo, or "
            f"were image and mask swapped? Check the order (image first); {_FORCE}"
        )


def estimate_peak_bytes(shape: tuple[int, int], objects: int, *, size: int) -> int:
    """Lower estimate of a run's peak memory: ``objects`` crops at side ``size`` and the frames."""
    h, w = (int(s) for s in shape[-2:])
    return int(objects) * int(size) ** 2 * BYTES_PER_CROP_PIXEL + h * w * BYTES_PER_FRAME_PIXEL


def available_bytes(device=None) -> int | None:
    """Memory available now on ``device`` (host memory for the CPU and MPS; None if unknown)."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(dev)[0])
        except (RuntimeError, AssertionError):  # pragma: no cover - no such device
            return None
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil comes with distributed
        return None


def check_memory(
    shape: tuple[int, int], objects: int, *, size: int, device=None, force: bool = False, available: int | None = None
) -> None:
    """Refuse a run whose :func:`estimate_peak_bytes` exceeds the memory available.

    Parameters
    ----------
    shape : (int, int)
        The image's (H, W).
    objects : int
        How many objects are refined at once (crops held together).
    size : int
        The network's input side.
    device : torch.device or str, optional
        Where the crops live (default: the CPU).
    force : bool
        Skip the check.
    available : int, optional
        Bytes available (default: :func:`available_bytes` of ``device``).

    Raises
    ------
    ValueError
        Unless ``force``; the message gives both figures and the ways out.
    """
    if _check_force(force):
        return
    need = estimate_peak_bytes(shape, objects, size=size)
    have = available_bytes(device) if available is None else int(available)
    if have is not None and need > have:
        raise ValueError(
            f"refining {objects} objects at once needs at least {need / 2**30:.1f} GiB of memory, more "
            f"than the {have / 2**30:.1f} GiB available: were image and mask swapped? Refine fewer "
            f"labels at a time (labels=...), or {_FORCE}"
        )
