"""Resolution of archive paths beneath a root directory, openat-style.

Every write of a layer apply happens through a directory file descriptor
obtained by walking the path one component at a time from the root with
``O_NOFOLLOW | O_DIRECTORY``.  A component that is a symlink or not a
directory stops the walk, so no entry can land outside the root however the
tree was shaped by earlier entries: string checks alone cannot promise that
(a symlink created by entry 1 and written through by entry 2 passes any
check on entry 2's name).

Path rules for archive names (the choices Dockyard makes):

* a leading ``/`` is stripped, as tar and Docker do: absolute member names
  are relative to the root of the layer;
* empty and ``.`` components are dropped;
* a ``..`` component is rejected outright (Docker would clean ``a/../b`` to
  ``b``; a layer writer never emits it, so its presence signals a crafted
  archive).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections import OrderedDict

from ..errors import InvalidArgument

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def show(name: bytes) -> str:
    """An archive path for an error message."""
    return repr(name.decode("utf-8", "backslashreplace"))


def components(name: bytes, what: str = "entry") -> tuple[bytes, ...]:
    """The components of an archive path under the rules above."""
    parts = []
    for part in name.split(b"/"):
        if not part or part == b".":
            continue
        if part == b"..":
            raise InvalidArgument(f"layer {what} {show(name)}: path has a '..' component")
        if b"\0" in part:
            raise InvalidArgument(f"layer {what} {show(name)}: path has a NUL byte")
        parts.append(part)
    return tuple(parts)


class RootDir:
    """A directory tree being written, with a small cache of open
    directory fds keyed by their path below the root.

    The cache matters for speed: consecutive archive entries mostly share
    a parent, so the walk usually costs nothing.  Anything that removes or
    replaces a path must call :meth:`forget` so no stale fd is reused.
    """

    def __init__(self, path: str | os.PathLike, cache_size: int = 128) -> None:
        self.path = os.fspath(path)
        self.fd = os.open(self.path, _DIR_FLAGS)
        self._cache: OrderedDict[tuple[bytes, ...], int] = OrderedDict()
        self._cache_size = cache_size

    def close(self) -> None:
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "RootDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def dir_fd(self, parts: tuple[bytes, ...], entry: bytes, create: bool = True) -> int:
        """An fd of the directory at ``parts`` (owned by the cache: do not
        close it).  Missing directories are created (mode 0755, as Docker
        does for implied parents) when ``create``; a symlink or non-directory
        on the way is an :class:`InvalidArgument` naming ``entry``."""
        if not parts:
            return self.fd
        cached = self._cache.get(parts)
        if cached is not None:
            self._cache.move_to_end(parts)
            return cached
        parent = self.dir_fd(parts[:-1], entry, create)
        name = parts[-1]
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise InvalidArgument(
                    f"layer entry {show(entry)}: {show(b'/'.join(parts))} does not exist in this layer") from None
            os.mkdir(name, 0o755, dir_fd=parent)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            kind = "a symlink" if self.is_symlink(parent, name) else "not a directory"
            raise InvalidArgument(
                f"layer entry {show(entry)}: parent {show(b'/'.join(parts))} is {kind}; "
                f"writing through it could escape the layer") from None
        self._cache[parts] = fd
        if len(self._cache) > self._cache_size:
            _, old = self._cache.popitem(last=False)
            os.close(old)
        return fd

    def lookup_dir(self, parts: tuple[bytes, ...]) -> int | None:
        """Like :meth:`dir_fd` without creating, or None if the path is not
        (any more) a directory reached without symlinks."""
        try:
            return self.dir_fd(parts, b"/".join(parts), create=False)
        except (InvalidArgument, FileNotFoundError, NotADirectoryError):
            return None

    @staticmethod
    def is_symlink(parent_fd: int, name: bytes) -> bool:
        try:
            return stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode)
        except OSError:
            return False

    def forget(self, parts: tuple[bytes, ...]) -> None:
        """Drop cached fds for ``parts`` and everything below it."""
        n = len(parts)
        stale = [key for key in self._cache if key[:n] == parts]
        for key in stale:
            os.close(self._cache.pop(key))

    def remove(self, parent_fd: int, parts: tuple[bytes, ...]) -> bool:
        """Remove whatever is at ``parts`` (a tree if a directory); False if
        nothing was there."""
        name = parts[-1]
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            self.forget(parts)
            # rmtree with dir_fd works on fds and never follows symlinks.
            shutil.rmtree(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)
        return True


def proc_path(dir_fd: int, name: bytes) -> bytes:
    """A path naming ``name`` inside an open directory, for the calls that
    take no dir_fd (lsetxattr on a symlink).  The directory is pinned by the
    fd; the last component is not followed when the caller passes
    ``follow_symlinks=False``."""
    return b"/proc/self/fd/%d/%s" % (dir_fd, name)
