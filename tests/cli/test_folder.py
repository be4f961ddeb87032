"""Folder mode of ``napari-segrefiner refine`` (napari_segrefiner.cli.folder): resumable, atomic, on a cluster.

A run stopped half way and started again finishes without redoing finished files and
without a partial file in the output; outputs the run did not write and record are still
refused without --overwrite (see also ``test_nothing_lost.py``).
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from _cli_helpers import refine_argv, write_pairs

from napari_segrefiner.cli import folder as cli_folder
from napari_segrefiner.cli.main import main
from napari_segrefiner.cli.manifest import MANIFEST

N = 6
REAL_REFINE_FILE = cli_folder.refine_file


@pytest.fixture
def ckpt(biased_checkpoint):
    return biased_checkpoint


@pytest.fixture
def pairs(tmp_path):
    """images/p0..p5.png and masks/p0..p5.png: two discs per image, coarse square labels."""
    write_pairs(tmp_path, n=N)
    return tmp_path


def _args(root, ckpt, *extra):
    return refine_argv(root / "images", root / "masks", root / "out", ckpt, *extra)


def _listing(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


class _Counting:
    """Wraps cli_folder.refine_file: counts calls, raises KeyboardInterrupt on call ``stop``."""

    def __init__(self, stop=None):
        self.calls, self.stop, self.real = [], stop, REAL_REFINE_FILE

    def __call__(self, spec, image_p, mask_p, out_p, opts):
        if self.stop is not None and len(self.calls) == self.stop:
            raise KeyboardInterrupt
        self.calls.append(out_p.name)
        return self.real(spec, image_p, mask_p, out_p, opts)


def test_interrupted_run_resumes_without_redoing_finished_files(pairs, ckpt, monkeypatch, capsys):
    out = pairs / "out"
    first = _Counting(stop=3)
    monkeypatch.setattr(cli_folder, "refine_file", first)
    assert main(_args(pairs, ckpt)) == 130  # Ctrl-C after three files
    done = _listing(out)
    assert sorted(done) == ["p0.png", "p1.png", "p2.png", MANIFEST]  # no partial or temporary file
    entries = json.loads((out / MANIFEST).read_text())["outputs"]
    assert sorted(k for k, e in entries.items() if e["output"]) == ["p0.png", "p1.png", "p2.png"]

    second = _Counting()
    monkeypatch.setattr(cli_folder, "refine_file", second)
    assert main(_args(pairs, ckpt)) == 0  # no --overwrite needed for its own files
    assert sorted(second.calls) == ["p3.png", "p4.png", "p5.png"]
    after = _listing(out)
    assert sorted(after) == [*(f"p{k}.png" for k in range(N)), MANIFEST]
    assert all(after[name] == done[name] for name in ("p0.png", "p1.png", "p2.png"))  # not rewritten
    assert "3 of 6 outputs already done" in capsys.readouterr().err

    third = _Counting()
    monkeypatch.setattr(cli_folder, "refine_file", third)
    assert main(_args(pairs, ckpt)) == 0
    assert third.calls == [] and _listing(out) == after  # everything done: nothing is touched


@pytest.mark.slow
def test_killed_run_leaves_no_partial_output_and_a_rerun_keeps_a_user_placed_file(tmp_path, ckpt):
    """kill -9 a real process after 3 of 8 outputs; a file the user then copies to an output
    the run had not written yet is refused, not replaced; the rerun that goes on sweeps what
    the killed run left (temporary files, its lock, its journal) and does not redo what it
    wrote."""
    import os
    import signal
    import subprocess
    import sys
    import time

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:160, :160]
    for k in range(8):
        image = rng.integers(0, 60, (160, 160, 3), dtype=np.uint8)
        mask = np.zeros((160, 160), np.uint8)
        for v in range(1, 13):
            cy, cx = rng.integers(15, 145, size=2)
            image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 60] = 220
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= 80] = v
        cv2.imwrite(str(images / f"q{k:02d}.png"), image)
        cv2.imwrite(str(masks / f"q{k:02d}.png"), mask)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "napari_segrefiner.cli",
        "refine",
        str(images),
        str(masks),
        "-o",
        str(out),
        "--checkpoint",
        str(ckpt),
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1")
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if len(list(out.glob("q*.png"))) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    assert proc.wait(timeout=60) == -signal.SIGKILL  # it was stopped half way, not finished
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("q*.png")}
    for name in finished:  # whatever is visible is complete: never a partial image
        assert cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED) is not None, name
    assert (out / ".segrefiner-lock").is_file()  # the killed run's lock is still there...
    later = sorted({f"q{k:02d}.png" for k in range(8)} - set(finished))
    assert later, "the run finished before it was killed"
    user = out / later[-1]
    user.write_bytes((images / "q00.png").read_bytes())  # the user copies a file there
    mine = out / ".q000.notes.tmp.png"
    mine.write_bytes(b"the user's notes")

    assert main(_args(tmp_path, ckpt)) == 2  # ...but it does not block: the rerun refuses the user's file
    assert user.read_bytes() == (images / "q00.png").read_bytes()
    user.unlink()
    assert main(_args(tmp_path, ckpt)) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"q{k:02d}.png" for k in range(8)] + [MANIFEST, mine.name])  # temporaries swept
    assert mine.read_bytes() == b"the user's notes"
    assert all((out / name).stat().st_mtime_ns == t for name, t in finished.items())  # not redone


def test_resumed_outputs_equal_an_uninterrupted_run(pairs, ckpt, monkeypatch):
    monkeypatch.setattr(cli_folder, "refine_file", _Counting(stop=2))
    main(_args(pairs, ckpt))
    monkeypatch.setattr(cli_folder, "refine_file", _Counting())
    assert main(_args(pairs, ckpt)) == 0
    whole = pairs / "whole"
    args = _args(pairs, ckpt)
    args[4] = str(whole)
    assert main(args) == 0
    for k in range(N):
        assert (pairs / "out" / f"p{k}.png").read_bytes() == (whole / f"p{k}.png").read_bytes()
    assert cv2.imread(str(whole / "p0.png"), cv2.IMREAD_UNCHANGED).any()


def test_an_edited_manifest_entry_never_makes_a_file_the_tools_own(pairs, ckpt, monkeypatch, capsys):
    """``"output": null`` edited into an entry (the old "claimed" state) no longer lets a
    rerun replace the file; only the tool's own temporary names are swept."""
    import subprocess
    import sys

    out = pairs / "out"
    assert main(_args(pairs, ckpt)) == 0
    data = json.loads((out / MANIFEST).read_text())
    data["outputs"]["p4.png"]["output"] = None
    (out / MANIFEST).write_text(json.dumps(data))
    before = (out / "p4.png").read_bytes()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / f".segrefiner-tmp-{int(dead.stdout)}-0badc0de-p4.png"  # a killed run's temporary file
    stale.write_bytes(b"half a png")
    users = [out / ".p4.k2j3h4g5.tmp.png", out / ".q000.notes.tmp.png"]  # look like the old temporaries
    for p in users:
        p.write_bytes(b"the user's")
    counting = _Counting()
    monkeypatch.setattr(cli_folder, "refine_file", counting)
    capsys.readouterr()
    assert main(_args(pairs, ckpt)) == 2
    assert "p4.png exists; pass --overwrite" in capsys.readouterr().err
    assert (out / "p4.png").read_bytes() == before and counting.calls == []
    assert main(_args(pairs, ckpt, "--overwrite")) == 0
    assert counting.calls == ["p4.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(f"p{k}.png" for k in range(N)), MANIFEST, *(p.name for p in users)]
    )
    assert all(p.read_bytes() == b"the user's" for p in users)


