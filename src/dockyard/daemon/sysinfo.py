"""Facts about the host for ``/version`` and ``/info``, read from the kernel's
files (no subprocesses on the request path).  Static facts are read once."""

from __future__ import annotations

import functools
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dockyard import __version__

#: uname machine -> Go's GOARCH, which is what Docker reports as Arch.
GO_ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i686": "386",
    "i386": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

#: filesystem type (mountinfo) -> the name Docker prints as "Backing Filesystem".
BACKING_FS = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs", "xfs": "xfs", "btrfs": "btrfs",
              "tmpfs": "tmpfs", "overlay": "overlayfs", "zfs": "zfs", "f2fs": "f2fs"}

CGROUP_ROOT = Path("/sys/fs/cgroup")


@functools.cache
def kernel_version() -> str:
    return platform.release()


@functools.cache
def go_arch() -> str:
    machine = platform.machine()
    return GO_ARCH.get(machine, machine)


@functools.cache
def os_release() -> dict[str, str]:
    fields: dict[str, str] = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key.strip()] = value.strip().strip('"').strip("'")
        break
    return fields


def operating_system() -> str:
    return os_release().get("PRETTY_NAME", "Linux")


def os_version() -> str:
    return os_release().get("VERSION_ID", "")


@functools.cache
def mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def ncpu() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


def hostname() -> str:
    return socket.gethostname()


def python_version() -> str:
    """Filled in where Docker reports GoVersion: the language runtime."""
    return f"python{platform.python_version()}"


@functools.cache
def cgroup_version() -> str:
    """"2" on a pure cgroup2 host; "1" on v1 and hybrid hosts (containers use
    the v1 controllers there)."""
    try:
        from dockyard.runtime.cgroups import detect_version  # type: ignore[attr-defined]

        return "2" if detect_version() == "v2" else "1"
    except (ImportError, AttributeError):
        pass
    return "2" if (CGROUP_ROOT / "cgroup.controllers").exists() else "1"


def cgroup_has(controller: str, file: str) -> bool:
    if cgroup_version() == "2":
        try:
            return controller in (CGROUP_ROOT / "cgroup.controllers").read_text().split()
        except OSError:
            return False
    return (CGROUP_ROOT / controller / file).exists()


def read_flag(path: str) -> bool:
    try:
        return Path(path).read_text().strip() == "1"
    except OSError:
        return False


def backing_filesystem(path: Path) -> str:
    """The filesystem type holding ``path`` (Docker's "Backing Filesystem")."""
    from dockyard.linux.mount import mountinfo

    target = str(path.resolve())
    best, best_len = "unknown", -1
    for m in mountinfo():
        mp = m.mount_point
        if (target == mp or target.startswith(mp.rstrip("/") + "/")) and len(mp) > best_len:
            best, best_len = m.fstype, len(mp)
    return BACKING_FS.get(best, best)


def rfc3339_nano(ts: float | None = None) -> str:
    """Local time in RFC 3339 with nanoseconds, as Go prints SystemTime."""
    ns = time.time_ns() if ts is None else int(ts * 1e9)
    sec, frac = divmod(ns, 1_000_000_000)
    lt = time.localtime(sec)
    offset = time.strftime("%z", lt)
    offset = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + f".{frac:09d}" + offset


@functools.cache
def source_commit() -> str:
    """The git commit of the source tree the package runs from, when it runs
    from a checkout (an editable install); read from .git, no subprocess."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        git = parent / ".git"
        if git.is_dir():
            try:
                head = (git / "HEAD").read_text().strip()
                if head.startswith("ref: "):
                    ref = head[5:]
                    ref_file = git / ref
                    if ref_file.exists():
                        return ref_file.read_text().strip()[:7]
                    packed = git / "packed-refs"
                    if packed.exists():
                        for line in packed.read_text().splitlines():
                            if line.endswith(" " + ref):
                                return line.split()[0][:7]
                    return ""
                return head[:7]
            except OSError:
                return ""
    return ""


@functools.cache
def build_time() -> str:
    """When the package files were installed or last changed (a truthful
    stand-in for a build timestamp, which a Python package does not have)."""
    import dockyard

    try:
        mtime = Path(dockyard.__file__).stat().st_mtime
    except OSError:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000+00:00", time.gmtime(mtime))


@dataclass(frozen=True)
class ComponentVersion:
    name: str
    version: str
    commit: str = ""

    def to_json(self) -> dict:
        return {"Name": self.name, "Version": self.version, "Details": {"GitCommit": self.commit}}


@functools.cache
def external_runtime_version(binary: str) -> ComponentVersion | None:
    """``runc --version``/``crun --version``, run once per daemon (it is a
    subprocess, so never on every request)."""
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    version, commit = "", ""
    for line in out.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in (binary, "runc", "crun") and len(words) >= 3 and words[1] == "version":
            version = words[2]
        elif words[0] == "commit:" and len(words) >= 2:
            commit = words[1]
    return ComponentVersion(binary, version or "unknown", commit)


def engine_component() -> dict:
    return {
        "Name": "Engine",
        "Version": __version__,
        "Details": {
            "ApiVersion": "",  # filled by the route, which knows the API constants
            "Arch": go_arch(),
            "BuildTime": build_time(),
            "Experimental": "false",
            "GitCommit": source_commit(),
            "GoVersion": python_version(),
            "KernelVersion": kernel_version(),
            "MinAPIVersion": "",
            "Os": "linux",
        },
    }


def python_executable() -> str:
    return sys.executable
