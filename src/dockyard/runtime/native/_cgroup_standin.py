"""TEMPORARY minimal cgroup v1 backend, used only until
``dockyard.runtime.cgroups`` provides ``open_cgroup`` (issue 3, the cgroups
part).  It implements just what the native runtime calls, with the same
method names, and goes away when that module lands.
"""

from __future__ import annotations

import errno
import os
import signal
import time

from ...errors import FailedPrecondition, InvalidArgument, Unavailable

ROOT = "/sys/fs/cgroup"
CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd")


def _resolve(cgroups_path: str, container_id: str) -> str:
    if ":" in cgroups_path:
        raise InvalidArgument(f"linux.cgroupsPath {cgroups_path!r}: systemd form is not supported")
    raw = cgroups_path if cgroups_path.startswith("/") else f"/dockyard/{cgroups_path or container_id}"
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidArgument(f"linux.cgroupsPath {cgroups_path!r} is not a valid cgroup path")
    return "/" + "/".join(parts)


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


class StandinCgroupV1:
    version = "v1"

    def __init__(self, path: str) -> None:
        self.path = path
        self.dirs = {c: f"{ROOT}/{c}{path}" for c in CONTROLLERS if os.path.isdir(f"{ROOT}/{c}")}

    def create(self) -> None:
        for c, d in self.dirs.items():
            os.makedirs(d, exist_ok=True)
            if c == "cpuset":
                # cpuset children start empty; inherit the parent's cpus/mems.
                parent = ROOT + "/cpuset"
                for part in [p for p in self.path.split("/") if p]:
                    child = parent + "/" + part
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        with open(child + "/" + f) as cur:
                            if not cur.read().strip():
                                with open(parent + "/" + f) as src:
                                    _write(child + "/" + f, src.read().strip())
                    parent = child

    def set(self, resources) -> None:
        mem = resources.get("memory") or {}
        if mem.get("limit") is not None:
            _write(self.dirs["memory"] + "/memory.limit_in_bytes", str(mem["limit"]))
        if mem.get("swap") is not None and os.path.exists(self.dirs["memory"] + "/memory.memsw.limit_in_bytes"):
            _write(self.dirs["memory"] + "/memory.memsw.limit_in_bytes", str(mem["swap"]))
        pids = resources.get("pids") or {}
        if pids.get("limit") is not None:
            _write(self.dirs["pids"] + "/pids.max", "max" if pids["limit"] <= 0 else str(pids["limit"]))
        cpu = resources.get("cpu") or {}
        if cpu.get("shares"):
            _write(self.dirs["cpu"] + "/cpu.shares", str(cpu["shares"]))
        if cpu.get("period"):
            _write(self.dirs["cpu"] + "/cpu.cfs_period_us", str(cpu["period"]))
        if cpu.get("quota"):
            _write(self.dirs["cpu"] + "/cpu.cfs_quota_us", str(cpu["quota"]))

    def add(self, pid: int) -> None:
        for d in self.dirs.values():
            _write(d + "/cgroup.procs", str(pid))

    def procs(self) -> list[int]:
        d = self.dirs.get("pids") or next(iter(self.dirs.values()))
        pids: set[int] = set()
        for top, _dirs, _files in os.walk(d):
            try:
                with open(top + "/cgroup.procs") as f:
                    pids.update(int(p) for p in f.read().split())
            except FileNotFoundError:
                pass
        return sorted(pids)

    def freeze(self) -> None:
        _write(self.dirs["freezer"] + "/freezer.state", "FROZEN")
        deadline = time.monotonic() + 5
        while not self.is_frozen():
            if time.monotonic() > deadline:
                raise Unavailable(f"cgroup {self.path}: freezing did not finish")
            time.sleep(0.001)

    def thaw(self) -> None:
        _write(self.dirs["freezer"] + "/freezer.state", "THAWED")

    def is_frozen(self) -> bool:
        try:
            with open(self.dirs["freezer"] + "/freezer.state") as f:
                return f.read().strip() == "FROZEN"
        except FileNotFoundError:
            return False

    def oom_kill_count(self) -> int:
        try:
            with open(self.dirs["memory"] + "/memory.oom_control") as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except FileNotFoundError:
            pass
        return 0

    def oom_event_fd(self):
        return None

    def kill_all(self, sig: int) -> None:
        for pid in self.procs():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def destroy(self) -> None:
        deadline = time.monotonic() + 2
        for d in self.dirs.values():
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise FailedPrecondition(f"cgroup {self.path}: {d}: {exc.strerror}") from None
                    time.sleep(0.002)

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())


def open_cgroup(cgroups_path: str, container_id: str) -> StandinCgroupV1:
    return StandinCgroupV1(_resolve(cgroups_path, container_id))


__all__ = ["open_cgroup", "signal"]
