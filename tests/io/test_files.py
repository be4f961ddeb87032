"""napari_segrefiner.io: the one owner of reading and writing images, masks and labels."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import tifffile

from napari_segrefiner.io import files as io


def _png(path, array):
    assert cv2.imwrite(str(path), array)
    return path


def test_read_image_keeps_dtype_and_gives_rgb_order(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    rgb = io.read_image(_png(tmp_path / "red.png", bgr))
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == 200).all() and (rgb[..., 1:] == 0).all()
    deep = np.arange(20, dtype=np.uint16).reshape(4, 5) * 1000
    got = io.read_image(_png(tmp_path / "deep.png", deep))
    assert got.dtype == np.uint16 and np.array_equal(got, deep)  # scaling is imaging's job


def test_any_path_encoding(tmp_path):
    path = tmp_path / "noyaux_é_核.png"
    m = np.zeros((6, 7), np.uint8)
    m[1:4, 2:5] = 255
    io.write_mask(path, m > 0)
    assert io.read_mask(path).sum() == 9 and io.read_image(path).shape == (6, 7)


def test_binary_masks_read_as_bool(tmp_path):
    for name, values, dtype in [
        ("a.png", (0, 255), np.uint8),
        ("b.png", (0, 1), np.uint8),
        ("c.png", (0, 65535), np.uint16),
        ("d.tif", (0, 1), np.uint16),
    ]:
        m = np.zeros((5, 6), dtype)
        m[1:3, 1:4] = values[1]
        path = tmp_path / name
        tifffile.imwrite(path, m) if name.endswith(".tif") else _png(path, m)
        got = io.read_mask(path)
        assert got.dtype == bool and got.sum() == 6, name


def test_labels_keep_values_and_dtype(tmp_path):
    lab = np.zeros((4, 5), np.uint16)
    lab[0, 0], lab[3, 4] = 300, 7
    got = io.read_mask(_png(tmp_path / "lab.png", lab))
    assert got.dtype == np.uint16 and got[0, 0] == 300 and got[3, 4] == 7
    assert io.read_labels(tmp_path / "lab.png").dtype == np.int32
    single = np.zeros((4, 5), np.uint8)
    single[1:3, 1:3] = 7  # one label that is not 1 and not 255: labels, not a binary mask
    assert io.read_mask(_png(tmp_path / "seven.png", single)).dtype == np.uint8


def test_colour_label_png_gives_one_id_per_colour(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[1:3, 1:3] = (255, 0, 0)
    rgb[3:5, 4:7] = (0, 0, 255)
    rgb[0, 7] = (0, 0, 255)
    got = io.read_mask(_png(tmp_path / "colours.png", rgb[..., ::-1]))
    assert got.shape == (6, 8) and set(np.unique(got)) == {0, 1, 2}
    assert len(np.unique(got[1:3, 1:3])) == 1 and got[3, 4] == got[0, 7] != got[1, 1]
    gray_as_rgb = np.repeat((rgb[..., :1] > 0).astype(np.uint8) * 255, 3, axis=2)
    assert io.read_mask(_png(tmp_path / "g.png", gray_as_rgb)).dtype == bool


def test_lossy_mask_is_thresholded_with_a_warning(tmp_path):
    yy, xx = np.mgrid[:32, :32]
    m = np.where((yy - 15.5) ** 2 + (xx - 14.2) ** 2 <= 81, 255, 0).astype(np.uint8)
    path = tmp_path / "mask.jpg"
    cv2.imwrite(str(path), m, [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert len(np.unique(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))) > 2  # the artefacts are real
    with pytest.warns(UserWarning, match="lossy .jpg"):
        got = io.read_mask(path)
    assert got.dtype == bool and abs(int(got.sum()) - int((m > 0).sum())) < 20


def test_bad_files_have_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.read_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot decode"):
        io.read_mask(tmp_path / "junk.png")
    np.save(tmp_path / "f.npy", np.full((3, 3), 0.5))
    with pytest.raises(ValueError, match="only hold 0 and 1"):
        io.read_mask(tmp_path / "f.npy")
    np.save(tmp_path / "s.npy", np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="must be 2-D"):
        io.read_mask(tmp_path / "s.npy")
    assert io.read_mask(tmp_path / "s.npy", stack=True).shape == (2, 3, 3)
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="unsupported extension"):
        io.read_array(tmp_path / "x.gif")


@pytest.mark.parametrize("ext", [".png", ".tif", ".npy"])
def test_write_read_round_trip(tmp_path, ext):
    binary = np.zeros((20, 30), bool)
    binary[5:15, 5:25] = True
    labels = np.zeros((20, 30), np.uint16)
    labels[2:8, 2:8], labels[10:18, 12:28] = 3, 200  # all < 256, still 16-bit
    p = io.write_mask(tmp_path / f"bin{ext}", binary)
    assert np.array_equal(io.read_mask(p), binary)
    p = io.write_mask(tmp_path / f"lab{ext}", labels)
    back = io.read_mask(p)
    assert np.array_equal(back, labels) and back.dtype == np.uint16


def test_binary_is_written_as_0_255_everywhere(tmp_path):
    ones = np.zeros((8, 8), np.uint8)
    ones[2:5, 2:5] = 1  # a one-object labels layer (napari) is the same binary mask as bool (CLI)
    for ext in (".png", ".tif"):
        a = io.write_mask(tmp_path / f"a{ext}", ones)
        b = io.write_mask(tmp_path / f"b{ext}", ones > 0)
        raw_a, raw_b = io.read_array(a), io.read_array(b)
        assert np.array_equal(raw_a, raw_b) and set(np.unique(raw_a)) == {0, 255}


def test_write_refuses_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="masks are written as"):
        io.write_mask(tmp_path / "m.jpg", np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="up to 65535"):
        io.write_mask(tmp_path / "m.png", np.full((4, 4), 70_000, np.int32))
    with pytest.raises(ValueError, match="integers or bool"):
        io.write_mask(tmp_path / "m.npy", np.zeros((4, 4), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file_and_leaves_no_partial_one(tmp_path, monkeypatch):
    path = tmp_path / "out.tif"
    old = np.zeros((10, 10), np.uint16)
    old[2:4, 2:4] = 9
    io.write_mask(path, old)

    def crash(tmp, data, **kwargs):
        with open(tmp, "wb") as fh:
            fh.write(b"II*\x00partial")  # half a TIFF, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(tifffile, "imwrite", crash)
    with pytest.raises(KeyboardInterrupt):
        io.write_mask(path, np.ones((10, 10), np.uint16) * 5)
    assert np.array_equal(io.read_mask(path), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]


def test_no_warning_for_clean_masks(tmp_path):
    m = np.zeros((5, 5), np.uint8)
    m[1:3, 1:3] = 255
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        io.read_mask(_png(tmp_path / "m.png", m))
