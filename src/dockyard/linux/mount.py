"""mount(2), umount2(2) and /proc/self/mountinfo.

OCI mount options are mapped to kernel flags by tables, not if-chains:
``MOUNT_FLAGS`` holds options that set a flag, ``CLEAR_FLAGS`` options that
clear one, ``PROPAGATION_FLAGS`` the propagation kinds.  Anything else is
filesystem data passed through (``size=64m``, ``mode=755``, ``lowerdir=...``).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

from .libc import check, fsencode, libc

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

MNT_FORCE = 0x1
MNT_DETACH = 0x2
MNT_EXPIRE = 0x4
UMOUNT_NOFOLLOW = 0x8

#: option -> flag it sets
MOUNT_FLAGS: dict[str, int] = {
    "ro": MS_RDONLY,
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "sync": MS_SYNCHRONOUS,
    "remount": MS_REMOUNT,
    "mand": MS_MANDLOCK,
    "dirsync": MS_DIRSYNC,
    "nosymfollow": MS_NOSYMFOLLOW,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "bind": MS_BIND,
    "rbind": MS_BIND | MS_REC,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
    "lazytime": MS_LAZYTIME,
    "silent": MS_SILENT,
}

#: option -> flag it clears
CLEAR_FLAGS: dict[str, int] = {
    "rw": MS_RDONLY,
    "suid": MS_NOSUID,
    "dev": MS_NODEV,
    "exec": MS_NOEXEC,
    "async": MS_SYNCHRONOUS,
    "nomand": MS_MANDLOCK,
    "atime": MS_NOATIME,
    "diratime": MS_NODIRATIME,
    "norelatime": MS_RELATIME,
    "nostrictatime": MS_STRICTATIME,
    "symfollow": MS_NOSYMFOLLOW,
}

#: propagation option -> flags
PROPAGATION_FLAGS: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}


@dataclass(frozen=True)
class ParsedOptions:
    flags: int
    propagation: int
    data: str


def parse_options(options: list[str] | tuple[str, ...]) -> ParsedOptions:
    """Split OCI/fstab-style options into mount flags, propagation flags and
    the filesystem data string."""
    flags = 0
    propagation = 0
    data: list[str] = []
    for opt in options:
        if opt in MOUNT_FLAGS:
            flags |= MOUNT_FLAGS[opt]
        elif opt in CLEAR_FLAGS:
            flags &= ~CLEAR_FLAGS[opt]
        elif opt in PROPAGATION_FLAGS:
            propagation |= PROPAGATION_FLAGS[opt]
        elif opt in ("defaults",):
            continue
        else:
            data.append(opt)
    return ParsedOptions(flags, propagation, ",".join(data))


libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def mount(source: str | os.PathLike | None, target: str | os.PathLike, fstype: str | None = None,
          flags: int = 0, data: str | None = None) -> None:
    """mount(2). Raises OSError naming the target on failure."""
    check(
        libc.mount(fsencode(source), fsencode(target), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None),
        f"mount {fstype or ''} {source} on {target}".replace("  ", " "),
        os.fsdecode(target),
    )


def umount(target: str | os.PathLike, flags: int = 0) -> None:
    """umount2(2)."""
    check(libc.umount2(fsencode(target), flags), f"umount {target}", os.fsdecode(target))


@dataclass(frozen=True)
class MountInfo:
    """One line of /proc/<pid>/mountinfo."""

    mount_id: int
    parent_id: int
    major_minor: str
    root: str
    mount_point: str
    options: tuple[str, ...]
    optional: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    if "\\" not in field:
        return field
    out = bytearray()
    raw = field.encode()
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C and i + 4 <= len(raw) and raw[i + 1:i + 4].isdigit():
            out.append(int(raw[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode(errors="surrogateescape")


def mountinfo(pid: int | str = "self") -> list[MountInfo]:
    """Parse /proc/<pid>/mountinfo."""
    result = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-", 6)
            result.append(MountInfo(
                mount_id=int(fields[0]),
                parent_id=int(fields[1]),
                major_minor=fields[2],
                root=_unescape(fields[3]),
                mount_point=_unescape(fields[4]),
                options=tuple(fields[5].split(",")),
                optional=tuple(fields[6:sep]),
                fstype=fields[sep + 1],
                source=_unescape(fields[sep + 2]),
                super_options=tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3 else (),
            ))
    return result


def mounts_under(path: str | os.PathLike, pid: int | str = "self") -> list[str]:
    """Mount points at or below ``path``, deepest first (the order to unmount)."""
    prefix = str(Path(path).resolve())
    found = [m.mount_point for m in mountinfo(pid)
             if m.mount_point == prefix or m.mount_point.startswith(prefix.rstrip("/") + "/")]
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def is_mountpoint(path: str | os.PathLike) -> bool:
    target = str(Path(path).resolve())
    return any(m.mount_point == target for m in mountinfo())


def unmount_all(path: str | os.PathLike) -> None:
    """Detach every mount at or below ``path``; missing ones are fine."""
    for target in mounts_under(path):
        try:
            umount(target, MNT_DETACH)
        except OSError as exc:
            if exc.errno not in (22, 2):  # EINVAL: not a mount (raced), ENOENT
                raise


# --- added for the native runtime -------------------------------------------

from .syscalls import NR as _NR  # noqa: E402 - kept beside the functions that use it

libc.chroot.argtypes = [ctypes.c_char_p]


def pivot_root(new_root: str | os.PathLike | bytes, put_old: str | os.PathLike | bytes) -> None:
    """pivot_root(2) (glibc has no wrapper)."""
    check(libc.syscall(_NR["pivot_root"], fsencode(new_root), fsencode(put_old)),
          "pivot_root", os.fsdecode(new_root))


#: statvfs f_flag bits -> the mount flag that keeps them on a remount.  In a
#: user namespace the kernel refuses a remount that would clear a locked flag,
#: so a bind remount must carry the flags the mount already has.
STATVFS_TO_MOUNT: tuple[tuple[int, int], ...] = (
    (os.ST_RDONLY, MS_RDONLY),
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)


def locked_flags(path: str | os.PathLike | bytes) -> int:
    """Mount flags of the mount at ``path`` that a bind remount must keep."""
    f_flag = os.statvfs(path).f_flag
    flags = 0
    for st, ms in STATVFS_TO_MOUNT:
        if f_flag & st:
            flags |= ms
    return flags
