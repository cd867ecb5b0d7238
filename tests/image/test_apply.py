"""Layer apply: formats, metadata, whiteouts, digests, and the malicious corpus."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.image.apply import ApplyOptions, WhiteoutMode, apply_layer
from dockyard.image.compression import Compression

from .malicious import CORPUS, Case, _info, build

SENTINEL = b"untouched\n"


def snapshot_tree(root: Path) -> dict[str, tuple]:
    """Everything under ``root``: path -> (type, mode, size, content hash)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
            found[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_mode, st.st_size, digest)
    return found


@pytest.fixture
def arena(tmp_path: Path):
    """A target dir beside an 'outside' dir holding a sentinel."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_bytes(SENTINEL)
    target = tmp_path / "target"
    target.mkdir()
    return tmp_path, target, outside


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_malicious_archive_is_rejected(case: Case, arena):
    tmp, target, outside = arena
    before_outside = snapshot_tree(outside)
    archive = case.tar(str(outside))
    with pytest.raises(InvalidArgument) as err:
        apply_layer(io.BytesIO(archive), target, case.options)
    assert case.message in str(err.value)
    # Nothing landed outside the target: the sentinel dir is unchanged and
    # the parent holds nothing new.
    assert snapshot_tree(outside) == before_outside
    assert sorted(p.name for p in tmp.iterdir()) == ["outside", "target"]
    assert not (Path("/") / "escaped").exists()
    for path in target.rglob("*"):
        # no symlink left in the target ever got followed to write outside
        assert path.is_symlink() or path.resolve().is_relative_to(target.resolve())


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 10


def test_absolute_names_are_neutralised(arena):
    _, target, outside = arena
    archive = build([(_info(str(outside / "sentinel")), b"replaced")])
    apply_layer(io.BytesIO(archive), target)
    assert (outside / "sentinel").read_bytes() == SENTINEL
    assert (target / str(outside).lstrip("/") / "sentinel").read_bytes() == b"replaced"


def test_absolute_symlink_is_stored_not_followed(arena):
    _, target, outside = arena
    archive = build([(_info("etc", tarfile.SYMTYPE, linkname=str(outside)), None)])
    apply_layer(io.BytesIO(archive), target)
    assert os.readlink(target / "etc") == str(outside)


def _tree_tar(src: Path, *extra: str) -> bytes:
    return subprocess.run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", *extra, "-C", str(src),
                           "-cf", "-", "."], check=True, capture_output=True).stdout


def _rich_tree(root: Path) -> Path:
    root.mkdir()
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "file").write_bytes(b"content" * 1000)
    os.chmod(root / "dir" / "file", 0o4755)
    os.chown(root / "dir" / "file", 1234, 5678)
    os.link(root / "dir" / "file", root / "dir" / "hardlink")
    (root / "dir" / "sub" / "link").symlink_to("../file")
    os.lchown(root / "dir" / "sub" / "link", 42, 43)
    os.mkfifo(root / "fifo", 0o640)
    os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.setxattr(root / "dir" / "file", "user.note", b"hello")
    os.setxattr(root / "dir", "trusted.something", b"kept")
    big = root / "big"
    big.write_bytes(os.urandom(3 << 20))
    (root / ("long" * 40)).write_bytes(b"long name")
    for path in [root / "dir" / "sub", root / "dir", root]:
        os.utime(path, ns=(1_500_000_000_123_456_789, 1_500_000_000_123_456_789))
    os.utime(root / "dir" / "sub" / "link", ns=(1_400_000_000_000_000_000,) * 2, follow_symlinks=False)
    return root


def _meta(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [""] + dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if rel in out:
                continue
            st = path.lstat()
            xattrs = {}
            for key in os.listxattr(path, follow_symlinks=False):
                xattrs[key] = os.getxattr(path, key, follow_symlinks=False)
            content = path.read_bytes() if stat.S_ISREG(st.st_mode) else (
                os.readlink(path) if stat.S_ISLNK(st.st_mode) else None)
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_rdev, st.st_nlink, xattrs,
                        content)
    return out


@pytest.mark.parametrize("compress", ["none", "gzip", "zstd", "xz", "bzip2"])
def test_apply_preserves_everything_and_digests(tmp_path: Path, compress: str):
    src = _rich_tree(tmp_path / "src")
    plain = _tree_tar(src)
    if compress == "gzip":
        blob = gzip.compress(plain)
    elif compress == "zstd":
        import zstandard

        blob = zstandard.ZstdCompressor().compress(plain)
    elif compress == "xz":
        import lzma

        blob = lzma.compress(plain)
    elif compress == "bzip2":
        import bz2

        blob = bz2.compress(plain)
    else:
        blob = plain
    target = tmp_path / "target"
    target.mkdir()
    result = apply_layer(io.BytesIO(blob), target)
    assert result.compression is Compression(compress)
    assert result.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert result.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert result.size == len(blob) and result.uncompressed_size == len(plain)
    assert _meta(target) == _meta(src)


def test_gzip_members_and_zero_padding(tmp_path: Path):
    """Concatenated gzip members (pigz, some registries) and zero padding."""
    plain = build([(_info("a"), b"1" * 700), (_info("b"), b"2" * 700)])
    half = len(plain) // 2
    blob = gzip.compress(plain[:half]) + gzip.compress(plain[half:]) + bytes(512)
    result = apply_layer(io.BytesIO(blob), tmp_path)
    assert (tmp_path / "a").read_bytes() == b"1" * 700
    assert result.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert result.digest == "sha256:" + hashlib.sha256(blob).hexdigest()


def test_corrupt_gzip_is_invalid(tmp_path: Path):
    blob = bytearray(gzip.compress(build([(_info("a"), os.urandom(4000))])))
    blob[40:60] = bytes(20)
    with pytest.raises(InvalidArgument, match="gzip"):
        apply_layer(io.BytesIO(bytes(blob)), tmp_path)


def test_whiteouts_become_overlay_forms(tmp_path: Path):
    archive = build([
        (_info("d", tarfile.DIRTYPE, mode=0o755), None),
        (_info("d/.wh..wh..opq"), b""),
        (_info("d/kept"), b"k"),
        (_info("gone-before"), b"x"),
        (_info(".wh.gone-before", uid=7, gid=8), b""),
        (_info("e/.wh.lower-file"), b""),
        (_info(".wh..wh.plnk"), b""),  # aufs bookkeeping: ignored
    ])
    apply_layer(io.BytesIO(archive), tmp_path)
    assert os.getxattr(tmp_path / "d", "trusted.overlay.opaque") == b"y"
    assert (tmp_path / "d" / "kept").read_bytes() == b"k"
    for path, owner in ((tmp_path / "gone-before", (7, 8)), (tmp_path / "e" / "lower-file", (0, 0))):
        st = path.lstat()
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        assert (st.st_uid, st.st_gid) == owner
    assert not list(tmp_path.glob("**/.wh.*"))


def test_whiteouts_delete_mode(tmp_path: Path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "old").write_text("old")
    (tmp_path / "f").write_text("f")
    archive = build([
        (_info("d", tarfile.DIRTYPE, mode=0o755), None),
        (_info("d/new"), b"n"),
        (_info("d/.wh..wh..opq"), b""),
        (_info(".wh.f"), b""),
    ])
    apply_layer(io.BytesIO(archive), tmp_path, ApplyOptions(whiteouts=WhiteoutMode.DELETE))
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["new"]
    assert not (tmp_path / "f").exists()


def test_later_entries_replace_earlier(tmp_path: Path):
    archive = build([
        (_info("x", tarfile.DIRTYPE, mode=0o755), None),
        (_info("x/inner"), b"i"),
        (_info("x"), b"now a file"),
        (_info("y"), b"file"),
        (_info("y", tarfile.SYMTYPE, linkname="x"), None),
        (_info("z"), b"first"),
        (_info("z"), b"second"),
    ])
    apply_layer(io.BytesIO(archive), tmp_path)
    assert (tmp_path / "x").read_bytes() == b"now a file"
    assert os.readlink(tmp_path / "y") == "x"
    assert (tmp_path / "z").read_bytes() == b"second"


def test_directory_mtime_set_after_content(tmp_path: Path):
    archive = build([(_info("d", tarfile.DIRTYPE, mode=0o755), None)] +
                    [(_info(f"d/f{i}"), b"x") for i in range(5)])
    apply_layer(io.BytesIO(archive), tmp_path)
    assert (tmp_path / "d").stat().st_mtime == 1_600_000_000


def test_implied_parents_are_created(tmp_path: Path):
    apply_layer(io.BytesIO(build([(_info("a/b/c/file"), b"deep")])), tmp_path)
    assert (tmp_path / "a" / "b" / "c" / "file").read_bytes() == b"deep"
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755


def test_progress_reports_bytes(tmp_path: Path):
    archive = build([(_info("big"), os.urandom(10 << 20))])
    seen: list[int] = []
    apply_layer(io.BytesIO(archive), tmp_path, progress=seen.append)
    assert seen and seen[-1] == len(archive) and seen == sorted(seen)
