"""Diffs: from directories back to layer tars, and change lists.

Three views of a container's filesystem are computed here, all without
mounting anything:

* :func:`write_layer` -- an overlay *upper* dir as a layer tar (what commit
  stores).  Overlay whiteouts become tar whiteouts: a char device 0/0
  ``name`` becomes an empty ``.wh.name``; a directory with
  ``trusted.overlay.opaque=y`` is followed by ``dir/.wh..wh..opq``; a
  directory with ``trusted.overlay.redirect`` (a renamed lower directory)
  is written whole, as an opaque directory with the merged contents of its
  origin, which needs the lower dirs.
* :func:`changes` -- the same upper as Docker's change list (A/C/D).
* :func:`write_merged` -- a stack of layer dirs (upper first) flattened to
  one tree, as ``docker export`` gives it.

and for trees that are not overlay layers, :func:`diff_dirs` /
:func:`write_dir_diff` compare two plain directories (Docker's "naive
diff": same type, mode, owner, size, mtime and xattrs means unchanged).

Each takes ``skip``: paths (relative, bytes) left out as if they were not
there; :func:`mount_point_stubs` finds the ones a container's runtime made
and nobody wrote.

Output is deterministic: entries in depth-first order with the names of
each directory sorted bytewise, times in whole seconds, no user or group
names (but export's, from the tree's own passwd and group), xattrs sorted.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator, Sequence

from ..errors import FailedPrecondition, InvalidArgument
from . import tarfmt
from .apply import OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX

OVERLAY_REDIRECT_XATTR = "trusted.overlay.redirect"
OVERLAY_METACOPY_XATTR = "trusted.overlay.metacopy"

#: xattrs never written into a layer: overlayfs bookkeeping, and SELinux
#: labels, which belong to the host that ran the container.
_SKIP_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "security.selinux")

_COPY_CHUNK = 1 << 20

#: Files a container's runtime bind-mounts over the image's (the
#: container's own /etc/hostname, /etc/hosts, /etc/resolv.conf), relative.
RUNTIME_MOUNT_POINTS = (b"etc/hostname", b"etc/hosts", b"etc/resolv.conf")

#: What Docker's init layer adds besides the mount points: an empty
#: /.dockerenv (scripts test for it) and /dev/console, and /etc/mtab as a
#: symlink to /proc/mounts.  Relative paths; the symlinks with their target.
INIT_FILES = (b".dockerenv", b"dev/console")
INIT_SYMLINKS = ((b"etc/mtab", b"/proc/mounts"),)
#: and the directories it makes (mount points of the runtime's own)
INIT_DIRS = (b"dev/pts", b"dev/shm", b"proc", b"sys")

_NOTHING: frozenset[bytes] = frozenset()


class ChangeKind(enum.IntEnum):
    """Docker's numbering (``GET /containers/{id}/changes``)."""

    MODIFIED = 0
    ADDED = 1
    DELETED = 2

    @property
    def letter(self) -> str:
        return "CAD"[self.value]


@dataclass(frozen=True)
class Change:
    path: str  # absolute, as docker diff shows it: "/etc/passwd"
    kind: ChangeKind

    def as_docker(self) -> dict:
        return {"Path": self.path, "Kind": int(self.kind)}


@dataclass(frozen=True)
class WrittenLayer:
    #: sha256 of the tar written (uncompressed); None when the writer was
    #: told not to hash because its output hashes (a content writer)
    diff_id: str | None
    size: int  # bytes written
    content_size: int  # sum of regular file sizes


# -- small helpers -----------------------------------------------------------


def _lstat(path: bytes) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None


def _xattr(path: bytes, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: bytes) -> bool:
    return _xattr(path, OVERLAY_OPAQUE_XATTR) == b"y"


def _xattrs(path: bytes) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    found = {}
    for name in names:
        if name.startswith(_SKIP_XATTR_PREFIXES):
            continue
        value = _xattr(path, name)
        if value is not None:
            found[name] = value
    return found


def _sorted_names(path: bytes) -> list[bytes]:
    return sorted(os.listdir(path))


