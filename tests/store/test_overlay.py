"""What is specific to the overlay snapshotter: upper dirs, overlay's
whiteout forms, short lowerdir links, and images deeper than a page of
mount options."""

from __future__ import annotations

import os
import stat

import pytest

from testlib import require_root
from dockyard.errors import FailedPrecondition, Internal
from dockyard.linux import overlay as koverlay
from dockyard.store.mounting import mount_all, mounted, unmount
from dockyard.store.overlay import OVERLAY_OPTIONS, OverlaySnapshotter, filesystem_type
from dockyard.store.snapshot import Mount


@pytest.fixture
def sn(data_root):
    require_root()
    s = OverlaySnapshotter(data_root / "overlay")
    try:
        yield s
    finally:
        s.close()


def _layer(sn: OverlaySnapshotter, name: str, parent: str | None, files: dict[str, bytes]) -> None:
    """Fill an active snapshot's upper dir directly, as layer apply does."""
    key = f"extract {name}"
    sn.prepare(key, parent)
    upper = sn.upper_dir(key)
    for path, data in files.items():
        (upper / path).parent.mkdir(parents=True, exist_ok=True)
        (upper / path).write_bytes(data)
    sn.commit(name, key)


def test_mount_descriptions(sn, data_root):
    assert sn.prepare("a") == [Mount("bind", str(sn.upper_dir("a")), ("rw", "rbind"))]
    sn.commit("l0", "a")
    _layer(sn, "l1", "l0", {})
    (m,) = sn.prepare("c", "l1")
    assert m.type == "overlay"
    assert m.options[:len(OVERLAY_OPTIONS)] == OVERLAY_OPTIONS
    # whatever the kernel's defaults, uppers must stay complete diffs
    assert {"index=off", "redirect_dir=off", "metacopy=off"} <= set(m.options)
    assert m.option("upperdir") == str(sn.upper_dir("c"))
    assert m.option("workdir") == str(sn.work_dir("c"))
    lowers = m.option("lowerdir").split(":")
    # short links, topmost first, resolving to the layers' own dirs
    assert [os.path.dirname(p) for p in lowers] == [str(sn.root / "l")] * 2
    assert [os.path.realpath(p) for p in lowers] == [str(d) for d in sn.lower_dirs("c")]
    assert sn.chain_dirs("l1") == sn.lower_dirs("c")
    # views: one layer is a read-only bind, several an upper-less overlay
    assert sn.view("v1", "l0") == [Mount("bind", str(sn.chain_dirs("l0")[0]), ("ro", "rbind"))]
    (v2,) = sn.view("v2", "l1")
    assert v2.type == "overlay" and v2.option("upperdir") is None
    with pytest.raises(FailedPrecondition):
        sn.upper_dir("l1")
    assert sn.backing_fs == filesystem_type(data_root) != "unknown"


