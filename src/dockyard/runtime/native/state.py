"""The runtime's on-disk state: one directory per container under the
runtime root, holding ``state.json`` (written atomically) and, between
create and start, the ``exec.fifo`` the container's init waits on."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from ...errors import AlreadyExists, InvalidArgument, NotFound
from ...linux.process import read_small

#: OCI state "status" values (and "paused", as runc and crun report): the
#: same strings as dockyard.runtime.base's, kept here so that creating a
#: container does not import that module (and its dataclasses).
CREATING, CREATED, RUNNING, STOPPED, PAUSED = "creating", "created", "running", "stopped", "paused"

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
SECCOMP_FILE = "seccomp.bpf"

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(container_id: str) -> None:
    """Container ids as runc accepts them: [A-Za-z0-9_+.-]+, not . or .."""
    if (not isinstance(container_id, str) or not container_id or container_id in (".", "..")
            or len(container_id) > 1024 or not set(container_id) <= _ID_CHARS):
        raise InvalidArgument(f"invalid container id {container_id!r}: use letters, digits and _+-.")


def rfc3339_now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


def write_atomic(path: Path | str, data: bytes, mode: int = 0o600, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file and rename, so readers
    see the old or the new content, never a mix.  ``durable=False`` skips
    the fsync: for the runtime's own state, which lives on tmpfs (/run) in
    production, describes processes that a reboot ends anyway, and is not
    fsync'd by runc or crun either (an fsync costs ~0.3 ms here)."""
    path = str(path)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


class StateStore:
    """Container directories under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def dir(self, container_id: str) -> Path:
        check_id(container_id)
        return self.root / container_id

    def make(self, container_id: str) -> Path:
        path = self.dir(container_id)
        try:
            os.mkdir(path, 0o700)
        except FileNotFoundError:  # the first container under this root
            os.makedirs(self.root, 0o700, exist_ok=True)
            return self.make(container_id)
        except FileExistsError:
            raise AlreadyExists(f"container with id {container_id!r} already exists") from None
        return path

    def save(self, container_id: str, doc: dict[str, Any]) -> None:
        write_atomic(self.dir(container_id) / STATE_FILE, json.dumps(doc, separators=(",", ":")).encode(),
                     durable=False)

    def load(self, container_id: str) -> dict[str, Any]:
        try:
            return json.loads(read_small(self.dir(container_id) / STATE_FILE))
        except FileNotFoundError:
            raise NotFound(f"container {container_id!r} does not exist") from None
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            raise NotFound(f"container {container_id!r}: state is unreadable ({exc})") from None

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if (self.root / n / STATE_FILE).exists())

    def remove(self, container_id: str) -> None:
        path = self.dir(container_id)
        # The files create leaves, then the directory: cheaper than a tree
        # walk; anything unexpected in there falls back to one.
        for name in (STATE_FILE, EXEC_FIFO, SECCOMP_FILE):
            try:
                os.unlink(path / name)
            except FileNotFoundError:
                pass
            except OSError:
                break
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
