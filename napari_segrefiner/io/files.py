"""Reading and writing images, masks and labels: the one owner of file I/O.

Used by the CLI, the napari reader and writer, the training data and the benchmark.

Formats: PNG (8/16-bit), JPEG and BMP (images; masks only with a warning), TIFF (any dtype,
stacks), and ``.npy`` (any dtype, never pickles). Paths may use any encoding (files are
decoded from bytes, not opened by name through OpenCV).

Conventions
-----------
* Images are returned as stored (RGB order, dtype kept); scaling to 8-bit is
  :func:`napari_segrefiner.io.images.as_rgb_uint8`'s job, at training and inference alike.
* A **binary mask** (bool, or integers that are only 0 and 1) is written as 0/255 in PNG
  and TIFF files and as it is in ``.npy``; reading a file that holds only 0 and 1, or 0
  and its dtype's maximum (0/255, 0/65535), gives a bool mask. The CLI and the napari
  writer thus save a one-object mask the same way. **Labels** (several values) keep their values and
  their dtype's width (a uint16 label image stays 16-bit even when every label is < 256).
* A colour (RGB) mask image becomes labels: one id per distinct colour, black = 0.
* Every write goes to a temporary file in the target folder and is renamed into place
  (:func:`~napari_segrefiner.io.atomic.atomic_write`), so a crash never leaves a partial
  file; the file gets the permissions a plain write would give under the user's umask.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .atomic import atomic_write

__all__ = [
    "IMAGE_EXTENSIONS",
    "LOSSY_EXTENSIONS",
    "MASK_EXTENSIONS",
    "atomic_write",
    "mask_writer",
    "read_array",
    "read_image",
    "read_labels",
    "read_mask",
    "write_mask",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")
MASK_EXTENSIONS = (".png", ".tif", ".tiff", ".npy")  # what masks and labels can be written as
LOSSY_EXTENSIONS = (".jpg", ".jpeg")


def read_array(path: str | os.PathLike) -> np.ndarray:
    """Read a file as it is stored (RGB(A) channel order for colour images).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file cannot be decoded or the extension is not supported.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    ext = p.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(f"cannot read {p.name}: unsupported extension (use one of {', '.join(IMAGE_EXTENSIONS)})")
    try:
        if ext == ".npy":
            return np.load(p, allow_pickle=False)
        if ext in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(p)
        import cv2

        arr = cv2.imdecode(np.fromfile(str(p), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except Exception as exc:
        raise ValueError(f"cannot decode {p}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if arr is None:
        raise ValueError(f"cannot decode image file: {p}")
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[..., ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., [2, 1, 0, 3]]
    return np.ascontiguousarray(arr)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image: (H, W) gray or (H, W, 3|4) RGB(A), with its stored dtype."""
    img = read_array(path)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ValueError(f"{path} is not a 2-D gray or colour image: shape {img.shape}")
    return img


def _colour_labels(arr: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) colour-coded labels -> (H, W) ids, one per distinct colour, black = 0."""
    rgb = arr[..., :3]
    if (rgb == rgb[..., :1]).all():  # gray stored as RGB
        return np.ascontiguousarray(rgb[..., 0])
    flat = rgb.reshape(-1, 3).astype(np.uint64)  # one integer per colour, in the colours' order
    bits = np.uint64(8 if rgb.dtype == np.uint8 else 16)
    packed = (flat[:, 0] << (bits + bits)) | (flat[:, 1] << bits) | flat[:, 2]
    if rgb.dtype == np.uint8:  # a table of the 2**24 colours: linear (a sort of a 12 MP photo takes seconds)
        seen = np.zeros(1 << 24, dtype=bool)
        seen[packed] = True
        seen[0] = False  # black is background
        ids = np.cumsum(seen, dtype=np.int64)
        out = ids[packed].reshape(rgb.shape[:2])
    else:
        colours, inverse = np.unique(packed, return_inverse=True)
        ids = np.arange(1, len(colours) + 1, dtype=np.int64)
        black = np.flatnonzero(colours == 0)
        if black.size:
            ids[black[0]] = 0
            ids[black[0] + 1 :] -= 1
        out = ids[inverse.reshape(-1)].reshape(rgb.shape[:2])
    top = int(out.max())
    return out.astype(np.uint8 if top <= 255 else np.uint16 if top <= 65535 else np.int32)


def read_mask(path: str | os.PathLike, *, stack: bool = False) -> np.ndarray:
    """Read a mask or labels file.

    Parameters
    ----------
    path : str or path-like
        PNG, TIFF, ``.npy`` (or, with a warning, JPEG/BMP).
    stack : bool
        Accept more than two dimensions (TIFF/``.npy`` stacks).

    Returns
    -------
    ndarray
        bool for a binary mask (only 0/1, or 0 and the dtype's maximum); otherwise integer
        labels with the file's dtype. Colour images become labels (one id per colour).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If it cannot be decoded, holds floats other than 0/1, negative or NaN values, or
        has the wrong number of dimensions.
    """
    p = Path(path)
    arr = read_array(p)
    if arr.ndim == 3 and arr.shape[2] in (3, 4) and p.suffix.lower() not in (".tif", ".tiff", ".npy"):
        arr = _colour_labels(arr)
    if arr.ndim != 2 and not (stack and arr.ndim > 2):
        raise ValueError(f"{p.name}: a mask must be 2-D, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.isin(arr, (0.0, 1.0)).all():
            raise ValueError(f"{p.name}: a float mask may only hold 0 and 1")
        return arr != 0
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{p.name}: masks must hold integers, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{p.name}: labels must not be negative")
    if p.suffix.lower() in LOSSY_EXTENSIONS + (".bmp",):
        values = np.unique(arr)
        if len(values) > 2:  # compression artefacts: a lossy file cannot hold exact labels
            warnings.warn(
                f"{p.name} is a lossy {p.suffix} file with {len(values)} grey levels: read as a binary mask "
                "(threshold at half the maximum); save masks as PNG or TIFF",
                UserWarning,
                stacklevel=2,
            )
            return arr > (int(values[-1]) // 2)
    top = int(arr.max()) if arr.size else 0
    if top in (1, np.iinfo(arr.dtype).max) and np.isin(arr, (0, top)).all():
        return arr != 0  # 0/1 or 0/255 (0/65535): a binary mask
    return arr


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read a 2-D instance-label image as int32 (0 = background)."""
    arr = read_mask(path)
    if arr.dtype == bool:
        return arr.astype(np.int32)
    return arr.astype(np.int32, copy=False)


def _is_binary(mask: np.ndarray) -> bool:
    return mask.dtype == bool or (mask.size > 0 and int(mask.max()) == 1 and int(mask.min()) == 0)


def _for_png(mask: np.ndarray, name: str) -> np.ndarray:
    if mask.ndim != 2:
        raise ValueError(
            f"cannot save {name}: PNG holds one 2-D image but the mask has shape {mask.shape}; "
            "save stacks as .tif or .npy"
        )
    if _is_binary(mask):
        return (mask != 0).astype(np.uint8) * 255
    if mask.size and mask.min() < 0:
        raise ValueError(f"cannot save {name}: PNG cannot store negative labels; use .tif or .npy")
    top = int(mask.max()) if mask.size else 0
    if top > 65535:
        raise ValueError(
            f"cannot save {name}: PNG stores labels up to 65535 (16 bit) but the largest label is "
            f"{top}; save it as .tif or .npy instead"
        )
    if mask.dtype in (np.uint8, np.uint16):
        return mask
    return mask.astype(np.uint8 if top <= 255 else np.uint16)


def mask_writer(path: str | os.PathLike, mask: np.ndarray) -> Callable[[Path], None]:
    """Check that the format of ``path`` can hold ``mask``; return ``write(file)`` that writes it.

    For callers that put the file in place themselves
    (:func:`~napari_segrefiner.io.atomic.write_temp` then :func:`~napari_segrefiner.io.atomic.place`);
    :func:`write_mask` does both. Parameters and errors as :func:`write_mask`.
    """
    target = Path(path)
    ext = target.suffix.lower()
    if ext not in MASK_EXTENSIONS:
        raise ValueError(f"cannot save {target.name}: masks are written as {', '.join(MASK_EXTENSIONS)}")
    arr = np.asarray(mask)
    if arr.dtype.kind not in "biu":
        raise ValueError(f"cannot save {target.name}: labels must be integers or bool, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"cannot save {target.name}: a mask has at least 2 dimensions, got shape {arr.shape}")
    if ext != ".npy" and arr.size == 0:
        raise ValueError(f"cannot save {target.name}: the mask has no pixels (shape {arr.shape}); use .npy")
    if ext == ".npy":
        return lambda tmp: np.save(tmp, arr)
    if ext == ".png":
        import cv2

        data = _for_png(arr, target.name)

        def write_png(tmp: Path) -> None:
            ok, buf = cv2.imencode(".png", data)
            if not ok:  # pragma: no cover - OpenCV refuses only impossible layouts
                raise ValueError(f"cannot encode {target.name} as PNG")
            buf.tofile(str(tmp))

        return write_png
    import tifffile

    data = (arr != 0).astype(np.uint8) * 255 if _is_binary(arr) else arr
    # minisblack: a (3, H, W) labels stack is three label planes, never an RGB picture
    return lambda tmp: tifffile.imwrite(tmp, data, compression="zlib", photometric="minisblack")


def write_mask(path: str | os.PathLike, mask: np.ndarray, *, overwrite: bool = True) -> Path:
    """Write a mask or labels array (atomically); the extension picks the format.

    Parameters
    ----------
    path : str or path-like
        Ends in ``.png`` (2-D, labels up to 65535), ``.tif``/``.tiff`` or ``.npy``.
    mask : ndarray
        A binary mask (bool or 0/1: written 0/255, or as it is in ``.npy``) or integer
        labels (their values and dtype width are kept).
    overwrite : bool
        Replace an existing file (keeping its permission bits). False never replaces one,
        not even a file that appeared while this one was being written.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        For another extension, floats, fewer than 2 dimensions, or data the format cannot
        hold (PNG: one 2-D image, labels up to 65535; PNG/TIFF: at least one pixel).
    FileExistsError
        ``overwrite=False`` and ``path`` exists.
    """
    return atomic_write(path, mask_writer(path, mask), overwrite=overwrite)
