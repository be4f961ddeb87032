"""``napari-segrefiner adapt`` and refining with an adapted model from the command line."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from _adapt_helpers import TINY, scene, store, tiny_refiner

from napari_segrefiner.adapt import adapt, save_adapted
from napari_segrefiner.cli.main import main
from napari_segrefiner.models.checkpoint import save_checkpoint


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SEGREFINER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def base_file(tmp_path):
    path = tmp_path / "base.pt"
    save_checkpoint(path, tiny_refiner().network, refine=TINY)
    return path


def _folders(tmp_path, labels: bool):
    image, coarse, final = scene(3)
    dirs = {k: tmp_path / k for k in ("images", "coarse", "final")}
    for d in dirs.values():
        d.mkdir()
    for stem in ("a", "b"):
        cv2.imwrite(str(dirs["images"] / f"{stem}.png"), image[:, :, ::-1])
        if labels:
            cv2.imwrite(str(dirs["coarse"] / f"{stem}.png"), coarse.astype(np.uint16))
            cv2.imwrite(str(dirs["final"] / f"{stem}.png"), final.astype(np.uint16))
        else:
            cv2.imwrite(str(dirs["coarse"] / f"{stem}.png"), (coarse == 1).astype(np.uint8) * 255)
            cv2.imwrite(str(dirs["final"] / f"{stem}.png"), (final == 1).astype(np.uint8) * 255)
    return [f"--{k}" if i % 2 == 0 else str(v) for k, v in dirs.items() for i in range(2)]


@pytest.mark.parametrize("labels, pairs", [(True, 6), (False, 2)])
def test_adapt_from_folders(tmp_path, cache, base_file, capsys, labels, pairs):
    args = _folders(tmp_path, labels)
    code = main(
        [
            "adapt",
            *args,
            "--base",
            str(base_file),
            "--max-steps",
            "2",
            "--threads",
            "1",
            "--name",
            "cli",
            "--save-pairs",
            str(tmp_path / "pairs"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and f"{pairs} pairs" in err and "held-out IoU" in out
    saved = cache / "adapted" / "cli.pt"
    assert ("saved" in out) == saved.is_file()
    if not saved.is_file():
        assert "nothing was saved" in out
    assert len(list((tmp_path / "pairs" / "masks").iterdir())) == pairs
    code = main(
        [
            "adapt",
            "--pairs",
            str(tmp_path / "pairs"),
            "--base",
            str(base_file),
            "--max-steps",
            "1",
            "--threads",
            "1",
            "--name",
            "again",
        ]
    )
    assert code == 0 and "held-out IoU" in capsys.readouterr().out


def test_refine_with_adapted_name_or_file(tmp_path, cache, capsys):
    res = adapt(tiny_refiner(), store(3), max_steps=1)
    path = save_adapted(res, "mine", force=True)
    image, coarse, _ = scene(2)
    cv2.imwrite(str(tmp_path / "i.png"), image)
    cv2.imwrite(str(tmp_path / "m.png"), coarse.astype(np.uint8))
    for flag, value in (("--model", "adapted:mine"), ("--checkpoint", str(path))):
        out = tmp_path / f"out{flag}.png"
        assert (
            main(
                [
                    "refine",
                    str(tmp_path / "i.png"),
                    str(tmp_path / "m.png"),
                    "-o",
                    str(out),
                    flag,
                    value,
                    "--device",
                    "cpu",
                    "--threads",
                    "1",
                ]
            )
            == 0
        )
        assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == coarse.shape
    assert (
        main(
            [
                "refine",
                str(tmp_path / "i.png"),
                str(tmp_path / "m.png"),
                "-o",
                str(tmp_path / "x.png"),
                "--model",
                "adapted:nope",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "no adapted model 'nope'" in capsys.readouterr().err


def test_adapt_errors_are_one_line(tmp_path, cache, base_file, capsys):
    assert main(["adapt", "--images", str(tmp_path)]) == 2
    assert "needs --images, --coarse and --final" in capsys.readouterr().err
    assert main(["adapt", "--pairs", str(tmp_path), "--images", str(tmp_path)]) == 2
    assert "either --pairs" in capsys.readouterr().err
    assert (
        main(
            [
                "adapt",
                "--images",
                str(tmp_path / "no"),
                "--coarse",
                str(tmp_path),
                "--final",
                str(tmp_path),
                "--base",
                str(base_file),
            ]
        )
        == 2
    )
    assert "--images: folder not found" in capsys.readouterr().err
    one = store(1).save(tmp_path / "one")
    assert main(["adapt", "--pairs", str(one), "--base", str(base_file)]) == 2
    assert "at least 2 pairs" in capsys.readouterr().err
    assert main(["adapt", "--pairs", str(one), "--base", str(tmp_path / "missing.pt")]) == 2