def _dir(path: str | os.PathLike | bytes) -> bytes:
    path = os.fsencode(path)
    if not os.path.isdir(path):
        raise InvalidArgument(f"not a directory: {os.fsdecode(path)}")
    return os.path.abspath(path)


# -- the tar writer ----------------------------------------------------------


class LayerTarWriter:
    """Writes tar entries for files on disk to ``out`` while hashing them.

    Hard links are kept: the second and later paths of an inode (counted
    among the entries this writer saw) become link entries.
    """

    def __init__(self, out: BinaryIO, hashed: bool = True, names: OwnerNames | None = None) -> None:
        self._out = out
        self._names = names
        # Hashing 50 MiB costs ~15 ms; skip it when ``out`` hashes anyway.
        self._hash = hashlib.sha256() if hashed else None
        self.size = 0
        self.content_size = 0
        self._links: dict[tuple[int, int], bytes] = {}
        self._buf = bytearray(_COPY_CHUNK)

    def _write(self, data: bytes | memoryview) -> None:
        if self._hash is not None:
            self._hash.update(data)
        self._out.write(data)
        self.size += len(data)

    def add(self, name: bytes, src: bytes, st: os.stat_result, xattrs: dict[str, bytes] | None = None) -> None:
        """Add the file at ``src`` as archive member ``name`` (relative,
        no leading slash)."""
        mode = st.st_mode
        entry = tarfmt.TarEntry(name=name, type=tarfmt.REG, mode=stat.S_IMODE(mode), uid=st.st_uid,
                                gid=st.st_gid, size=0, mtime_ns=st.st_mtime_ns)
        if self._names is not None:
            entry.uname = self._names.users.get(st.st_uid, "")
            entry.gname = self._names.groups.get(st.st_gid, "")
        entry.xattrs = _xattrs(src) if xattrs is None else xattrs
        if stat.S_ISREG(mode):
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self._links.get(key)
                if first is not None:
                    entry.type = tarfmt.LNK
                    entry.linkname = first
                    entry.xattrs = {}
                    self._write(tarfmt.encode_header(entry))
                    return
                self._links[key] = name
            entry.size = st.st_size
            self._write(tarfmt.encode_header(entry))
            self._copy(src, st.st_size)
            self.content_size += st.st_size
            return
        if stat.S_ISDIR(mode):
            entry.type = tarfmt.DIR
            entry.name = name.rstrip(b"/") + b"/"
        elif stat.S_ISLNK(mode):
            entry.type = tarfmt.SYM
            entry.linkname = os.readlink(src)
            self.content_size += len(entry.linkname)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            entry.type = tarfmt.CHR if stat.S_ISCHR(mode) else tarfmt.BLK
            entry.devmajor = os.major(st.st_rdev)
            entry.devminor = os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            entry.type = tarfmt.FIFO
        else:
            return  # sockets and doors are not archived, as in tar and Docker
        self._write(tarfmt.encode_header(entry))

    def add_whiteout(self, dir_name: bytes, name: bytes, st: os.stat_result | None) -> None:
        """``dir_name/.wh.name``: an empty regular file, mode 0600 (Docker's
        form), owned and dated like the overlay whiteout it stands for."""
        entry = tarfmt.TarEntry(name=_join(dir_name, WHITEOUT_PREFIX + name), type=tarfmt.REG, mode=0o600,
                                uid=st.st_uid if st else 0, gid=st.st_gid if st else 0, size=0,
                                mtime_ns=st.st_mtime_ns if st else 0)
        self._write(tarfmt.encode_header(entry))

    def add_opaque(self, dir_name: bytes, st: os.stat_result) -> None:
        """``dir/.wh..wh..opq`` after an opaque directory, inheriting its
        owner and permission bits (Docker's form)."""
        entry = tarfmt.TarEntry(name=_join(dir_name, WHITEOUT_OPAQUE), type=tarfmt.REG,
                                mode=stat.S_IMODE(st.st_mode) & 0o777, uid=st.st_uid, gid=st.st_gid, size=0,
                                mtime_ns=st.st_mtime_ns)
        self._write(tarfmt.encode_header(entry))

    def _copy(self, src: bytes, size: int) -> None:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            remaining = size
            view = memoryview(self._buf)
            while remaining:
                n = os.readv(fd, [view[: min(remaining, _COPY_CHUNK)]])
                if n == 0:
                    # The file shrank under us: pad so the archive stays valid
                    # (the header already promised ``size`` bytes).
                    self._write(bytes(remaining))
                    break
                self._write(view[:n])
                remaining -= n
        finally:
            os.close(fd)
        pad = -size % tarfmt.BLOCK
        if pad:
            self._write(bytes(pad))

    def close(self) -> WrittenLayer:
        self._write(tarfmt.end_of_archive())
        return WrittenLayer(diff_id="sha256:" + self._hash.hexdigest() if self._hash is not None else None,
                            size=self.size, content_size=self.content_size)


