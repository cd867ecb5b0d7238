"""seccomp: compile an OCI ``linux.seccomp`` object to a BPF program with
libseccomp (pyseccomp), and load a compiled program with seccomp(2).

Compiling happens in the runtime (parent) process, where importing and
allocating are safe; the forked child only calls :meth:`Program.load`,
which is one syscall on a prebuilt ``sock_fprog``, no libseccomp.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from typing import NamedTuple

from .libc import libc
from .syscalls import NR

SECCOMP_SET_MODE_FILTER = 1

#: OCI linux.seccomp.flags -> seccomp(2) flags
FILTER_FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}

#: OCI architecture name -> AUDIT_ARCH_* value (as libseccomp's SCMP_ARCH_*)
ARCHITECTURES: dict[str, int] = {
    "SCMP_ARCH_X86": 0x40000003,
    "SCMP_ARCH_X86_64": 0xC000003E,
    "SCMP_ARCH_X32": 0x4000003E,
    "SCMP_ARCH_ARM": 0x40000028,
    "SCMP_ARCH_AARCH64": 0xC00000B7,
    "SCMP_ARCH_MIPS": 0x8,
    "SCMP_ARCH_MIPS64": 0x80000008,
    "SCMP_ARCH_MIPS64N32": 0xA0000008,
    "SCMP_ARCH_MIPSEL": 0x40000008,
    "SCMP_ARCH_MIPSEL64": 0xC0000008,
    "SCMP_ARCH_MIPSEL64N32": 0xE0000008,
    "SCMP_ARCH_PPC": 0x14,
    "SCMP_ARCH_PPC64": 0x80000015,
    "SCMP_ARCH_PPC64LE": 0xC0000015,
    "SCMP_ARCH_S390": 0x16,
    "SCMP_ARCH_S390X": 0x80000016,
    "SCMP_ARCH_RISCV64": 0xC00000F3,
}

#: OCI comparison operator -> libseccomp scmp_compare
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}

_ACT_KILL_PROCESS = 0x80000000
_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


def _trace_action(code: int) -> int:
    return 0x7FF00000 | (code & 0xFFFF)


#: OCI action -> function of errnoRet giving the libseccomp action value
ACTIONS = {
    "SCMP_ACT_KILL": lambda ret: _ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": lambda ret: _ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": lambda ret: _ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": lambda ret: _ACT_TRAP,
    "SCMP_ACT_ERRNO": lambda ret: _errno_action(_errno.EPERM if ret is None else ret),
    "SCMP_ACT_TRACE": lambda ret: _trace_action(_errno.EPERM if ret is None else ret),
    "SCMP_ACT_LOG": lambda ret: _ACT_LOG,
    "SCMP_ACT_ALLOW": lambda ret: _ACT_ALLOW,
}


class SeccompError(ValueError):
    """The seccomp object is malformed; the message names the field."""


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Program(NamedTuple):
    """A compiled classic-BPF seccomp filter."""

    bpf: bytes
    flags: int = 0

    def prepare(self) -> "LoadableProgram":
        """Build the ctypes structures now, so loading in a child allocates nothing."""
        return LoadableProgram(self)


class LoadableProgram:
    __slots__ = ("_buf", "_prog", "flags")

    def __init__(self, program: Program) -> None:
        self._buf = ctypes.create_string_buffer(program.bpf, len(program.bpf))
        self._prog = _SockFprog(len(program.bpf) // 8, ctypes.addressof(self._buf))
        self.flags = program.flags

    def load(self) -> None:
        """seccomp(SECCOMP_SET_MODE_FILTER).  The caller must have
        no_new_privs set or CAP_SYS_ADMIN."""
        if libc.syscall(NR["seccomp"], SECCOMP_SET_MODE_FILTER, self.flags, ctypes.byref(self._prog)) == -1:
            err = ctypes.get_errno()
            raise OSError(err, "seccomp(SECCOMP_SET_MODE_FILTER): " + os.strerror(err))


def compile_filter(spec: dict) -> Program:
    """Compile an OCI ``linux.seccomp`` object.  Syscall names this
    libseccomp does not know are skipped (as runc and crun do), so one
    profile serves kernels and architectures of different ages."""
    import pyseccomp  # heavy-ish (libseccomp via ctypes); only when a profile is given

    if not isinstance(spec, dict):
        raise SeccompError("linux.seccomp: must be an object")
    default = spec.get("defaultAction")
    if default not in ACTIONS:
        raise SeccompError(f"linux.seccomp.defaultAction: unknown action {default!r}")
    default_action = ACTIONS[default](spec.get("defaultErrnoRet"))
    flags = 0
    for flag in spec.get("flags") or ():
        if flag not in FILTER_FLAGS:
            raise SeccompError(f"linux.seccomp.flags: unknown flag {flag!r}")
        flags |= FILTER_FLAGS[flag]
    if spec.get("listenerPath"):
        raise SeccompError("linux.seccomp.listenerPath: seccomp notify is not supported")

    filt = pyseccomp.SyscallFilter(default_action)
    # The child sets no_new_privs itself when the spec asks; never implicitly.
    filt.set_attr(pyseccomp.Attr.CTL_NNP, 0)
    native = pyseccomp.system_arch()
    for arch in spec.get("architectures") or ():
        if arch not in ARCHITECTURES:
            raise SeccompError(f"linux.seccomp.architectures: unknown architecture {arch!r}")
        value = ARCHITECTURES[arch]
        if value != native:
            try:
                filt.add_arch(value)
            except OSError as exc:
                if exc.errno != _errno.EEXIST:
                    raise SeccompError(f"linux.seccomp.architectures: {arch}: {exc.strerror}") from None

    for i, rule in enumerate(spec.get("syscalls") or ()):
        where = f"linux.seccomp.syscalls[{i}]"
        if not isinstance(rule, dict):
            raise SeccompError(f"{where}: must be an object")
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else None)
        if not names or not isinstance(names, list):
            raise SeccompError(f"{where}.names: must be a non-empty array")
        act = rule.get("action")
        if act not in ACTIONS:
            raise SeccompError(f"{where}.action: unknown action {act!r}")
        action = ACTIONS[act](rule.get("errnoRet"))
        args = []
        for j, arg in enumerate(rule.get("args") or ()):
            op = OPERATORS.get(arg.get("op"))
            if op is None:
                raise SeccompError(f"{where}.args[{j}].op: unknown operator {arg.get('op')!r}")
            index = arg.get("index")
            if not isinstance(index, int) or not 0 <= index < 6:
                raise SeccompError(f"{where}.args[{j}].index: must be 0..5")
            args.append(pyseccomp.Arg(index, op, int(arg.get("value", 0)), int(arg.get("valueTwo", 0))))
        if action == default_action:
            continue  # libseccomp rejects rules that repeat the default action
        for name in names:
            nr = pyseccomp.resolve_syscall(native, name)
            if nr == -1:  # __NR_SCMP_ERROR: unknown to this libseccomp
                continue
            try:
                filt.add_rule(action, nr, *args)
            except OSError as exc:
                raise SeccompError(f"{where}: syscall {name!r}: {exc.strerror}") from None

    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        filt.export_bpf(_FdFile(fd))
        size = os.lseek(fd, 0, os.SEEK_END)
        bpf = os.pread(fd, size, 0)
    finally:
        os.close(fd)
    return Program(bpf, flags)


class _FdFile:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd
