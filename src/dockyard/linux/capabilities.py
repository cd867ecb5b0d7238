"""Capabilities: the five sets (bounding, effective, permitted,
inheritable, ambient), by capset(2) and prctl(2).

OCI names (``CAP_SYS_ADMIN``) map to bit numbers by ``CAPABILITIES``.
Masks are plain ints with bit N set for capability N, so a whole set is
computed once in the parent and applied in the child without lookups.
"""

from __future__ import annotations

import ctypes
import os

from .libc import check, libc
from .syscalls import NR

CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

#: Docker's default capability set (CapEff 00000000a80425fb for root).
DOCKER_DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability number this kernel knows (read once: it is
    fixed for the life of the kernel)."""
    global _last_cap
    if _last_cap is None:
        try:
            fd = os.open("/proc/sys/kernel/cap_last_cap", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _last_cap = int(os.read(fd, 64))
            finally:
                os.close(fd)
        except OSError:
            return max(CAPABILITIES.values())
    return _last_cap


def mask_of(names, *, known_only: bool = True) -> int:
    """Bit mask of capability names; unknown names raise KeyError unless
    ``known_only`` is False (then they are skipped, as runc warns and skips)."""
    mask = 0
    for name in names:
        bit = CAPABILITIES.get(name)
        if bit is None:
            if known_only:
                raise KeyError(name)
            continue
        mask |= 1 << bit
    return mask


def names_of(mask: int) -> list[str]:
    return [name for name, bit in CAPABILITIES.items() if mask >> bit & 1]


class CapabilityState:
    """Precomputed capability sets, applied in a forked child with
    :meth:`drop_bounding` then :meth:`apply` (no lookups, no allocation
    beyond the prebuilt ctypes structs)."""

    __slots__ = ("bounding", "effective", "permitted", "inheritable", "ambient", "_last",
                 "_hdr", "_data", "_drop", "_ambient_bits")

    def __init__(self, bounding: int, effective: int, permitted: int, inheritable: int,
                 ambient: int, last: int | None = None) -> None:
        self.bounding, self.effective, self.permitted = bounding, effective, permitted
        self.inheritable, self.ambient = inheritable, ambient
        self._last = last_cap() if last is None else last
        self._hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for i in range(2):
            data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
            data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
        self._data = data
        self._drop = tuple(c for c in range(self._last + 1) if not bounding >> c & 1)
        self._ambient_bits = tuple(c for c in range(self._last + 1) if ambient >> c & 1)

    def drop_bounding(self) -> None:
        """Drop every capability outside the bounding set (needs CAP_SETPCAP)."""
        for cap in self._drop:
            check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "prctl(PR_CAPBSET_DROP)")

    def apply(self) -> None:
        """capset(2) the effective/permitted/inheritable sets, then raise the
        ambient ones (which must be permitted and inheritable)."""
        check(libc.syscall(NR["capset"], ctypes.byref(self._hdr), ctypes.byref(self._data)), "capset")
        if self._ambient_bits:
            for cap in self._ambient_bits:
                check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0),
                      "prctl(PR_CAP_AMBIENT_RAISE)")


def set_keepcaps(keep: bool) -> None:
    """Keep permitted capabilities across setuid from 0 to non-zero."""
    check(libc.prctl(PR_SET_KEEPCAPS, 1 if keep else 0, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")


def read_status_caps(pid: int | str = "self") -> dict[str, int]:
    """CapInh/CapPrm/CapEff/CapBnd/CapAmb of a process, from /proc/<pid>/status."""
    caps = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Cap"):
                key, _, value = line.partition(":")
                caps[key] = int(value.strip(), 16)
    return caps
