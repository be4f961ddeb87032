"""The command-line tool: refine (file and folder mode), demo, models, speed, errors."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import tifffile
from _cli_helpers import refine_argv

from napari_segrefiner.cli.main import main


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
    assert main(refine_argv(img, msk, out, tiny_checkpoint)) == 0
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert got.shape == mask.shape and got.dtype == np.uint8 and set(np.unique(got)) <= {0, 255}
    assert "mode=instance" in capsys.readouterr().out


def test_refine_keeps_labels_in_16bit_png_and_tif(tmp_path, tiny_checkpoint):
    img, msk, mask = _pair(tmp_path, labels=True)
    for ext in (".png", ".tif", ".npy"):
        out = tmp_path / f"out{ext}"
        assert main(refine_argv(img, msk, out, tiny_checkpoint, "--mode", "instance")) == 0
        got = (
            np.load(out)
            if ext == ".npy"
            else (tifffile.imread(out) if ext == ".tif" else cv2.imread(str(out), cv2.IMREAD_UNCHANGED))
        )
        assert got.shape == mask.shape
        assert set(np.unique(got)) <= {0, 7, 300}


def _folders(root):
    """root/images/{one,two}.png and root/masks/{one,two}.png."""
    images, masks = root / "images", root / "masks"
    images.mkdir()
    masks.mkdir()
    for name in ("one", "two"):
        img, msk, _ = _pair(root, name)
        img.rename(images / f"{name}.png")
        msk.rename(masks / f"{name}.png")
    return images, masks


def test_folder_mode_matches_pairs_by_name(tmp_path, tiny_checkpoint, capsys):
    images, masks = _folders(tmp_path)
    (images / "orphan.png").write_bytes((images / "one.png").read_bytes())
    out = tmp_path / "refined"
    assert main(refine_argv(images, masks, out, tiny_checkpoint)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["one.png", "segrefiner-manifest.json", "two.png"]
    assert "refined 2/2" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_image", "image file not found"),
        ("not_a_checkpoint", "not a readable PyTorch checkpoint"),
        ("shape_mismatch", "does not match the image"),
        ("bad_device", "device"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path, tiny_checkpoint, capsys, case, message):
    img, msk, _ = _pair(tmp_path)
    ckpt = str(tiny_checkpoint)
    args = ["refine", str(img), str(msk), "-o", str(tmp_path / "o.png"), "--device", "cpu", "--threads", "1"]
    if case == "missing_image":
        args[1] = str(tmp_path / "nope.png")
    elif case == "not_a_checkpoint":
        bad = tmp_path / "bad.pt"
        bad.write_bytes(b"this is not a checkpoint")
        ckpt = str(bad)
    elif case == "shape_mismatch":
        cv2.imwrite(str(msk), np.zeros((10, 10), np.uint8))
    elif case == "bad_device":
        args[args.index("--device") + 1] = "gpu7"
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
    assert (
        main(
            [
                "speed",
                "--configs",
                "lite-tiny",
                "--devices",
                "cpu",
                "--batches",
                "1",
                "2",
                "--repeats",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "s/object" in capsys.readouterr().out and out.is_file()


# --------------------------------------------------------------------------- #
# refine: outputs are checked before anything runs; inputs are never touched
# --------------------------------------------------------------------------- #
def _digests(root):
    """{relative path: sha256} of every file under root (links followed), and the links."""
    import hashlib

    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_symlink():
            out[str(p.relative_to(root))] = "link -> " + str(p.readlink())
    return out


@pytest.fixture
def layout(tmp_path):
    """in/a.png + in/a_mask.png (file mode); images/{one,two}.png + masks/{one,two}.png."""
    (tmp_path / "in").mkdir()
    _pair(tmp_path / "in")
    _folders(tmp_path)
    return tmp_path


def _refused_args(root, case):
    """The arguments of one refused command (after "refine"), building what the case needs."""
    a, m = str(root / "in" / "a.png"), str(root / "in" / "a_mask.png")
    images, masks = str(root / "images"), str(root / "masks")
    if case == "out_is_image":
        return [a, m, "-o", a]
    if case == "out_is_mask_through_dotdot":
        (root / "in" / "sub").mkdir()
        return [a, m, "-o", str(root / "in" / "sub" / ".." / "a_mask.png"), "--overwrite"]
    if case == "out_is_symlink_to_mask":
        (root / "link.png").symlink_to(root / "in" / "a_mask.png")
        return [a, m, "-o", str(root / "link.png"), "--overwrite"]
    if case == "out_is_hard_link_to_image":
        os.link(root / "in" / "a.png", root / "hard.png")
        return [a, m, "-o", str(root / "hard.png"), "--overwrite"]
    if case == "out_in_symlinked_input_folder":
        (root / "alias").symlink_to(root / "in", target_is_directory=True)
        return [a, m, "-o", str(root / "alias" / "a.png"), "--overwrite"]
    if case == "out_is_input_folder":
        return [a, m, "-o", str(root / "in")]
    if case == "out_exists":
        (root / "old.png").write_bytes(b"previous result")
        return [a, m, "-o", str(root / "old.png")]
    if case == "out_jpg":
        return [a, m, "-o", str(root / "out.jpg")]
    if case == "out_without_extension":
        return [a, m, "-o", str(root / "out")]
    if case == "ext_in_file_mode":
        return [a, m, "-o", str(root / "out.png"), "--ext", ".tif"]
    if case == "png_cannot_hold_labels":
        tifffile.imwrite(
            root / "in" / "big.tif", np.where(cv2.imread(m, cv2.IMREAD_UNCHANGED) > 0, 70000, 0).astype(np.uint32)
        )
        return [a, str(root / "in" / "big.tif"), "-o", str(root / "out.png")]
    if case == "mask_missing":
        return [a, str(root / "in" / "nope.png"), "-o", str(root / "out.png")]
    if case == "mask_folder_missing":
        return [images, str(root / "nope"), "-o", str(root / "out")]
    if case == "file_and_folder":
        return [a, masks, "-o", str(root / "out")]
    if case == "out_is_image_folder":
        return [images, masks, "-o", images, "--overwrite"]
    if case == "out_inside_mask_folder":
        return [images, masks, "-o", str(root / "masks" / "refined")]
    if case == "out_inside_mask_folder_through_symlink":
        (root / "alias").symlink_to(root / "masks", target_is_directory=True)
        return [images, masks, "-o", str(root / "alias" / "refined")]
    if case == "out_folder_is_a_file":
        return [images, masks, "-o", a]
    if case == "names_collide":
        (root / "images" / "two.tif").write_bytes((root / "images" / "two.png").read_bytes())
        return [images, masks, "-o", str(root / "out")]
    if case == "several_masks_for_one_image":
        (root / "masks" / "two.npy").write_bytes(b"not read")
        return [images, masks, "-o", str(root / "out")]
    if case == "outputs_exist":
        (root / "out").mkdir()
        (root / "out" / "two.png").write_bytes(b"previous result")
        return [images, masks, "-o", str(root / "out")]
    if case == "output_is_a_link_to_an_input":
        (root / "out").mkdir()
        (root / "out" / "one.png").symlink_to(root / "masks" / "one.png")
        return [images, masks, "-o", str(root / "out"), "--overwrite"]
    if case == "ext_jpg":
        return [images, masks, "-o", str(root / "out"), "--ext", ".jpg"]
    raise AssertionError(case)


REFUSED = {
    "out_is_image": "is the input file",
    "out_is_mask_through_dotdot": "is the input file",
    "out_is_symlink_to_mask": "is the input file",
    "out_is_hard_link_to_image": "is the input file",
    "out_in_symlinked_input_folder": "is the input file",
    "out_is_input_folder": "is a folder",
    "out_exists": "exists; pass --overwrite",
    "out_jpg": "extension '.jpg'",
    "out_without_extension": "no extension",
    "ext_in_file_mode": "--ext is for folder mode",
    "png_cannot_hold_labels": "PNG stores labels up to 65535",
    "mask_missing": "mask file not found",
    "mask_folder_missing": "folder not found",
    "file_and_folder": "must both be files or both be folders",
    "out_is_image_folder": "the IMAGE folder",
    "out_inside_mask_folder": "the MASK folder",
    "out_inside_mask_folder_through_symlink": "the MASK folder",
    "out_folder_is_a_file": "in folder mode -o names a folder",
    "names_collide": "two.png, two.tif would all be written to",
    "several_masks_for_one_image": "several masks named 'two'",
    "outputs_exist": "exists; pass --overwrite",
    "output_is_a_link_to_an_input": "is the input file",
    "ext_jpg": "extension '.jpg'",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_commands_change_nothing(layout, tiny_checkpoint, capsys, monkeypatch, case):
    from napari_segrefiner.models import refiner

    args = _refused_args(layout, case)
    before = _digests(layout)
    # every refusal comes before the model is loaded, hence before the first refinement
    monkeypatch.setattr(refiner, "load_refiner", lambda *a, **k: pytest.fail("the model was loaded"))
    code = main(["refine", *args, "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--threads", "1"])
    err = capsys.readouterr().err
    assert code != 0
    assert REFUSED[case] in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert _digests(layout) == before  # inputs byte-identical, nothing written or replaced


def test_overwrite_replaces_existing_outputs(layout, tiny_checkpoint):
    a, m = layout / "in" / "a.png", layout / "in" / "a_mask.png"
    out = layout / "old.png"
    out.write_bytes(b"previous result")
    common = ["--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--threads", "1"]
    assert main(["refine", str(a), str(m), "-o", str(out), *common]) == 2
    assert out.read_bytes() == b"previous result"
    inputs = _digests(layout / "in")
    assert main(["refine", str(a), str(m), "-o", str(out), "--overwrite", *common]) == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (64, 80)
    folder = layout / "out"
    folder.mkdir()
    (folder / "two.tif").write_bytes(b"previous result")
    assert (
        main(
            [
                "refine",
                str(layout / "images"),
                str(layout / "masks"),
                "-o",
                str(folder),
                "--ext",
                "tif",
                "--overwrite",
                *common,
            ]
        )
        == 0
    )
    assert sorted(p.name for p in folder.iterdir()) == ["one.tif", "segrefiner-manifest.json", "two.tif"]
    assert tifffile.imread(folder / "two.tif").shape == (64, 80)
    assert _digests(layout / "in") == inputs


def test_folder_mode_lists_unmatched_names(layout, tiny_checkpoint, capsys):
    (layout / "images" / "lonely.png").write_bytes((layout / "images" / "one.png").read_bytes())
    (layout / "masks" / "orphan.png").write_bytes((layout / "masks" / "one.png").read_bytes())
    out = layout / "refined"
    assert main(refine_argv(layout / "images", layout / "masks", out, tiny_checkpoint)) == 0
    err = capsys.readouterr().err
    assert "1 image(s) without a mask" in err and "lonely.png" in err
    assert "1 mask(s) without an image" in err and "orphan.png" in err
    assert sorted(p.name for p in out.iterdir()) == ["one.png", "segrefiner-manifest.json", "two.png"]


def test_refine_help_describes_every_argument(capsys):
    import argparse

    from napari_segrefiner.cli.main import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    refine_parser = sub.choices["refine"]
    missing = [a.dest for a in refine_parser._actions if not a.help]
    assert missing == []
    with pytest.raises(SystemExit):
        main(["refine", "--help"])
    text = capsys.readouterr().out
    for word in ("IMAGE", "MASK", "OUT", "--overwrite", "--ext", "--seed", "--steps", "--device", "--mode"):
        assert word in text


def test_an_empty_mask_is_written_unchanged_with_a_note(tmp_path, tiny_checkpoint, capsys):
    img, msk, _ = _pair(tmp_path)
    cv2.imwrite(str(msk), np.zeros((64, 80), np.uint8))
    out = tmp_path / "o.png"
    assert main(refine_argv(img, msk, out, tiny_checkpoint)) == 0
    assert "warning: mask is empty" in capsys.readouterr().err
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).max() == 0


def test_folder_mode_writes_the_empty_result_of_an_image_without_objects(tmp_path, tiny_checkpoint, capsys):
    images, masks = _folders(tmp_path)
    cv2.imwrite(str(masks / "two.png"), np.zeros((64, 80), np.uint8))  # an image with no object
    out = tmp_path / "refined"
    assert main(refine_argv(images, masks, out, tiny_checkpoint)) == 0
    captured = capsys.readouterr()
    assert "refined 2/2" in captured.out and "note on two.png: mask is empty" in captured.err
    assert cv2.imread(str(out / "two.png"), cv2.IMREAD_UNCHANGED).max() == 0
    assert cv2.imread(str(out / "one.png"), cv2.IMREAD_UNCHANGED).max() == 255


def test_a_single_file_run_shows_objects_done_on_stderr(tmp_path, tiny_checkpoint, capsys):
    img, msk, mask = _pair(tmp_path, labels=True)
    assert main(refine_argv(img, msk, tmp_path / "out.tif", tiny_checkpoint)) == 0
    err = capsys.readouterr().err
    objects = len(np.unique(mask)) - 1  # labels 7 and 300
    assert "refining" in err and f"{objects}/{objects}" in err and "object/s" in err


def test_image_and_mask_swapped_are_refused_with_a_hint(tmp_path, tiny_checkpoint, capsys):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)  # every pixel its own colour
    cv2.imwrite(str(tmp_path / "photo.png"), photo)
    _, msk, _ = _pair(tmp_path)
    out = tmp_path / "out.png"
    code = main(refine_argv(msk, tmp_path / "photo.png", out, tiny_checkpoint))
    err = capsys.readouterr().err
    assert code != 0 and not out.exists()
    assert "swapped" in err and "--force" in err
