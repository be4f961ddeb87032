"""Property tests (hypothesis) of the doors user data comes in by: ``refine``, ``io.read_mask``
and checkpoint files.

Whatever the shapes, dtypes, values and options:

* the only exceptions are ``ValueError``/``TypeError`` (``CheckpointError`` is a
  ``ValueError``; ``FileNotFoundError`` only for a missing file), with a one-line message;
* the inputs are never modified;
* a result has the mask's shape and dtype, holds no label the mask did not hold (0 aside),
  and leaves labels that were not selected exactly as they were;
* what ``io.write_mask`` writes, ``io.read_mask`` reads back (binary masks as bool);
* a checkpoint with a non-float or non-finite tensor, or a setting out of its documented
  range, is refused (one-line CheckpointError, within 5 s); whatever loads gives finite logits;
* a mask with more than ``max(1024, H * W / 16)`` labels is refused (with the hint that
  image and mask may be swapped) unless ``force=True``, by ``refine`` and ``refine_lazy``.

Small ``max_examples`` and ``derandomize=True``: a few seconds, the same cases every run,
and no example database written into the checkout.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_segrefiner.api import refine
from napari_segrefiner.io import files as io

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ALLOWED = (ValueError, TypeError)


def _one_line(exc: BaseException) -> None:
    assert str(exc).strip() and "\n" not in str(exc).strip(), f"{type(exc).__name__}: {exc!r}"


# --------------------------------------------------------------------------- #
# refine
# --------------------------------------------------------------------------- #
IMAGE_DTYPES = [np.uint8, np.uint16, np.int16, np.float32, np.float64, np.bool_]
MASK_DTYPES = [np.bool_, np.uint8, np.uint16, np.int32, np.int64, np.uint64, np.float32, np.float64]


def _pick(valid: bool, good: list, bad: list) -> st.SearchStrategy:
    """``good`` values only, or any of ``good`` and ``bad``."""
    return st.sampled_from(good if valid else good + bad)


@st.composite
def refine_cases(draw, valid: bool):
    """(image, mask, options); with ``valid`` every input is one ``refine`` must accept."""
    h = draw(st.integers(2 if valid else 1, 24))
    w = draw(st.integers(2 if valid else 1, 24))
    channels = draw(_pick(valid, [None, 3, 4, 1], [2]))
    shape = (h, w) if channels is None else (h, w, channels)
    idtype = np.dtype(draw(st.sampled_from(IMAGE_DTYPES)))
    elements = None
    if idtype.kind == "f":
        width = idtype.itemsize * 8
        elements = st.one_of(st.floats(0.0, 1.0, width=width), st.floats(-1e6, 1e6, width=width))
        if not valid:
            elements = st.one_of(elements, st.sampled_from([float("nan"), float("inf"), -float("inf")]))
    image = draw(hnp.arrays(idtype, shape, elements=elements))
    mdtype = np.dtype(draw(st.sampled_from(MASK_DTYPES)))
    mshape = draw(_pick(valid, [(h, w)], [(h, w + 1), (h, w, 1)]))
    if mdtype.kind == "f":
        values = _pick(valid, [0.0, 1.0], [0.5, float("nan")])
    elif mdtype.kind == "b":
        values = st.booleans()
    else:
        info = np.iinfo(mdtype)
        low, high = (0, min(int(info.max), 2**63 - 1)) if valid else (int(info.min), int(info.max))
        values = st.one_of(st.sampled_from([0, 0, 0, 1, 2, 3, 7]), st.integers(low, high))
    mask = draw(hnp.arrays(mdtype, mshape, elements=values))
    if valid and not mask.any():
        mask.flat[draw(st.integers(0, mask.size - 1))] = 1
    options = {"seed": draw(_pick(valid, [0, 1, 2**64 - 1, None], [2**64, -1]))}
    if draw(st.booleans()):
        options["mode"] = draw(_pick(valid, ["auto", "instance", "whole"], ["hr", "fast"]))
    if draw(st.booleans()):
        options["steps"] = draw(_pick(valid, [None, 1, 2], [0, 7, 2.5]))
    if draw(st.booleans()):
        present = sorted({int(v) for v in np.unique(mask) if v != 0 and np.isfinite(v)})
        some = st.lists(st.sampled_from(present), min_size=1, unique=True) if present else st.just([1])
        options["labels"] = draw(
            some if valid else st.one_of(some, st.lists(st.integers(-2, 9), max_size=3), st.just([1.7]))
        )
    for name, good, bad in (
        ("size", [64, 32], [60, 0]),
        ("pad", [0, 3, 20], [-1]),
        ("min_area", [0, 4, 10**6], [10**9, 1e3]),
        ("context", [0.0, 2.0], [float("nan"), -1.0]),
    ):
        if draw(st.booleans()):
            options[name] = draw(_pick(valid, good, bad))
    return image, mask, options


def _refine(tiny_model, image, mask, options):
    """Run refine on copies-checked inputs; returns the result, or None after an allowed error."""
    image_copy, mask_copy = image.copy(), mask.copy()
    out = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # percentiles of extreme floats
            out = refine(image, mask, model=tiny_model, device="cpu", **{"size": 64, **options})
    except ALLOWED as exc:
        _one_line(exc)
    assert np.array_equal(image, image_copy, equal_nan=image.dtype.kind == "f")
    assert np.array_equal(mask, mask_copy, equal_nan=mask.dtype.kind == "f")
    return out


@settings(FUZZ, max_examples=40)
@given(case=refine_cases(valid=True))
def test_refine_valid_inputs(tiny_model, case):
    image, mask, options = case
    out = _refine(tiny_model, image, mask, options)
    assert out is not None, "refine refused a valid input"
    assert out.shape == mask.shape and out.dtype == mask.dtype
    assert set(np.unique(out).tolist()) <= set(np.unique(mask).tolist()) | {0}
    labels = options.get("labels")
    if labels is not None:
        for value in set(np.unique(mask).tolist()) - set(labels) - {0}:
            assert np.array_equal(out == value, mask == value), f"label {value} was not selected but changed"


@settings(FUZZ, max_examples=40)
@given(case=refine_cases(valid=False))
def test_refine_any_inputs(tiny_model, case):
    image, mask, options = case
    out = _refine(tiny_model, image, mask, options)
    if out is not None:
        assert out.shape == mask.shape and out.dtype == mask.dtype
        assert set(np.unique(out).tolist()) <= set(np.unique(mask).tolist()) | {0}


# --------------------------------------------------------------------------- #
# io.read_mask / io.write_mask
# --------------------------------------------------------------------------- #
READ_EXTENSIONS = [".png", ".tif", ".tiff", ".npy", ".jpg", ".bmp", ".txt", ""]


@settings(FUZZ, max_examples=40)
@given(
    data=st.binary(max_size=300),
    ext=st.sampled_from(READ_EXTENSIONS),
    header=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"\x93NUMPY\x01\x00", b"\xff\xd8\xff"]),
)
def test_read_mask_of_random_bytes(tmp_path_factory, data, ext, header):
    path = tmp_path_factory.mktemp("bytes") / f"m{ext}"
    path.write_bytes(header + data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = io.read_mask(path)
    except ALLOWED as exc:
        _one_line(exc)
        return
    assert path.read_bytes() == header + data
    assert got.ndim == 2 and (got.dtype == bool or got.dtype.kind in "iu")


WRITE_DTYPES = [np.bool_, np.uint8, np.uint16, np.uint32, np.int8, np.int32, np.int64, np.uint64, np.float32]


@st.composite
def mask_arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(WRITE_DTYPES)))
    shape = draw(st.sampled_from([(draw(st.integers(1, 12)), draw(st.integers(1, 12))), (0, 4), (2, 3, 4), (5,)]))
    if dtype.kind == "f":
        values = st.sampled_from([0.0, 1.0, 0.5, float("nan")])
    elif dtype.kind == "b":
        values = st.booleans()
    else:
        info = np.iinfo(dtype)
        common = [v for v in (0, 0, 1, 2, 255, int(info.max)) if v <= info.max]
        values = st.one_of(st.sampled_from(common), st.integers(int(info.min), int(info.max)))
    return draw(hnp.arrays(dtype, shape, elements=values))


def _read_back_matches(arr: np.ndarray, got: np.ndarray) -> None:
    assert got.shape == arr.shape
    if got.dtype == bool:  # a binary mask: one non-zero value at most
        assert len(set(np.unique(arr).tolist()) - {0}) <= 1
        assert np.array_equal(got, arr != 0)
    else:
        assert np.array_equal(got.astype(np.float64), arr.astype(np.float64)) and np.array_equal(got, arr)


@settings(FUZZ, max_examples=60)
@given(arr=mask_arrays(), ext=st.sampled_from([".png", ".tif", ".npy", ".jpg"]))
def test_write_then_read_mask_round_trips(tmp_path_factory, arr, ext):
    path = tmp_path_factory.mktemp("arrays") / f"m{ext}"
    copy = arr.copy()
    try:
        io.write_mask(path, arr)
    except ALLOWED as exc:
        _one_line(exc)
        assert not path.exists() and not list(path.parent.iterdir())  # nothing half-written
        return
    finally:
        assert np.array_equal(arr, copy, equal_nan=arr.dtype.kind == "f")
    try:
        got = io.read_mask(path, stack=arr.ndim > 2)
    except ALLOWED as exc:  # e.g. negative labels, 1-D or empty arrays: written as .npy, refused on reading
        _one_line(exc)
        return
    _read_back_matches(arr, got)


@settings(FUZZ, max_examples=40)
@given(arr=mask_arrays())
def test_read_mask_of_arrays_saved_by_other_tools(tmp_path_factory, arr):
    """Arrays saved with np.save / tifffile as they are (floats, negatives, stacks)."""
    import tifffile

    folder = tmp_path_factory.mktemp("saved")
    np.save(folder / "m.npy", arr)
    if arr.size and arr.ndim >= 2:  # what tifffile can write
        tifffile.imwrite(folder / "m.tif", arr, photometric="minisblack")
    for path in sorted(folder.iterdir()):
        try:
            got = io.read_mask(path)
        except ALLOWED as exc:
            _one_line(exc)
            continue
        assert got.ndim == 2 and (got.dtype == bool or got.dtype.kind in "iu")
        if path.suffix == ".npy":
            _read_back_matches(arr.astype(bool) if arr.dtype.kind == "f" else arr, got)


def test_read_mask_of_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.read_mask(tmp_path / "nope.png")


# --------------------------------------------------------------------------- #
# checkpoints: bad dtypes, values and settings are refused at load, quickly
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def tiny_state():
    import torch

    from napari_segrefiner.models.config import LiteConfig
    from napari_segrefiner.models.nets import build_network

    torch.manual_seed(0)
    return build_network(LiteConfig.tiny()).state_dict()


CKPT_DTYPES = ["float32", "float16", "bfloat16", "float64", "complex64", "bool", "int64", "uint8"]
SETTINGS = ["num_timesteps", "model_channels", "num_res_blocks", "num_heads", "norm_groups", "head_channels"]


@st.composite
def checkpoint_cases(draw):
    dtype = draw(st.sampled_from(CKPT_DTYPES))
    scale = draw(st.sampled_from([1.0, 1.0, 1e30, float("nan"), float("inf")]))
    spread = draw(st.sampled_from(["one", "all"]))
    values = st.one_of(st.integers(-3, 70_000), st.sampled_from([0, 1, 6, 64, 65, 1 << 16]))
    changes = draw(st.dictionaries(st.sampled_from(SETTINGS), values, max_size=2))
    return dtype, scale, spread, changes


@settings(FUZZ, max_examples=30)
@given(case=checkpoint_cases())
def test_checkpoints_with_bad_dtypes_values_or_settings(tmp_path_factory, tiny_state, case):
    import dataclasses
    import time

    import torch

    from napari_segrefiner.models.checkpoint import NETWORK_RANGES, CheckpointError
    from napari_segrefiner.models.config import LiteConfig
    from napari_segrefiner.models.probe import probe_network
    from napari_segrefiner.models.refiner import load_refiner

    dtype, scale, spread, changes = case
    state = {}
    for i, (key, value) in enumerate(tiny_state.items()):
        if spread == "all" or i == 3:
            value = value * scale
        state[key] = value.to(getattr(torch, dtype))
    path = tmp_path_factory.mktemp("ckpt") / "fuzz.pt"
    config = {**dataclasses.asdict(LiteConfig.tiny()), "arch": "lite", **changes}
    torch.save(
        {"format": "napari-segrefiner", "version": 2, "config": config, "state_dict": state, "refine": {}, "meta": {}},
        path,
    )
    start = time.perf_counter()
    try:
        refiner = load_refiner(path, device="cpu")
    except CheckpointError as exc:
        _one_line(exc)
        assert str(path) in str(exc)
        event(f"refused: {str(exc).split(': ', 1)[1][:40]}")
        refiner = None
    assert time.perf_counter() - start < 5.0
    out_of_range = any(not NETWORK_RANGES[k][0] <= v <= NETWORK_RANGES[k][1] for k, v in changes.items())
    if (
        dtype not in ("float32", "float16", "bfloat16", "float64")
        or scale != scale
        or scale == float("inf")
        or out_of_range
    ):
        assert refiner is None, "a checkpoint with non-float, non-finite or out-of-range content loaded"
    if refiner is not None:  # whatever loads gives finite logits
        event("loaded")
        assert all(
            v.is_floating_point() and bool(torch.isfinite(v).all()) for v in refiner.network.state_dict().values()
        )
        probe_network(refiner.network, num_timesteps=refiner.schedule.num_timesteps)


# --------------------------------------------------------------------------- #
# label counts: a mask with implausibly many labels is refused unless forced
# --------------------------------------------------------------------------- #
@settings(FUZZ, max_examples=30)
@given(
    h=st.integers(1, 64),
    w=st.integers(1, 64),
    n=st.one_of(st.integers(1, 64), st.integers(1000, 4500)),
    force=st.booleans(),
    lazy=st.booleans(),
)
@example(h=64, w=64, n=4096, force=True, lazy=False)
@example(h=64, w=64, n=4096, force=True, lazy=True)
@example(h=64, w=64, n=4096, force=False, lazy=True)
def test_label_count_rule(tiny_model, h, w, n, force, lazy):
    from napari_segrefiner.lazy.refine import refine_lazy

    mask = (np.arange(h * w, dtype=np.int64) % n + 1).reshape(h, w).astype(np.int32)
    count = len(set(mask.ravel().tolist()))  # every value is a label
    limit = max(1024, h * w // 16)
    image = np.zeros((h, w), np.uint8)
    kwargs = dict(model=tiny_model, force=force, min_area=10**6)  # nothing is refined: only the checks run
    try:
        if lazy:
            out = refine_lazy(image, mask, **kwargs).compute(scheduler="sync") if min(h, w) >= 2 else None
        else:
            out = refine(image, mask, mode="instance", **kwargs)
    except ValueError as exc:
        _one_line(exc)
        if "labels on" in str(exc):
            event("refused: too many labels")
            assert count > limit and not force
            assert "swapped" in str(exc) and "force=True" in str(exc)
        else:
            event("refused: other")
        return
    event("ran" if count <= limit else "ran: forced")
    assert count <= limit or force
    assert out is None or np.array_equal(out, mask)


@settings(FUZZ, max_examples=40)
@given(arr=mask_arrays())
def test_count_labels_matches_a_set(arr):
    from napari_segrefiner.io.plausible import count_labels

    if arr.dtype.kind == "f":
        arr = (
            arr.astype(np.int64) if np.isfinite(arr).all() else np.zeros(arr.shape, bool)
        )  # masks are never float here
    assert count_labels(arr) == len(set(arr.ravel().tolist()) - {0})
