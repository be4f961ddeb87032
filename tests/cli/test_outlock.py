"""The lock of an output folder or .zarr (napari_segrefiner.cli.outlock): one run at a time.

The lock refuses a second holder, in this process or another, and a killed holder never blocks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from napari_segrefiner.cli.outlock import OutputLock, OutputLocked


def test_a_held_lock_refuses_a_second_holder_until_released(tmp_path):
    path = tmp_path / "out" / ".segrefiner-lock"
    with OutputLock(path, "output folder out/"):
        assert path.is_file() and f'"pid": {os.getpid()}' in path.read_text()
        with pytest.raises(
            OutputLocked, match=rf"output folder out/ is being written by another run \(process {os.getpid()}"
        ):
            OutputLock(path, "output folder out/").acquire()
    assert not (tmp_path / "out").exists()  # the lock file and the folder it made are gone
    with OutputLock(path, "again"):
        pass


def test_a_lock_held_by_another_process_refuses_and_a_killed_holder_never_blocks(tmp_path):
    path = tmp_path / ".segrefiner-lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from napari_segrefiner.cli.outlock import OutputLock
        OutputLock({str(path)!r}, "x").acquire()
        print("held", flush=True)
        time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLocked, match=f"process {holder.pid} on"):
            OutputLock(path, "output").acquire()
    finally:
        holder.kill()  # kill -9: no clean-up of its own
        holder.wait(10)
    assert path.is_file()  # left behind...
    with OutputLock(path, "output"):  # ...and taken over at once
        pass
    assert not path.exists()


def test_an_unreadable_lock_file_left_behind_does_not_block(tmp_path):
    path = tmp_path / ".segrefiner-lock"
    path.write_bytes(b"\x00garbage")
    with OutputLock(path, "output"):
        assert '"pid"' in path.read_text()
    assert not path.exists()
