"""Raw syscall numbers for the calls glibc 2.36 does not wrap (or wraps
only in newer versions), per machine.  ``syscall(name, *args)`` goes
through libc's ``syscall(2)`` so errno is set as usual."""

from __future__ import annotations

import ctypes
import os

from .libc import check, libc

_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {
        "capget": 125, "capset": 126, "pivot_root": 155, "setns": 308,
        "unshare": 272, "seccomp": 317, "pidfd_open": 434, "close_range": 436,
        "pidfd_send_signal": 424,
    },
    "aarch64": {
        "capget": 90, "capset": 91, "pivot_root": 41, "setns": 268,
        "unshare": 97, "seccomp": 277, "pidfd_open": 434, "close_range": 436,
        "pidfd_send_signal": 424,
    },
}

MACHINE = os.uname().machine
NR: dict[str, int] = _NUMBERS.get(MACHINE, _NUMBERS["x86_64"])

libc.syscall.restype = ctypes.c_long


def syscall(name: str, *args, what: str | None = None) -> int:
    """Call syscall ``name``; raise OSError on -1."""
    return check(libc.syscall(NR[name], *args), what or name)
