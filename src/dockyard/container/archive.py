"""``docker cp``: stat, read (as a tar) and write (from a tar) paths inside
a container's filesystem.

``root`` is a host path that shows the container's filesystem: the mounted
rootfs of a stopped container, or ``/proc/<pid>/root`` of a running one
(which also shows its bind mounts and tmpfs).  Container paths are resolved
beneath it with symlinks confined (:func:`fsutil.resolve_in_root`); the
last component is followed only when the path ends in ``/`` or ``/.``,
as Docker does.  Writes go through the image layer's safe extraction.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import stat as stat_mod
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Mapping

from ..errors import FailedPrecondition, InvalidArgument, NotFound
from .fsutil import resolve_in_root
from .model import format_time

# Go's os.FileMode type bits, which Docker puts in the stat header.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20

STAT_HEADER = "X-Docker-Container-Path-Stat"


def go_file_mode(mode: int) -> int:
    """A POSIX st_mode as Go's os.FileMode."""
    bits = stat_mod.S_IMODE(mode) & 0o777
    if stat_mod.S_ISDIR(mode):
        bits |= GO_MODE_DIR
    elif stat_mod.S_ISLNK(mode):
        bits |= GO_MODE_SYMLINK
    elif stat_mod.S_ISBLK(mode):
        bits |= GO_MODE_DEVICE
    elif stat_mod.S_ISCHR(mode):
        bits |= GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE
    elif stat_mod.S_ISFIFO(mode):
        bits |= GO_MODE_NAMED_PIPE
    elif stat_mod.S_ISSOCK(mode):
        bits |= GO_MODE_SOCKET
    if mode & stat_mod.S_ISUID:
        bits |= GO_MODE_SETUID
    if mode & stat_mod.S_ISGID:
        bits |= GO_MODE_SETGID
    if mode & stat_mod.S_ISVTX:
        bits |= GO_MODE_STICKY
    return bits


@dataclass(frozen=True)
class PathStat:
    name: str
    size: int
    mode: int           # Go FileMode bits
    mtime: str
    link_target: str

    def to_json(self) -> dict:
        return {"name": self.name, "size": self.size, "mode": self.mode, "mtime": self.mtime,
                "linkTarget": self.link_target}

    def header_value(self) -> str:
        return base64.b64encode(json.dumps(self.to_json()).encode()).decode()


def _container_path(path: str) -> str:
    if not path:
        raise InvalidArgument("path is required")
    if "\0" in path:
        raise InvalidArgument("invalid path: contains a NUL byte")
    return path if path.startswith("/") else "/" + path


def _follow_last(path: str) -> bool:
    return path.endswith("/") or path.endswith("/.")


def resolve(root: Path | str, path: str, container_name: str) -> tuple[Path, str]:
    """(host path, absolute container path) of ``path``; NotFound if missing."""
    cpath = _container_path(path)
    host = resolve_in_root(root, cpath, follow_last=_follow_last(cpath))
    if not os.path.lexists(host):
        raise NotFound(f"Could not find the file {path} in container {container_name}")
    return host, cpath


def _to_container_path(root: Path | str, host: Path) -> str:
    rel = os.path.relpath(host, os.path.abspath(root))
    return "/" if rel == "." else "/" + rel


#: Host files standing in for paths under a rootfs, as bind mounts would
#: (host path in the rootfs -> the file to read instead).
Overlays = Mapping[str, str]


def stat_path(root: Path | str, path: str, container_name: str, overlays: Overlays | None = None) -> PathStat:
    host, cpath = resolve(root, path, container_name)
    source = (overlays or {}).get(os.fspath(host))
    st = os.stat(source) if source else os.lstat(host)
    link_target = ""
    if stat_mod.S_ISLNK(st.st_mode):
        link_target = _to_container_path(root, resolve_in_root(root, cpath, follow_last=True))
    name = posixpath.basename(cpath.rstrip("/")) or "/"
    if cpath.endswith("/."):
        name = "."
    return PathStat(name=name, size=st.st_size, mode=go_file_mode(st.st_mode),
                    mtime=format_time(nanos=st.st_mtime_ns), link_target=link_target)


def _numeric_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Host user names mean nothing inside the container: numeric owners only.
    info.uname = ""
    info.gname = ""
    return info


