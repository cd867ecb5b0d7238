"""The device allow-list: OCI ``linux.resources.devices`` as v1
``devices.allow``/``devices.deny`` lines and as a cgroup v2 eBPF program.

OCI rules apply in order (config-linux.md); the later rule wins for the
devices it covers.  v1 implements that natively.  On v2 the kernel asks a
``BPF_PROG_TYPE_CGROUP_DEVICE`` program about every open/mknod of a device
node, passing ``struct bpf_cgroup_dev_ctx``::

    u32 access_type   /* (access << 16) | type */
    u32 major
    u32 minor

with type ``BPF_DEVCG_DEV_BLOCK`` (1) or ``_CHAR`` (2) and access a mask of
``BPF_DEVCG_ACC_MKNOD`` (1), ``_READ`` (2), ``_WRITE`` (4).  The program
returns 1 to allow and 0 to deny.  :func:`assemble` emits the rules last to
first, each as a block that jumps past itself when the request does not
match and otherwise returns the rule's verdict.  An allow rule matches when
it grants every requested access; a deny rule when it refuses any of them.
A request no rule matches is allowed, as under v1 where a new cgroup
inherits its parent's (by default, allow-all) list; OCI lists start with a
"deny all" rule to make the default deny.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, NamedTuple

from dockyard.errors import InvalidArgument

_TYPES = {"a": 0, "b": 1, "c": 2}  # OCI type -> BPF_DEVCG_DEV_* (0: any)
_ACCESS = {"m": 1, "r": 2, "w": 4}  # OCI access letter -> BPF_DEVCG_ACC_*


class DeviceRule(NamedTuple):
    """One OCI device rule; ``None`` major/minor means any (``*``)."""

    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def v1_line(self) -> str:
        """The line v1's devices.allow / devices.deny take: ``c 1:3 rwm``."""
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    @property
    def v1_file(self) -> str:
        return "devices.allow" if self.allow else "devices.deny"


def parse_devices(devices: Any) -> tuple[DeviceRule, ...]:
    if not isinstance(devices, list):
        raise InvalidArgument(f"linux.resources.devices must be an array, got {type(devices).__name__}")
    rules = []
    for i, entry in enumerate(devices):
        field = f"linux.resources.devices[{i}]"
        if not isinstance(entry, Mapping):
            raise InvalidArgument(f"{field} must be an object")
        allow = entry.get("allow")
        if not isinstance(allow, bool):
            raise InvalidArgument(f"{field}.allow is required and must be a boolean, got {allow!r}")
        dev_type = entry.get("type") or "a"
        if dev_type not in _TYPES:
            raise InvalidArgument(f"{field}.type must be one of a, b, c, got {dev_type!r}")
        numbers = []
        for key, limit in (("major", 0xFFF), ("minor", 0xFFFFF)):
            value = entry.get(key)
            # -1 is how some producers (Docker's "*") spell "any".
            if value is None or value == -1:
                numbers.append(None)
            elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
                raise InvalidArgument(f"{field}.{key} must be an integer 0..{limit} or omitted, got {value!r}")
            else:
                numbers.append(value)
        access = entry.get("access") or "rwm"
        if not isinstance(access, str) or not set(access) <= set(_ACCESS):
            raise InvalidArgument(f"{field}.access must combine r, w and m, got {access!r}")
        access = "".join(c for c in "rwm" if c in access)
        rules.append(DeviceRule(allow, dev_type, numbers[0], numbers[1], access))
    return tuple(rules)


# --------------------------------------------------------------------------
# eBPF assembly (include/uapi/linux/bpf.h, bpf_common.h)

_LDX_MEM_W = 0x61   # BPF_LDX | BPF_MEM | BPF_W
_MOV64_K = 0xB7     # BPF_ALU64 | BPF_MOV | BPF_K
_MOV64_X = 0xBF     # BPF_ALU64 | BPF_MOV | BPF_X
_AND64_K = 0x57     # BPF_ALU64 | BPF_AND | BPF_K
_RSH64_K = 0x77     # BPF_ALU64 | BPF_RSH | BPF_K
_JEQ_K = 0x15       # BPF_JMP | BPF_JEQ | BPF_K
_JNE_K = 0x55       # BPF_JMP | BPF_JNE | BPF_K
_EXIT = 0x95        # BPF_JMP | BPF_EXIT