@pytest.mark.slow
@pytest.mark.parametrize("change", ["foreign_file", "edited_output", "other_seed", "changed_input"])
def test_outputs_the_run_did_not_make_are_still_refused(pairs, ckpt, change, capsys):
    out = pairs / "out"
    assert main(_args(pairs, ckpt)) == 0
    extra = []
    if change == "foreign_file":
        (out / "p1.png").unlink()
        (out / "p1.png").write_bytes(b"someone else's result")
        data = json.loads((out / MANIFEST).read_text())
        del data["outputs"]["p1.png"]
        (out / MANIFEST).write_text(json.dumps(data))
    elif change == "edited_output":
        (out / "p1.png").write_bytes(b"edited by hand")
    elif change == "other_seed":
        extra = ["--seed", "7"]
    else:
        img = cv2.imread(str(pairs / "images" / "p1.png"))
        cv2.imwrite(str(pairs / "images" / "p1.png"), 255 - img)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(_args(pairs, ckpt, *extra)) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(_args(pairs, ckpt, *extra, "--overwrite")) == 0


@pytest.mark.slow
def test_workers_run_on_a_local_cluster_with_the_same_results(pairs, ckpt):
    pytest.importorskip("distributed")
    assert main(_args(pairs, ckpt)) == 0
    cluster_out = pairs / "cluster"
    args = _args(pairs, ckpt, "--workers", "2")
    args[4] = str(cluster_out)
    assert main(args) == 0
    for k in range(N):
        assert (cluster_out / f"p{k}.png").read_bytes() == (pairs / "out" / f"p{k}.png").read_bytes()
    entries = json.loads((cluster_out / MANIFEST).read_text())["outputs"]
    assert all(e["output"] for e in entries.values()) and len(entries) == N


def test_workers_are_refused_in_file_mode(pairs, ckpt, capsys):
    args = [
        "refine",
        str(pairs / "images" / "p0.png"),
        str(pairs / "masks" / "p0.png"),
        "-o",
        str(pairs / "o.png"),
        "--checkpoint",
        str(ckpt),
        "--workers",
        "2",
    ]
    assert main(args) == 2
    assert "folder mode and .zarr" in capsys.readouterr().err


# ------------------------------------------------------------------------ zarr mode ---