def _join(dir_name: bytes, name: bytes) -> bytes:
    return dir_name + b"/" + name if dir_name else name


# -- merged views of a layer stack --------------------------------------------


class LayerStack:
    """Directories of an overlay stack, topmost first, read the way
    overlayfs merges them (whiteouts hide, opaque dirs stop the descent,
    redirects point a directory at its origin in the layers below)."""

    def __init__(self, layers: Sequence[str | os.PathLike | bytes]) -> None:
        self.layers = [_dir(layer) for layer in layers]

    def _sources_at(self, rel: bytes, start: int) -> list[bytes]:
        """Directories providing ``rel`` in layers ``start``.., top first,
        stopping where a whiteout, non-directory or opaque dir ends the
        merge (used for redirect origins and lookups)."""
        sources = []
        for layer in self.layers[start:]:
            path = _join(layer, rel) if rel else layer
            st = _lstat(path)
            if st is None:
                continue
            if not stat.S_ISDIR(st.st_mode):
                break
            sources.append(path)
            if _is_opaque(path):
                break
            redirect = _xattr(path, OVERLAY_REDIRECT_XATTR)
            if redirect is not None:
                rel = _redirect_target(rel, redirect)
        return sources

    def lookup(self, parts: Sequence[bytes]) -> os.stat_result | None:
        """The merged stat of a path, or None if it is not visible."""
        found = self.locate(parts)
        return None if found is None else found[1]

    def locate(self, parts: Sequence[bytes]) -> tuple[bytes, os.stat_result] | None:
        """Where the merged view's path is (the winning layer's file) and
        its stat, or None if it is not visible."""
        sources: list[tuple[int, bytes]] = list(enumerate(self.layers))
        for depth, name in enumerate(parts):
            last = depth == len(parts) - 1
            below: list[tuple[int, bytes]] = []
            for index, directory in sources:
                path = directory + b"/" + name
                st = _lstat(path)
                if st is None:
                    continue
                if _is_whiteout(st):
                    break
                if last:
                    return path, st
                if not stat.S_ISDIR(st.st_mode):
                    break
                below.append((index, path))
                if _is_opaque(path):
                    break
            sources = below
            if not sources:
                return None
        if parts or not self.layers:
            return None
        st = _lstat(self.layers[0])
        return None if st is None else (self.layers[0], st)

    def children(self, sources: Sequence[bytes]) -> list[tuple[bytes, bytes, os.stat_result, list[bytes]]]:
        """Visible children of a merged directory given its source dirs (top
        first): (name, path of the winning instance, its stat, and for a
        directory its own source dirs).  Sorted by name."""
        decided: dict[bytes, tuple[bytes, os.stat_result, list[bytes], bool] | None] = {}
        for level, directory in enumerate(sources):
            for name in os.listdir(directory):
                path = directory + b"/" + name
                if name in decided:
                    record = decided[name]
                    if record is None or not record[3]:
                        continue  # hidden, or no longer collecting sources
                    st = _lstat(path)
                    if st is None:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        record[2].append(path)
                        if _is_opaque(path):
                            decided[name] = (record[0], record[1], record[2], False)
                    else:
                        decided[name] = (record[0], record[1], record[2], False)
                    continue
                st = _lstat(path)
                if st is None:
                    continue
                if _is_whiteout(st):
                    decided[name] = None
                    continue
                if stat.S_ISDIR(st.st_mode):
                    redirect = _xattr(path, OVERLAY_REDIRECT_XATTR)
                    if redirect is not None:
                        # A renamed directory: its lower half lives at the origin.
                        layer_index = self._layer_of(directory)
                        rel = os.path.relpath(path, self.layers[layer_index])
                        origin = _redirect_target(rel, redirect)
                        dir_sources = [path] + self._sources_at(origin, layer_index + 1)
                        decided[name] = (path, st, dir_sources, False)
                    else:
                        decided[name] = (path, st, [path], not _is_opaque(path))
                else:
                    decided[name] = (path, st, [], False)
        out = []
        for name in sorted(decided):
            record = decided[name]
            if record is not None:
                out.append((name, record[0], record[1], record[2]))
        return out

    def _layer_of(self, path: bytes) -> int:
        for index, layer in enumerate(self.layers):
            if path == layer or path.startswith(layer + b"/"):
                return index
        raise InvalidArgument(f"{os.fsdecode(path)} is not inside the layer stack")

    def walk(self) -> Iterator[tuple[bytes, bytes, os.stat_result, list[bytes]]]:
        """Every visible entry: (relative name, source path, stat, dir sources)."""
        yield from self._walk(b"", self.layers_with_root())

    def layers_with_root(self) -> list[bytes]:
        sources = []
        for layer in self.layers:
            sources.append(layer)
            if _is_opaque(layer):
                break
        return sources

    def _walk(self, rel: bytes, sources: list[bytes]):
        for name, path, st, dir_sources in self.children(sources):
            child = _join(rel, name)
            yield child, path, st, dir_sources
            if dir_sources:
                yield from self._walk(child, dir_sources)


