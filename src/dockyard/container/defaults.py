"""Docker's defaults for a container's OCI runtime config, as data.

These are the values ``docker run`` gives a container when the caller says
nothing: the capability set (CapEff 00000000a80425fb), the standard mounts,
and the device cgroup rules (the masked and read-only /proc and /sys paths
are the runtime layer's, :mod:`dockyard.runtime.defaults`, shared with
``dockyard-runtime spec``).  They live in one place so spec generation is a
sequence of edits to a copy of them and tests can compare against the same
source.
"""

from __future__ import annotations

import copy
from typing import Any

#: PATH given to a container whose image and config set none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Every capability the kernel knows, by bit number (capability.h).
ALL_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

#: Docker's default set, in Docker's order.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

_DEFAULT_MOUNTS: tuple[dict[str, Any], ...] = (
    {"destination": "/proc", "type": "proc", "source": "proc",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
)

#: ShmSize when HostConfig leaves it 0 (64 MiB, as Docker).
DEFAULT_SHM_SIZE = 64 * 1024 * 1024

#: /dev/shm as a private tmpfs; its size option is added per container.
SHM_MOUNT: dict[str, Any] = {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                             "options": ["nosuid", "noexec", "nodev", "mode=1777"]}

def _dev(kind: str, major: int | None, minor: int | None, access: str = "rwm",
         allow: bool = True) -> dict[str, Any]:
    rule: dict[str, Any] = {"allow": allow, "type": kind, "access": access}
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    return rule


#: Docker's device cgroup rules, plus the devices every runtime creates in
#: /dev (ptmx, the pty slaves, tun, /dev/full), so the bundle means the same
#: under each.  No wildcard rule: on cgroup v1 a later deny (fuse) cannot
#: punch a hole into a wildcard allow; the runtimes append their own
#: "mknod anything" rules after these.
DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    _dev("c", 1, 3),      # null
    _dev("c", 1, 5),      # zero
    _dev("c", 1, 7),      # full
    _dev("c", 1, 8),      # random
    _dev("c", 1, 9),      # urandom
    _dev("c", 5, 0),      # tty
    _dev("c", 5, 1),      # console
    _dev("c", 5, 2),      # ptmx
    _dev("c", 136, None),  # /dev/pts/*
    _dev("c", 10, 200),   # net/tun
    _dev("c", 10, 229, allow=False),  # fuse stays denied, as Docker
)

#: Namespaced sysctls a container may set (what runc accepts), besides the
#: ``fs.mqueue.*`` and ``net.*`` prefixes.
IPC_SYSCTLS = frozenset({
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
})
UTS_SYSCTLS = frozenset({"kernel.domainname", "kernel.hostname"})

#: Ulimit names Docker accepts -> OCI rlimit type.
RLIMITS: dict[str, str] = {
    name: "RLIMIT_" + name.upper()
    for name in ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                 "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as")
}


def default_mounts() -> list[dict[str, Any]]:
    """A fresh copy of the standard mounts (without /dev/shm)."""
    return copy.deepcopy(list(_DEFAULT_MOUNTS))


def default_device_rules() -> list[dict[str, Any]]:
    return copy.deepcopy(list(DEVICE_RULES))
