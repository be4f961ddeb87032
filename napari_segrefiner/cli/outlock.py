"""One run at a time per output: an operating-system lock on a small lock file.

Folder mode locks ``OUT/.segrefiner-lock``; zarr mode locks ``.segrefiner-lock-<name>``
beside the output ``.zarr``. The lock is ``flock`` on POSIX (``msvcrt.locking`` on
Windows), taken without waiting, so a second run into the same output is refused at
once. The operating system drops the lock when its process ends, however it ends: a
killed run never blocks the next one, which takes over the file it left and removes it
when done. The file holds the owner's process id, host and start time, for the message
the refused run prints.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

__all__ = ["LOCK_NAME", "OutputLocked", "OutputLock"]

LOCK_NAME = ".segrefiner-lock"


class OutputLocked(RuntimeError):
    """Another run holds the lock of this output."""


def _try_lock(fd: int) -> bool:
    if os.name == "nt":  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _owner(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
        return f"process {int(data['pid'])} on {data['host']}, started {data['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that is just starting"


class OutputLock:
    """The lock of one output, held while a run writes it (a context manager).

    Parameters
    ----------
    path : path-like
        The lock file; missing folders above it are created, and removed again at release
        if they are still empty then.
    what : str
        How the refusal names the output (e.g. ``"output folder out/"``).
    """

    def __init__(self, path: str | os.PathLike, what: str):
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None
        self._made: list[Path] = []

    def acquire(self) -> None:
        """Take the lock.

        Raises
        ------
        OutputLocked
            Another live run holds it (the message names its process).
        """
        folder = self.path.parent
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        self._made = missing  # innermost first
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
            if not _try_lock(fd):
                os.close(fd)
                self._remove_made()
                raise OutputLocked(
                    f"{self.what} is being written by another run ({_owner(self.path)}); wait for "
                    "it to finish: two runs into one output would overwrite each other's files"
                )
            try:  # the file may have been removed by its previous owner after we opened it
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and drop the lock (then the folders it made, if empty)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still held: nobody can take a file about to vanish
        except OSError:  # pragma: no cover - Windows cannot remove an open file; the next run reuses it
            pass
        os.close(self._fd)
        self._fd = None
        self._remove_made()

    def _remove_made(self) -> None:
        for p in self._made:
            try:
                p.rmdir()
            except OSError:
                break
        self._made = []

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
