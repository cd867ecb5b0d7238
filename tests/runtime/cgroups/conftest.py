"""Fixtures for the cgroup tests.

Real backends work in the host's hierarchies under a top-level cgroup
named after the test id (``/dockyard-test-<id>``), so parallel workers
never share a directory; teardown kills whatever the test put there and
removes it, pass or fail.  The v2 backend runs against the host's cgroup2
mount (on this hybrid host: /sys/fs/cgroup/unified, where no controller is
enabled, so only core features are real) inside a private parent that acts
as its root, and against a fake cgroupfs tree in tmp for file-level checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cgroup_testlib import Gated, make_fake_v2_dir, v1_cgroups, v2_cgroups

from dockyard.runtime.cgroups import CgroupV2, open_cgroup


@pytest.fixture
def gated():
    """Factory of gated processes; all are killed and reaped at teardown."""
    started: list[Gated] = []

    def start(script: str, argv: list[str] | None = None) -> Gated:
        g = Gated(script, argv)
        started.append(g)
        return g

    try:
        yield start
    finally:
        for g in started:
            g.stop()


@pytest.fixture
def v1_factory(test_id: str):
    with v1_cgroups(test_id) as make:
        yield make


@pytest.fixture
def v2_factory(test_id: str):
    with v2_cgroups(test_id) as make:
        yield make


@pytest.fixture(params=["v1", "v2"])
def backend(request, test_id: str):
    """The shared suite's parameter: a factory of real cgroups of one backend."""
    with (v1_cgroups if request.param == "v1" else v2_cgroups)(test_id) as make:
        yield make


@pytest.fixture
def fake_v2(tmp_path: Path):
    """A fake cgroup2 root; returns (root, factory) where the factory
    pre-populates a cgroup path as the kernel would on mkdir and opens it."""
    root = make_fake_v2_dir(tmp_path / "cgroup2")

    def cgroup(path: str = "/dockyard/ctr", files: dict[str, str] | None = None,
               omit: tuple[str, ...] = ()) -> CgroupV2:
        d = root
        for part in path.strip("/").split("/"):
            d = d / part
            make_fake_v2_dir(d, files, omit)
        return open_cgroup(path, "ctr", root=root, version="v2")

    return root, cgroup