def _redirect_target(rel: bytes, redirect: bytes) -> bytes:
    """The origin of a redirected directory: an absolute redirect is from
    the layer root, a relative one is a sibling name."""
    if redirect.startswith(b"/"):
        return redirect.strip(b"/")
    parent = os.path.dirname(rel)
    return _join(parent, redirect)


# -- upper dir -> layer tar --------------------------------------------------


def write_layer(upper: str | os.PathLike | bytes, out: BinaryIO,
                lowers: Sequence[str | os.PathLike | bytes] = (), *, hashed: bool = True,
                skip: frozenset[bytes] = _NOTHING) -> WrittenLayer:
    """Write the overlay upper dir ``upper`` as a layer tar to ``out``.

    ``lowers`` (the snapshot's parent layer dirs, top first) are needed
    only when the upper holds a redirected directory; without them such a
    tree raises :class:`FailedPrecondition`.  ``hashed=False``: ``out``
    computes the digest itself, the result's ``diff_id`` is None (so
    also for :func:`write_merged` and :func:`write_dir_diff`).
    """
    upper_b = _dir(upper)
    stack = LayerStack([upper_b, *lowers])
    writer = LayerTarWriter(out, hashed)
    _write_upper(writer, stack, upper_b, b"", skip)
    return writer.close()


def _write_upper(writer: LayerTarWriter, stack: LayerStack, directory: bytes, rel: bytes,
                 skip: frozenset[bytes]) -> None:
    for name in _sorted_names(directory):
        path = directory + b"/" + name
        child = _join(rel, name)
        if child in skip:
            continue
        st = os.lstat(path)
        if _is_whiteout(st):
            writer.add_whiteout(rel, name, st)
            continue
        if stat.S_ISREG(st.st_mode) and _xattr(path, OVERLAY_METACOPY_XATTR) is not None:
            raise FailedPrecondition(
                f"{os.fsdecode(path)} is a metacopy-only file; mount overlay with metacopy=off")
        writer.add(child, path, st)
        if not stat.S_ISDIR(st.st_mode):
            continue
        redirect = _xattr(path, OVERLAY_REDIRECT_XATTR)
        if redirect is not None:
            if len(stack.layers) < 2:
                raise FailedPrecondition(
                    f"{os.fsdecode(path)} is a renamed lower directory (overlay redirect); "
                    f"writing it needs the lower layers")
            origin = _redirect_target(child, redirect)
            writer.add_opaque(child, st)
            sources = [path] + stack._sources_at(origin, 1)
            _write_merged(writer, stack, child, sources)
            continue
        if _is_opaque(path):
            writer.add_opaque(child, st)
        _write_upper(writer, stack, path, child, skip)


