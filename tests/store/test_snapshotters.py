"""Run the snapshotter suite against every implementation, plus what only
the directory-based ones can show (crash leftovers on disk)."""

from __future__ import annotations

import os

import pytest

from testlib import require_root
from dockyard.store.native import NativeSnapshotter
from dockyard.store.overlay import OverlaySnapshotter

from .snapshotter_suite import *  # noqa: F401,F403  (the suite's tests run here)

IMPLEMENTATIONS = {"overlay": OverlaySnapshotter, "native": NativeSnapshotter}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def snapshotter_factory(request, data_root):
    require_root()
    cls = IMPLEMENTATIONS[request.param]
    return lambda: cls(data_root / "snapshotter")


@pytest.fixture
def snapshotter(snapshotter_factory):
    sn = snapshotter_factory()
    try:
        yield sn
    finally:
        sn.close()


def test_crash_leftovers_removed_at_open(snapshotter_factory, data_root):
    sn = snapshotter_factory()
    sn.prepare("kept")
    sn.close()
    root = data_root / "snapshotter"
    # what a crash can leave: a dir being created, one being removed, one
    # whose record never committed, and (overlay) a dangling short link
    for leftover in ("new-0123456789abcdef", "rm-7", "99"):
        (root / "snapshots" / leftover / "fs").mkdir(parents=True)
    if (root / "l").exists():
        (root / "l" / "2r").symlink_to("../snapshots/99/fs")
    sn = snapshotter_factory()
    try:
        assert sorted(os.listdir(root / "snapshots")) == ["1"]
        if (root / "l").exists():
            assert os.listdir(root / "l") == ["1"]
        assert [i.name for i in sn.walk()] == ["kept"]
    finally:
        sn.close()


def test_open_while_in_use_does_not_clean(snapshotter_factory, data_root):
    first = snapshotter_factory()
    try:
        inflight = data_root / "snapshotter" / "snapshots" / "new-feedfacefeedface"
        inflight.mkdir()
        second = snapshotter_factory()  # another opener: must not touch it
        second.close()
        assert inflight.exists()
    finally:
        first.close()


def test_bad_root_is_refused(tmp_path):
    from dockyard.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="must not contain"):
        NativeSnapshotter(tmp_path / "a,b")
