"""The snapshotter suite: written once, run against every Snapshotter
(containerd's ``snapshotter_suite(factory)``).

A test module imports these functions and provides two fixtures:

``snapshotter_factory``
    a callable returning a snapshotter over one fixed root (calling it again
    reopens the same root, for persistence tests);
``snapshotter``
    ``snapshotter_factory()``, closed after the test.

Only the Snapshotter Protocol and ``dockyard.store.mounting`` are used, so
the semantics tested here are the generic ones: what a mounted snapshot
shows.  Mounts really mount (root needed); every test's mounts live under
its own data root, which the ``data_root`` fixture unmounts at teardown.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from dockyard.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from dockyard.store.mounting import mounted
from dockyard.store.snapshot import Info, Kind, Snapshotter


def _mp(data_root: Path, name: str = "mnt") -> Path:
    path = data_root / name
    path.mkdir(exist_ok=True)
    return path


def _commit_layer(sn: Snapshotter, data_root: Path, name: str, parent: str | None, files: dict[str, bytes],
                  delete: tuple[str, ...] = ()) -> None:
    """Prepare, write files (and delete some) through the mount, commit."""
    key = f"{name}-active"
    with mounted(sn.prepare(key, parent), _mp(data_root)) as root:
        for path in delete:
            target = root / path
            if target.is_dir() and not target.is_symlink():
                import shutil

                shutil.rmtree(target)
            else:
                target.unlink()
        for path, data in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
    sn.commit(name, key)


def _tree(root: Path) -> dict[str, bytes | None]:
    """Relative path -> content (None for directories)."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = Path(p).read_bytes() if os.path.isfile(p) else b"<special>"
    return out


def test_suite_prepare_commit_stat(snapshotter: Snapshotter, data_root):
    assert isinstance(snapshotter, Snapshotter)
    mounts = snapshotter.prepare("base-active", labels={"purpose": "test"})
    assert mounts
    info = snapshotter.stat("base-active")
    assert info.kind == Kind.ACTIVE and info.parent is None and info.labels == {"purpose": "test"}
    with mounted(mounts, _mp(data_root)) as root:
        (root / "hello").write_text("world")
    committed = snapshotter.commit("base", "base-active", labels={"layer": "0"})
    assert committed.kind == Kind.COMMITTED and committed.name == "base"
    assert committed.labels == {"purpose": "test", "layer": "0"}
    with pytest.raises(NotFound):
        snapshotter.stat("base-active")
    assert snapshotter.stat("base").kind == Kind.COMMITTED


def test_suite_chain_shows_lower_layers(snapshotter: Snapshotter, data_root):
    _commit_layer(snapshotter, data_root, "l0", None, {"a": b"A", "dir/x": b"X"})
    _commit_layer(snapshotter, data_root, "l1", "l0", {"b": b"B", "dir/y": b"Y"})
    _commit_layer(snapshotter, data_root, "l2", "l1", {"a": b"A2"})
    assert snapshotter.stat("l2").parent == "l1"
    with mounted(snapshotter.prepare("c", "l2"), _mp(data_root)) as root:
        assert _tree(root) == {"a": b"A2", "b": b"B", "dir": None, "dir/x": b"X", "dir/y": b"Y"}
        (root / "new").write_bytes(b"N")
    # the layers below did not change
    with mounted(snapshotter.view("v1", "l1"), _mp(data_root, "v")) as root:
        assert _tree(root) == {"a": b"A", "b": b"B", "dir": None, "dir/x": b"X", "dir/y": b"Y"}


def test_suite_deletions_hide_lower_files(snapshotter: Snapshotter, data_root):
    _commit_layer(snapshotter, data_root, "l0", None, {"keep": b"k", "gone": b"g", "dir/a": b"a", "dir/b": b"b"})
    _commit_layer(snapshotter, data_root, "l1", "l0", {}, delete=("gone", "dir/a"))
    with mounted(snapshotter.view("v", "l1"), _mp(data_root)) as root:
        assert _tree(root) == {"keep": b"k", "dir": None, "dir/b": b"b"}
    # a file re-created above its deletion comes back
    _commit_layer(snapshotter, data_root, "l2", "l1", {"gone": b"again"})
    with mounted(snapshotter.view("v2", "l2"), _mp(data_root, "m2")) as root:
        assert _tree(root)["gone"] == b"again"


