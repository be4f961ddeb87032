"""Reader and writer contributions: round trips for .tif/.tiff, .png and .npy, and fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segrefiner._napari._reader import get_reader, looks_like_mask
from napari_segrefiner._napari._writer import write_labels

PLUGIN = "napari-segrefiner"


def labels_2d(top=7, dtype=np.int32):
    out = np.zeros((40, 50), dtype=dtype)
    out[5:15, 5:20] = 1
    out[20:35, 25:45] = top
    return out


def read_back(path):
    reader = get_reader(str(path))
    assert reader is not None, f"{path.name} was not recognised as a mask"
    [(data, meta, kind)] = reader(str(path))
    assert kind == "labels" and meta["name"] == path.stem
    return data


@pytest.mark.parametrize("ext", [".tif", ".tiff", ".png", ".npy"])
@pytest.mark.parametrize("top", [7, 300])  # 8-bit and 16-bit values
def test_round_trip_2d(tmp_path, ext, top):
    data = labels_2d(top)
    path = tmp_path / f"cells_mask{ext}"
    assert write_labels(str(path), data, {}) == [str(path)]
    back = read_back(path)
    np.testing.assert_array_equal(back, data)
    if ext == ".png":
        assert back.dtype == (np.uint8 if top <= 255 else np.uint16)


@pytest.mark.parametrize("ext", [".tif", ".npy"])
def test_round_trip_stack_and_large_labels(tmp_path, ext):
    data = np.stack([labels_2d(70_000), labels_2d(3), np.zeros((40, 50), np.int32)])
    path = tmp_path / f"stack_labels{ext}"
    write_labels(str(path), data, {})
    np.testing.assert_array_equal(read_back(path), data)


def test_bool_mask_round_trips_as_uint8(tmp_path):
    path = tmp_path / "bin_mask.tif"
    write_labels(str(path), labels_2d() > 0, {})
    back = read_back(path)
    assert back.dtype == np.uint8 and set(np.unique(back)) == {0, 1}


def test_png_limits_have_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="up to 65535.*largest label is 70000.*tif or .npy"):
        write_labels(str(tmp_path / "a_mask.png"), labels_2d(70_000), {})
    with pytest.raises(ValueError, match="one 2-D image.*shape \\(2, 40, 50\\)"):
        write_labels(str(tmp_path / "b_mask.png"), np.stack([labels_2d()] * 2), {})
    with pytest.raises(ValueError, match="negative"):
        write_labels(str(tmp_path / "c_mask.png"), -labels_2d(), {})
    with pytest.raises(ValueError, match="use one of .png, .tif"):
        write_labels(str(tmp_path / "d_mask.jpg"), labels_2d(), {})
    with pytest.raises(ValueError, match="integers"):
        write_labels(str(tmp_path / "e_mask.npy"), labels_2d().astype(float), {})


def test_reader_declines_what_is_not_an_integer_mask(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb_mask.png")
    gray = (rng.normal(100, 20, (40, 50)).clip(0, 255)).astype(np.uint8)  # a noisy micrograph
    Image.fromarray(gray).save(tmp_path / "gray_seg.png")
    np.save(tmp_path / "float_mask.npy", labels_2d().astype(np.float32))
    (tmp_path / "broken_mask.tif").write_bytes(b"not a tiff")
    for name in ["rgb_mask.png", "gray_seg.png", "float_mask.npy", "broken_mask.tif", "missing_mask.npy"]:
        assert get_reader(str(tmp_path / name)) is None, name
    assert get_reader(str(tmp_path / "x.csv")) is None
    assert get_reader([str(tmp_path / "rgb_mask.png")] * 2) is None
    assert not looks_like_mask(gray) and looks_like_mask(labels_2d())
    assert not looks_like_mask(-labels_2d())


@pytest.mark.gui
def test_save_and_open_through_napari(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    data = labels_2d(300)
    source = viewer.add_labels(data, name="nuclei")
    for ext in (".tif", ".png", ".npy"):
        path = tmp_path / f"nuclei_mask{ext}"
        viewer.layers.selection = {source}
        viewer.layers.save(str(path), selected=True, plugin=PLUGIN)
        [layer] = viewer.open(str(path), plugin=PLUGIN)
        assert layer._type_string == "labels" and layer.name == "nuclei_mask"
        np.testing.assert_array_equal(layer.data, data)
        viewer.layers.remove(layer)
