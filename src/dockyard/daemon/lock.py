"""One daemon per data root, and the pid file.

Two daemons on one data root would corrupt each other's metadata, so the
daemon holds an exclusive ``flock`` on ``<data-root>/dockyardd.lock`` for its
whole life.  The kernel drops the lock when the process dies however it dies,
so a crash never leaves a stale lock behind (unlike a pid file, which is only
informational here).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dockyard.errors import FailedPrecondition, Unavailable

LOCK_NAME = "dockyardd.lock"


@contextmanager
def data_root_lock(data_root: Path) -> Iterator[Path]:
    """Hold the data root's lock; FailedPrecondition if another daemon has
    it, Unavailable if the data root cannot be made or written."""
    path = data_root / LOCK_NAME
    try:
        data_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise Unavailable(f"cannot use data root {data_root}: {e}") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise FailedPrecondition(
                f"another dockyardd (pid {holder}) is using data root {data_root}: {path} is locked"
            ) from None
        # The holder's pid, for the message above; the lock itself is the flock.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the flock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def pid_file(path: Path) -> Iterator[Path]:
    """Write our pid to ``path`` (atomically) and remove it on exit.  A pid
    file naming a live process is refused, as dockerd refuses."""
    try:
        old = int(path.read_text().strip() or "0")
    except (FileNotFoundError, ValueError):
        old = 0
    if old and old != os.getpid() and _pid_alive(old):
        raise FailedPrecondition(f"pid file found, ensure dockyardd is not running or delete {path} (pid {old})")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    try:
        yield path
    finally:
        try:
            if path.read_text().strip() == str(os.getpid()):
                path.unlink()
        except FileNotFoundError:
            pass
