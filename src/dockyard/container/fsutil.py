"""Paths inside a container's root filesystem, resolved on the host side.

A container's rootfs is untrusted: ``/etc/passwd`` may be a symlink to
``/../../host/etc/shadow``.  :func:`resolve_in_root` follows symlinks the
way the kernel would *if the rootfs were ``/``*, so the result always stays
beneath ``root`` (what chroot-then-open would reach).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from ..errors import InvalidArgument

_MAX_SYMLINKS = 255


def resolve_in_root(root: Path | str, path: str, *, follow_last: bool = True) -> Path:
    """Host path of ``path`` (absolute or relative to ``/``) interpreted with
    ``root`` as the filesystem root.  Missing components are allowed (the
    rest is appended literally); a symlink loop raises InvalidArgument."""
    root_s = os.path.abspath(os.fspath(root))
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    followed = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root_s, *resolved, part)
        if not parts and not follow_last:
            resolved.append(part)
            break
        try:
            target = os.readlink(candidate)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
                # Not a symlink (or missing): take the name as it is.
                resolved.append(part)
                continue
            raise
        followed += 1
        if followed > _MAX_SYMLINKS:
            raise InvalidArgument(f"too many levels of symbolic links resolving {path!r} in the container")
        link_parts = [p for p in target.split("/") if p not in ("", ".")]
        if target.startswith("/"):
            resolved = []
        parts = link_parts + parts
    return Path(root_s, *resolved)


def read_in_root(root: Path | str, path: str) -> str | None:
    """Text of a file inside ``root``, or None when it does not exist."""
    host = resolve_in_root(root, path)
    try:
        with open(host, encoding="utf-8", errors="replace") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644, *, durable: bool = True) -> None:
    """Write ``path`` through a temp file, fsync, rename: readers see the
    old content or the new one, never half.  ``durable=False`` skips the
    fsync, for files rebuilt from the container's record whenever they
    are found missing or empty (so a machine crash loses nothing)."""
    if isinstance(data, str):
        data = data.encode()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fchmod(fd, mode)
        if durable:
            os.fsync(fd)
    os.rename(tmp, path)


def content_size(top: Path | str, skip: frozenset[bytes] | set[bytes] = frozenset()) -> int:
    """Docker's size of a layer directory (SizeRw): the apparent sizes of
    everything but directories, a hard-linked inode counted once.  Not a
    disk usage: a fresh container with two empty files is 0 B, as dockerd
    shows it.  ``skip``: paths relative to ``top`` (bytes) not counted
    (the init layer's files, which dockerd keeps in a layer of its own)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    top_s = os.fspath(top)
    for dirpath, dirnames, filenames in os.walk(top_s):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            if skip and os.fsencode(os.path.relpath(os.path.join(dirpath, name), top_s)) in skip:
                continue
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue  # gone meanwhile: a running container's layer changes
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def make_init_files(root: Path | str) -> None:
    """Docker's init layer in a mounted rootfs: an empty ``/.dockerenv``
    and /dev/console, empty /etc/hostname, hosts and resolv.conf (the
    mount points), the /dev/pts, /dev/shm, /proc and /sys directories, and
    ``/etc/mtab`` -> ``/proc/mounts`` (image.diff's lists, whose diff and
    commit leave these out again).  As dockerd does, whatever the image
    has at those paths is replaced unless it is a directory, and a
    non-directory on the way (an /etc symlink) too: the caller does this
    once per container, so what a user changes there later is kept.  All
    by file descriptor, never following a symlink out of ``root``."""
    from ..image.diff import INIT_DIRS, INIT_FILES, INIT_SYMLINKS, RUNTIME_MOUNT_POINTS

    made: list[tuple[bytes, bytes | None]] = [(rel, None) for rel in INIT_FILES + RUNTIME_MOUNT_POINTS]
    made += list(INIT_SYMLINKS)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for rel in INIT_DIRS:
            fd = _open_parents(root_fd, rel.split(b"/"))
            if fd is not None and fd != root_fd:
                os.close(fd)
        for rel, link_target in made:
            parent_fd = _open_parents(root_fd, rel.split(b"/")[:-1])
            if parent_fd is None:
                continue
            name = rel.rpartition(b"/")[2]
            try:
                _unlink_non_dir(name, parent_fd)
                if link_target is None:
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o755, dir_fd=parent_fd)
                    os.fchmod(fd, 0o755)  # whatever the umask
                    os.close(fd)
                else:
                    os.symlink(link_target, name, dir_fd=parent_fd)
            except (FileExistsError, IsADirectoryError):
                pass  # a directory there: kept, as dockerd keeps it
            finally:
                if parent_fd != root_fd:
                    os.close(parent_fd)
    finally:
        os.close(root_fd)


def _unlink_non_dir(name: bytes, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise
    except PermissionError:
        # Linux answers EISDIR for a directory, but POSIX allows EPERM
        import stat as stat_mod
        if not stat_mod.S_ISDIR(os.lstat(name, dir_fd=dir_fd).st_mode):
            raise
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name) from None


def _open_parents(root_fd: int, parts: list[bytes]) -> int | None:
    """A descriptor of the directory ``parts`` under ``root_fd``: a
    non-directory in the way is replaced by a directory (0755) as
    dockerd's init layer does, a missing one made; None if it cannot be."""
    fd = root_fd
    for part in parts:
        try:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise
            child = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part, dir_fd=fd)
            os.mkdir(part, 0o755, dir_fd=fd)
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        if fd != root_fd:
            os.close(fd)
        fd = child
    return fd
