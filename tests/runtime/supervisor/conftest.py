"""Fixtures for the supervisor and runc/crun adapter tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from supervisor_helpers import make_config, runtime_params


@pytest.fixture
def make_bundle(tmp_path: Path, busybox_rootfs: Path):
    """make_bundle(args, **config options) -> bundle dir with config.json."""
    if os.geteuid() != 0:
        pytest.skip("needs root: runs real containers")
    count = 0

    def make(args: list[str], **options) -> Path:
        nonlocal count
        count += 1
        bundle = tmp_path / f"bundle{count}"
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(make_config(busybox_rootfs, args, **options)))
        return bundle

    return make




@pytest.fixture(params=runtime_params())
def harness(request, tmp_path):
    from supervisor_helpers import Harness

    if os.geteuid() != 0:
        pytest.skip("needs root: runs real containers")
    h = Harness(tmp_path, request.param)
    try:
        yield h
    finally:
        h.cleanup()
