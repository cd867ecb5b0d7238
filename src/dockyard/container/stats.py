"""Docker's stats JSON (``GET /containers/{id}/stats``) from cgroup stats.

One sample is a :class:`~dockyard.runtime.cgroups.base.CgroupStats` plus
the host's cumulative CPU time; Docker's document carries the current and
the previous sample (``cpu_stats`` / ``precpu_stats``) so clients compute
the CPU percentage from the two deltas.
"""

from __future__ import annotations

import os
from typing import Any

from .model import ZERO_TIME

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def system_cpu_usage() -> int:
    """Host CPU time in ns since boot, all CPUs (/proc/stat's cpu line),
    which is what Docker reports as system_cpu_usage."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu "):
                    # user nice system idle iowait irq softirq steal (guest is in user)
                    ticks = sum(int(x) for x in line.split()[1:9])
                    return ticks * 1_000_000_000 // _CLK_TCK
    except OSError:
        pass
    return 0


def host_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def online_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


def empty_cpu_stats() -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def cpu_stats(sample: Any, system_usage: int, ncpu: int) -> dict[str, Any]:
    cpu = getattr(sample, "cpu", None) if sample is not None else None
    if cpu is None:
        doc = empty_cpu_stats()
        doc["system_cpu_usage"] = system_usage
        doc["online_cpus"] = ncpu
        return doc
    usage: dict[str, Any] = {"total_usage": cpu.usage_total,
                             "usage_in_kernelmode": cpu.usage_system,
                             "usage_in_usermode": cpu.usage_user}
    if cpu.per_cpu:
        usage["percpu_usage"] = list(cpu.per_cpu)
    return {"cpu_usage": usage, "system_cpu_usage": system_usage, "online_cpus": ncpu,
            "throttling_data": {"periods": cpu.nr_periods, "throttled_periods": cpu.nr_throttled,
                                "throttled_time": cpu.throttled_time}}


def memory_stats(sample: Any) -> dict[str, Any]:
    mem = getattr(sample, "memory", None) if sample is not None else None
    if mem is None:
        return {}
    doc: dict[str, Any] = {"usage": mem.usage, "stats": dict(mem.stat),
                           "limit": mem.limit if mem.limit is not None else host_memory()}
    if mem.max_usage is not None:
        doc["max_usage"] = mem.max_usage
    if mem.failcnt:
        doc["failcnt"] = mem.failcnt
    return doc


def blkio_stats(sample: Any) -> dict[str, Any]:
    """Docker's blkio_stats: every counter a list on cgroup v1 (empty when
    nothing was read or written; clients iterate them), on v2 only the two
    io.stat gives, the rest null, as dockerd answers on each."""
    blkio = getattr(sample, "blkio", None) if sample is not None else None
    names = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
             "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
             "io_time_recursive", "sectors_recursive")
    doc: dict[str, Any] = dict.fromkeys(names)
    if blkio is None:
        return doc
    if blkio.cgroup_version == 1:
        doc.update((name, []) for name in names)
    doc["io_service_bytes_recursive"] = _blkio_entries(blkio.io_service_bytes)
    doc["io_serviced_recursive"] = _blkio_entries(blkio.io_serviced)
    return doc


def _blkio_entries(items) -> list[dict[str, Any]]:
    return [{"major": e.major, "minor": e.minor, "op": e.op, "value": e.value} for e in items]


def pids_stats(sample: Any) -> dict[str, Any]:
    pids = getattr(sample, "pids", None) if sample is not None else None
    if pids is None:
        return {}
    doc: dict[str, Any] = {"current": pids.current}
    if pids.limit is not None:
        doc["limit"] = pids.limit
    return doc


def stats_document(*, container_id: str, name: str, read: str, preread: str, sample: Any,
                   system_usage: int, previous: dict[str, Any] | None, ncpu: int | None = None) -> dict[str, Any]:
    """One element of the stats stream.  ``previous`` is the cpu_stats of
    the sample before (empty for the first)."""
    ncpu = ncpu or online_cpus()
    return {
        "read": read,
        "preread": preread,
        "pids_stats": pids_stats(sample),
        "blkio_stats": blkio_stats(sample),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats(sample, system_usage, ncpu),
        "precpu_stats": previous or empty_cpu_stats(),
        "memory_stats": memory_stats(sample),
        "name": name,
        "id": container_id,
    }


def zero_document(container_id: str, name: str) -> dict[str, Any]:
    """What Docker returns for a container that is not running."""
    return stats_document(container_id=container_id, name=name, read=ZERO_TIME, preread=ZERO_TIME,
                          sample=None, system_usage=0, previous=None, ncpu=0)