def write_archive(root: Path | str, path: str, out: BinaryIO, container_name: str,
                  overlays: Overlays | None = None) -> PathStat:
    """Write a tar of ``path`` (its top entry named by the path's base name)
    to ``out``; returns the path's stat.  A file named in ``overlays`` is
    archived with the stat and content of its stand-in."""
    stat = stat_path(root, path, container_name, overlays)
    host, cpath = resolve(root, path, container_name)
    arcname = stat.name if stat.name != "/" else "."
    top = os.fspath(host)
    inside = {h: src for h, src in (overlays or {}).items() if h == top or h.startswith(top.rstrip("/") + "/")}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if inside:
            _add_with_overlays(tar, top, arcname, inside)
        else:
            tar.add(top, arcname=arcname, recursive=True, filter=_numeric_owner)
    return stat


def _add_with_overlays(tar: tarfile.TarFile, host: str, arcname: str, overlays: Overlays) -> None:
    """tar.add's walk (names sorted, symlinks not followed), reading each
    file of ``overlays`` from its stand-in."""
    source = overlays.get(host)
    if source is not None and stat_mod.S_ISREG(os.lstat(host).st_mode):
        info = _numeric_owner(tar.gettarinfo(source, arcname))
        with open(source, "rb") as f:
            tar.addfile(info, f)
        return
    info = _numeric_owner(tar.gettarinfo(host, arcname))
    if info.isreg():
        with open(host, "rb") as f:
            tar.addfile(info, f)
        return
    tar.addfile(info)
    if info.isdir():
        for name in sorted(os.listdir(host)):
            _add_with_overlays(tar, os.path.join(host, name), posixpath.join(arcname, name), overlays)


def _prefixed(source: BinaryIO, prefix: str) -> tuple[BinaryIO, Callable[[], None]]:
    """A tar stream equal to ``source`` with every entry (and hard-link
    target) moved under ``prefix``, produced by a thread through a pipe."""
    read_fd, write_fd = os.pipe()
    errors: list[BaseException] = []

    def pump() -> None:
        try:
            with os.fdopen(write_fd, "wb") as out, \
                    tarfile.open(fileobj=source, mode="r|*") as src, \
                    tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as dst:
                for member in src:
                    name = member.name.lstrip("/")
                    member.name = posixpath.join(prefix, name) if name not in ("", ".") else prefix or "."
                    if member.islnk():
                        member.linkname = posixpath.join(prefix, member.linkname.lstrip("/"))
                    dst.addfile(member, src.extractfile(member) if member.isreg() else None)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            errors.append(exc)

    thread = threading.Thread(target=pump, name="cp-prefix", daemon=True)
    thread.start()
    reader = os.fdopen(read_fd, "rb")

    def finish() -> None:
        # Drain so the pump can end even if extraction stopped early.
        while reader.read(65536):
            pass
        reader.close()
        thread.join()
        if errors:
            exc = errors[0]
            if isinstance(exc, tarfile.TarError):
                raise InvalidArgument(f"invalid archive: {exc}") from None
            raise exc

    return reader, finish


def extract_archive(root: Path | str, path: str, source: BinaryIO, container_name: str, *,
                    read_only: bool = False, copy_uid_gid: bool = False,
                    no_overwrite_dir_non_dir: bool = False) -> None:
    """Extract the tar read from ``source`` into the directory ``path``.

    The archive is applied at the container's root with its entries moved
    under ``path``, so a symlink in it may point anywhere inside the
    container (``../bin/sh`` from ``/tmp``) and still nothing lands
    outside the container."""
    from ..image.apply import ApplyOptions, WhiteoutMode, apply_layer

    if read_only:
        raise FailedPrecondition("container rootfs is marked read-only")
    _, cpath = resolve(root, path, container_name)
    host = resolve_in_root(root, cpath, follow_last=True)
    if not host.is_dir():
        raise InvalidArgument("extraction point is not a directory")  # dockerd says no more
    prefix = os.path.relpath(host, os.path.abspath(root))
    prefix = "" if prefix == "." else prefix
    # TODO(no_overwrite_dir_non_dir): apply_layer replaces entries of any
    # type; Docker's noOverwriteDirNonDir refusal is not enforced yet.
    stream, finish = _prefixed(source, prefix)
    try:
        # "<root>/." so that a root that is itself a symlink (/proc/<pid>/root)
        # is opened through, while the walk below it never follows one.
        apply_layer(stream, os.path.join(root, "."), ApplyOptions(whiteouts=WhiteoutMode.DELETE, allow_devices=False,
                                               same_owner=copy_uid_gid))
    finally:
        finish()