def _write_merged(writer: LayerTarWriter, stack: LayerStack, rel: bytes, sources: list[bytes]) -> None:
    for name, path, st, dir_sources in stack.children(sources):
        child = _join(rel, name)
        writer.add(child, path, st)
        if dir_sources:
            _write_merged(writer, stack, child, dir_sources)


# -- stack -> flattened tar (export) -----------------------------------------


@dataclass(frozen=True)
class OwnerNames:
    """uid -> user name and gid -> group name for tar headers."""

    users: dict[int, str]
    groups: dict[int, str]


def owner_names(stack: LayerStack) -> OwnerNames:
    """The names in the merged tree's own /etc/passwd and /etc/group, the
    first entry of an ID winning, as dockerd's export finds them (it
    archives chrooted in the container, where Go's user lookup reads
    those files): root gets "root", an ID without an entry no name."""
    found = []
    # Go's rules: passwd lines of 6 fields at least, group of 4, the ID
    # compared as text, names starting with + or - (NIS) ignored.
    for rel, least in ((b"etc/passwd", 6), (b"etc/group", 4)):
        names: dict[int, str] = {}
        located = stack.locate(rel.split(b"/"))
        if located is not None and stat.S_ISREG(located[1].st_mode):
            try:
                with open(located[0], "rb") as f:
                    text = f.read(1 << 20)
            except OSError:
                text = b""
            for line in text.splitlines():
                fields = line.split(b":")
                if len(fields) < least or not fields[0] or fields[0][:1] in (b"+", b"-", b"#"):
                    continue
                if not fields[2].isdigit() or fields[2] != b"%d" % int(fields[2]):
                    continue  # "007" is not uid 7's text
                names.setdefault(int(fields[2]), fields[0].decode("utf-8", "replace"))
        found.append(names)
    return OwnerNames(users=found[0], groups=found[1])


def write_merged(layers: Sequence[str | os.PathLike | bytes], out: BinaryIO, *,
                 hashed: bool = True, skip: frozenset[bytes] = _NOTHING, names: bool = False) -> WrittenLayer:
    """The merged filesystem of ``layers`` (topmost first) as one tar with
    no whiteouts: ``docker export``.  ``names``: owner names from the
    tree's own passwd and group files in the headers (export's), else
    numeric owners only (layers')."""
    stack = LayerStack(layers)
    writer = LayerTarWriter(out, hashed, owner_names(stack) if names else None)
    for rel, path, st, _ in stack.walk():
        if rel not in skip:
            writer.add(rel, path, st)
    return writer.close()


# -- change lists ------------------------------------------------------------


def changes(upper: str | os.PathLike | bytes, lowers: Sequence[str | os.PathLike | bytes] = (), *,
            skip: frozenset[bytes] = _NOTHING) -> list[Change]:
    """Docker's change list for a container whose writable layer is
    ``upper`` over ``lowers`` (top first): A for paths not in the lowers, C
    for paths in both (a directory is C when anything in it changed, since
    overlay copies it up), D for whiteouts and for lower entries hidden by
    an opaque directory.  Sorted by path."""
    upper_b = _dir(upper)
    lower_stack = LayerStack(lowers) if lowers else None
    found: list[Change] = []
    _changes_in(upper_b, (), lower_stack, found, skip)
    found.sort(key=lambda change: change.path)
    return found


