"""Helpers for the runtime tests: a runtime CLI driver that runs the same
commands against dockyard-runtime, runc and crun, and OCI bundles on an
overlay of the shared busybox rootfs (so tests may write to their rootfs
without touching each other's)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from dockyard.runtime.native.spec import default_spec  # noqa: E402

RUNTIMES = ("dockyard-runtime", "runc", "crun")
CGROUP_V1 = Path("/sys/fs/cgroup")
CGROUP_PARENT = "dockyard-rt-test"

#: crun 1.8 refuses a hybrid cgroup host whose cgroup2 mount has
#: controllers enabled (here: hugetlb).  The wrapper runs it in a private
#: mount namespace where that file reads empty; containers are unaffected.
CRUN_WRAPPER = """#!/bin/sh
exec unshare -m --propagation unchanged sh -c '
mount --make-rslave / &&
if grep -q . /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
  mount --bind /dev/null /sys/fs/cgroup/unified/cgroup.controllers
fi &&
exec crun "$@"' crun "$@"
"""


def dockyard_runtime_argv() -> list[str]:
    exe = Path(sys.executable).parent / "dockyard-runtime"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "dockyard.runtime.cli"]


class RuntimeCLI:
    """One runtime binary with its own --root."""

    def __init__(self, name: str, argv: list[str], root: Path) -> None:
        self.name = name
        self.argv = argv
        self.root = root
        self.ids: list[str] = []

    @property
    def native(self) -> bool:
        return self.name == "dockyard-runtime"

    def __call__(self, *args: str, check: bool = True, timeout: float = 60, input: bytes | None = None,
                 capture: bool = True) -> subprocess.CompletedProcess:
        cmd = [*self.argv, "--root", str(self.root), *args]
        proc = subprocess.run(cmd, input=input, capture_output=capture, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout: {proc.stdout!r}\n"
                                 f"stderr: {proc.stderr!r}")
        return proc

    def run(self, cid: str, bundle: Path, *, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess:
        self.ids.append(cid)
        return self("run", "--bundle", str(bundle), cid, check=check, timeout=timeout)

    def _detached(self, cmd: list[str], check: bool) -> subprocess.CompletedProcess:
        # The container inherits the runtime's stdio and outlives it: a pipe
        # would keep subprocess waiting for EOF, so stderr goes to a file.
        with tempfile.TemporaryFile() as err:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=60)
            err.seek(0)
            proc.stderr = err.read()
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr!r}")
        return proc

    def run_detached(self, cid: str, bundle: Path) -> None:
        self.ids.append(cid)
        self._detached([*self.argv, "--root", str(self.root), "run", "-d", "--bundle", str(bundle), cid], True)

    def create(self, cid: str, bundle: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        self.ids.append(cid)
        return self._detached([*self.argv, "--root", str(self.root), "create", "--bundle", str(bundle), *extra, cid],
                              check)

    def state(self, cid: str) -> dict[str, Any]:
        return json.loads(self("state", cid).stdout)

    def wait_status(self, cid: str, status: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.state(cid)
            if st["status"] == status or time.monotonic() > deadline:
                return st
            time.sleep(0.02)

    def cleanup(self) -> None:
        for cid in self.ids:
            self("delete", "--force", cid, check=False, timeout=30)


def make_crun_wrapper(directory: Path) -> str:
    path = directory / "crun-wrapper"
    path.write_text(CRUN_WRAPPER)
    path.chmod(0o755)
    return str(path)


def overlay_rootfs(lower: Path, where: Path) -> Path:
    """A writable rootfs: overlay of ``lower`` with upper/work in ``where``."""
    for d in ("upper", "work", "rootfs"):
        (where / d).mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={where / 'upper'},workdir={where / 'work'}", str(where / "rootfs")],
                   check=True)
    return where / "rootfs"


def base_config(args: list[str], cid: str, **changes: Any) -> dict[str, Any]:
    """Docker-like config (our `spec` defaults) for a busybox bundle: no
    terminal, writable root, hostname = id, cgroup under the test parent."""
    spec = default_spec(args, terminal=False)
    spec["root"]["readonly"] = False
    cid = changes.get("hostname", cid)  # a second container in a test is named by its hostname
    spec["hostname"] = cid
    spec["linux"]["cgroupsPath"] = cgroup_path(cid)
    spec["process"]["noNewPrivileges"] = True
    for key, value in changes.items():
        spec[key] = value
    return spec


def cgroup_path(cid: str) -> str:
    """A test container's cgroup: top-level and its own, no shared parent
    (a parent that one test's teardown removes while another test's runtime
    is creating its child under it made crun fail with ENOENT)."""
    return f"/{CGROUP_PARENT}-{cid}"


def cgroup_dirs(cid: str) -> list[Path]:
    """Existing v1 cgroup directories of a test container."""
    return [p for p in CGROUP_V1.glob(f"*{cgroup_path(cid)}") if p.is_dir()]


def remove_cgroups(cid: str) -> None:
    for d in cgroup_dirs(cid):
        for sub in sorted(d.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if sub.is_dir():
                try:
                    sub.rmdir()
                except OSError:
                    pass
        try:
            d.rmdir()
        except OSError:
            pass


def processes_rooted_in(path: Path) -> list[int]:
    """Pids whose root directory is ``path`` (a container left behind)."""
    found = []
    target = str(path.resolve())
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/root") == target:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def which(name: str) -> str | None:
    return shutil.which(name)


def is_ci() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("DOCKYARD_CI"))


import testlib  # noqa: E402 - the helpers every test package shares

mounts_under = testlib.mounts_under
unmount_under = testlib.unmount_under
