"""Linux namespaces: unshare(2), setns(2) and the OCI names for them.

OCI ``linux.namespaces[].type`` strings map to CLONE_NEW* flags and to the
file names under /proc/<pid>/ns by tables.  The order in ``JOIN_ORDER`` is
the order a process must join existing namespaces in: the user namespace
first (it grants the capabilities the other setns calls need), the mount
namespace late (it changes the root and cwd), cgroup last.
"""

from __future__ import annotations

import ctypes
import os

from .libc import check, libc

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

#: OCI namespace type -> clone flag
NAMESPACE_FLAGS: dict[str, int] = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}

#: OCI namespace type -> name under /proc/<pid>/ns
PROC_NS_NAMES: dict[str, str] = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}

JOIN_ORDER: tuple[str, ...] = ("user", "ipc", "uts", "network", "pid", "time", "mount", "cgroup")

libc.unshare.argtypes = [ctypes.c_int]
libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def unshare(flags: int) -> None:
    """unshare(2)."""
    check(libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2) into the namespace open on ``fd``."""
    check(libc.setns(fd, nstype), "setns")


def ns_inode(pid: int | str, oci_type: str) -> int:
    """The inode number identifying a process's namespace of that type."""
    return os.stat(f"/proc/{pid}/ns/{PROC_NS_NAMES[oci_type]}").st_ino