def _changes_in(directory: bytes, parts: tuple[bytes, ...], lowers: LayerStack | None,
                found: list[Change], skip: frozenset[bytes]) -> None:
    for name in _sorted_names(directory):
        path = directory + b"/" + name
        child = parts + (name,)
        if skip and b"/".join(child) in skip:
            continue
        shown = "/" + os.fsdecode(b"/".join(child))
        st = os.lstat(path)
        if _is_whiteout(st):
            found.append(Change(shown, ChangeKind.DELETED))
            continue
        in_lower = lowers.lookup(child) if lowers else None
        found.append(Change(shown, ChangeKind.MODIFIED if in_lower is not None else ChangeKind.ADDED))
        if not stat.S_ISDIR(st.st_mode):
            continue
        hides_lower = _is_opaque(path) or _xattr(path, OVERLAY_REDIRECT_XATTR) is not None
        if hides_lower and in_lower is not None and stat.S_ISDIR(in_lower.st_mode) and lowers:
            present = set(os.listdir(path))
            for lower_name, _, _, _ in lowers.children(_lower_sources(lowers, child)):
                if lower_name not in present:
                    found.append(Change(shown + "/" + os.fsdecode(lower_name), ChangeKind.DELETED))
        _changes_in(path, child, lowers, found, skip)


def _lower_sources(lowers: LayerStack, parts: tuple[bytes, ...]) -> list[bytes]:
    """Source dirs of a merged directory in a stack."""
    sources = lowers.layers_with_root()
    for name in parts:
        below = []
        for directory in sources:
            path = directory + b"/" + name
            st = _lstat(path)
            if st is None:
                continue
            if _is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                break
            below.append(path)
            if _is_opaque(path):
                break
        sources = below
    return sources


# -- two plain directories ---------------------------------------------------


def _same(a: os.stat_result, b: os.stat_result, path_a: bytes, path_b: bytes) -> bool:
    if (a.st_mode, a.st_uid, a.st_gid) != (b.st_mode, b.st_uid, b.st_gid):
        return False
    if stat.S_ISDIR(a.st_mode):
        return _xattrs(path_a) == _xattrs(path_b)  # a dir's mtime changes with its content
    if a.st_mtime_ns != b.st_mtime_ns or a.st_size != b.st_size:
        return False
    if stat.S_ISLNK(a.st_mode):
        return os.readlink(path_a) == os.readlink(path_b)
    if stat.S_ISCHR(a.st_mode) or stat.S_ISBLK(a.st_mode):
        return a.st_rdev == b.st_rdev
    return _xattrs(path_a) == _xattrs(path_b)


def _dir_diff(old: bytes, new: bytes, rel: bytes,
              skip: frozenset[bytes]) -> Iterator[tuple[ChangeKind, bytes, bytes, os.stat_result | None]]:
    """(kind, relative name, path in new or old, stat) in writing order."""
    old_names = set(os.listdir(old)) if old else set()
    new_names = _sorted_names(new)
    for name in sorted(old_names.difference(new_names)):
        yield ChangeKind.DELETED, _join(rel, name), old + b"/" + name, os.lstat(new)
    for name in new_names:
        path = new + b"/" + name
        child = _join(rel, name)
        if child in skip:
            continue
        st = os.lstat(path)
        old_path = old + b"/" + name if name in old_names else b""
        old_st = _lstat(old_path) if old_path else None
        if old_st is None or stat.S_IFMT(old_st.st_mode) != stat.S_IFMT(st.st_mode):
            # New, or of another type: the entry replaces whatever was
            # there (applying a layer removes the old path first), and a
            # directory comes with all its content.
            yield ChangeKind.ADDED if old_st is None else ChangeKind.MODIFIED, child, path, st
            if stat.S_ISDIR(st.st_mode):
                yield from _dir_diff(b"", path, child, skip)
            continue
        if not _same(old_st, st, old_path, path):
            yield ChangeKind.MODIFIED, child, path, st
            if stat.S_ISDIR(st.st_mode):
                yield from _dir_diff(old_path, path, child, skip)
            continue
        if stat.S_ISDIR(st.st_mode):
            inner = list(_dir_diff(old_path, path, child, skip))
            if inner:
                # Docker lists a directory whose content changed as C.
                yield ChangeKind.MODIFIED, child, path, st
                yield from inner


