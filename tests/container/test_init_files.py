"""Docker's init layer in a container's rootfs (fsutil.make_init_files) and
diff's rule that leaves it out (image.diff.mount_point_stubs), on plain
directories: the image's tree and the container's copy of it."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.container.fsutil import make_init_files
from dockyard.image import diff


def _tree(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("image\n")
    (root / "etc" / "mtab").write_text("not a link\n")
    (root / "bin").mkdir()
    for path in (root / "etc" / "hostname", root / "etc" / "mtab", root / "etc", root / "bin", root):
        os.utime(path, (1, 1))


def _copy(image: Path, own: Path) -> None:
    import shutil
    shutil.copytree(image, own, symlinks=True)
    for path in (own / "etc" / "hostname", own / "etc" / "mtab", own / "etc", own / "bin", own):
        os.utime(path, (1, 1))


def test_init_files_replace_the_images_and_diff_leaves_them_out(tmp_path: Path):
    image, own = tmp_path / "image", tmp_path / "own"
    _tree(image)
    _copy(image, own)
    make_init_files(own)
    st = os.lstat(own / ".dockerenv")
    assert (st.st_size, st.st_mode & 0o7777) == (0, 0o755)
    assert os.readlink(own / "etc" / "mtab") == "/proc/mounts"
    for name in ("hostname", "hosts", "resolv.conf"):
        assert (own / "etc" / name).read_bytes() == b""
    assert (own / "dev" / "console").read_bytes() == b""
    assert all((own / d).is_dir() for d in ("dev/pts", "dev/shm", "proc", "sys"))
    for path in (own / "etc", own):
        os.utime(path, (1, 1), follow_symlinks=False)
    # the image lacks /dev, /proc and /sys: all stubs, nothing added
    skip = diff.mount_point_stubs(own, [image])
    assert {b".dockerenv", b"etc/mtab", b"etc/hostname", b"etc"} <= skip
    assert diff.diff_dirs(image, own, skip=skip) == []
    # what a user changes there afterwards is a change
    (own / ".dockerenv").write_text("x")
    os.unlink(own / "etc" / "mtab")
    os.symlink("/elsewhere", own / "etc" / "mtab")
    changed = {c.path for c in diff.diff_dirs(image, own, skip=diff.mount_point_stubs(own, [image]))}
    assert {"/.dockerenv", "/etc/mtab"} <= changed


def test_init_files_never_leave_the_root(tmp_path: Path):
    """An image whose /etc is a symlink to a host path: the symlink is
    replaced by a directory (as dockerd does), the host path untouched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(str(outside), root / "etc")
    make_init_files(root)
    assert list(outside.iterdir()) == []
    assert (root / "etc").is_dir() and not (root / "etc").is_symlink()
    assert os.readlink(root / "etc" / "mtab") == "/proc/mounts"


def test_a_directory_in_the_way_is_kept(tmp_path: Path):
    root = tmp_path / "root"
    (root / "etc" / "hosts").mkdir(parents=True)
    (root / ".dockerenv").mkdir()
    make_init_files(root)
    assert (root / "etc" / "hosts").is_dir() and (root / ".dockerenv").is_dir()
    assert (root / "etc" / "hostname").read_bytes() == b""