# Registers: r1 = ctx on entry; r2 = device type, r3 = access, r4 = major,
# r5 = minor; r6 scratch; r0 = return value.
_R0, _R1, _R2, _R3, _R4, _R5, _R6 = range(7)

#: Placeholder offset: "jump to the end of this rule's block".
_NEXT_RULE = object()


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    # struct bpf_insn: u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm.
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _rule_block(rule: DeviceRule) -> tuple[list[bytes], bool]:
    """The rule's instructions, and whether it matches every request."""
    block: list[tuple[int, int, int, object, int]] = []  # (code, dst, src, off, imm)
    mask = 0
    for c in rule.access:
        mask |= _ACCESS[c]
    if rule.type != "a":
        block.append((_JNE_K, _R2, 0, _NEXT_RULE, _TYPES[rule.type]))
    if mask != 0b111:
        block.append((_MOV64_X, _R6, _R3, 0, 0))
        if rule.allow:
            # Matches only if nothing outside the rule's access was asked for.
            block.append((_AND64_K, _R6, 0, 0, ~mask & 0b111))
            block.append((_JNE_K, _R6, 0, _NEXT_RULE, 0))
        else:
            # Matches if any access the rule refuses was asked for.
            block.append((_AND64_K, _R6, 0, 0, mask))
            block.append((_JEQ_K, _R6, 0, _NEXT_RULE, 0))
    if rule.major is not None:
        block.append((_JNE_K, _R4, 0, _NEXT_RULE, rule.major))
    if rule.minor is not None:
        block.append((_JNE_K, _R5, 0, _NEXT_RULE, rule.minor))
    block.append((_MOV64_K, _R0, 0, 0, 1 if rule.allow else 0))
    block.append((_EXIT, 0, 0, 0, 0))
    n = len(block)
    insns = [_insn(code, dst, src, (n - 1 - i) if off is _NEXT_RULE else off, imm)
             for i, (code, dst, src, off, imm) in enumerate(block)]
    return insns, n == 2


def assemble(rules: tuple[DeviceRule, ...] | list[DeviceRule]) -> bytes:
    """The eBPF program (raw ``struct bpf_insn`` array) enforcing ``rules``."""
    prog = [
        _insn(_LDX_MEM_W, _R2, _R1, 0),   # r2 = ctx->access_type
        _insn(_AND64_K, _R2, 0, 0, 0xFFFF),  # r2 = type
        _insn(_LDX_MEM_W, _R3, _R1, 0),   # r3 = ctx->access_type
        _insn(_RSH64_K, _R3, 0, 0, 16),   # r3 = access
        _insn(_LDX_MEM_W, _R4, _R1, 4),   # r4 = ctx->major
        _insn(_LDX_MEM_W, _R5, _R1, 8),   # r5 = ctx->minor
    ]
    for rule in reversed(rules):
        insns, catch_all = _rule_block(rule)
        prog.extend(insns)
        if catch_all:
            # Nothing after a rule that matches everything can run, and the
            # verifier rejects unreachable instructions.
            return b"".join(prog)
    prog.append(_insn(_MOV64_K, _R0, 0, 0, 1))  # no rule matched: allow
    prog.append(_insn(_EXIT))
    return b"".join(prog)


def attach_v2(cgroup_dir: str, rules: tuple[DeviceRule, ...]) -> None:
    """Replace the device program of the cgroup at ``cgroup_dir``.

    The new program is attached before the old ones are detached, so there
    is no moment when the cgroup runs unrestricted.  Raises ``OSError``.
    """
    import os

    from dockyard.linux import bpf  # ctypes: only loaded by v2 hosts that set devices

    prog_fd = bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, assemble(rules), name="dockyard_dev")
    dir_fd = -1
    try:
        dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        _, old_ids = bpf.prog_query(dir_fd, bpf.BPF_CGROUP_DEVICE)
        bpf.prog_attach(dir_fd, prog_fd, bpf.BPF_CGROUP_DEVICE, bpf.BPF_F_ALLOW_MULTI)
        for prog_id in old_ids:
            try:
                old_fd = bpf.prog_get_fd_by_id(prog_id)
            except FileNotFoundError:
                continue
            try:
                bpf.prog_detach(dir_fd, old_fd, bpf.BPF_CGROUP_DEVICE)
            except FileNotFoundError:
                pass
            finally:
                os.close(old_fd)
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
        os.close(prog_fd)
