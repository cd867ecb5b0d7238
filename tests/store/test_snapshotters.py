"""Run the snapshotter suite against every implementation, plus what only
the directory-based ones can show (crash leftovers on disk)."""

from __future__ import annotations

import os

import pytest

from testlib import require_root
from dockyard.errors import NotFound
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


def test_removed_snapshot_is_deleted_in_the_background(snapshotter_factory, data_root):
    """remove() renames the tree out of sight and answers; the tree is
    deleted off the caller's path, and close() waits for that."""
    sn = snapshotter_factory()
    snapshots = data_root / "snapshotter" / "snapshots"
    try:
        sn.prepare("big")
        fs = sn.fs_dir("big")
        for i in range(200):
            (fs / f"f{i}").write_bytes(b"x" * 100)
        sn.remove("big")
        # gone for every reader at once, whatever the reaper has done yet
        with pytest.raises(NotFound):
            sn.stat("big")
        assert not fs.exists()
        assert all(not name.isdigit() for name in os.listdir(snapshots))
        sn.prepare("big")  # the key is free again
        assert sn.fs_dir("big") != fs
    finally:
        sn.close()
    assert sorted(os.listdir(snapshots)) == ["2"]


def test_reaper_drains_in_order_and_restarts_after_fork(tmp_path):
    from dockyard.store.reaper import Reaper

    reaper = Reaper()
    trees = []
    for i in range(5):
        tree = tmp_path / f"rm-{i}"
        (tree / "a" / "b").mkdir(parents=True)
        (tree / "a" / "b" / "f").write_bytes(b"x")
        trees.append(tree)
        reaper.reap(tree)
    reaper.drain()
    assert not any(t.exists() for t in trees)
    child_tree = tmp_path / "rm-child"
    child_tree.mkdir()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports by exit status
        try:
            reaper.reap(child_tree)
            reaper.drain()
            os._exit(0 if not child_tree.exists() else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
