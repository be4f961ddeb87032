"""The one atomic write (napari_segrefiner.io.atomic).

Every writer of the package goes through ``atomic_write``: files get the permissions a
plain ``open(path, "w")`` gives under the umask (mkstemp's are 0600), a replaced file keeps
its mode, ``overwrite=False`` never replaces a file, a failed write leaves nothing, and only
the tool's own temporary names of dead processes are ever swept. The lock refuses a second
holder, in this process or another, and a killed holder never blocks.
"""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from _cli_helpers import dead_pid

from napari_segrefiner.io import atomic
from napari_segrefiner.io import files as io
from napari_segrefiner.io.atomic import TEMP_PREFIX, atomic_write, sweep_temporaries, temp_name


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_files_get_the_mode_a_plain_write_gives_under_the_umask(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what the user's other tools do
        path = atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("x"))
    finally:
        os.umask(old)
    assert _mode(path) == _mode(plain) == expected


def test_every_writer_of_the_package_gives_0644_under_umask_022(tmp_path, umask022, tiny_model):
    from napari_segrefiner import save_checkpoint
    from napari_segrefiner._napari._writer import write_labels
    from napari_segrefiner.cli.manifest import Manifest

    labels = np.zeros((8, 9), np.uint16)
    labels[2:5, 3:7] = 3
    written = [io.write_mask(tmp_path / f"m{ext}", labels) for ext in (".png", ".tif", ".npy")]
    written += [tmp_path / p for p in write_labels(str(tmp_path / "napari.tif"), labels, {})]
    save_checkpoint(tmp_path / "c.pt", tiny_model.network)
    manifest = Manifest(tmp_path / "manifest.json", {"seed": 0})
    manifest.record("m.png", {"mask": written[0]}, {"size": 1, "sha256": "0"})
    manifest.save()
    written += [tmp_path / "c.pt", tmp_path / "manifest.json"]
    assert {p.name: oct(_mode(p)) for p in written} == {p.name: "0o644" for p in written}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)  # no temporary left


def test_overwrite_keeps_the_mode_of_the_file_it_replaces(tmp_path, umask022):
    path = tmp_path / "m.tif"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    io.write_mask(path, np.ones((4, 4), bool))
    assert _mode(path) == 0o640 and io.read_mask(path).all()


def test_no_overwrite_never_replaces_a_file_that_appeared(tmp_path):
    path = tmp_path / "out.png"

    def write(tmp):  # the user's file appears while this one is being written
        path.write_bytes(b"the user's")
        tmp.write_bytes(b"ours")

    with pytest.raises(FileExistsError, match="appeared while this run was writing it"):
        atomic_write(path, write, overwrite=False)
    assert path.read_bytes() == b"the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # our temporary file is gone
    assert (
        atomic_write(tmp_path / "new.png", lambda tmp: tmp.write_bytes(b"ours"), overwrite=False).read_bytes()
        == b"ours"
    )


def test_no_overwrite_without_hard_links_still_checks_just_before_the_rename(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError("this file system has no hard links")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "out.npy"
    assert atomic_write(path, lambda tmp: tmp.write_bytes(b"first"), overwrite=False).read_bytes() == b"first"
    with pytest.raises(FileExistsError):
        atomic_write(path, lambda tmp: tmp.write_bytes(b"second"), overwrite=False)
    assert path.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fail)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.txt"]


def test_temporary_names_carry_the_prefix_the_pid_and_the_extension(tmp_path):
    tmp = temp_name(tmp_path / "n07.png")
    assert tmp.name.startswith(f"{TEMP_PREFIX}{os.getpid()}-") and tmp.name.endswith("-n07.png")
    assert tmp.suffix == ".png" and tmp.parent == tmp_path
    long = temp_name(tmp_path / ("x" * 250 + ".tif"))
    assert len(long.name) < 160 and long.suffix == ".tif"


def test_sweep_removes_only_the_tools_temporaries_of_dead_processes(tmp_path):
    dead = dead_pid()
    gone = [f"{TEMP_PREFIX}{dead}-0badc0de-n07.png", f"{TEMP_PREFIX}{dead}-12345678-segrefiner-manifest.json"]
    kept = [
        f"{TEMP_PREFIX}{os.getpid()}-0badc0de-n07.png",  # this process is still writing it
        ".q000.notes.tmp.png",
        ".out.k2j3h4g5.tmp.tif",
        "segrefiner-tmp-1-aa-x.png",
        f"{TEMP_PREFIX}x-n07.png",
        "n07.png",
    ]
    for name in gone + kept:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / f"{TEMP_PREFIX}{dead}-cafecafe-out.zarr").mkdir()  # an old output being replaced
    (tmp_path / f"{TEMP_PREFIX}{dead}-cafecafe-out.zarr" / "zarr.json").write_text("{}")
    assert sweep_temporaries(tmp_path, name="other.png") == 0
    assert sweep_temporaries(tmp_path, name="n07.png") == 1
    assert sweep_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    assert sweep_temporaries(tmp_path / "missing") == 0


def test_pid_running():
    assert atomic.pid_running(os.getpid()) and not atomic.pid_running(dead_pid()) and not atomic.pid_running(0)
