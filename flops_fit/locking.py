"""One writer per results folder: an exclusive lock that names its holder.

:class:`FolderLock` takes an advisory ``flock`` on ``<folder>/.lock``. The
kernel drops it when the holding process ends, however it ends (``SIGKILL``
included), so a crashed sweep never leaves a stale lock behind. The holder
writes its PID, host and start time into the file, and a second process that
finds the folder taken stops at once with :class:`FolderLockedError` naming
them. The lock is per open file, so a second :class:`FolderLock` on the same
folder in the same process is refused too. A child forked while the lock is
held (a ``fork`` process pool) closes its copy at once: it does not keep the
folder locked when its parent dies.

``flock`` exists on Linux and macOS; where :mod:`fcntl` is missing (Windows)
the folder is not locked.
"""

from __future__ import annotations

import json
import os
import socket
import time
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock
    fcntl = None

__all__ = ["LOCK_NAME", "FolderLock", "FolderLockedError"]

LOCK_NAME = ".lock"
_HOLDER_WAIT_S = 1.0  # how long to wait for a holder that has the lock but has not yet said who it is
_HELD: weakref.WeakSet[FolderLock] = weakref.WeakSet()  # locks this process holds


def _drop_inherited_locks() -> None:
    # Runs in a forked child. A flock belongs to the open file, which the child shares:
    # closing the child's copy leaves the parent's lock alone, and the lock then ends
    # with the parent instead of with its last forked worker.
    for lock in list(_HELD):
        fd, lock._fd = lock._fd, None
        if fd is not None:
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_inherited_locks)


class FolderLockedError(RuntimeError):
    """Another process (or another store in this one) is writing the folder; the message names it."""


def _holder_text(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process (it has not written its PID yet)"
    pid, host = holder.get("pid"), holder.get("host")
    text = f"PID {pid} on host {host!r} (since {holder.get('since')})"
    if pid == os.getpid() and host == socket.gethostname():
        text += ", this process: close the other ResultsStore on it first"
    return text


class FolderLock:
    """Exclusive, non-blocking lock on a folder, held until :meth:`release`.

    Parameters
    ----------
    folder : str or os.PathLike
        An existing folder; the lock file ``.lock`` is created in it.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`FolderLockedError` at once (no waiting).

        Taking a lock this object already holds does nothing.
        """
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: it would erase the holder's name
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _wait_for_holder(fd)
            os.close(fd)
            raise FolderLockedError(
                f"Results folder '{self.folder}' is in use by {_holder_text(holder)}; one writer "
                "at a time: wait for that sweep to finish, or choose another output_dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._fd = fd
        _HELD.add(self)

    def release(self) -> None:
        """Give the lock up (closing the file releases the flock); a no-op when not held."""
        fd, self._fd = self._fd, None
        _HELD.discard(self)
        if fd is not None:
            os.ftruncate(fd, 0)  # the next reader must not see a holder that is gone
            os.close(fd)

    def holder(self) -> dict[str, Any] | None:
        """PID, host and start time the current holder wrote, or None."""
        try:
            return _parse(self.path.read_bytes())
        except FileNotFoundError:
            return None

    def __del__(self) -> None:  # a store dropped without close() must not keep its folder
        if self._fd is not None:
            self.release()


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        holder = json.loads(data)
    except ValueError:  # empty, or caught mid-write
        return None
    return holder if isinstance(holder, dict) else None


def _wait_for_holder(fd: int) -> dict[str, Any] | None:
    # The holder writes its name right after it takes the lock; give it a moment.
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while (holder := _parse(os.pread(fd, 4096, 0))) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return holder
