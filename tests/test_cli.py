"""The command-line tool: refine (file and folder mode), demo, models, speed, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile

from napari_segrefiner.cli import main


def _pair(tmp_path, name="a", labels=False):
    yy, xx = np.mgrid[:64, :80]
    image = np.zeros((64, 80, 3), np.uint8)
    mask = np.zeros((64, 80), np.uint16 if labels else np.uint8)
    image[(yy - 30) ** 2 + (xx - 25) ** 2 <= 100] = 220
    mask[18:42, 13:37] = 7 if labels else 255
    if labels:
        image[(yy - 30) ** 2 + (xx - 60) ** 2 <= 64] = 220
        mask[20:40, 50:70] = 300  # a label above 255: must survive the png round trip
    cv2.imwrite(str(tmp_path / f"{name}.png"), image)
    cv2.imwrite(str(tmp_path / f"{name}_mask.png"), mask)
    return tmp_path / f"{name}.png", tmp_path / f"{name}_mask.png", mask


def test_refine_binary_png(tmp_path, tiny_checkpoint, capsys):
    img, msk, mask = _pair(tmp_path)
    out = tmp_path / "out.png"
    assert main(["refine", str(img), str(msk), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--device", "cpu"]) == 0
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert got.shape == mask.shape and got.dtype == np.uint8 and set(np.unique(got)) <= {0, 255}
    assert "mode=instance" in capsys.readouterr().out


def test_refine_keeps_labels_in_16bit_png_and_tif(tmp_path, tiny_checkpoint):
    img, msk, mask = _pair(tmp_path, labels=True)
    for ext in (".png", ".tif", ".npy"):
        out = tmp_path / f"out{ext}"
        assert main(["refine", str(img), str(msk), "-o", str(out), "--checkpoint", str(tiny_checkpoint),
                     "--device", "cpu", "--mode", "instance"]) == 0
        got = np.load(out) if ext == ".npy" else (tifffile.imread(out) if ext == ".tif" else cv2.imread(str(out), cv2.IMREAD_UNCHANGED))
        assert got.shape == mask.shape
        assert set(np.unique(got)) <= {0, 7, 300}


def test_folder_mode_matches_pairs_by_name(tmp_path, tiny_checkpoint, capsys):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for name in ("one", "two"):
        img, msk, _ = _pair(tmp_path, name)
        img.rename(images / f"{name}.png")
        msk.rename(masks / f"{name}.png")
    (images / "orphan.png").write_bytes((images / "one.png").read_bytes())
    out = tmp_path / "refined"
    assert main(["refine", str(images), str(masks), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["one.png", "two.png"]
    assert "refined 2/2" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_image", "image file not found"),
        ("not_a_checkpoint", "not a readable PyTorch checkpoint"),
        ("shape_mismatch", "does not match the image"),
        ("empty_mask", "mask is empty"),
        ("bad_device", "device"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path, tiny_checkpoint, capsys, case, message):
    img, msk, _ = _pair(tmp_path)
    ckpt = str(tiny_checkpoint)
    args = ["refine", str(img), str(msk), "-o", str(tmp_path / "o.png"), "--device", "cpu"]
    if case == "missing_image":
        args[1] = str(tmp_path / "nope.png")
    elif case == "not_a_checkpoint":
        bad = tmp_path / "bad.pt"
        bad.write_bytes(b"this is not a checkpoint")
        ckpt = str(bad)
    elif case == "shape_mismatch":
        cv2.imwrite(str(msk), np.zeros((10, 10), np.uint8))
    elif case == "empty_mask":
        cv2.imwrite(str(msk), np.zeros((64, 80), np.uint8))
    elif case == "bad_device":
        args[-1] = "gpu7"
    code = main(args + ["--checkpoint", ckpt])
    err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_demo_writes_overlay_and_prints_iou(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "IoU  coarse" in text and out.is_file()
    png = cv2.imread(str(out))
    assert png.shape[0] > 256 and png.shape[1] > 3 * 320  # three zoomed panels side by side


def test_models_and_unknown_download(capsys):
    assert main(["models"]) == 0
    assert "segrefiner-lr" in capsys.readouterr().out
    assert main(["download", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_speed_runs_for_a_tiny_network(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert main(["speed", "--configs", "lite-tiny", "--devices", "cpu", "--batches", "1", "2", "--repeats", "1",
                 "--out", str(out)]) == 0
    assert "s/object" in capsys.readouterr().out and out.is_file()
