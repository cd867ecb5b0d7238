"""Fixtures for the native runtime tests (tests/runtime/*.py).

``runtime_cli`` is parametrised by runtime binary: the shared suite runs
every test against dockyard-runtime, runc and crun, each with its own
--root under the test's tmp directory."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from runtime_testlib import (RuntimeCLI, base_config, dockyard_runtime_argv, is_ci, make_crun_wrapper,
                             overlay_rootfs, remove_cgroups, unmount_under)


@pytest.fixture
def rt_tmp(tmp_path: Path):
    """tmp_path with everything mounted below it unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root: runs real containers")
    try:
        yield tmp_path
    finally:
        unmount_under(tmp_path)


@pytest.fixture(params=["dockyard-runtime", "runc", "crun"])
def runtime_cli(request, rt_tmp: Path):
    name = request.param
    if name == "dockyard-runtime":
        argv = dockyard_runtime_argv()
    else:
        if not shutil.which(name):
            if is_ci():
                pytest.fail(f"{name} is not installed; scripts/install --test installs it")
            pytest.skip(f"{name} is not installed")
        argv = [make_crun_wrapper(rt_tmp)] if name == "crun" else [name]
    cli = RuntimeCLI(name, argv, rt_tmp / f"state-{name}")
    try:
        yield cli
    finally:
        cli.cleanup()


@pytest.fixture
def make_bundle(rt_tmp: Path, busybox_rootfs: Path, test_id: str):
    """make_bundle(config) -> bundle dir on a fresh overlay rootfs; the
    container id is ``test_id`` (or ``config['hostname']``).  Cgroups made
    for the ids are removed afterwards."""
    made: list[str] = []
    count = 0

    def make(config: dict, name: str | None = None) -> Path:
        nonlocal count
        count += 1
        bundle = rt_tmp / f"bundle{count}"
        bundle.mkdir()
        overlay_rootfs(busybox_rootfs, bundle / "fs")
        config = json.loads(json.dumps(config))
        config["root"]["path"] = str(bundle / "fs" / "rootfs")
        (bundle / "config.json").write_text(json.dumps(config, indent=1))
        made.append(name or config.get("hostname") or test_id)
        return bundle

    try:
        yield make
    finally:
        for cid in made:
            remove_cgroups(cid)


@pytest.fixture
def config_for(test_id: str):
    def config(args: list[str], **changes):
        return base_config(args, test_id, **changes)
    return config
