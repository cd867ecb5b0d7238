"""Applying a layer: a tar stream (gzip, zstd, bzip2, xz or plain) into a
directory, in one pass that also yields the layer's digest and diff_id.

The directory is normally the upper dir of a snapshot being prepared (or a
plain directory for a base layer); whiteouts become overlayfs's own forms:

* ``dir/.wh.name``      -> ``dir/name`` as a character device 0/0
* ``dir/.wh..wh..opq``  -> ``trusted.overlay.opaque=y`` on ``dir``

With :attr:`WhiteoutMode.DELETE` they are carried out instead (``name`` is
removed, an opaque dir loses whatever this layer did not put there), which
is how a layer is applied onto an already-merged tree.

Safety (see :mod:`.safepath`): every path is resolved beneath the root with
``O_NOFOLLOW`` walks, so nothing lands outside it; ``..`` components, hard
links to outside paths, relative symlinks that climb above the root,
device nodes when not allowed and declared sizes over the limits are
rejected with :class:`~dockyard.errors.InvalidArgument` naming the entry.

What the caller must guarantee: on *any* exception the target holds a
partial layer, and the caller removes it (the image service does this by
preparing a snapshot and removing it on failure).  Nothing is written
outside the target in any case.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

from ..errors import Internal, InvalidArgument
from . import tarfmt
from .compression import Compression, LayerStream
from .safepath import RootDir, components, proc_path, show

WHITEOUT_PREFIX = b".wh."
WHITEOUT_META_PREFIX = b".wh..wh."
WHITEOUT_OPAQUE = b".wh..wh..opq"

OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"

#: xattrs that belong to overlayfs's own bookkeeping; a layer that carried
#: them could forge whiteouts, opaque dirs or redirects, so they are dropped.
_PRIVATE_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class WhiteoutMode(enum.Enum):
    OVERLAY = "overlay"  # write overlayfs whiteouts (target is an upper dir)
    DELETE = "delete"  # carry them out (target is a merged tree)


@dataclass(frozen=True)
class ApplyOptions:
    whiteouts: WhiteoutMode = WhiteoutMode.OVERLAY
    #: block and character devices in the layer (other than whiteouts)
    allow_devices: bool = True
    #: chown entries to their numeric owners (off for rootless use)
    same_owner: bool = True
    limits: tarfmt.TarLimits = field(default_factory=tarfmt.TarLimits)


@dataclass(frozen=True)
class AppliedLayer:
    """What applying a layer learned about it."""

    digest: str | None  # sha256 of the blob as read (compressed form); None unhashed
    diff_id: str | None  # sha256 of the uncompressed tar; None unhashed
    compression: Compression
    size: int  # bytes of the blob as read
    uncompressed_size: int  # bytes of the tar stream
    #: Docker's layer "Size": bytes of regular files (hard links once) and
    #: symlink targets, what Docker's directory size walk counts
    content_size: int
    entries: int


def apply_layer(source: BinaryIO, target: str | os.PathLike, options: ApplyOptions | None = None,
                progress: Callable[[int], None] | None = None, *, hashed: bool = True) -> AppliedLayer:
    """Unpack the layer read from ``source`` into the directory ``target``.

    ``progress`` is called now and then with the number of blob bytes read
    so far.  Raises :class:`InvalidArgument` for a malformed or malicious
    archive (see the module docstring for what the caller must then do).
    ``hashed=False`` skips computing ``digest`` and ``diff_id`` (None in the
    result), for a caller that hashes the same stream elsewhere.
    """
    options = options or ApplyOptions()
    stream = LayerStream(source, hashed)
    reader = tarfmt.TarReader(_Progress(stream, progress) if progress else stream, options.limits)
    with RootDir(target) as root:
        applier = _Applier(root, reader, options)
        applier.run()
    stream.finish()
    if progress:
        progress(stream.size)
    return AppliedLayer(
        digest=stream.digest,
        diff_id=stream.diff_id,
        compression=stream.compression,
        size=stream.size,
        uncompressed_size=stream.uncompressed_size,
        content_size=applier.content_size,
        entries=reader.entry_count,
    )


class _Progress:
    __slots__ = ("_stream", "_report", "_next")

    def __init__(self, stream: LayerStream, report: Callable[[int], None]) -> None:
        self._stream = stream
        self._report = report
        self._next = 0

    def read(self, n: int) -> bytes:
        data = self._stream.read(n)
        if self._stream.size >= self._next or not data:
            self._report(self._stream.size)
            self._next = self._stream.size + (4 << 20)
        return data


class _Applier:
    def __init__(self, root: RootDir, reader: tarfmt.TarReader, options: ApplyOptions) -> None:
        self.root = root
        self.reader = reader
        self.options = options
        self.content_size = 0
        # Directory times are set last: writing into a directory changes
        # its mtime.  Keyed by path so that the last entry for a dir wins.
        self.dir_times: dict[tuple[bytes, ...], tuple[int, int]] = {}
        # For DELETE-mode opaque dirs: paths this layer wrote.
        self.written: set[tuple[bytes, ...]] | None = (
            set() if options.whiteouts is WhiteoutMode.DELETE else None)

    def run(self) -> None:
        for entry in self.reader.entries():
            try:
                self._apply(entry)
            except InvalidArgument:
                raise
            except OSError as exc:
                if exc.errno in (errno.ENAMETOOLONG, errno.EINVAL):
                    raise InvalidArgument(f"layer entry {show(entry.name)}: {exc.strerror}") from None
                raise Internal(f"applying layer entry {show(entry.name)}: {exc}") from exc
        self._set_dir_times()

    # -- dispatch ------------------------------------------------------------

    def _apply(self, entry: tarfmt.TarEntry) -> None:
        kind = entry.type
        if kind == tarfmt.AREG and entry.name.endswith(b"/"):
            kind = tarfmt.DIR  # pre-POSIX writers marked directories so
        parts = components(entry.name)
        if not parts:
            if kind != tarfmt.DIR:
                raise InvalidArgument(f"layer entry {show(entry.name)} names the root but is not a directory")
            self._set_dir_meta(self.root.fd, entry)
            self.dir_times[()] = self._times(entry)
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self.reader.skip_data()
            self._whiteout(entry, parts)
            return
        parent = self.root.dir_fd(parts[:-1], entry.name)
        if self.written is not None:
            self.written.add(parts)
        if kind in tarfmt.REGULAR_TYPES:
            self._file(entry, parent, parts)
        elif kind == tarfmt.DIR:
            self._dir(entry, parent, parts)
        elif kind == tarfmt.SYM:
            self._symlink(entry, parent, parts)
        elif kind == tarfmt.LNK:
            self._hardlink(entry, parent, parts)
        elif kind in (tarfmt.CHR, tarfmt.BLK):
            if not self.options.allow_devices:
                raise InvalidArgument(f"layer entry {show(entry.name)}: device nodes are not allowed here")
            fmt = stat.S_IFCHR if kind == tarfmt.CHR else stat.S_IFBLK
            self._node(entry, parent, parts,
                       lambda: os.mknod(base, fmt | 0o600, os.makedev(entry.devmajor, entry.devminor),
                                        dir_fd=parent))
        elif kind == tarfmt.FIFO:
            self._node(entry, parent, parts, lambda: os.mkfifo(base, 0o600, dir_fd=parent))
        else:
            raise InvalidArgument(
                f"layer entry {show(entry.name)}: unsupported tar entry type {kind!r}")

    # -- entry kinds ---------------------------------------------------------

    def _create(self, parent: int, parts: tuple[bytes, ...], make: Callable[[], object]):
        """Run ``make`` (which creates parts[-1] exclusively), replacing
        whatever was there: a later entry for a path wins, as in Docker."""
        try:
            return make()
        except FileExistsError:
            self.root.remove(parent, parts)
            return make()

    def _file(self, entry: tarfmt.TarEntry, parent: int, parts: tuple[bytes, ...]) -> None:
        base = parts[-1]
        fd = self._create(parent, parts, lambda: os.open(base, _CREATE_FLAGS, 0o600, dir_fd=parent))
        try:
            if entry.size:
                self.reader.copy_data_to_fd(fd, os.write)
                self.content_size += entry.size
            if self.options.same_owner:
                os.fchown(fd, entry.uid, entry.gid)
            os.fchmod(fd, entry.mode)  # after chown, which clears set-id bits
            if entry.xattrs:
                self._set_xattrs(fd, entry)
            os.utime(fd, ns=self._times(entry))
        finally:
            os.close(fd)

    def _dir(self, entry: tarfmt.TarEntry, parent: int, parts: tuple[bytes, ...]) -> None:
        base = parts[-1]
        try:
            os.mkdir(base, 0o700, dir_fd=parent)
        except FileExistsError:
            st = os.stat(base, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):  # an existing directory is merged into
                self.root.remove(parent, parts)
                os.mkdir(base, 0o700, dir_fd=parent)
        fd = self.root.dir_fd(parts, entry.name)
        self._set_dir_meta(fd, entry)
        self.dir_times[parts] = self._times(entry)

    def _set_dir_meta(self, fd: int, entry: tarfmt.TarEntry) -> None:
        if self.options.same_owner:
            os.fchown(fd, entry.uid, entry.gid)
        os.fchmod(fd, entry.mode)
        if entry.xattrs:
            self._set_xattrs(fd, entry)

    def _symlink(self, entry: tarfmt.TarEntry, parent: int, parts: tuple[bytes, ...]) -> None:
        target = entry.linkname
        if not target:
            raise InvalidArgument(f"layer entry {show(entry.name)}: symlink with an empty target")
        if not target.startswith(b"/"):
            # Docker's rule: a relative target must stay inside the root when
            # read from the link's directory.  Absolute targets are resolved
            # inside the container's root at run time, so they are fine.
            depth = len(parts) - 1
            for part in target.split(b"/"):
                if part == b"..":
                    depth -= 1
                    if depth < 0:
                        raise InvalidArgument(
                            f"layer entry {show(entry.name)}: symlink target {show(target)} escapes the layer root")
                elif part and part != b".":
                    depth += 1
        base = parts[-1]
        self._create(parent, parts, lambda: os.symlink(target, base, dir_fd=parent))
        self.content_size += len(target)
        if self.options.same_owner:
            os.chown(base, entry.uid, entry.gid, dir_fd=parent, follow_symlinks=False)
        if entry.xattrs:
            self._set_xattrs(proc_path(parent, base), entry, follow=False)
        os.utime(base, ns=self._times(entry), dir_fd=parent, follow_symlinks=False)

    def _hardlink(self, entry: tarfmt.TarEntry, parent: int, parts: tuple[bytes, ...]) -> None:
        target = components(entry.linkname, "hard link target")
        if not target:
            raise InvalidArgument(f"layer entry {show(entry.name)}: hard link to the layer root")
        if target == parts:
            return  # a link to itself: nothing to do
        # The target must be in this layer, reached without symlinks; the
        # walk fails otherwise, so a link cannot reach outside the root.
        target_parent = self.root.dir_fd(target[:-1], entry.name, create=False)
        base = parts[-1]

        def link() -> None:
            os.link(target[-1], base, src_dir_fd=target_parent, dst_dir_fd=parent, follow_symlinks=False)

        try:
            self._create(parent, parts, link)
        except FileNotFoundError:
            raise InvalidArgument(
                f"layer entry {show(entry.name)}: hard link target {show(entry.linkname)} "
                f"does not exist in this layer") from None
        except PermissionError:
            raise InvalidArgument(
                f"layer entry {show(entry.name)}: hard link target {show(entry.linkname)} "
                f"is a directory") from None

    def _node(self, entry: tarfmt.TarEntry, parent: int, parts: tuple[bytes, ...],
              make: Callable[[], None]) -> None:
        base = parts[-1]
        self._create(parent, parts, make)
        if self.options.same_owner:
            os.chown(base, entry.uid, entry.gid, dir_fd=parent, follow_symlinks=False)
        # We just created a node (never a symlink), so following is safe.
        os.chmod(base, entry.mode, dir_fd=parent)
        if entry.xattrs:
            self._set_xattrs(proc_path(parent, base), entry, follow=False)
        os.utime(base, ns=self._times(entry), dir_fd=parent, follow_symlinks=False)

    # -- whiteouts -----------------------------------------------------------

    def _whiteout(self, entry: tarfmt.TarEntry, parts: tuple[bytes, ...]) -> None:
        base = parts[-1]
        parent = self.root.dir_fd(parts[:-1], entry.name)
        if base == WHITEOUT_OPAQUE:
            if self.written is None:
                os.setxattr(parent, OVERLAY_OPAQUE_XATTR, b"y")
            else:
                for child in os.listdir(parent):
                    child_parts = parts[:-1] + (os.fsencode(child),)
                    if child_parts not in self.written:
                        self.root.remove(parent, child_parts)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk etc.), meaningless here
        name = base[len(WHITEOUT_PREFIX):]
        if not name or name in (b".", b".."):
            raise InvalidArgument(f"layer entry {show(entry.name)}: malformed whiteout")
        victim = parts[:-1] + (name,)
        self.root.remove(parent, victim)
        if self.written is None:
            os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
            if self.options.same_owner:
                os.chown(name, entry.uid, entry.gid, dir_fd=parent, follow_symlinks=False)
            # dated like its tar entry, so the same layer always unpacks the same
            os.utime(name, ns=self._times(entry), dir_fd=parent, follow_symlinks=False)

    # -- metadata ------------------------------------------------------------

    @staticmethod
    def _times(entry: tarfmt.TarEntry) -> tuple[int, int]:
        return (entry.atime_ns if entry.atime_ns is not None else entry.mtime_ns, entry.mtime_ns)

    @staticmethod
    def _set_xattrs(target: int | bytes, entry: tarfmt.TarEntry, follow: bool = True) -> None:
        for key, value in entry.xattrs.items():
            if key.startswith(_PRIVATE_XATTR_PREFIXES):
                continue
            try:
                os.setxattr(target, key, value, follow_symlinks=follow)
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    continue  # the filesystem cannot hold it; Docker ignores these too
                raise

    def _set_dir_times(self) -> None:
        for parts, times in self.dir_times.items():
            fd = self.root.lookup_dir(parts)
            if fd is not None:  # a later entry may have replaced the directory
                os.utime(fd, ns=times)