def diff_dirs(old: str | os.PathLike | bytes, new: str | os.PathLike | bytes, *,
              skip: frozenset[bytes] = _NOTHING) -> list[Change]:
    """The change list from tree ``old`` to tree ``new``, sorted by path."""
    found = [Change("/" + os.fsdecode(rel), kind) for kind, rel, _, _ in _dir_diff(_dir(old), _dir(new), b"", skip)]
    found.sort(key=lambda change: change.path)
    return found


def write_dir_diff(old: str | os.PathLike | bytes, new: str | os.PathLike | bytes, out: BinaryIO, *,
                   hashed: bool = True, skip: frozenset[bytes] = _NOTHING) -> WrittenLayer:
    """The layer tar that turns tree ``old`` into tree ``new``."""
    writer = LayerTarWriter(out, hashed)
    for kind, rel, path, st in _dir_diff(_dir(old), _dir(new), b"", skip):
        if kind is ChangeKind.DELETED:
            parent, _, name = rel.rpartition(b"/")
            writer.add_whiteout(parent, name, st)
        else:
            writer.add(rel, path, st)
    return writer.close()


# -- what the runtime made ---------------------------------------------------


def mount_point_stubs(own: str | os.PathLike | bytes, lowers: Sequence[str | os.PathLike | bytes] = (),
                      targets: Iterable[bytes] = RUNTIME_MOUNT_POINTS + INIT_FILES,
                      symlinks: Iterable[tuple[bytes, bytes]] = INIT_SYMLINKS,
                      dirs: Iterable[bytes] = INIT_DIRS) -> frozenset[bytes]:
    """The paths in a container's own dir ``own`` (over image layers
    ``lowers``, top first) that exist only as what the runtime made: each
    of ``targets`` that is an empty regular file, each of ``symlinks``
    that is a symlink to its target, each of ``dirs`` that is an empty
    directory the image lacks (or has alike), and their directory when nothing else
    changed in it (an upper dir holding only them, with the image's mode
    and owner, or made for them).

    Docker makes these in an init layer between the image and the
    container's layer, replacing what the image has there, so diff and
    commit never see them (and a commit keeps the image's own file); ours
    are in the container's own layer and are left out by passing the
    result as ``skip``.  What a user wrote there (a non-empty file, e.g.
    by ``docker cp`` while stopped, or a symlink pointed elsewhere) is a
    real change and is kept."""
    own_b = _dir(own)
    image = LayerStack(lowers) if lowers else None
    stubs = set()
    made = [(rel, None) for rel in targets] + list(symlinks)
    for rel, link_target in made:
        st = _lstat(own_b + b"/" + rel)
        if st is None:
            continue
        if link_target is None:
            if not stat.S_ISREG(st.st_mode) or st.st_size != 0:
                continue
        elif not stat.S_ISLNK(st.st_mode) or os.readlink(own_b + b"/" + rel) != link_target:
            continue
        stubs.add(rel)
    for rel in dirs:
        path = own_b + b"/" + rel
        st = _lstat(path)
        if st is None or not stat.S_ISDIR(st.st_mode) or os.listdir(path) or _is_opaque(path):
            continue
        in_image = image.lookup(rel.split(b"/")) if image is not None else None
        if in_image is None or _same_owner_mode(st, in_image):
            stubs.add(rel)
    for parent in {rel.rpartition(b"/")[0] for rel in stubs} - {b""}:
        inside = {_join(parent, name) for name in os.listdir(own_b + b"/" + parent)}
        if not inside <= stubs:
            continue  # something else changed in it: the directory is a real change
        st = os.lstat(own_b + b"/" + parent)
        in_image = image.lookup(parent.split(b"/")) if image is not None else None
        if in_image is None or _same_owner_mode(st, in_image):
            stubs.add(parent)
    return frozenset(stubs)


def _same_owner_mode(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_mode, a.st_uid, a.st_gid) == (b.st_mode, b.st_uid, b.st_gid)


def iter_changes_letters(found: Iterable[Change]) -> Iterator[str]:
    """``docker diff`` lines: "A /path"."""
    for change in found:
        yield f"{change.kind.letter} {change.path}"
