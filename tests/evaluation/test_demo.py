"""The demo (napari_segrefiner.evaluation.demo): the shipped sample refined, figures and an overlay."""

from __future__ import annotations

import cv2

from napari_segrefiner.evaluation.demo import run_demo


def test_the_demo_reports_the_figures_it_computes_and_writes_the_overlay(tmp_path, tiny_model):
    lines = []
    out = tmp_path / "demo.png"
    figures = run_demo(out, model=tiny_model, device="cpu", seed=0, log=lines.append)
    assert figures["objects"] == 21 and out.is_file() and cv2.imread(str(out)).shape[1] > 3 * 320
    assert f"IoU  coarse {figures['iou_before']:.3f} -> refined {figures['iou_after']:.3f}" in lines
    assert 0.0 <= figures["iou_after"] <= 1.0 and lines[-1] == f"wrote {out}"
