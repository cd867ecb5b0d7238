"""Diff: overlay upper -> layer tar and back, through real overlay mounts."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import FailedPrecondition
from dockyard.image.apply import ApplyOptions, WhiteoutMode, apply_layer
from dockyard.image.diff import ChangeKind, changes, diff_dirs, write_dir_diff, write_layer, write_merged
from dockyard.linux.mount import MNT_DETACH, mount, umount

from .malicious import _info, build


@contextlib.contextmanager
def overlay(tmp: Path, name: str, lowers: list[Path], upper: Path | None = None, extra: str = ""):
    """Mount an overlay at tmp/name; read-only when no upper is given."""
    merged = tmp / name
    merged.mkdir()
    opts = "lowerdir=" + ":".join(str(p) for p in lowers)
    if upper is not None:
        work = tmp / f"{name}.work"
        work.mkdir()
        opts += f",upperdir={upper},workdir={work}"
    if extra:
        opts += "," + extra
    mount("overlay", merged, "overlay", 0, opts)
    try:
        yield merged
    finally:
        umount(merged, MNT_DETACH)


def tree(root: Path) -> dict[str, tuple]:
    """Comparable state of a tree: type, mode, owner, mtime (s), content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            content = None
            if stat.S_ISREG(st.st_mode):
                content = path.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode):
                content = st.st_rdev
            mtime = None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns // 10**9
            out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, mtime, content)
    return out


