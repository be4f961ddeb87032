"""Atomic writes and the tool's own temporary files: the one place that makes them.

Every file the package writes (masks, manifests, checkpoints, reports) goes through
:func:`atomic_write`: the data goes to a new temporary file beside the target, which is
then moved into place in one step. A reader never sees a partial file, and a failed or
interrupted write leaves the target as it was and removes its temporary file.

* **Names.** A temporary file is called ``.segrefiner-tmp-<pid>-<random>-<target name>``
  (:data:`TEMP_PREFIX`, a prefix no user file has; the target's extension is kept, so
  writers that look at it work). :func:`sweep_temporaries` removes only such names, and
  only those of processes that no longer run on this machine: what a ``kill -9`` left
  behind, never a file a user made or one a running process is still writing.
* **Permissions.** The temporary file is created with mode ``0o666`` minus the umask, as
  ``open(path, "w")`` would (0644 under umask 022; ``tempfile.mkstemp`` would give 0600).
  Replacing an existing regular file keeps that file's permission bits.
* **No clobbering.** With ``overwrite=False`` the move never replaces anything: it is a
  hard link, which fails if the target appeared after the caller checked it (on file
  systems without hard links: a check just before an ordinary rename).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "TEMP_PREFIX",
    "atomic_write",
    "new_temp",
    "pid_running",
    "place",
    "sweep_temporaries",
    "temp_name",
    "write_temp",
]

TEMP_PREFIX = ".segrefiner-tmp-"
_TEMP = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-[0-9a-f]+-(.+)\Z", re.DOTALL)
_KEEP = 120  # characters of the target's name kept in a temporary name (file names have at most 255)


def _tail(name: str) -> str:
    return name if len(name) <= _KEEP else name[-_KEEP:]


def pid_running(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (True when that cannot be told)."""
    if pid <= 0:
        return False
    try:
        import psutil

        return bool(psutil.pid_exists(pid))
    except ImportError:  # pragma: no cover - psutil comes with distributed
        pass
    if os.name != "posix":  # pragma: no cover
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    return True


def temp_name(target: str | os.PathLike) -> Path:
    """A fresh temporary path beside ``target`` (nothing is created)."""
    target = Path(target)
    return target.with_name(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{_tail(target.name)}")


def new_temp(target: str | os.PathLike) -> Path:
    """Create an empty temporary file beside ``target`` (mode 0o666 minus the umask).

    The folder of ``target`` is created if needed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = temp_name(target)
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, f"no free temporary name beside {target}")  # pragma: no cover


def write_temp(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` on a new temporary file beside ``target``; returns it (removed if ``write`` fails).

    Put it in place with :func:`place`.
    """
    tmp = new_temp(target)
    try:
        write(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def place(tmp: str | os.PathLike, target: str | os.PathLike, *, overwrite: bool) -> Path:
    """Move temporary file ``tmp`` to ``target`` in one step; ``tmp`` is gone afterwards.

    Parameters
    ----------
    tmp : path-like
        A file from :func:`new_temp` or :func:`write_temp` for this target.
    target : path-like
        Where it goes.
    overwrite : bool
        Replace an existing ``target`` (a regular file keeps its permission bits). False:
        never replace anything, even a file that appeared since the caller checked.

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    FileExistsError
        ``overwrite=False`` and ``target`` exists (``target`` is left as it is).
    """
    tmp, target = Path(tmp), Path(target)
    try:
        if overwrite:
            try:
                st = os.stat(target, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISREG(st.st_mode):
                os.chmod(tmp, stat.S_IMODE(st.st_mode))
            os.replace(tmp, target)
            return target
        taken = f"{target} exists (it appeared while this run was writing it); it was not replaced"
        try:
            os.link(tmp, target)  # atomic "create if absent"
        except FileExistsError:
            raise FileExistsError(taken) from None
        except OSError:  # no hard links here (FAT, some network shares): check, then rename
            if os.path.lexists(target):
                raise FileExistsError(taken) from None
            os.replace(tmp, target)
            return target
        tmp.unlink()
        return target
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = True) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it to ``path``.

    Parameters
    ----------
    path : path-like
        The target (its folder is created if needed).
    write : callable
        ``write(tmp)`` writes the whole file to path ``tmp`` (which has ``path``'s extension).
    overwrite : bool
        Replace an existing ``path`` (keeping its permission bits); False refuses to.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FileExistsError
        ``overwrite=False`` and ``path`` exists.
    Exception
        Whatever ``write`` raises; ``path`` is then left as it was and no temporary file remains.
    """
    return place(write_temp(path, write), path, overwrite=overwrite)


def sweep_temporaries(folder: str | os.PathLike, *, name: str | None = None) -> int:
    """Remove what interrupted runs left in ``folder``; returns how many entries went.

    Only entries named by :func:`temp_name` (:data:`TEMP_PREFIX`) whose process no longer
    runs on this machine are removed (files, links, and folders such as a replaced zarr
    output); with ``name``, only those made for a target of that name.
    """
    n = 0
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    me = os.getpid()
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None or (name is not None and m.group(2) != _tail(name)):
            continue
        pid = int(m.group(1))
        if pid == me or pid_running(pid):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            Path(entry.path).unlink(missing_ok=True)
        n += 1
    return n
