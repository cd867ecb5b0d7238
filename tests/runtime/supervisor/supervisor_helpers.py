"""Helpers (imported by name; tests/ has no packages) for the supervisor and runc/crun adapter tests: OCI bundles over
the shared busybox rootfs, runtimes by name, and teardown that kills
whatever a test started."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
from pathlib import Path

import pytest



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