BASE = [
    (_info("bin", tarfile.DIRTYPE, mode=0o755), None),
    (_info("bin/sh"), b"#!shell" * 100),
    (_info("etc", tarfile.DIRTYPE, mode=0o755), None),
    (_info("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n"),
    (_info("etc/group"), b"root:x:0:\n"),
    (_info("etc/conf.d", tarfile.DIRTYPE, mode=0o755), None),
    (_info("etc/conf.d/a.conf"), b"a"),
    (_info("etc/conf.d/b.conf"), b"b"),
    (_info("var", tarfile.DIRTYPE, mode=0o755), None),
    (_info("var/lib", tarfile.DIRTYPE, mode=0o755), None),
    (_info("var/lib/data"), b"data"),
    (_info("opt", tarfile.DIRTYPE, mode=0o755), None),
    (_info("opt/app", tarfile.DIRTYPE, mode=0o755), None),
    (_info("opt/app/run"), b"run"),
    (_info("link", tarfile.SYMTYPE, linkname="etc/passwd"), None),
]


@pytest.fixture
def stack(data_root: Path):
    lower = data_root / "lower"
    lower.mkdir()
    apply_layer(io.BytesIO(build(BASE)), lower)
    upper = data_root / "upper"
    upper.mkdir()
    return data_root, lower, upper


def _mutate(merged: Path) -> None:
    (merged / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home:/bin/sh\n")
    (merged / "etc" / "group").unlink()
    shutil.rmtree(merged / "etc" / "conf.d")  # then recreated: an opaque dir
    (merged / "etc" / "conf.d").mkdir()
    (merged / "etc" / "conf.d" / "c.conf").write_text("c")
    shutil.rmtree(merged / "var")
    (merged / "new").mkdir()
    (merged / "new" / "file").write_bytes(os.urandom(100_000))
    os.link(merged / "new" / "file", merged / "new" / "hardlink")
    (merged / "new" / "sym").symlink_to("/bin/sh")
    os.chmod(merged / "bin" / "sh", 0o4711)
    os.chown(merged / "opt" / "app" / "run", 1000, 1000)
    os.mkfifo(merged / "new" / "fifo")


def test_whiteout_round_trip_through_overlay(stack):
    tmp, lower, upper = stack
    with overlay(tmp, "merged", [lower], upper) as merged:
        _mutate(merged)
        expected = tree(merged)

    found = {(c.path, c.kind) for c in changes(upper, [lower])}
    assert ("/etc/group", ChangeKind.DELETED) in found
    assert ("/var", ChangeKind.DELETED) in found
    assert ("/etc/conf.d/a.conf", ChangeKind.DELETED) in found  # hidden by the opaque dir
    assert ("/etc/conf.d/c.conf", ChangeKind.ADDED) in found
    assert ("/etc/passwd", ChangeKind.MODIFIED) in found
    assert ("/etc", ChangeKind.MODIFIED) in found
    assert ("/new/file", ChangeKind.ADDED) in found
    assert ("/bin/sh", ChangeKind.MODIFIED) in found
    assert ("/opt/app/run", ChangeKind.MODIFIED) in found

    layer = io.BytesIO()
    written = write_layer(upper, layer)
    with tarfile.open(fileobj=io.BytesIO(layer.getvalue())) as tar:
        names = tar.getnames()
        members = {m.name: m for m in tar.getmembers()}
    assert "etc/.wh.group" in names and ".wh.var" in names
    assert names.index("etc/conf.d/.wh..wh..opq") == names.index("etc/conf.d") + 1
    assert members["new/hardlink"].islnk() and members["new/hardlink"].linkname == "new/file"

    # Apply the tar as a new layer; the overlay of it over the lower shows
    # exactly what the container saw.
    upper2 = tmp / "upper2"
    upper2.mkdir()
    applied = apply_layer(io.BytesIO(layer.getvalue()), upper2)
    assert applied.diff_id == written.diff_id
    with overlay(tmp, "merged2", [upper2, lower]) as merged2:
        assert tree(merged2) == expected

    # Same bytes again: deterministic.
    again = io.BytesIO()
    assert write_layer(upper, again).diff_id == written.diff_id

    # Applied onto a copy of the lower (whiteouts carried out), likewise.
    flat = tmp / "flat"
    shutil.copytree(lower, flat, symlinks=True)
    apply_layer(io.BytesIO(layer.getvalue()), flat, ApplyOptions(whiteouts=WhiteoutMode.DELETE))
    assert tree(flat) == expected

    # Export: the merged view flattened without a mount.
    exported = io.BytesIO()
    write_merged([upper, lower], exported)
    out = tmp / "exported"
    out.mkdir()
    apply_layer(io.BytesIO(exported.getvalue()), out)
    assert tree(out) == expected
    with tarfile.open(fileobj=io.BytesIO(exported.getvalue())) as tar:
        assert not [n for n in tar.getnames() if ".wh." in n]


def test_redirected_directory(stack):
    """A lower directory renamed in the container (overlay redirect_dir)."""
    tmp, lower, upper = stack
    try:
        ctx = overlay(tmp, "merged", [lower], upper, "redirect_dir=on")
        merged = ctx.__enter__()
    except OSError as exc:
        pytest.skip(f"overlay redirect_dir=on not available: {exc}")
    try:
        os.rename(merged / "opt" / "app", merged / "opt" / "renamed")
        (merged / "opt" / "renamed" / "extra").write_text("x")
        expected = tree(merged)
    finally:
        ctx.__exit__(None, None, None)
    if os.getxattr(upper / "opt" / "renamed", "trusted.overlay.redirect", follow_symlinks=False) is None:
        pytest.skip("kernel did not record a redirect")
    with pytest.raises(FailedPrecondition, match="redirect"):
        write_layer(upper, io.BytesIO())
    layer = io.BytesIO()
    write_layer(upper, layer, lowers=[lower])
    upper2 = tmp / "upper2"
    upper2.mkdir()
    apply_layer(io.BytesIO(layer.getvalue()), upper2)
    with overlay(tmp, "merged2", [upper2, lower]) as merged2:
        assert tree(merged2) == expected
    exported = io.BytesIO()
    write_merged([upper, lower], exported)
    out = tmp / "exported"
    out.mkdir()
    apply_layer(io.BytesIO(exported.getvalue()), out)
    assert tree(out) == expected


def test_two_directory_diff(tmp_path: Path):
    old = tmp_path / "old"
    old.mkdir()
    apply_layer(io.BytesIO(build(BASE)), old)
    new = tmp_path / "new"
    shutil.copytree(old, new, symlinks=True)
    (new / "etc" / "group").unlink()
    shutil.rmtree(new / "var")
    (new / "etc" / "passwd").write_text("changed")
    (new / "added").write_text("added")
    (new / "link").unlink()
    (new / "link").mkdir()  # symlink replaced by a directory
    (new / "link" / "inside").write_text("i")
    found = [f"{c.kind.letter} {c.path}" for c in diff_dirs(old, new)]
    assert found == ["A /added", "C /etc", "D /etc/group", "C /etc/passwd", "C /link", "A /link/inside",
                     "D /var"]
    layer = io.BytesIO()
    write_dir_diff(old, new, layer)
    replay = tmp_path / "replay"
    shutil.copytree(old, replay, symlinks=True)
    apply_layer(io.BytesIO(layer.getvalue()), replay, ApplyOptions(whiteouts=WhiteoutMode.DELETE))
    strip = lambda t: {k: v[:3] + v[4:] for k, v in t.items()}  # noqa: E731 - mtimes of copies differ
    assert strip(tree(replay)) == strip(tree(new))


def test_layer_tar_is_readable_by_gnu_tar(stack, tmp_path: Path):
    tmp, lower, upper = stack
    (upper / ("deep/" * 30)).mkdir(parents=True)
    (upper / ("deep/" * 30) / ("n" * 150)).write_text("long path")
    os.setxattr(upper / "deep", "user.k", b"v\x00binary")
    layer = tmp / "layer.tar"
    with open(layer, "wb") as f:
        write_layer(upper, f)
    listing = subprocess.run(["tar", "-tvf", str(layer)], check=True, capture_output=True, text=True).stdout
    assert "n" * 150 in listing
    out = tmp / "gnu"
    out.mkdir()
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "-C", str(out), "-xf", str(layer)], check=True)
    assert (out / ("deep/" * 30) / ("n" * 150)).read_text() == "long path"
    assert os.getxattr(out / "deep", "user.k") == b"v\x00binary"
