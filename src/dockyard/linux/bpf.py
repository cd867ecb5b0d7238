"""bpf(2) glue: load, attach, query and detach eBPF programs.

Only what the cgroup v2 device controller needs lives here: cgroup v2 has
no ``devices.allow`` file, so the allow-list is an eBPF program of type
``BPF_PROG_TYPE_CGROUP_DEVICE`` attached to the cgroup directory.  The
program's instructions are assembled by the caller
(``dockyard.runtime.cgroups.devices``); this module only moves bytes across
the syscall boundary.

``union bpf_attr`` is built as a zeroed byte buffer with fields packed at
the offsets of ``include/uapi/linux/bpf.h``: the kernel requires every byte
past the fields a command uses to be zero, so a fixed 128-byte buffer that
is zero-filled works on every kernel that knows the command.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

from .libc import check, libc

#: bpf(2) syscall number by machine (asm/unistd.h): libc has no wrapper.
_SYS_BPF = {
    "x86_64": 321,
    "aarch64": 280,
    "arm64": 280,
    "ppc64le": 361,
    "s390x": 351,
    "riscv64": 280,
    "i686": 357,
    "i386": 357,
    "armv7l": 386,
}

# bpf(2) commands (enum bpf_cmd).
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16

# enum bpf_prog_type / enum bpf_attach_type values used here.
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6

# Attach flags.
BPF_F_ALLOW_OVERRIDE = 1 << 0
BPF_F_ALLOW_MULTI = 1 << 1
BPF_F_REPLACE = 1 << 2

_ATTR_SIZE = 128
_LOG_SIZE = 1 << 16


def _bpf(cmd: int, attr: ctypes.Array, what: str) -> int:
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        raise OSError(38, f"bpf: no syscall number known for {platform.machine()}")  # ENOSYS
    return check(libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr, ctypes.c_uint(_ATTR_SIZE)), what)


def _attr(fmt: str, *values) -> ctypes.Array:
    buf = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into(fmt, buf, 0, *values)
    return buf


def prog_load(prog_type: int, insns: bytes, license: str = "Apache-2.0", name: str = "",
              expected_attach_type: int = 0) -> int:
    """Load a program; returns its fd (the caller closes it).

    On a verifier rejection the ``OSError`` message carries the verifier's
    log, so a bad program says why it is bad.
    """
    if len(insns) % 8:
        raise ValueError("eBPF instructions are 8 bytes each")
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    prog_name = name.encode()[:15]

    def attempt(log_level: int, log: ctypes.Array | None) -> int:
        # prog_type u32 @0, insn_cnt u32 @4, insns u64 @8, license u64 @16,
        # log_level u32 @24, log_size u32 @28, log_buf u64 @32,
        # kern_version u32 @40, prog_flags u32 @44, prog_name char[16] @48,
        # prog_ifindex u32 @64, expected_attach_type u32 @68.
        attr = _attr(
            "=IIQQIIQII16sII",
            prog_type, len(insns) // 8, ctypes.addressof(code), ctypes.addressof(lic),
            log_level, len(log) if log is not None else 0, ctypes.addressof(log) if log is not None else 0,
            0, 0, prog_name, 0, expected_attach_type,
        )
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")

    try:
        return attempt(0, None)
    except OSError as err:
        if err.errno not in (13, 22):  # EACCES/EINVAL: the verifier said no; ask it why
            raise
        log = ctypes.create_string_buffer(_LOG_SIZE)
        try:
            return attempt(1, log)
        except OSError as err2:
            text = log.value.decode(errors="replace").strip()
            raise OSError(err2.errno, f"bpf(BPF_PROG_LOAD): {os.strerror(err2.errno)}: {text}") from None


def prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0,
                replace_fd: int = 0) -> None:
    # target_fd u32 @0, attach_bpf_fd u32 @4, attach_type u32 @8,
    # attach_flags u32 @12, replace_bpf_fd u32 @16.
    _bpf(BPF_PROG_ATTACH, _attr("=IIIII", target_fd, prog_fd, attach_type, flags, replace_fd),
         "bpf(BPF_PROG_ATTACH)")


def prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    _bpf(BPF_PROG_DETACH, _attr("=III", target_fd, prog_fd, attach_type), "bpf(BPF_PROG_DETACH)")


def prog_query(target_fd: int, attach_type: int, max_progs: int = 64) -> tuple[int, list[int]]:
    """IDs of the programs attached directly to ``target_fd`` (not inherited
    ones), and the attach flags they were attached with."""
    ids = (ctypes.c_uint32 * max_progs)()
    # target_fd u32 @0, attach_type u32 @4, query_flags u32 @8,
    # attach_flags u32 @12, prog_ids u64 @16, prog_cnt u32 @24.
    attr = _attr("=IIIIQI", target_fd, attach_type, 0, 0, ctypes.addressof(ids), max_progs)
    _bpf(BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY)")
    attach_flags, = struct.unpack_from("=I", attr, 12)
    count, = struct.unpack_from("=I", attr, 24)
    return attach_flags, list(ids[:min(count, max_progs)])


def prog_get_fd_by_id(prog_id: int) -> int:
    return _bpf(BPF_PROG_GET_FD_BY_ID, _attr("=I", prog_id), "bpf(BPF_PROG_GET_FD_BY_ID)")

