"""Rotating log files shared by the ``json-file`` and ``local`` drivers.

Writing (:class:`RotatingFile`, Docker's LogFile semantics): records are
appended to ``<name>``; before a record is written, if the file has reached
``max-size`` it is rotated: ``<name>.N-1`` is removed, ``<name>.k`` becomes
``<name>.k+1``, ``<name>`` becomes ``<name>.1`` and a new empty ``<name>``
is opened (with ``max-file`` 1 the full file is simply unlinked).  With
``compress``, rotated files are gzipped (``<name>.1.gz`` ...): the gzip
header's Extra field holds JSON ``{"lastTime": ...}`` as Docker writes it,
plus ``"inode"``, ``"size"`` and ``"head"``: the inode number, size and a
fingerprint of the first 64 KiB of the plain file it was made from (see
below).

Reading (:class:`FileWalker`) happens in another process than writing (the
daemon reads, the supervisor writes), so a reader cannot be told about
rotations; it finds them on disk.  Each file is identified by its inode,
never by its name, which changes on every rotation.  A file the reader
holds open keeps its inode number to itself; a file it does not (one it
read from a .gz) may have lost its number to a newer file, so there the
size and the fingerprint of the content's start (which holds the first
record's nanosecond timestamp) must agree too.  (mtimes cannot tell:
they tick in jiffies, and a rotation can take less than one.)  A reader holds its current file
open; at that file's end it checks whether ``<name>`` is still the same
inode.  If not, the file was rotated: the reader drains it (a rotation
happens only after the last write to it), lists the files again, finds
where its inode now sits in the chain oldest -> newest, and moves to the
next one.  So a follower that is slower than the rotations still reads
every file that exists long enough to be listed, in order, once.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from dockyard.errors import InvalidArgument

from . import LogEntry, Partial
from .timefmt import parse_rfc3339, rfc3339nano

# -- options -----------------------------------------------------------------

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_SIZE_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str) -> int:
    """go-units RAMInBytes: ``10m`` -> 10 MiB (binary multipliers)."""
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise InvalidArgument(f"invalid size: '{text}'")
    unit = m.group(2).lower() if m.group(2) else None
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


@dataclass(frozen=True)
class FileOptions:
    max_size: int = -1  # bytes; -1: never rotate
    max_file: int = 1
    compress: bool = False


def parse_file_options(driver: str, options: dict[str, str], *, known: frozenset[str],
                       defaults: FileOptions) -> FileOptions:
    """Docker's max-size / max-file / compress, validated as dockerd does."""
    for key in options:
        if key not in known:
            raise InvalidArgument(f"unknown log opt '{key}' for {driver} log driver")
    max_size = defaults.max_size
    if options.get("max-size"):
        max_size = parse_size(options["max-size"])
        if max_size <= 0:
            raise InvalidArgument(f"max-size must be a positive number, got '{options['max-size']}'")
    max_file = defaults.max_file
    if options.get("max-file"):
        try:
            max_file = int(options["max-file"])
        except ValueError:
            raise InvalidArgument(f"invalid max-file: '{options['max-file']}'") from None
        if max_file < 1:
            raise InvalidArgument("max-file cannot be less than 1")
    compress = defaults.compress
    if options.get("compress"):
        value = options["compress"].lower()
        if value not in ("true", "false", "1", "0", "t", "f"):
            raise InvalidArgument(f"invalid compress value: '{options['compress']}'")
        compress = value in ("true", "1", "t")
    if max_size < 0 and "max-file" in options and max_file != 1:
        raise InvalidArgument("max-file cannot be set when max-size is not set")
    if max_size < 0 and options.get("compress") and compress:
        raise InvalidArgument("compress cannot be set when max-size is not set")
    return FileOptions(max_size, max_file, compress and max_file > 1)


# -- writing -----------------------------------------------------------------


