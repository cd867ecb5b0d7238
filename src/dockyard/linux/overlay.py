"""Mounting overlayfs with any number of layers.

mount(2) copies at most one page (4096 bytes) of option data, so a
``lowerdir=a:b:c...`` list for a deep image does not fit.  Three ways, in
order of preference:

1. It fits: plain mount(2).
2. The new mount API (fsopen/fsconfig/fsmount/move_mount) with one
   ``lowerdir+`` parameter per layer (Linux >= 6.8): no length limit but
   the kernel's 500 layers; each path may be up to 255 bytes.
3. Relative paths: a child process chdirs into the directory common to
   all lower paths and mounts with lowers relative to it (the kernel
   resolves them against the caller's cwd).  A child, because chdir is
   process-wide and the daemon is multithreaded.  Short layer link names
   (the snapshotter's ``l/`` directory) keep this under a page for
   hundreds of layers.

``mount_overlay(target, lowers, upper, work, options)`` picks one;
``strategy=`` forces one (tests use it to exercise each).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading

from .libc import check, libc
from .mount import MOUNT_FLAGS, mount, parse_options

#: mount(2) data must fit in a page, NUL included
PAGE_LIMIT = os.sysconf("SC_PAGE_SIZE") - 1
#: strndup_user() limit of fsconfig string values
FSCONFIG_VALUE_LIMIT = 255

SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_FSOPEN = 430
SYS_FSCONFIG = 431
SYS_FSMOUNT = 432

FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100

#: mount option -> MOUNT_ATTR_* bit for fsmount()
MOUNT_ATTRS: dict[str, int] = {
    "ro": 0x1,
    "nosuid": 0x2,
    "nodev": 0x4,
    "noexec": 0x8,
    "noatime": 0x10,
    "strictatime": 0x20,
    "nodiratime": 0x80,
    "nosymfollow": 0x200000,
}

DIRECT, NEW_API, RELATIVE = "direct", "new-api", "relative"

_syscall = libc.syscall
_syscall.restype = ctypes.c_long

_probe_lock = threading.Lock()
_lowerdir_plus: bool | None = None


def _fsopen(fstype: bytes) -> int:
    return check(_syscall(ctypes.c_long(SYS_FSOPEN), ctypes.c_char_p(fstype), ctypes.c_uint(FSOPEN_CLOEXEC)),
                 "fsopen")


def _fsconfig(fd: int, cmd: int, key: bytes | None, value: bytes | None) -> int:
    return _syscall(ctypes.c_long(SYS_FSCONFIG), ctypes.c_int(fd), ctypes.c_uint(cmd), ctypes.c_char_p(key),
                    ctypes.c_char_p(value), ctypes.c_int(0))


def _fs_log(fd: int) -> str:
    """Messages the kernel queued on an fs context (why a step failed)."""
    lines = []
    while True:
        try:
            msg = os.read(fd, 4096)
        except OSError:
            break
        if not msg:
            break
        lines.append(msg.decode(errors="replace").strip())
    return "; ".join(lines)


def supports_lowerdir_plus() -> bool:
    """Whether overlayfs takes ``lowerdir+`` through fsconfig (Linux 6.8+)."""
    global _lowerdir_plus
    with _probe_lock:
        if _lowerdir_plus is None:
            try:
                fd = _fsopen(b"overlay")
            except OSError:
                _lowerdir_plus = False
            else:
                try:
                    _lowerdir_plus = _fsconfig(fd, FSCONFIG_SET_STRING, b"lowerdir+", b"/") == 0
                finally:
                    os.close(fd)
        return _lowerdir_plus


def overlay_data(lowers: list[str], upper: str | None, work: str | None, options: list[str]) -> str:
    parts = list(options)
    parts.append("lowerdir=" + ":".join(lowers))
    if upper is not None:
        parts.append(f"upperdir={upper}")
        parts.append(f"workdir={work}")
    return ",".join(parts)


def mount_overlay(target: str | os.PathLike, lowers: list[str], upper: str | None = None,
                  work: str | None = None, options: list[str] | tuple[str, ...] = (),
                  strategy: str | None = None) -> str:
    """Mount an overlay on ``target``; returns the strategy used.
    ``lowers`` are topmost first.  ``options`` may hold mount flags (``ro``,
    ``nodev``...) and overlay parameters (``index=off``)."""
    if not lowers:
        raise OSError(22, "overlay needs at least one lower directory", os.fspath(target))
    target = os.path.abspath(target)
    parsed = parse_options(list(options))
    data = overlay_data(lowers, upper, work, [parsed.data] if parsed.data else [])
    if strategy is None:
        if len(data.encode()) <= PAGE_LIMIT:
            strategy = DIRECT
        elif supports_lowerdir_plus() and all(len(p.encode()) <= FSCONFIG_VALUE_LIMIT for p in lowers):
            strategy = NEW_API
        else:
            strategy = RELATIVE
    if strategy == DIRECT:
        mount("overlay", target, "overlay", parsed.flags, data)
    elif strategy == NEW_API:
        _mount_new_api(target, lowers, upper, work, list(options))
    elif strategy == RELATIVE:
        _mount_relative(target, lowers, upper, work, parsed.data, parsed.flags)
    else:
        raise ValueError(f"unknown overlay mount strategy {strategy!r}")
    return strategy


def _mount_new_api(target: str, lowers: list[str], upper: str | None, work: str | None,
                   options: list[str]) -> None:
    attrs = 0
    fd = _fsopen(b"overlay")
    try:
        def config(cmd: int, key: str | None, value: str | None) -> None:
            if _fsconfig(fd, cmd, key.encode() if key else None, os.fsencode(value) if value is not None else None):
                err = ctypes.get_errno()
                detail = _fs_log(fd)
                raise OSError(err, f"fsconfig overlay {key or 'create'}={value or ''}: {os.strerror(err)}"
                              + (f" ({detail})" if detail else ""), target)

        for opt in options:
            if opt in MOUNT_ATTRS:
                attrs |= MOUNT_ATTRS[opt]
            elif opt in MOUNT_FLAGS or opt in ("rw", "defaults"):
                continue  # other VFS flags have no meaning for a fresh overlay
            elif "=" in opt:
                key, _, value = opt.partition("=")
                config(FSCONFIG_SET_STRING, key, value)
            else:
                config(FSCONFIG_SET_FLAG, opt, None)
        config(FSCONFIG_SET_STRING, "source", "overlay")  # as mount(8) would show it
        for lower in lowers:
            config(FSCONFIG_SET_STRING, "lowerdir+", lower)
        if upper is not None:
            config(FSCONFIG_SET_STRING, "upperdir", upper)
            config(FSCONFIG_SET_STRING, "workdir", work)
        config(FSCONFIG_CMD_CREATE, None, None)
        mfd = check(_syscall(ctypes.c_long(SYS_FSMOUNT), ctypes.c_int(fd), ctypes.c_uint(FSMOUNT_CLOEXEC),
                             ctypes.c_uint(attrs)), "fsmount overlay", target)
        try:
            check(_syscall(ctypes.c_long(SYS_MOVE_MOUNT), ctypes.c_int(mfd), ctypes.c_char_p(b""),
                           ctypes.c_int(AT_FDCWD), ctypes.c_char_p(os.fsencode(target)),
                           ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)), "move_mount overlay", target)
        finally:
            os.close(mfd)
    finally:
        os.close(fd)


# Runs in a fresh interpreter whose cwd is the layers' common directory.
_RELATIVE_MOUNT = (
    "import ctypes,os,sys\n"
    "libc=ctypes.CDLL(None,use_errno=True)\n"
    "libc.mount.argtypes=[ctypes.c_char_p,ctypes.c_char_p,ctypes.c_char_p,ctypes.c_ulong,ctypes.c_char_p]\n"
    "if libc.mount(b'overlay',os.fsencode(sys.argv[2]),b'overlay',int(sys.argv[3]),os.fsencode(sys.argv[1])):\n"
    "    e=ctypes.get_errno();sys.stderr.write(os.strerror(e));sys.exit(e)\n"
)


def _mount_relative(target: str, lowers: list[str], upper: str | None, work: str | None,
                    extra: str, flags: int) -> None:
    # Only the lowers are made relative: they are what is long.  Upper and
    # work stay absolute, so mountinfo names them unambiguously.
    paths = [os.path.abspath(p) for p in lowers]
    base = os.path.commonpath(paths)
    if base in paths:  # a path cannot be relative to itself usefully
        base = os.path.dirname(base)
    data = overlay_data([os.path.relpath(p, base) for p in paths],
                        os.path.abspath(upper) if upper else None, os.path.abspath(work) if work else None,
                        [extra] if extra else [])
    if len(data.encode()) > PAGE_LIMIT:
        raise OSError(7, f"overlay options for {len(lowers)} layers exceed a page even as relative paths "
                         f"({len(data)} bytes)", target)  # E2BIG
    proc = subprocess.run([sys.executable, "-S", "-I", "-c", _RELATIVE_MOUNT, data, target, str(flags)],
                          cwd=base, capture_output=True, text=True)
    if proc.returncode:
        raise OSError(proc.returncode, f"mount overlay on {target} (relative to {base}): "
                                       f"{proc.stderr.strip() or 'failed'}", target)
