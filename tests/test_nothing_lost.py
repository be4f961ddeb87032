"""Nothing lost, round two (issue #20): the CLI never clobbers a file it did not write.

* Two runs into one output folder (or .zarr): one refuses at once, the other finishes and
  owns every file.
* A file that appears at an output while a run refines (file, folder and zarr mode) is not
  replaced without --overwrite.
* A killed zarr run's rerun keeps a file the user put at the output.
* File mode sweeps only its own temporary files of dead processes; outputs get 0644 under
  umask 022, and --overwrite keeps a replaced file's mode.

(The folder-mode kill -9 case is ``test_cli_folder.py::test_killed_run_...``.)
"""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest
from _cli_helpers import dead_pid, refine_argv, sample_stores, write_pairs

from napari_segrefiner.cli import folder as cli_folder
from napari_segrefiner.cli.main import main
from napari_segrefiner.cli.manifest import MANIFEST, file_id

REAL_REFINE_FILE = cli_folder.refine_file


@pytest.fixture
def ckpt(biased_checkpoint):
    return biased_checkpoint


def _args(images, masks, out, ckpt, *extra):
    return refine_argv(images, masks, out, ckpt, *extra)


def test_two_concurrent_runs_into_one_folder_one_refuses_and_the_other_owns_every_file(
    tmp_path, ckpt, monkeypatch, capsys
):
    images, masks_a = write_pairs(tmp_path)
    _, masks_b = write_pairs(tmp_path, shift=3)
    out = tmp_path / "out"
    started, release = threading.Event(), threading.Event()

    def held(*args):  # run A waits inside its first refinement until B has tried
        started.set()
        assert release.wait(30)
        return REAL_REFINE_FILE(*args)

    monkeypatch.setattr(cli_folder, "refine_file", held)
    codes = {}
    a = threading.Thread(target=lambda: codes.setdefault("a", main(_args(images, masks_a, out, ckpt))))
    a.start()
    try:
        assert started.wait(60)
        capsys.readouterr()
        codes["b"] = main(_args(images, masks_b, out, ckpt))
        err = capsys.readouterr().err
    finally:
        release.set()
        a.join(60)
    assert codes == {"a": 0, "b": 2}
    assert f"output folder {out} is being written by another run (process {os.getpid()}" in err
    entries = json.loads((out / MANIFEST).read_text())["outputs"]
    assert sorted(entries) == [f"p{k}.png" for k in range(4)]
    for name, entry in entries.items():  # every file is run A's, with A's mask, as recorded
        assert entry["inputs"]["mask"] == file_id(masks_a / name)
        assert entry["output"] == file_id(out / name)
    assert sorted(p.name for p in out.iterdir()) == sorted([*entries, MANIFEST])  # no lock, journal or temporary


def test_folder_mode_never_replaces_a_file_that_appears_during_the_run(tmp_path, ckpt, monkeypatch, capsys):
    images, masks = write_pairs(tmp_path)
    out = tmp_path / "out"

    def appearing(spec, image_p, mask_p, out_p, opts):
        if out_p.name == "p2.png":
            out_p.write_bytes(b"the user's")  # saved by another tool while p2 is being refined
        return REAL_REFINE_FILE(spec, image_p, mask_p, out_p, opts)

    monkeypatch.setattr(cli_folder, "refine_file", appearing)
    assert main(_args(images, masks, out, ckpt)) == 0  # the other three are written
    assert "skipped p2.png" in capsys.readouterr().err
    assert (out / "p2.png").read_bytes() == b"the user's"
    assert "p2.png" not in json.loads((out / MANIFEST).read_text())["outputs"]
    assert sorted(p.name for p in out.iterdir()) == sorted([f"p{k}.png" for k in range(4)] + [MANIFEST])
    monkeypatch.setattr(cli_folder, "refine_file", REAL_REFINE_FILE)
    assert main(_args(images, masks, out, ckpt)) == 2  # a rerun treats it as the user's: refused
    assert (out / "p2.png").read_bytes() == b"the user's"


def _file_args(tmp_path, ckpt, out, *extra):
    images, masks = write_pairs(tmp_path, n=1)
    return refine_argv(images / "p0.png", masks / "p0.png", out, ckpt, *extra)


