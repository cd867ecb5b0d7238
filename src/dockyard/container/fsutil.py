"""Paths inside a container's root filesystem, resolved on the host side.

A container's rootfs is untrusted: ``/etc/passwd`` may be a symlink to
``/../../host/etc/shadow``.  :func:`resolve_in_root` follows symlinks the
way the kernel would *if the rootfs were ``/``*, so the result always stays
beneath ``root`` (what chroot-then-open would reach).
"""

from __future__ import annotations

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


def content_size(top: Path | str) -> int:
    """Docker's size of a layer directory (SizeRw): the apparent sizes of
    everything but directories, a hard-linked inode counted once.  Not a
    disk usage: a fresh container with two empty files is 0 B, as dockerd
    shows it."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
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
    """Docker's init-layer files in a mounted rootfs, each only where the
    image has nothing at its path: an empty ``/.dockerenv`` and the
    ``/etc/mtab`` -> ``/proc/mounts`` symlink (the list is image.diff's,
    whose diff and commit leave these out again).  Parents are walked by
    file descriptor without following symlinks, so an image whose /etc is
    a symlink (possibly to a host path) gets nothing there."""
    from ..image.diff import INIT_FILES, INIT_SYMLINKS

    made: list[tuple[bytes, bytes | None]] = [(rel, None) for rel in INIT_FILES]
    made += list(INIT_SYMLINKS)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for rel, link_target in made:
            parent_fd = _open_parents(root_fd, rel.split(b"/")[:-1])
            if parent_fd is None:
                continue
            name = rel.rpartition(b"/")[2]
            try:
                if link_target is None:
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o755, dir_fd=parent_fd)
                    os.close(fd)
                else:
                    os.symlink(link_target, name, dir_fd=parent_fd)
            except FileExistsError:
                pass  # the image's own (or made at an earlier start)
            finally:
                if parent_fd != root_fd:
                    os.close(parent_fd)
    finally:
        os.close(root_fd)


def _open_parents(root_fd: int, parts: list[bytes]) -> int | None:
    """A descriptor of the directory ``parts`` under ``root_fd`` (made
    0755 where missing), or None when a component is not a directory."""
    fd = root_fd
    for part in parts:
        try:
            os.mkdir(part, 0o755, dir_fd=fd)
        except FileExistsError:
            pass
        try:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            child = None
        if fd != root_fd:
            os.close(fd)
        if child is None:
            return None
        fd = child
    return fd