def test_suite_replaced_directory_is_opaque(snapshotter: Snapshotter, data_root):
    _commit_layer(snapshotter, data_root, "l0", None, {"etc/old1": b"1", "etc/old2": b"2"})
    _commit_layer(snapshotter, data_root, "l1", "l0", {"etc/new": b"n"}, delete=("etc",))
    _commit_layer(snapshotter, data_root, "l2", "l1", {"other": b"o"})
    with mounted(snapshotter.view("v", "l2"), _mp(data_root)) as root:
        assert _tree(root) == {"etc": None, "etc/new": b"n", "other": b"o"}


def test_suite_metadata_survives_layers(snapshotter: Snapshotter, data_root):
    with mounted(snapshotter.prepare("k", None), _mp(data_root)) as root:
        (root / "f").write_bytes(b"data")
        os.chown(root / "f", 1234, 5678)
        os.chmod(root / "f", 0o4750)  # after chown, which clears set-uid
        os.utime(root / "f", ns=(1_000_000_000, 1_500_000_000_123))
        os.symlink("f", root / "link")
        os.link(root / "f", root / "hard")
        os.mkfifo(root / "fifo")
        os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.setxattr(root / "f", "user.note", b"kept")
        os.mkdir(root / "sticky", 0o1777)
        os.chmod(root / "sticky", 0o1777)
    snapshotter.commit("l0", "k")
    _commit_layer(snapshotter, data_root, "l1", "l0", {"unrelated": b"u"})
    with mounted(snapshotter.view("v", "l1"), _mp(data_root)) as root:
        st = os.lstat(root / "f")
        assert stat.S_IMODE(st.st_mode) == 0o4750
        assert (st.st_uid, st.st_gid) == (1234, 5678)
        assert st.st_mtime_ns == 1_500_000_000_123
        assert os.readlink(root / "link") == "f"
        assert os.lstat(root / "hard").st_ino == st.st_ino and st.st_nlink == 2
        assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)
        nst = os.lstat(root / "null")
        assert stat.S_ISCHR(nst.st_mode) and nst.st_rdev == os.makedev(1, 3)
        assert os.getxattr(root / "f", "user.note") == b"kept"
        assert stat.S_IMODE(os.lstat(root / "sticky").st_mode) == 0o1777


def test_suite_view_is_read_only(snapshotter: Snapshotter, data_root):
    _commit_layer(snapshotter, data_root, "l0", None, {"a": b"A"})
    _commit_layer(snapshotter, data_root, "l1", "l0", {"b": b"B"})
    for key, parent in (("v0", None), ("v1", "l0"), ("v2", "l1")):
        mounts = snapshotter.view(key, parent)
        assert snapshotter.stat(key).kind == Kind.VIEW
        with mounted(mounts, _mp(data_root, key)) as root:
            with pytest.raises(OSError) as exc:
                (root / "x").write_bytes(b"no")
            assert exc.value.errno == errno.EROFS
        with pytest.raises(FailedPrecondition):
            snapshotter.commit(f"{key}-c", key)
        assert snapshotter.mounts(key) == mounts


def test_suite_errors(snapshotter: Snapshotter, data_root):
    snapshotter.prepare("a")
    with pytest.raises(AlreadyExists):
        snapshotter.prepare("a")
    with pytest.raises(NotFound):
        snapshotter.prepare("b", "missing-parent")
    with pytest.raises(FailedPrecondition, match="not committed"):
        snapshotter.prepare("b", "a")
    with pytest.raises(InvalidArgument):
        snapshotter.prepare("")
    with pytest.raises(InvalidArgument):
        snapshotter.prepare("bad\nkey")
    snapshotter.commit("a-c", "a")
    with pytest.raises(FailedPrecondition):
        snapshotter.mounts("a-c")
    with pytest.raises(FailedPrecondition):
        snapshotter.commit("x", "a-c")
    snapshotter.prepare("d", "a-c")
    with pytest.raises(AlreadyExists):
        snapshotter.commit("a-c", "d")  # names and keys share one namespace
    with pytest.raises(NotFound):
        snapshotter.commit("e", "missing")
    with pytest.raises(FailedPrecondition, match="depends on it"):
        snapshotter.remove("a-c")
    with pytest.raises(NotFound):
        snapshotter.remove("missing")
    with pytest.raises(NotFound):
        snapshotter.mounts("missing")
    with pytest.raises(NotFound):
        snapshotter.usage("missing")
    # nothing half-made was left by the failures
    assert sorted(i.name for i in snapshotter.walk()) == ["a-c", "d"]


