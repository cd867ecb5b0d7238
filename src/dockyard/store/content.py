"""The content store: blobs addressed by digest.

Terms (containerd's): a *blob* is an immutable byte string named by its
digest; an *ingest* is a blob being written, visible to nobody until it is
committed; a *ref* is the writer's own name for an ingest (e.g.
``"layer-sha256:..."``), used only in messages and temp-file names.

Lifecycle of a write::

    with store.open_writer(ref="config", expected=digest) as w:
        w.write(chunk); w.write(chunk)
        info = w.commit(expected_size=n, expected_digest=digest)

1. ``open_writer`` creates a temp file in ``<root>/ingest`` and holds an
   ``flock`` on it for as long as the writer lives, so a later start-up
   can tell a crashed writer's leftovers (lockable) from a live one's.
2. ``write`` appends and hashes as it goes (no second read).
3. ``commit`` fsyncs, checks size and digest, chmods 0444 and renames the
   file to ``<root>/blobs/<alg>/<hex>`` (same filesystem, so atomic), then
   fsyncs the directory.  A mismatch raises ``InvalidArgument`` and
   removes the temp file.  If the blob already exists (another writer got
   there first), the temp file is dropped and the existing blob's info is
   returned: concurrent ingests of the same content all succeed and never
   expose a partial file.
4. Leaving the ``with`` block without commit aborts (removes the temp file).

``ingest(source, expected=None, size=None)`` does all of that for bytes or
a readable binary stream.

Reading: ``open(digest)`` gives a read-only file object; ``path(digest)``
the file's path for zero-copy use (``os.sendfile``, ``copy_file_range``,
handing to tar).  Blobs are never modified in place, only deleted, so an
open file stays valid after a delete.

``check()`` re-hashes every blob and reports those whose content no longer
matches their name.  ``cleanup_ingests()`` (called at start-up) removes
temp files no live writer holds.

``ContentStore`` is the Protocol; ``LocalContentStore`` the on-disk
implementation.  Write another backend against
``tests/store/content_suite.py``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Protocol, runtime_checkable

from ..errors import InvalidArgument, NotFound
from ..oci.digest import ALGORITHMS, CHUNK, SHA256, Digest, Digester

#: written into the ingest dir's lock file name; writers share-lock it
#: while creating a temp file, cleanup takes it exclusively
_INGEST_LOCK = ".lock"


@dataclass(frozen=True)
class BlobInfo:
    """What the store knows about a committed blob."""

    digest: Digest
    size: int
    created: float  # seconds since the epoch (the blob file's mtime)


@dataclass(frozen=True)
class CheckReport:
    """Result of :meth:`ContentStore.check`."""

    checked: int
    corrupt: tuple[Digest, ...] = ()
    #: files under blobs/ whose names are not valid digests
    stray: tuple[str, ...] = ()
    removed: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.stray


@runtime_checkable
class Writer(Protocol):
    """An ingest in progress.  Use as a context manager: leaving without
    :meth:`commit` aborts."""

    ref: str

    @property
    def offset(self) -> int:
        """Bytes written so far."""
        ...

    def write(self, data: bytes | bytearray | memoryview) -> int: ...

    def sync(self) -> None:
        """Make what was written so far durable now (so that commit, which
        syncs anyway, has little left to do); a writer may call it as soon
        as it is done writing, possibly on another thread than commit."""
        ...

    def commit(self, expected_size: int | None = None, expected_digest: Digest | str | None = None,
               *, before_publish: Callable[[Digest], None] | None = None) -> BlobInfo:
        """Verify and publish.  ``before_publish(digest)`` runs after
        verification and before the blob becomes visible (e.g. to add it to
        a lease, so garbage collection can never see it unreferenced)."""
        ...

    def abort(self) -> None: ...

    def __enter__(self) -> Writer: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class ContentStore(Protocol):
    """Blobs by digest.  Every method is safe to call from several threads
    and processes at once."""

    def info(self, digest: Digest | str) -> BlobInfo:
        """Raise NotFound when absent."""
        ...

    def exists(self, digest: Digest | str) -> bool: ...

    def open(self, digest: Digest | str) -> BinaryIO:
        """A read-only binary file object positioned at 0."""
        ...

    def read_bytes(self, digest: Digest | str) -> bytes: ...

    def path(self, digest: Digest | str) -> Path:
        """The blob's file, for zero-copy readers.  Never write to it."""
        ...

    def open_writer(self, ref: str | None = None, expected: Digest | str | None = None,
                    algorithm: str = SHA256) -> Writer: ...

    def ingest(self, source: bytes | BinaryIO, expected: Digest | str | None = None,
               size: int | None = None, ref: str | None = None,
               before_publish: Callable[[Digest], None] | None = None) -> BlobInfo: ...

    def delete(self, digest: Digest | str) -> None:
        """Remove a blob; NotFound when absent."""
        ...

    def walk(self) -> Iterator[BlobInfo]:
        """Every committed blob, in no particular order."""
        ...

    def check(self, remove_corrupt: bool = False) -> CheckReport: ...

    def cleanup_ingests(self) -> list[str]:
        """Remove temp files of crashed writers; returns their names."""
        ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalWriter:
    """A :class:`Writer` backed by a temp file in ``<root>/ingest``."""

    def __init__(self, store: LocalContentStore, ref: str, expected: Digest | None, algorithm: str) -> None:
        self.store = store
        self.ref = ref
        self.expected = expected
        self._digester = Digester(expected.algorithm if expected is not None else algorithm)
        self._closed = False
        name = f"{secrets.token_hex(8)}-{_safe_ref(ref)}"
        self.path = store.ingest_dir / name
        # Hold the ingest dir lock shared while the file exists but is not
        # yet locked, so cleanup never mistakes it for a crashed writer's.
        guard = os.open(store.ingest_dir / _INGEST_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(guard, fcntl.LOCK_SH)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(guard)

    @property
    def offset(self) -> int:
        return self._digester.size

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise InvalidArgument(f"ingest {self.ref}: write after commit or abort")
        view = memoryview(data)
        total = len(view)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._digester.update(data)
        return total

    def sync(self) -> None:
        if self._closed:
            raise InvalidArgument(f"ingest {self.ref}: sync after commit or abort")
        os.fsync(self._fd)

    def commit(self, expected_size: int | None = None, expected_digest: Digest | str | None = None,
               *, before_publish: Callable[[Digest], None] | None = None) -> BlobInfo:
        if self._closed:
            raise InvalidArgument(f"ingest {self.ref}: commit after commit or abort")
        try:
            expected = Digest.parse(expected_digest) if expected_digest is not None else self.expected
            if expected is not None and self.expected is not None and expected != self.expected:
                raise InvalidArgument(
                    f"ingest {self.ref}: commit expects {expected} but the writer was opened for {self.expected}")
            size = self._digester.size
            if expected_size is not None and size != expected_size:
                raise InvalidArgument(
                    f"ingest {self.ref}: unexpected commit size {size}, expected {expected_size}")
            if expected is not None and expected.algorithm != self._digester.algorithm:
                raise InvalidArgument(f"ingest {self.ref}: expected {expected} but hashed with {self._digester.algorithm}")
            actual = self._digester.digest()
            if expected is not None and actual != expected:
                raise InvalidArgument(
                    f"ingest {self.ref}: unexpected commit digest {actual}, expected {expected}")
            os.fsync(self._fd)
            os.fchmod(self._fd, 0o444)
            if before_publish is not None:
                before_publish(actual)
            return self.store._publish(self.path, actual, size)
        finally:
            self._close()

    def abort(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass  # published (renamed away) or already gone
        os.close(self._fd)

    def __enter__(self) -> LocalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def __del__(self) -> None:  # a forgotten writer must not leak its fd
        if not getattr(self, "_closed", True):
            self._close()


def _safe_ref(ref: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in ref)
    return keep[:80]


class LocalContentStore:
    """Blobs as files: ``<root>/blobs/<algorithm>/<hex>``, mode 0444;
    in-progress ingests in ``<root>/ingest``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs"
        self.ingest_dir = self.root / "ingest"
        for algorithm in ALGORITHMS:
            (self.blobs_dir / algorithm).mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)

    # --- reading --------------------------------------------------------
    def path(self, digest: Digest | str) -> Path:
        d = Digest.parse(digest)
        return self.blobs_dir / d.algorithm / d.encoded

    def info(self, digest: Digest | str) -> BlobInfo:
        d = Digest.parse(digest)
        try:
            st = os.stat(self.blobs_dir / d.algorithm / d.encoded)
        except FileNotFoundError:
            raise NotFound(f"content digest {d}: not found") from None
        return BlobInfo(d, st.st_size, st.st_mtime)

    def exists(self, digest: Digest | str) -> bool:
        return self.path(digest).exists()

    def open(self, digest: Digest | str) -> BinaryIO:
        d = Digest.parse(digest)
        try:
            return open(self.blobs_dir / d.algorithm / d.encoded, "rb")
        except FileNotFoundError:
            raise NotFound(f"content digest {d}: not found") from None

    def read_bytes(self, digest: Digest | str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    # --- writing --------------------------------------------------------
    def open_writer(self, ref: str | None = None, expected: Digest | str | None = None,
                    algorithm: str = SHA256) -> LocalWriter:
        exp = Digest.parse(expected) if expected is not None else None
        return LocalWriter(self, ref or (str(exp) if exp else "blob"), exp, algorithm)

    def ingest(self, source: bytes | bytearray | memoryview | BinaryIO, expected: Digest | str | None = None,
               size: int | None = None, ref: str | None = None,
               before_publish: Callable[[Digest], None] | None = None) -> BlobInfo:
        exp = Digest.parse(expected) if expected is not None else None
        if exp is not None:
            if before_publish is not None:
                # Protect first, then look: a collector running between the
                # two can then no longer take the existing blob away.
                before_publish(exp)
            # Already there: nothing to write (the common case on re-load).
            try:
                info = self.info(exp)
            except NotFound:
                pass
            else:
                if size is None or info.size == size:
                    return info
        with self.open_writer(ref, exp) as writer:
            if isinstance(source, (bytes, bytearray, memoryview)):
                writer.write(source)
            else:
                while chunk := source.read(CHUNK):
                    writer.write(chunk)
            return writer.commit(size, exp, before_publish=before_publish)

    def _publish(self, temp: Path, digest: Digest, size: int) -> BlobInfo:
        target = self.blobs_dir / digest.algorithm / digest.encoded
        try:
            st = os.stat(target)
        except FileNotFoundError:
            pass
        else:
            # Someone committed the same content first; theirs is verified
            # and identical, so ours is dropped (by the writer's close).
            return BlobInfo(digest, st.st_size, st.st_mtime)
        os.rename(temp, target)
        _fsync_dir(target.parent)
        return BlobInfo(digest, size, os.stat(target).st_mtime)

    def delete(self, digest: Digest | str) -> None:
        d = Digest.parse(digest)
        try:
            os.unlink(self.blobs_dir / d.algorithm / d.encoded)
        except FileNotFoundError:
            raise NotFound(f"content digest {d}: not found") from None

    # --- whole-store ----------------------------------------------------
    def walk(self) -> Iterator[BlobInfo]:
        for algorithm, length in ALGORITHMS.items():
            directory = self.blobs_dir / algorithm
            try:
                entries = os.scandir(directory)
            except FileNotFoundError:
                continue
            with entries:
                for entry in entries:
                    if len(entry.name) != length:
                        continue
                    try:
                        d = Digest(algorithm, entry.name)
                        st = entry.stat()
                    except (InvalidArgument, FileNotFoundError):
                        continue
                    yield BlobInfo(d, st.st_size, st.st_mtime)

    def check(self, remove_corrupt: bool = False) -> CheckReport:
        """Re-hash every blob.  With ``remove_corrupt``, delete blobs whose
        content no longer matches their digest (a later pull/load then
        fetches them again)."""
        checked = 0
        corrupt: list[Digest] = []
        stray: list[str] = []
        removed: list[str] = []
        for algorithm in ALGORITHMS:
            directory = self.blobs_dir / algorithm
            for entry in sorted(os.scandir(directory), key=lambda e: e.name):
                try:
                    d = Digest(algorithm, entry.name)
                except InvalidArgument:
                    stray.append(f"{algorithm}/{entry.name}")
                    continue
                checked += 1
                try:
                    with open(entry.path, "rb") as f:
                        actual, _ = Digest.from_stream(f, algorithm)
                except FileNotFoundError:
                    continue  # deleted while we walked
                if actual != d:
                    corrupt.append(d)
                    if remove_corrupt:
                        try:
                            os.unlink(entry.path)
                            removed.append(str(d))
                        except FileNotFoundError:
                            pass
        return CheckReport(checked, tuple(corrupt), tuple(stray), tuple(removed))

    def cleanup_ingests(self) -> list[str]:
        """Remove temp files whose writer is gone (its flock released by
        its death).  Safe while other writers are active."""
        removed: list[str] = []
        guard = os.open(self.ingest_dir / _INGEST_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(guard, fcntl.LOCK_EX)
            for entry in os.scandir(self.ingest_dir):
                if entry.name == _INGEST_LOCK:
                    continue
                try:
                    fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                try:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError as exc:
                        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                            continue  # a live writer holds it
                        raise
                    try:
                        os.unlink(entry.path)
                        removed.append(entry.name)
                    except FileNotFoundError:
                        pass
                finally:
                    os.close(fd)
        finally:
            os.close(guard)
        return removed

    def usage(self) -> tuple[int, int]:
        """(bytes, blob count) of committed content."""
        total = count = 0
        for info in self.walk():
            total += info.size
            count += 1
        return total, count


__all__ = ["BlobInfo", "CheckReport", "ContentStore", "Writer", "LocalContentStore", "LocalWriter"]
