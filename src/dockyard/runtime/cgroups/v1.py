"""cgroup v1: one directory per controller hierarchy.

The hierarchy root (``/sys/fs/cgroup``) holds one mount per controller or
group of co-mounted controllers (``cpu,cpuacct`` with ``cpu`` and
``cpuacct`` symlinks), plus ``systemd`` for the ``name=systemd`` hierarchy.
A cgroup path exists once in each of them.  On a hybrid host the cgroup2
mount at ``unified/`` is joined too, as runc does: it costs one directory
and gives ``cgroup.kill``, which kills a whole tree without racing forks.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

from dockyard.errors import FailedPrecondition, Internal, InvalidArgument, NotFound, Unavailable

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
    read_int,
    read_optional,
    read_text,
    write_text,
)
from .resources import plan_v1

#: Controllers this backend puts containers in, when mounted.  "systemd"
#: is the directory of the name=systemd hierarchy.
CONTROLLERS = (
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
    "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc", "systemd",
)

#: Hierarchy whose tree procs() and kill_all() walk: the freezer's, since
#: kill_all freezes it; any other would do for listing.
_ANCHORS = ("freezer", "pids", "memory", "cpu", "cpuacct", "devices")

#: Values at or above this in v1 limit files mean "no limit"
#: (PAGE_COUNTER_MAX * PAGE_SIZE, just under 2**63).
_UNLIMITED = 1 << 62

#: blkio stat files by preference: CFQ's (old kernels), BFQ's, then the
#: throttle layer's, which counts I/O whichever scheduler is in use.
_BLKIO_FILES = (
    ("blkio.io_service_bytes_recursive", "blkio.io_serviced_recursive"),
    ("blkio.bfq.io_service_bytes_recursive", "blkio.bfq.io_serviced_recursive"),
    ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_serviced_recursive"),
)


def hierarchies(root: str) -> dict[str, str]:
    """Mounted v1 controllers under ``root``: controller -> mount directory.

    Co-mounted controllers share a directory (``cpu,cpuacct``); a name
    found only as a symlink to such a directory resolves to it.
    """
    found: dict[str, str] = {}
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.is_symlink() or not entry.is_dir():
            continue
        for name in entry.name.split(","):
            name = name.removeprefix("name=")
            if name in CONTROLLERS:
                found[name] = entry.path
    return found


def unified_dir(root: str) -> str | None:
    """The cgroup2 mount of a hybrid host, if there is one."""
    path = f"{root}/unified"
    return path if os.path.exists(f"{path}/cgroup.procs") else None


def _limit(value: int) -> int | None:
    return None if value >= _UNLIMITED else value


class CgroupV1:
    """A container's cgroup on a v1 (or hybrid) host."""

    version = "v1"

    def __init__(self, path: str, root: str, mounts: Mapping[str, str] | None = None,
                 unified: str | None = None) -> None:
        self.path = path
        self.root = root
        mounts = hierarchies(root) if mounts is None else mounts
        if not mounts:
            raise Unavailable(f"no cgroup v1 controller is mounted under {root}")
        rel = path.lstrip("/")
        #: controller -> this cgroup's directory in that controller's hierarchy
        self.dirs: dict[str, str] = {c: f"{m}/{rel}" for c, m in mounts.items()}
        self._mounts = dict(mounts)
        unique = list(dict.fromkeys(self.dirs.values()))
        self.unified = f"{unified}/{rel}" if unified else None
        if self.unified:
            unique.append(self.unified)
        #: every directory this cgroup has, one per hierarchy
        self.all_dirs: tuple[str, ...] = tuple(unique)
        self._anchor = next((self.dirs[c] for c in _ANCHORS if c in self.dirs), unique[0])

    def __repr__(self) -> str:
        return f"CgroupV1({self.path!r}, root={self.root!r})"

    # -- lifecycle ---------------------------------------------------------

    def create(self) -> None:
        # mkdir straight away (no existence checks: cgroupfs answers EEXIST),
        # the parents only when the kernel says they are missing.
        cpuset = self.dirs.get("cpuset")
        created: list[str] = []
        try:
            for d in self.all_dirs:
                if d == cpuset:
                    self._create_cpuset(created)
                    continue
                try:
                    os.mkdir(d)
                    created.append(d)
                except FileExistsError:
                    pass
                except FileNotFoundError:
                    os.makedirs(d, exist_ok=True)
                    created.append(d)
        except OSError as err:
            # Leave no half-made cgroup: undo this call's directories (shared
            # parents such as /dockyard stay).
            for d in reversed(created):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            raise Internal(f"creating cgroup {self.path}: {err.filename or ''}: {err.strerror}") from err

    def _create_cpuset(self, created: list[str]) -> None:
        # A new cpuset cgroup starts with empty cpus and mems (unless the
        # parent sets cgroup.clone_children), and a task cannot join an
        # empty cpuset: fill each level from its parent on the way down.
        # What a level holds is carried down, so each file is read at most
        # once per level, and a level made here is written, not read.
        parent = self._mounts["cpuset"]
        values: dict[str, str] | None = None  # the parent level's, once known
        for part in self.path.strip("/").split("/"):
            d = f"{parent}/{part}"
            try:
                os.mkdir(d)
                created.append(d)
                fresh = True
            except FileExistsError:
                fresh = False
            current = {}
            for file in ("cpuset.cpus", "cpuset.mems"):
                value = "" if fresh else read_text(f"{d}/{file}").strip()
                if not value:
                    if values is None:
                        values = {f: read_text(f"{parent}/{f}").strip() for f in ("cpuset.cpus", "cpuset.mems")}
                    value = values[file]
                    write_text(f"{d}/{file}", value or "\n")
                current[file] = value
            values = current
            parent = d

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.all_dirs)

    def destroy(self) -> None:
        deadline = time.monotonic() + base.DESTROY_TIMEOUT
        for d in self.all_dirs:
            base.remove_tree(d, self.path, deadline)

    # -- configuration -----------------------------------------------------

    def set(self, resources: Mapping[str, Any]) -> None:
        plan = plan_v1(resources)
        settings = list(plan.settings)
        self._order_memory(settings)
        base.apply_settings(settings, self._dir_for, self.path)
        for field in plan.unsupported:
            log.warning("cgroup %s: linux.resources.%s is not supported on cgroup v1; ignored", self.path, field)
        if plan.devices is not None:
            self._set_devices(plan.devices)

    def _dir_for(self, controller: str) -> str | None:
        return self.dirs.get(controller)

    def _order_memory(self, settings: list) -> None:
        # memory.memsw.limit_in_bytes must stay >= memory.limit_in_bytes at
        # every step: raising the limit goes swap first, lowering it limit
        # first.  Only matters when both change.
        index = {s.choices[0][0]: i for i, s in enumerate(settings)}
        li, si = index.get("memory.limit_in_bytes"), index.get("memory.memsw.limit_in_bytes")
        if li is None or si is None or "memory" not in self.dirs:
            return
        new = int(settings[li].choices[0][1])
        try:
            current = read_int(f"{self.dirs['memory']}/memory.limit_in_bytes")
        except (FileNotFoundError, ValueError):
            return
        raising = new == -1 or new > current
        if raising != (si < li):
            settings[li], settings[si] = settings[si], settings[li]

    def _set_devices(self, rules) -> None:
        d = self.dirs.get("devices")
        if d is None:
            log.warning("cgroup %s: linux.resources.devices not applied: devices controller not mounted", self.path)
            return
        # devices.allow/deny take one rule per write(2): consecutive rules
        # for the same file share one open.
        fds: dict[str, int] = {}
        try:
            for i, rule in enumerate(rules):
                line = rule.v1_line()
                try:
                    fd = fds.get(rule.v1_file)
                    if fd is None:
                        for other in fds.values():
                            os.close(other)
                        fds.clear()
                        fd = fds[rule.v1_file] = os.open(f"{d}/{rule.v1_file}",
                                                         os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
                    os.write(fd, line.encode())
                except OSError as err:
                    kind = {errno.EINVAL: InvalidArgument, errno.EPERM: FailedPrecondition}.get(err.errno, Internal)
                    raise kind(f"linux.resources.devices[{i}]: writing {line!r} to {rule.v1_file} "
                               f"of cgroup {self.path}: {err.strerror}") from err
        finally:
            for fd in fds.values():
                os.close(fd)

    # -- processes ---------------------------------------------------------

    def add(self, pid: int) -> None:
        value = str(pid)
        for d in self.all_dirs:
            try:
                write_text(f"{d}/cgroup.procs", value)
            except ProcessLookupError as err:
                raise NotFound(f"adding pid {pid} to cgroup {self.path}: no such process") from err
            except FileNotFoundError as err:
                raise NotFound(f"adding pid {pid} to cgroup {self.path}: {d} does not exist (create it first)") from err
            except OSError as err:
                raise Internal(f"adding pid {pid} to cgroup {self.path} ({d}): {err.strerror}") from err

    def procs(self) -> list[int]:
        return base.tree_procs(self._anchor)

    # -- freezer -----------------------------------------------------------

    def _freezer(self) -> str:
        d = self.dirs.get("freezer")
        if d is None:
            raise Unavailable(f"cgroup {self.path}: the freezer controller is not mounted")
        return f"{d}/freezer.state"

    def freeze(self) -> None:
        state_file = self._freezer()
        deadline = time.monotonic() + base.FREEZE_TIMEOUT
        delay = 0.001
        try:
            while True:
                # Re-request on every round: a task that forks or is in an
                # uninterruptible sleep can leave the cgroup FREEZING.
                write_text(state_file, "FROZEN")
                state = read_text(state_file).strip()
                if state == "FROZEN":
                    return
                if time.monotonic() >= deadline:
                    break
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        except FileNotFoundError as err:
            raise NotFound(f"cgroup {self.path} does not exist") from err
        write_text(state_file, "THAWED")
        raise Unavailable(f"cgroup {self.path} did not freeze within {base.FREEZE_TIMEOUT}s (state {state})")

    def thaw(self) -> None:
        try:
            write_text(self._freezer(), "THAWED")
        except FileNotFoundError as err:
            raise NotFound(f"cgroup {self.path} does not exist") from err

    def is_frozen(self) -> bool:
        try:
            return read_text(self._freezer()).strip() == "FROZEN"
        except FileNotFoundError:
            return False

    # -- signals -----------------------------------------------------------

    def kill_all(self, sig: int) -> None:
        if sig == signal.SIGKILL and self.unified:
            try:
                write_text(f"{self.unified}/cgroup.kill", "1")
            except FileNotFoundError:
                pass  # kernel < 5.14 or cgroup gone: signal one by one
            else:
                # Tasks frozen by the v1 freezer only die once thawed.
                if self.is_frozen():
                    self.thaw()
                return
        # A task frozen by the v1 freezer acts on SIGKILL only once thawed.
        base.signal_each(self, sig, has_freezer="freezer" in self.dirs and self.exists(),
                         thaw_to_kill=True)

    # -- accounting --------------------------------------------------------

    def oom_kill_count(self) -> int:
        d = self.dirs.get("memory")
        if d is None:
            return 0
        control = read_optional(f"{d}/memory.oom_control")
        if control is None:
            return 0
        fields = parse_flat_keyed(control)
        if "oom_kill" in fields:
            return fields["oom_kill"]
        # Kernels before 4.13 do not count kills.  A cgroup that hit its
        # limit was at least at risk of one: report a lower bound.
        failcnt = read_optional(f"{d}/memory.failcnt")
        return 1 if failcnt and int(failcnt) > 0 else 0

    def oom_event_fd(self) -> int | None:
        d = self.dirs.get("memory")
        if d is None or not os.path.exists(f"{d}/memory.oom_control"):
            return None
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            cfd = os.open(f"{d}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
            try:
                # The registration holds the eventfd, not the control file.
                write_text(f"{d}/cgroup.event_control", f"{efd} {cfd}")
            finally:
                os.close(cfd)
        except OSError as err:
            os.close(efd)
            raise Internal(f"cgroup {self.path}: registering an OOM eventfd: {err.strerror}") from err
        return efd

    def stats(self) -> CgroupStats:
        return CgroupStats(
            cpu=self._cpu_stats(),
            memory=self._memory_stats(),
            pids=self._pids_stats(),
            blkio=self._blkio_stats(),
            hugetlb=self._hugetlb_stats(),
        )

    def _cpu_stats(self) -> CpuStats | None:
        acct, cpu = self.dirs.get("cpuacct"), self.dirs.get("cpu")
        if acct is None and cpu is None:
            return None
        total = user = system = 0
        per_cpu: tuple[int, ...] = ()
        if acct is not None:
            total = int(read_optional(f"{acct}/cpuacct.usage") or 0)
            u, s = read_optional(f"{acct}/cpuacct.usage_user"), read_optional(f"{acct}/cpuacct.usage_sys")
            if u is not None and s is not None:
                user, system = int(u), int(s)
            else:
                # cpuacct.stat counts USER_HZ ticks.
                ticks = parse_flat_keyed(read_optional(f"{acct}/cpuacct.stat") or "")
                ns_per_tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
                user, system = ticks.get("user", 0) * ns_per_tick, ticks.get("system", 0) * ns_per_tick
            per_cpu = tuple(int(v) for v in (read_optional(f"{acct}/cpuacct.usage_percpu") or "").split())
        throttling = parse_flat_keyed(read_optional(f"{cpu}/cpu.stat") or "") if cpu else {}
        return CpuStats(
            usage_total=total, usage_user=user, usage_system=system, per_cpu=per_cpu,
            nr_periods=throttling.get("nr_periods", 0),
            nr_throttled=throttling.get("nr_throttled", 0),
            throttled_time=throttling.get("throttled_time", 0),
        )

    def _memory_stats(self) -> MemoryStats | None:
        d = self.dirs.get("memory")
        if d is None or not os.path.isdir(d):
            return None
        usage = read_int(f"{d}/memory.usage_in_bytes")
        limit = read_int(f"{d}/memory.limit_in_bytes")
        memsw_usage = read_optional(f"{d}/memory.memsw.usage_in_bytes")
        memsw_limit = read_optional(f"{d}/memory.memsw.limit_in_bytes")
        swap_usage = swap_limit = None
        if memsw_usage is not None:
            swap_usage = max(int(memsw_usage) - usage, 0)
        if memsw_limit is not None and _limit(int(memsw_limit)) is not None and _limit(limit) is not None:
            swap_limit = int(memsw_limit) - limit
        return MemoryStats(
            usage=usage,
            max_usage=read_int(f"{d}/memory.max_usage_in_bytes"),
            limit=_limit(limit),
            swap_usage=swap_usage,
            swap_limit=swap_limit,
            failcnt=read_int(f"{d}/memory.failcnt"),
            oom_kill_count=self.oom_kill_count(),
            stat=parse_flat_keyed(read_text(f"{d}/memory.stat")),
        )

    def _pids_stats(self) -> PidsStats | None:
        d = self.dirs.get("pids")
        current = read_optional(f"{d}/pids.current") if d else None
        if current is None:
            return None
        limit = (read_optional(f"{d}/pids.max") or "max").strip()
        return PidsStats(current=int(current), limit=None if limit == "max" else int(limit))

    def _blkio_stats(self) -> BlkioStats | None:
        d = self.dirs.get("blkio")
        if d is None or not os.path.isdir(d):
            return None
        for bytes_file, ios_file in _BLKIO_FILES:
            io_bytes = parse_blkio(read_optional(f"{d}/{bytes_file}") or "")
            if io_bytes:
                return BlkioStats(io_service_bytes=io_bytes,
                                  io_serviced=parse_blkio(read_optional(f"{d}/{ios_file}") or ""))
        return BlkioStats()

    def _hugetlb_stats(self) -> dict[str, HugetlbStats]:
        d = self.dirs.get("hugetlb")
        out: dict[str, HugetlbStats] = {}
        if d is None or not os.path.isdir(d):
            return out
        for name in os.listdir(d):
            if name.startswith("hugetlb.") and name.endswith(".usage_in_bytes") and ".rsvd." not in name:
                size = name[len("hugetlb."):-len(".usage_in_bytes")]
                out[size] = HugetlbStats(
                    usage=read_int(f"{d}/{name}"),
                    max_usage=int(read_optional(f"{d}/hugetlb.{size}.max_usage_in_bytes") or 0),
                    failcnt=int(read_optional(f"{d}/hugetlb.{size}.failcnt") or 0),
                )
        return out


def parse_blkio(text: str) -> tuple[BlkioEntry, ...]:
    """v1 blkio stat lines ``8:0 Read 4096`` (the closing ``Total N`` line,
    a sum over devices, is dropped)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, minor = parts[0].split(":", 1)
        out.append(BlkioEntry(int(major), int(minor), parts[1], int(parts[2])))
    return tuple(out)