def test_file_mode_checks_its_output_again_just_before_the_rename(tmp_path, ckpt, monkeypatch, capsys):
    from napari_segrefiner.engine import run

    out = tmp_path / "o" / "out.tif"
    real = run.start

    def appearing(*args, **kwargs):
        steps = real(*args, **kwargs)
        out.parent.mkdir(exist_ok=True)
        out.write_bytes(b"the user's")  # saved by another tool during the refinement
        return steps

    monkeypatch.setattr(run, "start", appearing)
    assert main(_file_args(tmp_path, ckpt, out)) == 2
    assert "appeared while this run was writing it); it was not replaced; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"the user's" and sorted(p.name for p in out.parent.iterdir()) == ["out.tif"]


def test_file_mode_sweeps_its_own_leftovers_keeps_the_users_and_gives_normal_modes(tmp_path, ckpt):
    folder = tmp_path / "o"
    folder.mkdir()
    out = folder / "out.tif"
    dead = dead_pid()
    stale = folder / f".segrefiner-tmp-{dead}-0badc0de-out.tif"  # what kill -9 during the write left
    other = folder / f".segrefiner-tmp-{dead}-0badc0de-other.tif"  # another output's: not this run's business
    users = [folder / ".out.k2j3h4g5.tmp.tif", folder / ".q000.notes.tmp.png"]
    for p in (stale, other, *users):
        p.write_bytes(b"x")
    old = os.umask(0o022)
    try:
        args = _file_args(tmp_path, ckpt, out)
        assert main(args) == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
        os.chmod(out, 0o640)
        assert main([*args, "--overwrite"]) == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o640  # --overwrite keeps the mode
    finally:
        os.umask(old)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["out.tif", other.name, *(p.name for p in users)])


# ------------------------------------------------------------------------------ zarr mode
@pytest.fixture
def stores(tmp_path):
    sample_stores(tmp_path, side=128)
    return tmp_path


def _zargs(root, ckpt, *extra):
    return refine_argv(root / "img.zarr", root / "lab.zarr", root / "out.zarr", ckpt, *extra)


def test_zarr_killed_then_rerun_keeps_a_user_placed_output(stores, ckpt, monkeypatch, capsys):
    from napari_segrefiner.lazy import store

    real = store.write_block
    writes = []

    def dying(block, folder, region):
        if len(writes) == 2:
            raise KeyboardInterrupt  # stopped half way
        writes.append(region)
        real(block, folder, region)

    monkeypatch.setattr(store, "write_block", dying)
    assert main(_zargs(stores, ckpt)) == 130
    (stores / ".segrefiner-lock-out.zarr").write_text('{"pid": 999999999}')  # as a kill -9 would leave it
    user = stores / "out.zarr"
    user.mkdir()
    (user / "notes.txt").write_text("the user's")
    monkeypatch.setattr(store, "write_block", real)
    capsys.readouterr()
    assert main(_zargs(stores, ckpt)) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"] and (user / "notes.txt").read_text() == "the user's"
    assert not (stores / ".segrefiner-lock-out.zarr").exists()  # the stale lock was taken over and released


def test_zarr_output_that_appears_during_the_run_is_not_replaced(stores, ckpt, monkeypatch, capsys):
    from napari_segrefiner.lazy import store

    real = store.write_block
    writes = []

    def appearing(block, folder, region):
        writes.append(region)
        (stores / "out.zarr").mkdir(exist_ok=True)
        (stores / "out.zarr" / "notes.txt").write_text("the user's")
        real(block, folder, region)

    monkeypatch.setattr(store, "write_block", appearing)
    assert main(_zargs(stores, ckpt)) == 2
    assert "appeared while this run was refining; it was not replaced" in capsys.readouterr().err
    assert (stores / "out.zarr" / "notes.txt").read_text() == "the user's"
    done = len(writes)
    assert main(_zargs(stores, ckpt, "--overwrite")) == 0  # the finished result is put in place, not redone
    assert len(writes) == done and (stores / "out.zarr" / "zarr.json").is_file()
    assert not (stores / "out.zarr" / "notes.txt").exists()
    assert sorted(p.name for p in stores.iterdir()) == ["img.zarr", "lab.zarr", "out.zarr"]


def test_a_second_run_into_a_locked_zarr_output_is_refused(stores, ckpt, capsys):
    from napari_segrefiner.cli.outlock import OutputLock

    with OutputLock(stores / ".segrefiner-lock-out.zarr", "x"):  # a run in progress
        assert main(_zargs(stores, ckpt)) == 2
    assert f"output {stores / 'out.zarr'} is being written by another run" in capsys.readouterr().err
    assert not (stores / "out.zarr").exists() and not (stores / ".out.zarr.partial").exists()