def test_suite_remove(snapshotter: Snapshotter, data_root):
    _commit_layer(snapshotter, data_root, "l0", None, {"a": b"A"})
    snapshotter.prepare("c1", "l0")
    snapshotter.view("v1", "l0")
    snapshotter.remove("c1")
    with pytest.raises(FailedPrecondition):
        snapshotter.remove("l0")
    snapshotter.remove("v1")
    snapshotter.remove("l0")
    assert list(snapshotter.walk()) == []
    # the key is free again
    snapshotter.prepare("l0")
    assert snapshotter.stat("l0").kind == Kind.ACTIVE


def test_suite_walk_and_labels(snapshotter: Snapshotter, data_root):
    snapshotter.prepare("a", labels={"x": "1"})
    snapshotter.commit("a-c", "a")
    snapshotter.prepare("b", "a-c", labels={"x": "2", "y": "y"})
    snapshotter.view("v", "a-c")
    infos = {i.name: i for i in snapshotter.walk()}
    assert set(infos) == {"a-c", "b", "v"}
    assert all(isinstance(i, Info) for i in infos.values())
    assert infos["b"].parent == "a-c" and infos["v"].parent == "a-c"
    assert [i.name for i in snapshotter.walk(kind=Kind.ACTIVE)] == ["b"]
    assert [i.name for i in snapshotter.walk(kind=Kind.COMMITTED)] == ["a-c"]
    assert sorted(i.name for i in snapshotter.walk(label=("x", None))) == ["a-c", "b"]
    assert [i.name for i in snapshotter.walk(label=("x", "2"))] == ["b"]
    updated = snapshotter.update("b", {"x": "3", "y": ""})
    assert updated.labels == {"x": "3"}
    assert snapshotter.stat("b").labels == {"x": "3"}


def test_suite_usage(snapshotter: Snapshotter, data_root):
    with mounted(snapshotter.prepare("k"), _mp(data_root)) as root:
        (root / "big").write_bytes(os.urandom(1 << 20))
        for i in range(10):
            (root / f"small{i}").write_bytes(b"x")
    active = snapshotter.usage("k")
    assert active.size >= 1 << 20
    assert active.inodes >= 12  # root dir + 11 files
    snapshotter.commit("c", "k")
    assert snapshotter.usage("c") == active
    assert snapshotter.usage("c") == active  # cached for committed, same answer


def test_suite_concurrent_commit_to_one_name(snapshotter: Snapshotter, data_root):
    for key in ("k1", "k2", "k3", "k4"):
        snapshotter.prepare(key)
    results: list[str] = []
    barrier = threading.Barrier(4)

    def commit(key: str) -> None:
        barrier.wait()
        try:
            snapshotter.commit("layer", key)
            results.append("ok")
        except AlreadyExists:
            results.append("exists")

    threads = [threading.Thread(target=commit, args=(k,)) for k in ("k1", "k2", "k3", "k4")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["exists", "exists", "exists", "ok"]
    assert snapshotter.stat("layer").kind == Kind.COMMITTED


def test_suite_persists_across_reopen(snapshotter_factory, data_root):
    first = snapshotter_factory()
    try:
        _commit_layer(first, data_root, "l0", None, {"a": b"A"})
        first.prepare("c", "l0", labels={"k": "v"})
    finally:
        first.close()
    again = snapshotter_factory()
    try:
        assert again.stat("c").labels == {"k": "v"}
        assert again.stat("c").parent == "l0"
        with mounted(again.mounts("c"), _mp(data_root)) as root:
            assert (root / "a").read_bytes() == b"A"
    finally:
        again.close()


def test_suite_deep_chain(snapshotter: Snapshotter, data_root):
    parent = None
    for i in range(25):
        _commit_layer(snapshotter, data_root, f"l{i}", parent, {f"f{i}": str(i).encode(), "top": str(i).encode()})
        parent = f"l{i}"
    with mounted(snapshotter.prepare("c", parent), _mp(data_root, "c")) as root:
        tree = _tree(root)
        assert tree["top"] == b"24"
        assert all(tree[f"f{i}"] == str(i).encode() for i in range(25))
