"""Fixtures shared by every test package.

Every test gets its own data root under pytest's tmp_path, and whatever was
mounted beneath it is unmounted at teardown, pass or fail, so tests can run
in parallel and leave the host as they found it.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from testlib import make_busybox_rootfs, unmount_under


@pytest.fixture
def test_id() -> str:
    """A short random id for names that must be unique host-wide
    (bridges, cgroups, container ids)."""
    return "t" + secrets.token_hex(4)


@pytest.fixture
def data_root(tmp_path: Path):
    """A private data root; everything mounted under it is unmounted after."""
    root = tmp_path / "root"
    root.mkdir()
    try:
        yield root
    finally:
        unmount_under(tmp_path)


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> Path:
    """A read-only-by-convention busybox rootfs shared by the session.
    Tests that modify a rootfs must copy it first."""
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture(scope="session")
def busybox_tar(busybox_rootfs: Path, tmp_path_factory) -> Path:
    """The busybox rootfs as an uncompressed tar (as `docker import` takes)."""
    out = tmp_path_factory.mktemp("busybox-tar") / "busybox.tar"
    subprocess.run(["tar", "-C", str(busybox_rootfs), "--numeric-owner", "-cf", str(out), "."], check=True)
    return out
