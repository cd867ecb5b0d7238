"""What the host supports, probed once: CPUs, memory nodes, cgroup
controllers and their optional files.

Docker validates HostConfig against the host (``--cpus 8`` on a 2-CPU box is
an error; a blkio weight without a weight file is dropped with a warning).
Spec generation takes a :class:`HostInfo` value so it stays pure and tests
can describe any host they like.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def parse_cpu_list(text: str) -> frozenset[int]:
    """Parse a kernel cpu list ("0-3,5") into a set.  Raises ValueError."""
    result: set[int] = set()
    text = text.strip()
    if not text:
        return frozenset()
    for part in text.split(","):
        if "-" in part:
            lo_s, hi_s = part.split("-", 1)
            lo, hi = int(lo_s), int(hi_s)
            if lo < 0 or hi < lo:
                raise ValueError(part)
            result.update(range(lo, hi + 1))
        else:
            n = int(part)
            if n < 0:
                raise ValueError(part)
            result.add(n)
    return frozenset(result)


@dataclass(frozen=True)
class HostInfo:
    ncpu: int = 1
    cpus: frozenset[int] = frozenset({0})
    mems: frozenset[int] = frozenset({0})
    cgroup_v2: bool = False
    swap_limit: bool = True          # memory.memsw.* (v1) / memory.swap.max (v2)
    memory_reservation: bool = True
    oom_kill_disable: bool = True
    cpu_cfs: bool = True             # cpu.cfs_quota_us / cpu.max
    cpu_shares: bool = True
    cpuset: bool = True
    pids: bool = True
    blkio_weight: bool = True
    blkio_weight_device: bool = True
    blkio_throttle: bool = True
    apparmor: bool = False
    cap_last_cap: int = 40
    #: the daemon's capability bounding set (CapBnd): a container can hold
    #: no capability outside it, so "all capabilities" means these
    bounding_caps: int = (1 << 41) - 1
    #: Docker's default on cgroup v1 is the host cgroup namespace.
    private_cgroupns: bool = False

    def available_capabilities(self) -> list[str]:
        from .defaults import ALL_CAPABILITIES
        return [name for bit, name in enumerate(ALL_CAPABILITIES)
                if bit <= self.cap_last_cap and self.bounding_caps >> bit & 1]

    @property
    def cpus_text(self) -> str:
        return format_cpu_list(self.cpus)


def format_cpu_list(cpus: frozenset[int]) -> str:
    ordered = sorted(cpus)
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def _read(path: Path | str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


@lru_cache(maxsize=1)
def probe_host() -> HostInfo:
    """Look at this machine (cached: the answer does not change while the
    daemon runs)."""
    try:
        cpus = parse_cpu_list(_read("/sys/devices/system/cpu/online")) or frozenset(os.sched_getaffinity(0))
    except ValueError:
        cpus = frozenset(os.sched_getaffinity(0))
    try:
        mems = parse_cpu_list(_read("/sys/devices/system/node/online")) or frozenset({0})
    except ValueError:
        mems = frozenset({0})
    v2 = not (CGROUP_ROOT / "memory").is_dir() and (CGROUP_ROOT / "cgroup.controllers").exists()
    try:
        last_cap = int(_read("/proc/sys/kernel/cap_last_cap").strip() or 40)
    except ValueError:
        last_cap = 40
    apparmor = _read("/sys/module/apparmor/parameters/enabled").strip() == "Y"
    bounding = (1 << (last_cap + 1)) - 1
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("CapBnd:"):
            bounding = int(line.split()[1], 16)
    if v2:
        controllers = set(_read(CGROUP_ROOT / "cgroup.controllers").split())
        return HostInfo(
            ncpu=len(cpus), cpus=cpus, mems=mems, cgroup_v2=True,
            swap_limit="memory" in controllers and any(CGROUP_ROOT.glob("*/memory.swap.max")),
            memory_reservation="memory" in controllers, oom_kill_disable=False,
            cpu_cfs="cpu" in controllers, cpu_shares="cpu" in controllers,
            cpuset="cpuset" in controllers, pids="pids" in controllers,
            blkio_weight="io" in controllers, blkio_weight_device="io" in controllers,
            blkio_throttle="io" in controllers, apparmor=apparmor, cap_last_cap=last_cap,
            bounding_caps=bounding, private_cgroupns=True,
        )
    mem = CGROUP_ROOT / "memory"
    cpu = CGROUP_ROOT / "cpu"
    blkio = CGROUP_ROOT / "blkio"
    return HostInfo(
        ncpu=len(cpus), cpus=cpus, mems=mems, cgroup_v2=False,
        swap_limit=(mem / "memory.memsw.limit_in_bytes").exists(),
        memory_reservation=(mem / "memory.soft_limit_in_bytes").exists(),
        oom_kill_disable=(mem / "memory.oom_control").exists(),
        cpu_cfs=(cpu / "cpu.cfs_quota_us").exists(),
        cpu_shares=(cpu / "cpu.shares").exists(),
        cpuset=(CGROUP_ROOT / "cpuset").is_dir(),
        pids=(CGROUP_ROOT / "pids").is_dir(),
        blkio_weight=(blkio / "blkio.weight").exists() or (blkio / "blkio.bfq.weight").exists(),
        blkio_weight_device=(blkio / "blkio.weight_device").exists()
        or (blkio / "blkio.bfq.weight_device").exists(),
        blkio_throttle=(blkio / "blkio.throttle.read_bps_device").exists(),
        apparmor=apparmor, cap_last_cap=last_cap, bounding_caps=bounding, private_cgroupns=False,
    )
