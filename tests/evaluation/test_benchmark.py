"""Tests for napari_segrefiner.evaluation.benchmark (and its scoring loop) on tiny synthetic folders.

No real data. The coarse kinds, seeds and regions have their own tests (test_coarse.py), as
have the tables and result files (test_report.py).
"""

from __future__ import annotations

import argparse
import copy
import json

import cv2
import numpy as np
import pytest
import torch

from napari_segrefiner import LiteConfig, build_network
from napari_segrefiner.evaluation import benchmark as bm
from napari_segrefiner.evaluation import benchmark_cli, coarse
from napari_segrefiner.training.data import PairFolder
from napari_segrefiner.training.synthesis import dilate_erode, lowres_mask, modify_boundary

SIZE = 96


def _disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _image(mask, rng):
    base = np.where(mask[..., None], 200, 40).astype(np.int16)
    return np.clip(base + rng.integers(-15, 16, mask.shape + (3,)), 0, 255).astype(np.uint8)


def _write_split(root, ids):
    (root / "train.txt").write_text("\n".join(ids[:1]) + "\n")
    (root / "val.txt").write_text("\n".join(ids[1:]) + "\n")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A binary set (one bright disk per image) and a labels set (3 disks per image)."""
    rng = np.random.default_rng(0)
    binary = tmp_path_factory.mktemp("disks")
    labels = tmp_path_factory.mktemp("cells")
    for root in (binary, labels):
        (root / "images").mkdir()
        (root / "masks").mkdir()
    (labels / "labels").mkdir()
    ids = [f"im{i}" for i in range(4)]
    for i, name in enumerate(ids):
        m = _disk((SIZE, SIZE), 45 + 3 * i, 50 - 2 * i, 22 + i)
        cv2.imwrite(str(binary / "images" / f"{name}.png"), _image(m, rng)[..., ::-1])
        cv2.imwrite(str(binary / "masks" / f"{name}.png"), m.astype(np.uint8) * 255)
        lab = np.zeros((SIZE, SIZE), np.uint16)
        for k, (cy, cx, r) in enumerate([(25, 25, 13), (30, 70, 11 + i), (72, 45, 15)], start=1):
            lab[_disk((SIZE, SIZE), cy, cx, r)] = k
        cv2.imwrite(str(labels / "images" / f"{name}.png"), _image(lab > 0, rng)[..., ::-1])
        cv2.imwrite(str(labels / "masks" / f"{name}.png"), (lab > 0).astype(np.uint8) * 255)
        cv2.imwrite(str(labels / "labels" / f"{name}.png"), lab)
    _write_split(binary, ids)
    _write_split(labels, ids)
    return binary, labels


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the tiny network is fastest so, above all on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    from napari_segrefiner import load_refiner

    torch.manual_seed(0)
    net = build_network(LiteConfig.tiny()).eval()
    return load_refiner(net, device="cpu").with_options(size=64, min_area=16)  # fast; refines the small disks


KINDS = ["cascadepsp-0.8", "lowres-28", "dilate-3", "erode-3"]
METHODS = ["identity", "segrefiner", "grabcut", "random_walker"]


def _run(folders, model, **kw):
    args = dict(kinds=KINDS, methods=METHODS, max_items=2, model=model, device="cpu", progress=False)
    args.update(kw)
    return bm.run_benchmark(list(folders), **args)


@pytest.fixture(scope="module")
def results(folders, model):
    return _run(folders, model)


def _iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def _coarse_independently(kind, gt, rng):
    if kind == "cascadepsp-0.8":
        out = modify_boundary(gt, rng=rng, iou_target=0.8)
    elif kind == "lowres-28":
        out = lowres_mask(gt, size=28)
    elif kind == "dilate-3":
        out = dilate_erode(gt, k=3)
    else:
        out = dilate_erode(gt, k=-3)
    return out if out.any() else dilate_erode(gt, k=1)


def test_counts_and_selection(results, folders):
    disks, cells = (results["sets"][f.name] for f in folders)
    assert disks["available"] == 3 and disks["used"] == 2 and not disks["instance"]
    assert cells["available"] == 9 and cells["used"] == 2 and cells["instance"]
    for s in (disks, cells):
        assert s["indices"] == sorted(s["indices"]) and len(set(s["indices"])) == 2
        for kind in KINDS:
            expected = set(METHODS) if kind in coarse.DEFAULT_PEERS_KINDS else {"identity", "segrefiner"}
            assert set(s["kinds"][kind]["methods"]) == expected
            assert all(f["n"] == 2 and f["failures"] == 0 for f in s["kinds"][kind]["methods"].values())


def test_identity_matches_coarse_iou_computed_here(results, folders):
    for root in folders:
        s = results["sets"][root.name]
        folder = PairFolder(root, split="val")
        for kind in KINDS:
            ious = []
            for j in s["indices"]:
                ref = folder[j]
                _, fine = folder.load(ref)
                if ref.label is not None:  # instance: box padded by max(32, longer side)
                    y0, y1, x0, x1 = ref.bbox
                    pad = max(32, max(y1 - y0, x1 - x0))
                    fine = fine[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad]
                rng = np.random.default_rng(coarse.coarse_seed(root.name, j, kind, 0))
                ious.append(_iou(_coarse_independently(kind, fine, rng), fine))
            figures = s["kinds"][kind]["methods"]["identity"]
            assert figures["iou"] == pytest.approx(np.mean(ious), abs=1e-12)
            assert s["kinds"][kind]["coarse_iou"] == pytest.approx(np.mean(ious), abs=1e-12)
            assert figures["worse"] == 0.0
            assert figures["gain"] == 0.0


def test_identity_never_worse_and_metrics_in_range(results):
    for s in results["sets"].values():
        for k in s["kinds"].values():
            assert k["methods"]["identity"]["worse"] == 0.0
            for fig in k["methods"].values():
                for key in ("iou", "pooled_iou", "biou", "mba", "bf", "worse"):
                    assert 0.0 <= fig[key] <= 1.0
                assert fig["seconds_per_object"] >= 0.0


def _strip_timings(res):
    res = copy.deepcopy(res)
    for s in res["sets"].values():
        for k in s["kinds"].values():
            for fig in k["methods"].values():
                del fig["seconds_per_object"]
    return res["sets"]


def test_deterministic(results, folders, model):
    again = _run(folders, model)
    assert _strip_timings(again) == _strip_timings(results)
    # the coarse masks themselves are identical (digest of every mask)
    for name, s in results["sets"].items():
        for kind, k in s["kinds"].items():
            assert again["sets"][name]["kinds"][kind]["coarse_digest"] == k["coarse_digest"]


def test_peers_improve_on_disks(results, folders):
    disks = results["sets"][folders[0].name]
    for kind in coarse.DEFAULT_PEERS_KINDS:
        for peer in ("grabcut", "random_walker"):
            assert disks["kinds"][kind]["methods"][peer]["gain"] > 0.0, (kind, peer)


def _cli(argv):
    parser = argparse.ArgumentParser()
    benchmark_cli.add_arguments(parser)
    return benchmark_cli.run_from_args(parser.parse_args(argv))


def test_cli_writes_json_and_markdown(folders, tmp_path, capsys):
    out = tmp_path / "res" / "quality"
    code = _cli(
        [
            "--data",
            str(folders[0]),
            "--data",
            str(folders[1]),
            "--kinds",
            "lowres-28",
            "--methods",
            "identity",
            "grabcut",
            "--max-items",
            "1",
            "--out",
            str(out),
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "lowres-28" in printed and "grabcut" in printed
    data = json.loads((tmp_path / "res" / "quality.json").read_text())
    assert set(data) == {"meta", "sets"}
    for key in ("date", "git", "environment", "model", "seed", "kinds", "methods", "peers_kinds", "max_items"):
        assert key in data["meta"]
    assert {"torch", "torch_threads", "device"} <= set(data["meta"]["environment"])
    assert data["meta"]["model"] is None  # segrefiner not run: no model loaded
    for root in folders:
        s = data["sets"][root.name]
        assert {"available", "used", "indices", "objects", "kinds", "split"} <= set(s)
        figs = s["kinds"]["lowres-28"]["methods"]
        assert set(figs) == {"identity", "grabcut"}
        assert {"iou", "pooled_iou", "biou", "mba", "bf", "gain", "worse", "seconds_per_object"} <= set(figs["grabcut"])
    md = (tmp_path / "res" / "quality.md").read_text()
    assert "| coarse | method | IoU | pooled IoU | BIoU | mBA | BF | gain | worse | s/obj |" in md
    assert f"#### {folders[0].name}" in md and "| lowres-28 | grabcut |" in md


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--kinds", "blurry-7"], "unknown coarse kind 'blurry-7'"),
        (["--methods", "magic"], "unknown method 'magic'"),
        (["--peers-kinds", "nope"], "unknown coarse peers kind 'nope'"),
        (["--max-items", "0"], "max_items"),
        (["--device", "cuda:99" if torch.cuda.is_available() else "cuda"], "device"),
        (["--checkpoint", "/no/such/file.pt"], "no/such/file.pt"),
        (["--hints", "-1"], "hints must be an integer in [0, 50]"),
        (["--hints", "2", "--methods", "identity"], "hints needs the segrefiner method"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(folders, tmp_path, capsys, argv, needle):
    code = _cli(["--data", str(folders[0]), "--out", str(tmp_path / "q"), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "q.json").exists()


def test_missing_folder_and_missing_split(tmp_path, folders, capsys):
    assert _cli(["--data", str(tmp_path / "nowhere"), "--no-progress"]) == 2
    assert "data folder not found" in capsys.readouterr().err
    with pytest.raises(bm.BenchmarkError, match="unknown coarse kind"):
        bm.run_benchmark([folders[0]], kinds=["nope"], methods=["identity"], progress=False)
    (folders[0] / "val.txt").rename(tmp_path / "val.txt")  # only train.txt left: no val split
    try:
        with pytest.raises(bm.BenchmarkError, match="val"):
            bm.run_benchmark([folders[0]], methods=["identity"], progress=False)
    finally:
        (tmp_path / "val.txt").rename(folders[0] / "val.txt")


def test_failures_are_counted_and_per_item_records(folders, monkeypatch):
    from napari_segrefiner.evaluation import peers

    def broken(image, mask, seed=None):
        raise RuntimeError("peer crashed")

    monkeypatch.setattr(peers, "available_peers", lambda: {"grabcut": broken})
    res = bm.run_benchmark(
        [folders[0]],
        kinds=["lowres-28"],
        methods=["identity", "grabcut"],
        max_items=2,
        device="cpu",
        progress=False,
        per_item=True,
    )
    k = res["sets"][folders[0].name]["kinds"]["lowres-28"]
    fig = k["methods"]["grabcut"]
    assert fig["failures"] == 2 and len(fig["failure_examples"]) == 2
    assert "RuntimeError: peer crashed" in fig["failure_examples"][0]
    assert fig["iou"] == k["methods"]["identity"]["iou"] and fig["gain"] == 0.0  # a failure scores the coarse mask
    assert len(res["items"]) == 2
    for record in res["items"]:
        assert record["set"] == folders[0].name and record["kind"] == "lowres-28"
        assert set(record["methods"]) == {"identity", "grabcut"}
        assert record["methods"]["grabcut"]["iou"] == record["coarse_iou"]


def test_hints_report_iou_after_each_click_and_the_review_correlation(folders, model):
    from napari_segrefiner.evaluation.report import format_table

    res = _run(folders, model, kinds=["dilate-3"], methods=["identity", "segrefiner"], hints=2)
    assert res["meta"]["hints"] == 2
    for s in res["sets"].values():
        review = s["kinds"]["dilate-3"]["segrefiner_review"]
        after = review["iou_after_clicks"]
        assert list(after) == ["0", "1", "2"]
        # the first entry is the result the method table scores
        assert after["0"] == pytest.approx(s["kinds"]["dilate-3"]["methods"]["segrefiner"]["iou"])
        # clicks agree with the truth and are held: a click never moves the mean away from it here
        assert after["2"] >= after["1"] - 1e-9 >= after["0"] - 2e-9
        assert "uncertainty_spearman" in review and "uncertainty_spearman" in s
    assert "IoU after clicks 0:" in format_table(res)
