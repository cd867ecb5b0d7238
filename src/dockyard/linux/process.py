"""Process attributes set by prctl(2) and friends: no_new_privs, parent
death signal, child subreaper, hostname/domainname, close_range, pidfd,
rlimits by OCI name, oom_score_adj.

Every function here is safe to call in a forked child of a multithreaded
process: no imports, no logging, no locks."""

from __future__ import annotations

import ctypes
import os
import resource

from .libc import check, libc
from .syscalls import NR

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39

CLOSE_RANGE_CLOEXEC = 1 << 2

#: OCI rlimit type -> RLIMIT_* number
RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

RLIM_INFINITY_OCI = 2**64 - 1

libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return check(libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def get_no_new_privs() -> bool:
    return bool(prctl(PR_GET_NO_NEW_PRIVS))


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def set_child_subreaper(on: bool = True) -> None:
    """Orphaned descendants are re-parented to this process instead of init,
    so it can waitpid() a container init it did not fork itself."""
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def is_child_subreaper() -> bool:
    value = ctypes.c_int(0)
    check(libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.addressof(value), 0, 0, 0), "prctl")
    return bool(value.value)


def set_dumpable(on: bool) -> None:
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def set_name(name: bytes) -> None:
    """The thread's comm (15 bytes max), shown by ps."""
    buf = ctypes.create_string_buffer(name[:15])
    check(libc.prctl(PR_SET_NAME, ctypes.addressof(buf), 0, 0, 0), "prctl(PR_SET_NAME)")


def sethostname(name: bytes) -> None:
    check(libc.sethostname(name, len(name)), "sethostname")


def setdomainname(name: bytes) -> None:
    check(libc.setdomainname(name, len(name)), "setdomainname")


def close_range_cloexec(first: int) -> None:
    """Mark every fd >= first close-on-exec (kernel 5.11+), falling back to
    closing none: callers use it only to keep the caller's fds out of a
    container."""
    if libc.syscall(NR["close_range"], first, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC) == -1:
        # Older kernels: walk /proc/self/fd is not allowed here (allocation is
        # fine, but the directory may not be mounted); set flags one by one.
        for fd in range(first, 1024):
            try:
                flags = os.get_inheritable(fd)
            except OSError:
                continue
            if flags:
                os.set_inheritable(fd, False)


def close_from(first: int) -> None:
    """Close every fd >= first: close_range(2), or a loop on old kernels."""
    if libc.syscall(NR["close_range"], first, 0xFFFFFFFF, 0) == -1:
        os.closerange(first, 1 << 16)


def pidfd_open(pid: int) -> int:
    return check(libc.syscall(NR["pidfd_open"], pid, 0), "pidfd_open")


def setrlimit(resource_id: int, soft: int, hard: int) -> None:
    inf = resource.RLIM_INFINITY
    resource.setrlimit(resource_id, (inf if soft >= RLIM_INFINITY_OCI else soft,
                                     inf if hard >= RLIM_INFINITY_OCI else hard))


def read_small(path: str | bytes, limit: int = 1 << 16) -> bytes:
    """A small file (procfs, sysfs, cgroupfs, state files) in one open and
    read: ``open()`` adds an fstat, an ioctl and two lseeks per file, which
    add up on the paths that read a dozen of them per container."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, limit)
        if len(data) < limit:
            return data
        chunks = [data]
        while chunk := os.read(fd, limit):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def process_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of ``pid`` from one read of /proc/<pid>/stat:
    field 3 ('R', 'S', 'Z', ...) and field 22 (clock ticks since boot,
    which with the pid identifies a process across pid reuse).  None if
    the process is gone."""
    try:
        stat = read_small(f"/proc/{pid}/stat")
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2:].split()
    return chr(fields[0][0]), int(fields[19])


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (see :func:`process_stat`); None if the
    process is gone."""
    found = process_stat(pid)
    return found[1] if found is not None else None


def process_state(pid: int) -> str | None:
    """Field 3 of /proc/<pid>/stat ('R', 'S', 'Z', ...), None if gone."""
    found = process_stat(pid)
    return found[0] if found is not None else None