class RotatingFile:
    """Appends encoded records to ``path``, rotating as Docker does.

    Records are buffered until :meth:`flush` (one write(2) per batch), so
    a reader never waits on a half-written batch for long; the rotation
    check happens before each record, as in Docker (a file may exceed
    max-size by one record).
    """

    def __init__(self, path: Path, options: FileOptions, perms: int = 0o640) -> None:
        self.path = Path(path)
        self.options = options
        self.perms = perms
        if not os.path.isdir(self.path.parent):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, perms)
        self._size = os.lseek(self._fd, 0, os.SEEK_END)
        self._pending: list[bytes] = []
        self._last_ts = 0
        self._lock_fd = -1
        if options.max_size > 0:
            self._lock_fd = os.open(lock_path(self.path), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, perms)

    def append(self, record: bytes, timestamp: int) -> None:
        if 0 < self.options.max_size <= self._size:
            self.flush()
            self._rotate()
        self._pending.append(record)
        self._size += len(record)
        self._last_ts = timestamp

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.flush()
            finally:
                os.close(self._fd)
                self._fd = -1
                if self._lock_fd >= 0:
                    os.close(self._lock_fd)
                    self._lock_fd = -1

    def _rotate(self) -> None:
        name = str(self.path)
        os.close(self._fd)
        self._fd = -1
        opts = self.options
        # Readers list the files under a shared lock: they never see the
        # chain half-shifted.  Compression below needs no lock (a reader
        # prefers the plain twin while both exist).
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            if opts.max_file < 2:
                _unlink(name)
            else:
                ext = ".gz" if opts.compress else ""
                _unlink(f"{name}.{opts.max_file - 1}{ext}")
                for i in range(opts.max_file - 1, 1, -1):
                    _rename(f"{name}.{i - 1}{ext}", f"{name}.{i}{ext}")
                _rename(name, f"{name}.1")
            self._fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                               self.perms)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        self._size = 0
        if opts.compress and opts.max_file >= 2:
            compress_file(f"{name}.1", self._last_ts, self.perms, self._lock_fd)


def lock_path(path: Path | str) -> str:
    """The lock file beside a rotating log (``<name>.lock``)."""
    return f"{path}.lock"


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rename(src: str, dst: str) -> None:
    try:
        os.rename(src, dst)
    except FileNotFoundError:
        pass


