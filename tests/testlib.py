"""Helpers shared by every test package: import them as ``from testlib import ...``.

(Not from ``conftest``: several test directories have a conftest.py, and a
bare ``import conftest`` gets whichever one pytest registered first.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].encode().decode("unicode_escape")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                found.append(mnt)
    return sorted(found, key=lambda m: m.count("/"), reverse=True)


def unmount_under(path: Path) -> None:
    for mnt in mounts_under(path):
        subprocess.run(["umount", "-l", mnt], check=False, capture_output=True)


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: runs real mounts, namespaces and cgroups")


def is_ci() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("DOCKYARD_CI"))


def need_tool(name: str) -> str:
    """Path of ``name``; in CI a missing tool is a failure (scripts/install
    --test installs it), elsewhere a skip with the reason."""
    path = shutil.which(name)
    if path:
        return path
    if is_ci():
        pytest.fail(f"{name} is not installed; scripts/install --test should have installed it")
    pytest.skip(f"{name} is not installed (scripts/install --test installs it)")



def make_busybox_rootfs(dest: Path) -> Path:
    """A minimal rootfs: the host's static busybox and its applet links,
    /etc/passwd and /etc/group with root and nobody."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (scripts/install installs it)")
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    for d in ("etc", "tmp", "proc", "sys", "dev", "root", "home"):
        (dest / d).mkdir(exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
    )
    (dest / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\n")
    return dest


def ok(result) -> str:
    """The stdout of a finished command (a CompletedProcess) that must
    have succeeded; on failure the assertion shows its status and output."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout.decode()


def wait_for(predicate, timeout: float = 10.0, *, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something true, and return that;
    an AssertionError naming ``what`` (and the last value) after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {value!r})")
        time.sleep(interval)