def test_whiteouts_written_into_upper_dir(sn, data_root):
    """Overlay's own forms, as layer apply writes them: a char 0/0 device
    hides a lower file, an opaque directory hides a lower directory's
    content."""
    _layer(sn, "l0", None, {"gone": b"g", "keep": b"k", "etc/a": b"a", "etc/b": b"b"})
    sn.prepare("x", "l0")
    upper = sn.upper_dir("x")
    os.mknod(upper / "gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    (upper / "etc").mkdir()
    os.setxattr(upper / "etc", "trusted.overlay.opaque", b"y")
    (upper / "etc" / "c").write_bytes(b"c")
    sn.commit("l1", "x")
    (data_root / "m").mkdir()
    with mounted(sn.view("v", "l1"), data_root / "m") as root:
        assert sorted(os.listdir(root)) == ["etc", "keep"]
        assert sorted(os.listdir(root / "etc")) == ["c"]


def test_changes_through_mount_land_in_upper_as_overlay_forms(sn, data_root):
    _layer(sn, "l0", None, {"gone": b"g", "dir/a": b"a", "mod": b"old"})
    (data_root / "m").mkdir()
    with mounted(sn.prepare("c", "l0"), data_root / "m") as root:
        os.unlink(root / "gone")
        (root / "mod").write_bytes(b"new")
        for name in os.listdir(root / "dir"):
            os.unlink(root / "dir" / name)
        os.rmdir(root / "dir")
        os.mkdir(root / "dir")
        (root / "dir" / "z").write_bytes(b"z")
    upper = sn.upper_dir("c")
    st = os.lstat(upper / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert (upper / "mod").read_bytes() == b"new"
    assert os.getxattr(upper / "dir", "trusted.overlay.opaque") == b"y"
    assert os.listdir(upper / "dir") == ["z"]


def test_rename_of_lower_directory_is_exdev(sn, data_root):
    """redirect_dir=off: renaming a lower directory is refused (mv then
    copies), so an upper dir never holds redirects a diff would miss."""
    _layer(sn, "l0", None, {"d/f": b"f"})
    (data_root / "m").mkdir()
    with mounted(sn.prepare("c", "l0"), data_root / "m") as root:
        with pytest.raises(OSError) as exc:
            os.rename(root / "d", root / "e")
        assert exc.value.errno == 18  # EXDEV


def _deep(sn: OverlaySnapshotter, depth: int) -> str:
    parent = None
    for i in range(depth):
        _layer(sn, f"layer{i}", parent, {f"f{i}": str(i).encode(), "top": str(i).encode(),
                                         f"shared/{i % 7}": str(i).encode()})
        parent = f"layer{i}"
    return parent


@pytest.mark.parametrize("strategy", [None, koverlay.NEW_API, koverlay.RELATIVE])
def test_120_layers_mount_and_read(sn, data_root, strategy):
    if strategy == koverlay.NEW_API and not koverlay.supports_lowerdir_plus():
        pytest.skip("kernel lacks overlay lowerdir+ (Linux < 6.8)")
    top = _deep(sn, 120)
    mounts = sn.prepare("container", top)
    data = koverlay.overlay_data(mounts[0].option("lowerdir").split(":"), "u", "w", list(OVERLAY_OPTIONS))
    assert len(data) > koverlay.PAGE_LIMIT  # really the case mount(2) alone cannot do
    target = data_root / "rootfs"
    target.mkdir()
    with mounted(mounts, target, overlay_strategy=strategy) as root:
        assert (root / "top").read_bytes() == b"119"
        for i in range(120):
            assert (root / f"f{i}").read_bytes() == str(i).encode()
        assert sorted(os.listdir(root / "shared")) == [str(i) for i in range(7)]
        assert (root / "shared" / "0").read_bytes() == b"119"
        (root / "written").write_bytes(b"w")
    assert (sn.upper_dir("container") / "written").read_bytes() == b"w"
    # a read-only view of the same chain
    with mounted(sn.view("v", top), target, overlay_strategy=strategy) as root:
        assert (root / "f0").read_bytes() == b"0"
    assert not os.path.ismount(target)


@pytest.mark.parametrize("strategy", [koverlay.DIRECT, koverlay.NEW_API, koverlay.RELATIVE])
def test_every_strategy_mounts_short_chains(sn, data_root, strategy):
    if strategy == koverlay.NEW_API and not koverlay.supports_lowerdir_plus():
        pytest.skip("kernel lacks overlay lowerdir+ (Linux < 6.8)")
    _layer(sn, "l0", None, {"a": b"0"})
    _layer(sn, "l1", "l0", {"b": b"1"})
    target = data_root / "m"
    target.mkdir()
    with mounted(sn.prepare("c", "l1"), target, overlay_strategy=strategy) as root:
        assert sorted(os.listdir(root)) == ["a", "b"]


def test_failed_mount_raises_and_leaves_nothing(sn, data_root):
    target = data_root / "m"
    target.mkdir()
    bad = [Mount("overlay", "overlay", ("lowerdir=/nonexistent/a:/nonexistent/b",))]
    with pytest.raises(Internal, match="mounting overlay"):
        mount_all(bad, target)
    assert not os.path.ismount(target)
    # several mounts: the first is undone when the second fails
    good = sn.view("v", None)
    with pytest.raises(Internal):
        mount_all(good + bad, target)
    assert not os.path.ismount(target)
    unmount(target)  # not mounted: fine


def test_mounted_without_target_uses_a_temp_dir(sn):
    _layer(sn, "l0", None, {"a": b"A"})
    with mounted(sn.view("v", "l0")) as root:
        assert (root / "a").read_bytes() == b"A"
        where = root
    assert not where.exists()


def test_usage_counts_only_own_layer(sn, data_root):
    _layer(sn, "l0", None, {"big": os.urandom(1 << 20)})
    sn.prepare("c", "l0")
    (sn.upper_dir("c") / "small").write_bytes(b"s")
    assert sn.usage("l0").size >= 1 << 20
    assert sn.usage("c").size < 1 << 20
    assert sn.usage("c").inodes == 2


@pytest.mark.parametrize("strategy", [koverlay.DIRECT, koverlay.NEW_API, koverlay.RELATIVE])
def test_mounted_active_snapshot_is_not_removed(sn, data_root, strategy):
    if strategy == koverlay.NEW_API and not koverlay.supports_lowerdir_plus():
        pytest.skip("kernel lacks overlay lowerdir+ (Linux < 6.8)")
    _layer(sn, "l0", None, {"a": b"A"})
    target = data_root / "m"
    target.mkdir()
    with mounted(sn.prepare("c", "l0"), target, overlay_strategy=strategy):
        with pytest.raises(FailedPrecondition, match="is mounted at"):
            sn.remove("c")
        assert (target / "a").read_bytes() == b"A"
    sn.remove("c")
