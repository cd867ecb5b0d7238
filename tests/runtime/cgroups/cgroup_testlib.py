"""Helpers shared by the cgroup tests (imported by conftest.py and the test
modules; conftest files cannot be imported by name safely)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dockyard.runtime.cgroups import Cgroup, CgroupV1, CgroupV2, detect_version, open_cgroup

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
CGROUP_ROOT = "/sys/fs/cgroup"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: works in the host's cgroup hierarchies")
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (scripts/install installs it)")


def cgroup2_mount() -> str | None:
    for candidate in (CGROUP_ROOT, f"{CGROUP_ROOT}/unified"):
        if os.path.exists(f"{candidate}/cgroup.controllers"):
            return candidate
    return None


def host_has_v1() -> bool:
    return os.path.isdir(CGROUP_ROOT) and detect_version(CGROUP_ROOT) == "v1"


def teardown_cgroup(cg: Cgroup) -> None:
    """Kill everything in ``cg`` and remove it; used by every fixture's finally."""
    if not cg.exists():
        return
    deadline = time.monotonic() + 5
    if cg.is_frozen():
        cg.thaw()
    while True:
        cg.kill_all(signal.SIGKILL)
        if not cg.procs() or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    cg.destroy()


class Gated:
    """A busybox shell that waits for one line on stdin before running its
    script, so the test can put it into a cgroup first."""

    def __init__(self, script: str, argv: list[str] | None = None) -> None:
        argv = argv or [BUSYBOX, "sh", "-c", f"read _gate; {script}"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.pid = self.proc.pid

    def release(self) -> None:
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float = 10) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.decode(), err.decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        # wait(), not communicate(): orphaned children may still hold the pipes.
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass  # frozen by a failed test; the cgroup fixture thaws and kills it
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass


@contextmanager
def v1_cgroups(test_id: str) -> Iterator[Callable[[str], CgroupV1]]:
    require_root()
    if not host_has_v1():
        pytest.skip("host has no cgroup v1 hierarchies")
    top = f"/dockyard-test-{test_id}"
    made: list[Cgroup] = []

    def make(sub: str = "ctr") -> CgroupV1:
        cg = open_cgroup(f"{top}/{sub}", test_id, version="v1")
        made.append(cg)
        return cg

    try:
        yield make
    finally:
        for cg in reversed(made):
            teardown_cgroup(cg)
        teardown_cgroup(open_cgroup(top, test_id, version="v1"))


@contextmanager
def v2_cgroups(test_id: str) -> Iterator[Callable[[str], CgroupV2]]:
    """v2 cgroups under a private parent of the host's cgroup2 mount, used
    as the hierarchy root so the test never touches the real root's
    cgroup.subtree_control."""
    require_root()
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("host has no cgroup2 mount")
    parent = f"{mount}/dockyard-test-{test_id}"
    os.mkdir(parent)
    made: list[Cgroup] = []

    def make(sub: str = "ctr") -> CgroupV2:
        cg = open_cgroup(f"/{sub}", test_id, root=parent, version="v2")
        made.append(cg)
        return cg

    try:
        yield make
    finally:
        try:
            for cg in reversed(made):
                teardown_cgroup(cg)
        finally:
            teardown_cgroup(CgroupV2("/dockyard-test-" + test_id, mount))


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks (/proc/<pid>/stat fields 14, 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# -- a fake cgroup2 tree ----------------------------------------------------

FAKE_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc"

#: What a cgroup2 directory holds with every controller enabled, as the
#: kernel shows it freshly created.
FAKE_V2_FILES = {
    "cgroup.procs": "",
    "cgroup.controllers": FAKE_CONTROLLERS,
    "cgroup.subtree_control": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    "cpu.weight": "100\n",
    "cpu.max": "max 100000\n",
    "cpu.max.burst": "0\n",
    "cpu.idle": "0\n",
    "cpuset.cpus": "\n",
    "cpuset.mems": "\n",
    "memory.current": "0\n",
    "memory.peak": "0\n",
    "memory.max": "max\n",
    "memory.low": "0\n",
    "memory.swap.current": "0\n",
    "memory.swap.max": "max\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    "memory.stat": "anon 0\nfile 0\n",
    "pids.current": "0\n",
    "pids.max": "max\n",
    "io.stat": "",
    "io.max": "",
    "io.weight": "default 100\n",
    "io.bfq.weight": "default 100\n",
    "hugetlb.2MB.current": "0\n",
    "hugetlb.2MB.max": "max\n",
    "hugetlb.2MB.rsvd.max": "max\n",
    "hugetlb.2MB.events": "max 0\n",
    "rdma.max": "",
}


def make_fake_v2_dir(path: Path, files: dict[str, str] | None = None, omit: tuple[str, ...] = ()) -> Path:
    """Populate ``path`` as the kernel does on mkdir; an existing directory
    is left as it is (the kernel populates a cgroup once)."""
    if path.exists():
        return path
    path.mkdir(parents=True)
    for name, content in {**FAKE_V2_FILES, **(files or {})}.items():
        if name not in omit and not any(name.startswith(prefix + ".") for prefix in omit):
            (path / name).write_text(content)
    return path
