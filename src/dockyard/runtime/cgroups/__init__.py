"""cgroups for containers: one interface, a v1 and a v2 backend.

Callers (the native runtime, the daemon's stats) use :func:`open_cgroup`
and the :class:`Cgroup` interface in :mod:`.base`; which backend answers is
decided by the host (:func:`detect_version`).  OCI ``linux.resources`` is
translated to control-file writes by tables in :mod:`.resources`; device
rules become v1 ``devices.*`` lines or a v2 eBPF program (:mod:`.devices`).

Importing this package loads no ctypes and starts nothing: the runtime
imports it on the path that forks container processes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dockyard.errors import InvalidArgument, Unavailable

from .base import (
    DEFAULT_PARENT,
    BlkioEntry,
    BlkioStats,
    Cgroup,
    CgroupStats,
    CpuStats,
    HugetlbStats,
    MemoryStats,
    PidsStats,
    Version,
    provision,
    resolve_path,
)
from .devices import DeviceRule
from .v1 import CgroupV1, hierarchies, unified_dir
from .v2 import CgroupV2

if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_ROOT = "/sys/fs/cgroup"


def detect_version(root: Path | str = DEFAULT_ROOT) -> Version:
    """"v2" when ``root`` is a cgroup2 mount (it has ``cgroup.controllers``),
    "v1" when it holds v1 controller mounts.  Hybrid hosts (v1 controllers
    plus cgroup2 at ``root/unified``) count as v1: that is where the
    controllers are."""
    root = os.fspath(root)
    if os.path.exists(f"{root}/cgroup.controllers"):
        return "v2"
    if os.path.isdir(root):
        return "v1"
    raise Unavailable(f"no cgroup filesystem at {root}")


#: root -> (its stat identity, version, v1 mounts, unified dir): what the
#: host's layout was when last looked at.  The layout changes when a
#: hierarchy's mount point is made or removed in the root directory, which
#: changes its mtime, link count or (tmpfs) size, so one stat checks the
#: entry instead of a directory scan and three lookups per call.
_layouts: dict[str, tuple[tuple[int, ...], str, dict[str, str], str | None]] = {}


def _layout(root_dir: str) -> tuple[str, dict[str, str], str | None]:
    try:
        st = os.stat(root_dir)
    except FileNotFoundError:
        raise Unavailable(f"no cgroup filesystem at {root_dir}") from None
    identity = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_nlink, st.st_size)
    cached = _layouts.get(root_dir)
    if cached is not None and cached[0] == identity:
        return cached[1], cached[2], cached[3]
    version = detect_version(root_dir)
    mounts = hierarchies(root_dir) if version == "v1" else {}
    unified = unified_dir(root_dir) if version == "v1" else None
    _layouts[root_dir] = (identity, version, mounts, unified)
    return version, mounts, unified


def open_cgroup(cgroups_path: str, container_id: str, *, root: Path | str | None = None,
                version: str | None = None) -> Cgroup:
    """The cgroup named by OCI ``linux.cgroupsPath`` (see
    :func:`~.base.resolve_path`) for ``container_id``.  Nothing is created
    until ``create()``.

    ``root`` is the hierarchy root (default /sys/fs/cgroup).  ``version``
    forces a backend; asking for "v2" on a hybrid host without a root uses
    its cgroup2 mount (/sys/fs/cgroup/unified).
    """
    path = resolve_path(cgroups_path, container_id)
    root_dir = os.fspath(root) if root is not None else DEFAULT_ROOT
    found, mounts, unified = _layout(root_dir)
    if version is None:
        version = found
    if version == "v2":
        if root is None and not os.path.exists(f"{root_dir}/cgroup.controllers"):
            if os.path.exists(f"{root_dir}/unified/cgroup.controllers"):
                root_dir = f"{root_dir}/unified"
            else:
                raise Unavailable(f"no cgroup2 hierarchy at {root_dir}")
        return CgroupV2(path, root_dir)
    if version == "v1":
        if found != "v1":
            mounts, unified = hierarchies(root_dir), unified_dir(root_dir)
        return CgroupV1(path, root_dir, mounts=dict(mounts), unified=unified)
    raise InvalidArgument(f"cgroup version must be 'v1' or 'v2', got {version!r}")


__all__ = [
    "DEFAULT_PARENT",
    "DEFAULT_ROOT",
    "BlkioEntry",
    "BlkioStats",
    "Cgroup",
    "CgroupStats",
    "CgroupV1",
    "CgroupV2",
    "CpuStats",
    "DeviceRule",
    "HugetlbStats",
    "MemoryStats",
    "PidsStats",
    "detect_version",
    "open_cgroup",
    "provision",
    "resolve_path",
]