def compress_file(path: str, last_ts: int, perms: int = 0o640, lock_fd: int = -1) -> None:
    """gzip ``path`` to ``path.gz`` (temp file, rename), then remove
    ``path``.  The header is written by hand because Python's gzip module
    cannot set the Extra field Docker uses."""
    try:
        src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    tmp = f"{path}.gz.tmp"
    try:
        st = os.fstat(src)
        extra = json.dumps({"lastTime": rfc3339nano(last_ts), "inode": st.st_ino, "size": st.st_size,
                            "head": fingerprint(os.pread(src, HEAD_BYTES, 0))},
                           separators=(",", ":")).encode()
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, perms)
        try:
            # magic, deflate, FEXTRA, mtime 0, no extra flags, OS unknown (as Go writes it)
            parts = [b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff", struct.pack("<H", len(extra)), extra]
            deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            crc = 0
            size = 0
            while chunk := os.read(src, 1 << 20):
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
                parts.append(deflate.compress(chunk))
                if sum(len(p) for p in parts) > 1 << 20:
                    _write_all(out, b"".join(parts))
                    parts = []
            parts.append(deflate.flush())
            parts.append(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
            # No fsync: log files are never fsync'd (nor by Docker); a crash
            # loses recent page cache either way, and an fsync per rotation
            # would stall the container's output.
            _write_all(out, b"".join(parts))
        finally:
            os.close(out)
        # The plain file gives way to the compressed one under the readers'
        # lock, so a listing never sees neither.
        if lock_fd >= 0:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            os.rename(tmp, f"{path}.gz")
            _unlink(path)
        finally:
            if lock_fd >= 0:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
    except BaseException:
        _unlink(tmp)
        raise
    finally:
        os.close(src)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_gzip(data: bytes) -> tuple[dict, bytes]:
    """(header Extra as JSON, or {}, decompressed content) of a gzip file."""
    if len(data) < 10 or data[:2] != b"\x1f\x8b":
        raise ValueError("not a gzip file")
    flags = data[3]
    pos = 10
    meta: dict = {}
    if flags & 0x04:
        (xlen,) = struct.unpack_from("<H", data, pos)
        try:
            doc = json.loads(data[pos + 2:pos + 2 + xlen])
            if isinstance(doc, dict):
                meta = doc
        except ValueError:
            pass
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    content = d.decompress(data)
    # Concatenated members are legal gzip; Docker never writes them, but be lenient.
    while d.unused_data:
        rest = d.unused_data
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        content += d.decompress(rest)
    return meta, content


# -- reading -----------------------------------------------------------------

#: How much of a file's start its fingerprint covers.
HEAD_BYTES = 1 << 16


def fingerprint(head: bytes) -> str:
    """Identifies a file's content by its first HEAD_BYTES bytes (which hold
    its first record and that record's nanosecond timestamp)."""
    return f"{zlib.crc32(head):08x}{zlib.adler32(head):08x}"


def _fingerprint_fd(fd: int) -> str:
    return fingerprint(os.pread(fd, HEAD_BYTES, 0))


@dataclass(frozen=True)
class Member:
    """One file of a log's chain: ``<name>.k[.gz]`` or ``<name>`` itself.

    For a compressed member, ``ino``, ``size`` and ``head`` come from its
    header and describe the plain file it was made from."""

    path: str
    ino: int | None  # None: a compressed file without our header (written by Docker)
    compressed: bool
    generation: int  # k for <name>.k, 0 for the current file
    size: int = 0
    head: str | None = None

    def head_now(self) -> str | None:
        if self.head is not None or self.compressed:
            return self.head
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            if os.fstat(fd).st_ino != self.ino:
                return None
            return _fingerprint_fd(fd)
        finally:
            os.close(fd)


#: decode(buffer) -> (entries, bytes consumed); must leave an incomplete
#: trailing record unconsumed.
Decoder = Callable[[bytes], "tuple[list[LogEntry], int]"]

_ROTATED_RE_CACHE: dict[str, re.Pattern[str]] = {}


def scan(path: Path, attempts: int = 200, *, locked: bool = False) -> list[Member]:
    """The chain of ``path``'s files, oldest first, as of one moment.

    Under the writer's lock (``locked``) one listing is exact.  Without it
    (a log whose writer keeps no lock file) listing and stat-ing is not
    atomic against a rotation (a name listed before a rename is stat-ed
    after it), so the chain is read until two reads agree."""
    if locked:
        return _scan_once(path)
    previous = _scan_once(path)
    for _ in range(attempts):
        current = _scan_once(path)
        if current == previous:
            return current
        previous = current
        time.sleep(0.001)
    return previous


def _scan_once(path: Path) -> list[Member]:
    """One listing; a plain file is preferred to its compressed twin (it is
    being compressed right now)."""
    directory, base = os.path.split(str(path))
    pattern = _ROTATED_RE_CACHE.get(base)
    if pattern is None:
        pattern = _ROTATED_RE_CACHE[base] = re.compile(re.escape(base) + r"\.(\d+)(\.gz)?$")
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return []
    found: dict[int, Member] = {}
    for n in names:
        m = pattern.match(n)
        if not m:
            continue
        gen = int(m.group(1))
        full = os.path.join(directory, n)
        if m.group(2):
            if gen in found:
                continue
            meta = _gzip_identity(full)
            if meta is None:
                continue  # gone meanwhile
            found[gen] = Member(full, meta[0], True, gen, meta[1], meta[2])
        else:
            try:
                st = os.stat(full)
            except FileNotFoundError:
                continue
            found[gen] = Member(full, st.st_ino, False, gen, st.st_size)
    chain = [found[g] for g in sorted(found, reverse=True)]
    try:
        st = os.stat(path)
        chain.append(Member(str(path), st.st_ino, False, 0, st.st_size))
    except FileNotFoundError:
        pass
    return chain


def _gzip_identity(path: str) -> tuple[int | None, int, str | None] | None:
    """(inode, size, head fingerprint) of the file a .gz was made from, as
    its header records them; (None, 0, None) without our header; None if
    the file is gone.  Not cached: a new .gz can get a freed inode number,
    size and (jiffy-grained) mtime of an old one."""
    try:
        with open(path, "rb") as f:
            header = f.read(4096)
    except FileNotFoundError:
        return None
    return _header_identity(_gzip_meta(header))


def _gzip_meta(data: bytes) -> dict:
    if len(data) >= 12 and data[:2] == b"\x1f\x8b" and data[3] & 0x04:
        (xlen,) = struct.unpack_from("<H", data, 10)
        try:
            doc = json.loads(data[12:12 + xlen])
            return doc if isinstance(doc, dict) else {}
        except ValueError:
            pass
    return {}


def _header_identity(meta: dict) -> tuple[int | None, int, str | None]:
    try:
        if meta.get("inode") is not None and meta.get("head"):
            return int(meta["inode"]), int(meta.get("size") or 0), str(meta["head"])
    except (TypeError, ValueError):
        pass
    return None, 0, None


class _Source:
    """An open member: a live fd for a plain file, bytes for a gzip one."""

    __slots__ = ("member", "fd", "data", "ino", "buffer", "complete", "size", "head")

    def __init__(self, member: Member, fd: int | None, data: bytes | None, ino: int | None,
                 size: int = 0, head: str | None = None) -> None:
        self.member = member
        self.fd = fd
        self.data = data
        self.ino = ino
        self.buffer = b""
        self.complete = data is not None
        self.size = size
        self.head = head

    def is_member(self, member: Member) -> bool:
        """Whether ``member`` (from a fresh listing) is this file.  A file
        held open owns its inode number, so a plain member with that number
        is it; otherwise the inode number may have been reused since, and
        the size and fingerprint of the content must agree too."""
        if self.ino is None or member.ino != self.ino:
            return False
        if self.fd is not None and not member.compressed:
            return True
        if self.fd is not None:
            size, head = os.fstat(self.fd).st_size, _fingerprint_fd(self.fd)
        else:
            size, head = self.size, self.head
        return member.size == size and head is not None and member.head_now() == head

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class FileWalker:
    """Walks a log's chain oldest -> newest and keeps following the current
    file across rotations (see the module docstring)."""

    def __init__(self, path: Path, decode: Decoder, *, since: int | None = None) -> None:
        self.path = Path(path)
        self.decode = decode
        self.since = since
        self._src: _Source | None = None
        self._lock_fd = -1

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _lock(self) -> bool:
        """Take the writer's rotation lock (shared); False if it keeps none."""
        if self._lock_fd < 0:
            try:
                self._lock_fd = os.open(lock_path(self.path), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return False
        fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
        return True

    def _unlock(self) -> None:
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _next_source(self, src: _Source | None) -> _Source | None | bool:
        """Open the file after ``src`` (the oldest file when ``src`` is None),
        listing and opening under the writer's lock so that no rotation
        moves names in between.  None: no file (yet); False: ``src`` is
        still the newest (a rotation is half done, or listing raced)."""
        locked = self._lock()
        try:
            for _ in range(100):
                chain = scan(self.path, locked=locked)
                if not chain:
                    return None
                member = chain[0] if src is None else self._successor(src, chain)
                if member is None or member is False:
                    return member
                opened = self._open(member)
                if opened is not None:
                    return opened
                # Renamed or compressed meanwhile (only without a lock): list again.
            return False
        finally:
            if locked:
                self._unlock()

    def _open(self, member: Member) -> _Source | None:
        """Open ``member`` if it is still the file it was when listed."""
        try:
            if member.compressed:
                with open(member.path, "rb") as f:
                    raw = f.read()
                meta, content = read_gzip(raw)
                ino, size, head = _header_identity(meta)
                if (ino, size, head) != (member.ino, member.size, member.head):
                    return None  # renamed under us: list again
                if self.since is not None and meta.get("lastTime"):
                    try:
                        if parse_rfc3339(meta["lastTime"]) < self.since:
                            content = b""  # nothing in it is recent enough
                    except ValueError:
                        pass
                return _Source(member, None, content, ino, size, head)
            fd = os.open(member.path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, ValueError, zlib.error):
            return None
        ino = os.fstat(fd).st_ino
        if ino != member.ino:
            os.close(fd)
            return None
        return _Source(member, fd, None, ino)

    def _read_available(self, src: _Source) -> list[LogEntry]:
        if src.complete:
            data, src.data = src.data or b"", b""
            buf = src.buffer + data
        else:
            chunks = [src.buffer] if src.buffer else []
            while chunk := os.read(src.fd, 1 << 16):
                chunks.append(chunk)
            buf = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        if not buf:
            src.buffer = b""
            return []
        entries, used = self.decode(buf)
        src.buffer = buf[used:]
        return entries

    def _successor(self, src: _Source, chain: list[Member]) -> Member | bool:
        """The member after ``src`` in ``chain``; False if ``src`` is still
        the newest (mid-rotation)."""
        if src.ino is None:
            # A compressed file without our header (written by Docker): go
            # by generation number, which is right unless a rotation ran
            # between listing and now.
            newer = [m for m in chain if m.generation < src.member.generation]
            return newer[0] if newer else False
        for i in range(len(chain) - 1, -1, -1):
            if src.is_member(chain[i]):
                return chain[i + 1] if i + 1 < len(chain) else False
        if src.fd is not None and os.fstat(src.fd).st_nlink > 0:
            return False  # it still has a name we did not see: list again
        # Our file is gone (rotated past max-file): everything left is newer.
        return chain[0]

    def tail(self, n: int, keep: Callable[[LogEntry], bool]) -> list[LogEntry]:
        """The last ``n`` entries that ``keep`` accepts.  Files are read
        newest first, and older ones (decompressing them) only while more
        entries are needed; the walker is left at the end of the current
        file, so that following goes on from there."""
        locked = self._lock()
        try:
            for _ in range(100):
                chain = scan(self.path, locked=locked)
                if not chain:
                    return []
                newest = self._open(chain[-1])
                if newest is None:
                    continue  # renamed meanwhile (only without a lock): list again
                found = [e for e in self._read_available(newest) if keep(e)]
                for member in reversed(chain[:-1]):
                    if len(found) >= n:
                        break
                    older = self._open(member)
                    if older is None:
                        continue  # gone meanwhile: what it held is past keeping
                    try:
                        found[:0] = [e for e in self._read_available(older) if keep(e)]
                    finally:
                        older.close()
                if self._src is not None:
                    self._src.close()
                self._src = newest
                return found[max(0, len(found) - n):] if n else []
            return []
        finally:
            if locked:
                self._unlock()

    def batches(self, *, follow: bool, stop: Callable[[], bool] | None = None, poll_interval: float = 0.05,
                wait: Callable[[float], object] | None = None) -> Iterator[list[LogEntry]]:
        """Lists of entries as they become readable.  Without ``follow`` it
        ends at the end of the current file.  With ``follow`` it ends once
        ``stop()`` is true and what was written before is read, also when
        the files are gone meanwhile (a removed container's); between polls
        it calls ``wait(seconds)`` (``time.sleep`` by default), which a
        caller that knows when the writer is done makes return early."""
        pause = wait or time.sleep
        stopping = False

        def at_end(interval: float) -> bool:
            """At the end of what can be read: True when the walk is over,
            else ``stop`` was asked and, unless it said so, a poll waited."""
            nonlocal stopping
            if not follow or stopping:
                return True
            stopping = bool(stop and stop())
            if not stopping:
                pause(interval)
            return False

        while True:
            if self._src is None:
                first = self._next_source(None)
                self._src = first or None
                if self._src is None:
                    if at_end(poll_interval):
                        return
                    continue
            src = self._src
            entries = self._read_available(src)
            if entries:
                yield entries
            if not src.complete:
                try:
                    current = os.stat(self.path).st_ino
                except FileNotFoundError:
                    current = None  # between unlink and re-create (max-file 1), or removed
                if current == src.ino:
                    if at_end(poll_interval):
                        return
                    continue
                # Rotated away (or removed); it gets no more writes: drain it.
                entries = self._read_available(src)
                if entries:
                    yield entries
            opened = self._next_source(src)
            if opened is None or opened is False:
                # No successor (yet): a rotation half done, or the files
                # were removed with their container.  Only ``stop`` can
                # tell which; ask it, as at the end of a live file.
                # (Not following, a half-done rotation is still waited out.)
                if (not follow and opened is None) or stopping:
                    return
                stopping = bool(stop and stop())
                if not stopping:
                    pause(min(poll_interval, 0.01))
                continue
            src.close()
            self._src = opened


def read_entries(path: Path, decode: Decoder, *, since: int | None = None, until: int | None = None,
                 tail: int | None = None, follow: bool = False, stop: Callable[[], bool] | None = None,
                 poll_interval: float = 0.05, wait: Callable[[float], object] | None = None) -> Iterator[LogEntry]:
    """The Reader.read contract over a rotating file set."""
    walker = FileWalker(path, decode, since=since)
    try:
        if tail is not None and tail >= 0:
            def keep(e: LogEntry) -> bool:
                return (since is None or e.timestamp >= since) and (until is None or e.timestamp <= until)

            yield from walker.tail(tail, keep)
            if not follow:
                return
        for batch in walker.batches(follow=follow, stop=stop, poll_interval=poll_interval, wait=wait):
            for e in batch:
                if since is not None and e.timestamp < since:
                    continue
                if until is not None and e.timestamp > until:
                    return
                yield e
    finally:
        walker.close()


# -- a file driver: an entry format over a rotating file ---------------------

#: A driver's record format: (stream, line, timestamp, partial) -> bytes.
Encoder = Callable[[str, bytes, int, "Partial | None"], bytes]


class FileLogWriter:
    """The Writer of a driver that keeps its log in files (json-file,
    local): entries in the driver's format, appended and rotated by a
    :class:`RotatingFile`."""

    def __init__(self, path: Path, options: FileOptions, encode: Encoder) -> None:
        self._file = RotatingFile(path, options)
        self._encode = encode

    def write(self, stream: str, line: bytes, timestamp: int, partial: Partial | None = None) -> None:
        self._file.append(self._encode(stream, line, timestamp, partial), timestamp)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class FileLogReader:
    """The Reader of such a driver: :func:`read_entries` with its decoder."""

    def __init__(self, path: Path, decode: Decoder) -> None:
        self.path = path
        self._decode = decode

    def read(self, *, since=None, until=None, tail=None, follow=False, stop=None, poll_interval=0.05, wait=None):
        return read_entries(self.path, self._decode, since=since, until=until, tail=tail, follow=follow,
                            stop=stop, poll_interval=poll_interval, wait=wait)


def require_path(driver: str, path: Path | None) -> Path:
    """``path``, which a file driver cannot do without."""
    if path is None:
        raise InvalidArgument(f"the {driver} log driver needs a log path")
    return path
