"""Tests for napari_segrefiner.evaluation.report: tables, Markdown, result files, run metadata."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch

from napari_segrefiner.evaluation import report


def _fig(iou, *, gain=0.0, worse=0.0, seconds=0.5, failures=0):
    return {
        "n": 2,
        "iou": iou,
        "pooled_iou": iou,
        "biou": 0.25,
        "mba": 0.5,
        "bf": 0.75,
        "gain": gain,
        "worse": worse,
        "seconds_per_object": seconds,
        "failures": failures,
    }


@pytest.fixture
def results():
    """A results dict shaped as run_benchmark returns it, made by hand (no run)."""
    return {
        "meta": {
            "date": "2024-05-01T12:00:00+00:00",
            "git": {"commit": "0123456789abcdef", "dirty": True},
            "environment": {"device": "cpu", "torch_threads": 2, "torch": "2.3.0"},
            "model": {"source": "segrefiner-lite", "parameters": 1_234_567},
            "seed": 7,
        },
        "sets": {
            "disks": {
                "split": "val",
                "used": 2,
                "available": 3,
                "region": "whole image",
                "kinds": {
                    "erode-3": {
                        "coarse_iou": 0.5,
                        "empty_coarse_replaced": 1,
                        "methods": {
                            "identity": _fig(0.5),
                            "grabcut": _fig(0.625, gain=0.125, worse=0.5, seconds=12.34, failures=1),
                        },
                    },
                    "lowres-28": {"coarse_iou": None, "empty_coarse_replaced": 0, "methods": {}},
                },
            },
        },
    }


def test_fmt():
    assert report._fmt(None, "pct") == "-"
    assert report._fmt(0.1234, "pct") == "12.3"
    assert report._fmt(0.0123, "signed") == "+1.2" and report._fmt(-0.5, "signed") == "-50.0"
    assert report._fmt(0.5, "share") == "50%"
    assert report._fmt(12.34, "sec") == "12.3"
    assert report._fmt(0.5, "sec") == "0.500"
    assert report._fmt(0.0001, "sec") == "<0.001"


def test_headline(results):
    assert report._headline(results) == (
        "2024-05-01T12:00:00+00:00, commit 0123456789 (dirty), model segrefiner-lite (1.23 M params), "
        "device cpu (2 torch threads), torch 2.3.0, seed 7"
    )
    results["meta"]["git"] = None
    results["meta"]["model"] = None
    assert "commit unknown, model not run," in report._headline(results)


def test_format_table(results):
    text = report.format_table(results)
    assert text.endswith("\n") and not text.endswith("\n\n")
    lines = text.splitlines()
    assert lines[0] == f"quality benchmark: {report._headline(results)}"
    assert lines[2] == "disks / erode-3: 2 of 3 objects (whole image), coarse IoU 50.0, 1 empty coarse replaced"
    assert lines[3].split() == ["method", "IoU", "pooled", "IoU", "BIoU", "mBA", "BF", "gain", "worse", "s/obj"]
    assert lines[4].split() == ["identity", "50.0", "50.0", "25.0", "50.0", "75.0", "+0.0", "0%", "0.500"]
    assert lines[5].split() == [
        "grabcut",
        "(1",
        "failed)",
        "62.5",
        "62.5",
        "25.0",
        "50.0",
        "75.0",
        "+12.5",
        "50%",
        "12.3",
    ]
    assert len({len(line) for line in lines[3:6]}) == 1  # aligned columns
    assert lines[7] == "disks / lowres-28: 2 of 3 objects (whole image), coarse IoU -"


def test_format_markdown(results):
    md = report.format_markdown(results)
    assert md.startswith("<!-- written by `napari-segrefiner benchmark`; figures x100 except s/obj -->\n")
    assert f"Quality benchmark, {report._headline(results)}." in md
    assert "#### disks (val split, 2 of 3 objects, whole image)" in md
    assert "| coarse | method | IoU | pooled IoU | BIoU | mBA | BF | gain | worse | s/obj |" in md
    assert "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|" in md
    assert "| erode-3 | identity | 50.0 | 50.0 | 25.0 | 50.0 | 75.0 | +0.0 | 0% | 0.500 |" in md
    assert "| erode-3 | grabcut | 62.5 | 62.5 | 25.0 | 50.0 | 75.0 | +12.5 | 50% | 12.3 |" in md
    assert "Empty coarse masks replaced by the GT dilated by 1 px: erode-3 1." in md
    results["sets"]["disks"]["split"] = None
    assert "#### disks (all split," in report.format_markdown(results)


@pytest.mark.parametrize("out", ["res/quality", "res/quality.json", "res/quality.md"])
def test_write_results(results, tmp_path, out):
    json_path, md_path = report.write_results(results, tmp_path / out)
    assert (json_path, md_path) == (tmp_path / "res" / "quality.json", tmp_path / "res" / "quality.md")
    assert json_path.read_text() == json.dumps(results, indent=1, default=str) + "\n"
    assert json.loads(json_path.read_text()) == results
    assert md_path.read_text() == report.format_markdown(results)
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["quality.json", "quality.md"]  # no temp files
    umask = os.umask(0)
    os.umask(umask)
    for path in (json_path, md_path):  # the usual permissions, not those of a temporary file (0600)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("fail", ["render", "write", "replace"])
def test_failed_write_leaves_previous_files_and_no_temp_file(results, tmp_path, monkeypatch, fail):
    out = tmp_path / "quality"
    json_path, md_path = report.write_results(results, out)
    before = {json_path: json_path.read_text(), md_path: md_path.read_text()}
    changed = json.loads(json.dumps(results))
    changed["meta"]["seed"] = 8

    class Boom(RuntimeError):
        pass

    def boom(*args, **kwargs):
        raise Boom("disk full")

    if fail == "render":  # the JSON cannot be made: nothing is touched
        monkeypatch.setattr(report.json, "dumps", boom)
    elif fail == "write":  # the write itself fails half-way
        real_open = open

        class HalfWriter:
            def __init__(self, fh):
                self.fh = fh

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.fh.close()

            def write(self, text):
                self.fh.write(text[: len(text) // 2])
                raise Boom("disk full")

        monkeypatch.setattr(report, "open", lambda *a, **k: HalfWriter(real_open(*a, **k)), raising=False)
    else:  # the rename fails
        monkeypatch.setattr(report.os, "replace", boom)
    with pytest.raises(Boom):
        report.write_results(changed, out)
    assert {p: p.read_text() for p in before} == before  # the previous files are intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quality.json", "quality.md"]  # no temp file remains


def test_git_commit_of_this_checkout():
    info = report.git_commit()
    repo = report.Path(report.__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        assert info is None
        return
    assert info is not None and set(info) == {"commit", "dirty"}
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert info["commit"] == head and isinstance(info["dirty"], bool)


def test_git_commit_without_git(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(report.subprocess, "run", no_git)
    assert report.git_commit() is None


def test_environment():
    env = report.environment(torch.device("cpu"))
    assert {
        "napari_segrefiner",
        "python",
        "torch",
        "numpy",
        "opencv",
        "torch_threads",
        "opencv_threads",
        "cpu_count",
        "machine",
        "processor",
        "device",
    } <= set(env)
    assert env["device"] == "cpu" and env["torch"] == torch.__version__ and "cuda_device" not in env
    assert env["torch_threads"] == torch.get_num_threads()
    json.dumps(env)  # JSON-ready
