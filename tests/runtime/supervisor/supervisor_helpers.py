"""Helpers (imported by name; tests/ has no packages) for the supervisor and
runc/crun adapter tests: OCI bundles over the shared busybox rootfs,
runtimes by name, and teardown that kills whatever a test started."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
from pathlib import Path

import pytest

import testlib



def crun_unusable() -> str | None:
    """Why crun cannot run containers on this host, or None.  crun 1.x
    refuses a hybrid cgroup host whose v2 hierarchy holds a controller
    (here: hugetlb), and moving that controller would change the host."""
    try:
        controllers = Path("/sys/fs/cgroup/unified/cgroup.controllers").read_text().split()
    except OSError:
        return None
    if controllers and Path("/sys/fs/cgroup/memory").is_dir():
        return f"crun does not support hybrid cgroups with v2 controllers {controllers}"
    return None


def runtime_params(*, external_only: bool = False) -> list:
    """pytest params over every runtime: runc, crun, native; one that cannot
    run here is a skip that says why."""
    params = []
    for name in ("runc", "crun", "native"):
        if external_only and name == "native":
            continue
        reason = None
        if name == "native":
            if importlib.util.find_spec("dockyard.runtime.native") is None:
                reason = "the native runtime is not there yet"
        elif not shutil.which(name):
            reason = f"{name} is not installed"
        elif name == "crun":
            reason = crun_unusable()
        params.append(pytest.param(name, marks=pytest.mark.skip(reason=reason)) if reason else name)
    return params


def runtime_names() -> list[str]:
    """Runtimes the shared tests run under: runc and crun when installed
    and usable, native once its package exists."""
    names = [n for n in ("runc", "crun") if shutil.which(n) and not (n == "crun" and crun_unusable())]
    if importlib.util.find_spec("dockyard.runtime.native") is not None:
        names.append("native")
    return names or ["runc"]


def make_config(rootfs: Path, args: list[str], *, terminal: bool = False, memory: int | None = None,
                hostname: str = "box", env: list[str] | None = None) -> dict:
    """A minimal runtime-spec config.json: pid/ipc/uts/mount/network
    namespaces, /proc, /dev, /dev/pts, /dev/shm, read-only rootfs (it is
    shared by every test of the session)."""
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": env or ["PATH=/bin:/usr/bin:/sbin:/usr/sbin", "TERM=xterm", "HOME=/root"],
            "cwd": "/",
            "capabilities": {k: ["CAP_KILL", "CAP_CHOWN", "CAP_SETUID", "CAP_SETGID", "CAP_DAC_OVERRIDE"]
                             for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "maskedPaths": ["/proc/kcore", "/proc/keys"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    if memory is not None:
        config["linux"]["resources"]["memory"] = {"limit": memory, "swap": memory}
    return config


def kill_tree_of_runtime(runtime, ids: list[str]) -> None:
    """Force-delete containers a test made, ignoring ones already gone."""
    from dockyard.errors import DockyardError

    for cid in ids:
        try:
            runtime.delete(cid, force=True)
        except DockyardError:
            pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    return testlib.wait_for(predicate, timeout, interval=interval, what=str(predicate))


class Harness:
    """A private supervisor state dir and runtime root; teardown kills
    whatever the test started: containers, supervisors, the zygote."""

    def __init__(self, tmp_path: Path, runtime: str) -> None:
        from dockyard.runtime.supervisor import SupervisorClient

        self.runtime_name = runtime
        self.runtime_root = tmp_path / "rt"
        self.state_dir = tmp_path / "supervisors"
        self.client = SupervisorClient(self.state_dir)
        self.ids: list[str] = []

    def spec(self, bundle: Path, **kw):
        from dockyard.runtime.supervisor import SupervisorSpec

        kw.setdefault("runtime", self.runtime_name)
        kw.setdefault("runtime_root", str(self.runtime_root))
        return SupervisorSpec(bundle=str(bundle), **kw)

    def log_path(self, cid: str) -> Path:
        return self.state_dir / cid / f"{cid}-json.log"

    def spawn(self, cid: str, bundle: Path, **kw):
        self.ids.append(cid)
        kw.setdefault("log_driver", "json-file")
        kw.setdefault("log_path", str(self.log_path(cid)))
        return self.client.spawn(cid, self.spec(bundle, **kw))

    def runtime(self):
        from dockyard.runtime.registry import get_runtime

        return get_runtime(self.runtime_name, self.runtime_root)

    def cleanup(self) -> None:
        import time

        from dockyard.errors import DockyardError
        from dockyard.runtime.supervisor import SupervisorHandle

        try:
            rt = self.runtime()
            for cid in self.ids:
                try:
                    rt.delete(cid, force=True)
                except DockyardError:
                    pass
        except DockyardError:
            pass
        for cid in self.ids:
            handle = SupervisorHandle(cid, self.state_dir / cid)
            deadline = time.monotonic() + 5
            while handle.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            if handle.alive():
                kill_pid(handle.supervisor_pid())
        pid = self.client.zygote_pid()
        self.client.stop_zygote()
        if pid:
            kill_pid(pid)
