"""cgroup v2: one directory in the unified hierarchy.

Controllers are not mounted separately: a cgroup has a controller's files
only when every ancestor lists it in ``cgroup.subtree_control``.
``create()`` therefore enables the controllers Dockyard uses on each
ancestor from the root down (where available), as runc and crun do.
Core files (``cgroup.procs``, ``cgroup.freeze``, ``cgroup.kill``,
``cgroup.events``, ``cpu.stat``'s usage lines) exist in every cgroup, so
the core features work even where no controller is enabled (the cgroup2
mount of a hybrid host).  Device rules are an eBPF program attached to the
directory (:mod:`.devices`).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

from dockyard.errors import FailedPrecondition, Internal, NotFound, Unavailable

from . import base
from .base import (
    BlkioEntry,
    BlkioStats,
    CgroupStats,
    CpuStats,
    HugetlbStats,
    MemoryStats,
    PidsStats,
    log,
    parse_flat_keyed,
    read_optional,
    read_text,
    write_text,
)
from .resources import plan_v2

#: Controllers enabled for containers, in the order they are enabled.
CONTROLLERS = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")

#: io.stat keys -> (blkio op, which counter): bytes or ios.
_IO_KEYS = {
    "rbytes": ("Read", 0), "wbytes": ("Write", 0), "dbytes": ("Discard", 0),
    "rios": ("Read", 1), "wios": ("Write", 1), "dios": ("Discard", 1),
}


def _max(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return None if text == "max" else int(text)


class CgroupV2:
    """A container's cgroup in a cgroup2 hierarchy mounted at ``root``."""

    version = "v2"

    def __init__(self, path: str, root: str) -> None:
        self.path = path
        self.root = root.rstrip("/") or "/"
        self.dir = f"{self.root}/{path.lstrip('/')}"
        self.all_dirs = (self.dir,)

    def __repr__(self) -> str:
        return f"CgroupV2({self.path!r}, root={self.root!r})"

    def _file(self, name: str) -> str:
        return f"{self.dir}/{name}"

    # -- lifecycle ---------------------------------------------------------

    def create(self) -> None:
        parts = self.path.strip("/").split("/")
        d = self.root
        for part in parts:
            self._enable_controllers(d)
            d = f"{d}/{part}"
            try:
                os.mkdir(d)
            except FileExistsError:
                pass
            except OSError as err:
                raise Internal(f"creating cgroup {self.path}: mkdir {d}: {err.strerror}") from err

    def _enable_controllers(self, d: str) -> None:
        """Let ``d``'s children have the controllers Dockyard uses."""
        available = (read_optional(f"{d}/cgroup.controllers") or "").split()
        enabled = (read_optional(f"{d}/cgroup.subtree_control") or "").split()
        missing = [c for c in CONTROLLERS if c in available and c not in enabled]
        if not missing:
            return
        try:
            write_text(f"{d}/cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
            return
        except OSError:
            pass
        # One refused controller (threaded subtree, processes in an inner
        # cgroup: EBUSY) must not cost the others: retry one by one.
        for c in missing:
            try:
                write_text(f"{d}/cgroup.subtree_control", f"+{c}")
            except OSError as err:
                log.warning("cgroup %s: cannot enable the %s controller in %s: %s", self.path, c, d, err.strerror)

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def destroy(self) -> None:
        base.remove_tree(self.dir, self.path, time.monotonic() + base.DESTROY_TIMEOUT)

    # -- configuration -----------------------------------------------------

    def set(self, resources: Mapping[str, Any]) -> None:
        plan = plan_v2(resources)
        self._check_before_update(resources)
        base.apply_settings(plan.settings, self._dir_for, self.path)
        for field in plan.unsupported:
            log.warning("cgroup %s: linux.resources.%s is not supported on cgroup v2; ignored", self.path, field)
        if plan.devices is not None:
            self._set_devices(plan.devices)

    def _dir_for(self, controller: str) -> str | None:
        return self.dir

    def _check_before_update(self, resources: Mapping[str, Any]) -> None:
        # v1 refuses a limit below current usage; v2 would OOM-kill instead.
        # OCI memory.checkBeforeUpdate asks for v1's behaviour.
        memory = resources.get("memory") or {}
        limit = memory.get("limit")
        if not memory.get("checkBeforeUpdate") or not isinstance(limit, int) or limit <= 0:
            return
        current = read_optional(self._file("memory.current"))
        if current is not None and int(current) > limit:
            raise FailedPrecondition(f"linux.resources.memory.limit {limit} is below the current usage "
                                     f"{int(current)} of cgroup {self.path}")

    def _set_devices(self, rules) -> None:
        from .devices import attach_v2

        try:
            attach_v2(self.dir, rules)
        except OSError as err:
            # The allow-list is a security boundary: never run without it.
            kind = Unavailable if err.errno in (errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP) else Internal
            raise kind(f"linux.resources.devices: attaching the device filter to cgroup {self.path}: "
                       f"{err.strerror or err}") from err

    # -- processes ---------------------------------------------------------

    def add(self, pid: int) -> None:
        try:
            write_text(self._file("cgroup.procs"), str(pid))
        except ProcessLookupError as err:
            raise NotFound(f"adding pid {pid} to cgroup {self.path}: no such process") from err
        except FileNotFoundError as err:
            raise NotFound(f"adding pid {pid} to cgroup {self.path}: it does not exist (create it first)") from err
        except OSError as err:
            raise Internal(f"adding pid {pid} to cgroup {self.path}: {err.strerror}") from err

    def procs(self) -> list[int]:
        return base.tree_procs(self.dir)

    # -- freezer -----------------------------------------------------------

    def _events(self) -> dict[str, int]:
        return parse_flat_keyed(read_text(self._file("cgroup.events")))

    def freeze(self) -> None:
        try:
            write_text(self._file("cgroup.freeze"), "1")
        except FileNotFoundError as err:
            if not self.exists():
                raise NotFound(f"cgroup {self.path} does not exist") from err
            raise Unavailable(f"cgroup {self.path}: this kernel has no cgroup.freeze (needs 5.2)") from err
        deadline = time.monotonic() + base.FREEZE_TIMEOUT
        delay = 0.001
        while self._events().get("frozen") != 1:
            if time.monotonic() >= deadline:
                write_text(self._file("cgroup.freeze"), "0")
                raise Unavailable(f"cgroup {self.path} did not freeze within {base.FREEZE_TIMEOUT}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def thaw(self) -> None:
        try:
            write_text(self._file("cgroup.freeze"), "0")
        except FileNotFoundError as err:
            if not self.exists():
                raise NotFound(f"cgroup {self.path} does not exist") from err
            raise Unavailable(f"cgroup {self.path}: this kernel has no cgroup.freeze (needs 5.2)") from err

    def is_frozen(self) -> bool:
        try:
            return self._events().get("frozen") == 1
        except FileNotFoundError:
            return False

    # -- signals -----------------------------------------------------------

    def kill_all(self, sig: int) -> None:
        if sig == signal.SIGKILL:
            try:
                write_text(self._file("cgroup.kill"), "1")
                return
            except FileNotFoundError:
                if not self.exists():
                    return
                # kernel < 5.14: signal one by one below
        # The v2 freezer lets a fatal signal through to a frozen task.
        base.signal_each(self, sig, has_freezer=os.path.exists(self._file("cgroup.freeze")), thaw_to_kill=False)

    # -- accounting --------------------------------------------------------

    def oom_kill_count(self) -> int:
        events = read_optional(self._file("memory.events"))
        return parse_flat_keyed(events).get("oom_kill", 0) if events else 0

    def oom_event_fd(self) -> int | None:
        path = self._file("memory.events")
        if not os.path.exists(path):
            return None
        from dockyard.linux.inotify import inotify_watch  # ctypes, only for the supervisor

        try:
            return inotify_watch(path)
        except OSError as err:
            raise Internal(f"cgroup {self.path}: watching memory.events: {err.strerror}") from err

    def stats(self) -> CgroupStats:
        return CgroupStats(
            cpu=self._cpu_stats(),
            memory=self._memory_stats(),
            pids=self._pids_stats(),
            blkio=self._io_stats(),
            hugetlb=self._hugetlb_stats(),
        )

    def _cpu_stats(self) -> CpuStats | None:
        text = read_optional(self._file("cpu.stat"))
        if text is None:
            return None
        s = parse_flat_keyed(text)
        return CpuStats(
            usage_total=s.get("usage_usec", 0) * 1000,
            usage_user=s.get("user_usec", 0) * 1000,
            usage_system=s.get("system_usec", 0) * 1000,
            nr_periods=s.get("nr_periods", 0),
            nr_throttled=s.get("nr_throttled", 0),
            throttled_time=s.get("throttled_usec", 0) * 1000,
        )

    def _memory_stats(self) -> MemoryStats | None:
        current = read_optional(self._file("memory.current"))
        if current is None:
            return None
        events = parse_flat_keyed(read_optional(self._file("memory.events")) or "")
        peak = read_optional(self._file("memory.peak"))
        return MemoryStats(
            usage=int(current),
            max_usage=int(peak) if peak is not None else None,
            limit=_max(read_optional(self._file("memory.max"))),
            swap_usage=(lambda v: int(v) if v is not None else None)(read_optional(self._file("memory.swap.current"))),
            swap_limit=_max(read_optional(self._file("memory.swap.max"))),
            failcnt=events.get("max", 0),
            oom_kill_count=events.get("oom_kill", 0),
            stat=parse_flat_keyed(read_optional(self._file("memory.stat")) or ""),
        )

    def _pids_stats(self) -> PidsStats | None:
        current = read_optional(self._file("pids.current"))
        if current is None:
            return None
        return PidsStats(current=int(current), limit=_max(read_optional(self._file("pids.max"))))

    def _io_stats(self) -> BlkioStats | None:
        text = read_optional(self._file("io.stat"))
        if text is None:
            return None
        return parse_io_stat(text)

    def _hugetlb_stats(self) -> dict[str, HugetlbStats]:
        out: dict[str, HugetlbStats] = {}
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return out
        for name in names:
            if name.startswith("hugetlb.") and name.endswith(".current") and ".rsvd." not in name:
                size = name[len("hugetlb."):-len(".current")]
                events = parse_flat_keyed(read_optional(self._file(f"hugetlb.{size}.events")) or "")
                out[size] = HugetlbStats(usage=int(read_text(self._file(name))), max_usage=None,
                                         failcnt=events.get("max", 0))
        return out


def parse_io_stat(text: str) -> BlkioStats:
    """io.stat (``8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0``) as
    v1-style per-device entries, with a Total per device and counter."""
    io_bytes: list[BlkioEntry] = []
    ios: list[BlkioEntry] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, minor = (int(x) for x in parts[0].split(":", 1))
        totals = [0, 0]
        for kv in parts[1:]:
            key, _, value = kv.partition("=")
            if key not in _IO_KEYS:
                continue
            op, which = _IO_KEYS[key]
            entry = BlkioEntry(major, minor, op, int(value))
            (io_bytes if which == 0 else ios).append(entry)
            totals[which] += int(value)
        io_bytes.append(BlkioEntry(major, minor, "Total", totals[0]))
        ios.append(BlkioEntry(major, minor, "Total", totals[1]))
    return BlkioStats(io_service_bytes=tuple(io_bytes), io_serviced=tuple(ios), cgroup_version=2)
