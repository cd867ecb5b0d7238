"""The tar format, read and written by hand.

Layers are tar streams (POSIX.1-2001 pax over ustar, with GNU long-name
records from older tools).  Dockyard parses them itself rather than through
:mod:`tarfile` for three reasons: every byte of the stream has to pass
through the diff_id hash exactly once, untrusted input needs hard limits on
sizes *before* anything is allocated, and applying a layer is a hot path
where tarfile's per-member object churn shows.

Terms used here:

* *block* -- the 512-byte unit of the format; a member's data is padded to
  a whole number of blocks, and the archive ends with (at least) two zero
  blocks.
* *header* -- one block describing a member; pax (``x``/``g``) and GNU
  (``L``/``K``) extension records precede the header they modify.
* :class:`TarEntry` -- one member after all extensions are folded in.

Names and link targets stay ``bytes``: layer paths are arbitrary byte
strings on Linux, and decoding them would make some unrepresentable.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterator, Protocol

from ..errors import InvalidArgument

BLOCK = 512

# Type flags (ustar, pax and GNU).
REG = b"0"
AREG = b"\0"  # pre-POSIX regular file
LNK = b"1"
SYM = b"2"
CHR = b"3"
BLK = b"4"
DIR = b"5"
FIFO = b"6"
CONT = b"7"  # contiguous file: a regular file for every practical purpose
XHD = b"x"  # pax extended header for the next member
XGL = b"g"  # pax global extended header
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"

REGULAR_TYPES = frozenset((REG, AREG, CONT))

#: header layout (POSIX ustar; GNU reuses the same offsets up to devminor)
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")
_USTAR_MAGIC = b"ustar\x00"
_GNU_MAGIC = b"ustar "
_ZERO_BLOCK = bytes(BLOCK)


@dataclass(slots=True)
class TarEntry:
    """One archive member with its pax/GNU extensions applied.

    Mutable and slotted on purpose: the reader builds one per member on
    the hot path, and a frozen dataclass costs several times as much to
    construct.  Consumers treat it as a value.
    """

    name: bytes
    type: bytes
    mode: int  # permission and set-id bits only (07777)
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: bytes = b""
    devmajor: int = 0
    devminor: int = 0
    uname: str = ""
    gname: str = ""
    atime_ns: int | None = None
    xattrs: dict[str, bytes] = field(default_factory=dict)

    @property
    def is_regular(self) -> bool:
        return self.type in REGULAR_TYPES


class ByteSource(Protocol):
    """What the reader pulls from: a stream of already-decompressed bytes."""

    def read(self, n: int) -> bytes: ...


@dataclass(frozen=True)
class TarLimits:
    """Bounds for untrusted archives, checked against *declared* sizes
    before any data is read, so a forged header cannot make the reader
    allocate or write without bound.

    ``max_total_size`` bounds the whole uncompressed stream (headers,
    padding and data), which also stops decompression bombs.
    """

    max_entry_size: int = 64 << 30
    max_total_size: int = 256 << 30
    max_entries: int = 5_000_000
    max_extension_size: int = 1 << 20  # one pax or GNU long-name record
    max_name_length: int = 64 << 10

    def __post_init__(self) -> None:
        for name in ("max_entry_size", "max_total_size", "max_entries", "max_extension_size",
                     "max_name_length"):
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"tar limits: {name} must be positive")


def _number(field: bytes, what: str, name: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 (high bit set)."""
    if not field:
        return 0
    first = field[0]
    if first & 0x80:
        if first == 0xFF:
            raise InvalidArgument(f"tar entry {_show(name)}: negative {what}")
        return int.from_bytes(bytes([first & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise InvalidArgument(f"tar entry {_show(name)}: malformed {what} field {text!r}") from None


def _show(name: bytes) -> str:
    """A path for an error message: decoded, escaped where not UTF-8."""
    return repr(name.decode("utf-8", "backslashreplace"))


def _pax_records(data: bytes, name: bytes) -> dict[bytes, bytes]:
    """Parse pax records ``"<len> <key>=<value>\\n"``; values are raw bytes."""
    records: dict[bytes, bytes] = {}
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] == 0:  # some writers pad the record block with NULs
            break
        space = data.find(b" ", pos, pos + 24)
        if space < 0:
            raise InvalidArgument(f"tar entry {_show(name)}: malformed pax record")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise InvalidArgument(f"tar entry {_show(name)}: malformed pax record length") from None
        if length <= space - pos + 1 or pos + length > end or data[pos + length - 1] != 0x0A:
            raise InvalidArgument(f"tar entry {_show(name)}: malformed pax record")
        key, sep, value = data[space + 1 : pos + length - 1].partition(b"=")
        if not sep:
            raise InvalidArgument(f"tar entry {_show(name)}: pax record without '='")
        records[key] = value
        pos += length
    return records


def _pax_time_ns(value: bytes, name: bytes) -> int:
    text = value.decode("ascii", "replace")
    neg = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    try:
        ns = int(whole or "0") * 1_000_000_000 + int((frac + "000000000")[:9] or "0")
    except ValueError:
        raise InvalidArgument(f"tar entry {_show(name)}: malformed pax time {text!r}") from None
    return -ns if neg else ns


def _pax_int(value: bytes, what: str, name: bytes) -> int:
    try:
        n = int(value)
    except ValueError:
        raise InvalidArgument(f"tar entry {_show(name)}: malformed pax {what} {value!r}") from None
    if n < 0:
        raise InvalidArgument(f"tar entry {_show(name)}: negative pax {what}")
    return n


class TarReader:
    """Iterates the members of a tar stream.

    After :meth:`entries` yields an entry with data (a regular file), the
    consumer must take exactly ``entry.size`` bytes with :meth:`read_data`
    / :meth:`copy_data_to_fd` / :meth:`skip_data` before asking for the next
    entry; the reader then skips the padding itself.  Everything read from
    ``source`` is counted in :attr:`bytes_read` and bounded by the limits.
    """

    def __init__(self, source: ByteSource, limits: TarLimits | None = None,
                 chunk_size: int = 1 << 20) -> None:
        self._source = source
        self._limits = limits or TarLimits()
        self._chunk = chunk_size
        self._buf = b""
        self._pos = 0
        self._eof = False
        self.bytes_read = 0  # bytes consumed from source
        self._pending_data = 0  # data bytes of the current entry not yet consumed
        self._pending_pad = 0
        self.entry_count = 0

    # -- buffer management ---------------------------------------------------

    def _fill(self, need: int) -> bool:
        """Make at least ``need`` bytes available in the buffer; False at EOF."""
        avail = len(self._buf) - self._pos
        if avail >= need:
            return True
        parts = [self._buf[self._pos :]] if avail else []
        while avail < need and not self._eof:
            chunk = self._source.read(max(self._chunk, need - avail))
            if not chunk:
                self._eof = True
                break
            self._count(len(chunk))
            parts.append(chunk)
            avail += len(chunk)
        self._buf = b"".join(parts) if len(parts) != 1 else parts[0]
        self._pos = 0
        return avail >= need

    def _count(self, n: int) -> None:
        self.bytes_read += n
        if self.bytes_read > self._limits.max_total_size:
            raise InvalidArgument(
                f"tar stream exceeds the limit of {self._limits.max_total_size} uncompressed bytes")

    def _take(self, n: int, what: str) -> bytes:
        if not self._fill(n):
            raise InvalidArgument(f"tar stream truncated while reading {what}")
        start = self._pos
        self._pos += n
        return self._buf[start : start + n]

    def _discard(self, n: int, what: str) -> None:
        while n:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill(1):
                    raise InvalidArgument(f"tar stream truncated in {what}")
                continue
            step = min(avail, n)
            self._pos += step
            n -= step

    # -- data of the current entry ------------------------------------------

    def read_data(self, n: int) -> bytes:
        """Up to ``n`` bytes of the current entry's data (b"" when done)."""
        n = min(n, self._pending_data)
        if not n:
            return b""
        avail = len(self._buf) - self._pos
        if not avail:
            if not self._fill(1):
                raise InvalidArgument("tar stream truncated in file data")
            avail = len(self._buf) - self._pos
        n = min(n, avail)
        start = self._pos
        self._pos += n
        self._pending_data -= n
        return self._buf[start : start + n]

    def copy_data_to_fd(self, fd: int, write) -> None:
        """Write the rest of the current entry's data with ``write(fd, view)``
        (normally :func:`os.write`), straight from the read buffer."""
        remaining = self._pending_data
        while remaining:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill(1):
                    raise InvalidArgument("tar stream truncated in file data")
                avail = len(self._buf) - self._pos
            step = min(avail, remaining)
            view = memoryview(self._buf)[self._pos : self._pos + step]
            while view:
                written = write(fd, view)
                view = view[written:]
            self._pos += step
            remaining -= step
        self._pending_data = 0

    def skip_data(self) -> None:
        self._discard(self._pending_data, "file data")
        self._pending_data = 0

    def drain(self) -> None:
        """Read the source to its end (zero blocks and any trailing bytes
        after the archive belong to the stream and to its diff_id)."""
        self._pos = len(self._buf)
        while not self._eof:
            chunk = self._source.read(self._chunk)
            if not chunk:
                self._eof = True
            else:
                self._count(len(chunk))
        self._buf = b""
        self._pos = 0

    # -- headers -------------------------------------------------------------

    def entries(self) -> Iterator[TarEntry]:
        limits = self._limits
        pax_global: dict[bytes, bytes] = {}
        pax: dict[bytes, bytes] | None = None
        long_name: bytes | None = None
        long_link: bytes | None = None
        unpack = _HEADER.unpack
        while True:
            if self._pending_data:
                raise InvalidArgument("tar reader: previous entry's data was not consumed")
            if self._pending_pad:
                self._discard(self._pending_pad, "padding")
                self._pending_pad = 0
            if not self._fill(BLOCK):
                if len(self._buf) - self._pos:
                    raise InvalidArgument("tar stream truncated inside a header block")
                # EOF without the end-of-archive blocks: GNU tar and Go both
                # accept this; so do we.
                return
            block = self._buf[self._pos : self._pos + BLOCK]
            self._pos += BLOCK
            if block == _ZERO_BLOCK:
                return
            (name, mode, uid, gid, size, mtime, chksum, typeflag, linkname, magic, _version,
             uname, gname, devmajor, devminor, prefix) = unpack(block)
            name = name.split(b"\0", 1)[0]
            stored = _number(chksum, "checksum", name)
            computed = sum(block[:148]) + 256 + sum(block[156:])
            if stored != computed:
                # Some old writers summed signed chars; accept that too.
                signed = sum((b - 256 if b > 127 else b) for b in block[:148]) + 256 + sum(
                    (b - 256 if b > 127 else b) for b in block[156:])
                if stored != signed:
                    offset = self.bytes_read - (len(self._buf) - self._pos) - BLOCK
                    raise InvalidArgument(
                        f"not a tar archive, or a corrupt one: bad header checksum at offset {offset}")
            if magic == _USTAR_MAGIC and prefix[0]:
                name = prefix.split(b"\0", 1)[0] + b"/" + name
            size_n = _number(size, "size", name)

            if typeflag in (XHD, XGL, GNU_LONGNAME, GNU_LONGLINK):
                if size_n > limits.max_extension_size:
                    raise InvalidArgument(
                        f"tar extension record of {size_n} bytes before {_show(name)} exceeds the limit")
                data = self._take(size_n, "an extension record")
                self._discard(-size_n % BLOCK, "padding")
                if typeflag == XHD:
                    pax = _pax_records(data, name)
                elif typeflag == XGL:
                    pax_global.update(_pax_records(data, name))
                elif typeflag == GNU_LONGNAME:
                    long_name = data.split(b"\0", 1)[0]
                else:
                    long_link = data.split(b"\0", 1)[0]
                continue

            self.entry_count += 1
            if self.entry_count > limits.max_entries:
                raise InvalidArgument(f"tar stream has more than {limits.max_entries} entries")

            entry = TarEntry(
                name=name,
                type=typeflag,
                mode=_number(mode, "mode", name) & 0o7777,
                uid=_number(uid, "uid", name),
                gid=_number(gid, "gid", name),
                size=size_n,
                mtime_ns=_number(mtime, "mtime", name) * 1_000_000_000,
                linkname=linkname.split(b"\0", 1)[0],
            )
            if typeflag in (CHR, BLK):
                entry.devmajor = _number(devmajor, "devmajor", name)
                entry.devminor = _number(devminor, "devminor", name)
            if magic in (_USTAR_MAGIC, _GNU_MAGIC):
                entry.uname = uname.split(b"\0", 1)[0].decode("utf-8", "replace")
                entry.gname = gname.split(b"\0", 1)[0].decode("utf-8", "replace")
            if long_name is not None:
                entry.name = long_name
                long_name = None
            if long_link is not None:
                entry.linkname = long_link
                long_link = None
            if pax_global or pax:
                records = dict(pax_global)
                if pax:
                    records.update(pax)
                pax = None
                self._apply_pax(entry, records)

            if len(entry.name) > limits.max_name_length or len(entry.linkname) > limits.max_name_length:
                raise InvalidArgument(f"tar entry {_show(entry.name[:200])}: name too long")
            if typeflag in (LNK, SYM, DIR, CHR, BLK, FIFO):
                data_size = 0  # these carry no data whatever size they declare
            else:
                data_size = entry.size
            if data_size > limits.max_entry_size:
                raise InvalidArgument(
                    f"tar entry {_show(entry.name)} declares {data_size} bytes, over the limit of "
                    f"{limits.max_entry_size}")
            if self.bytes_read - (len(self._buf) - self._pos) + data_size > limits.max_total_size:
                raise InvalidArgument(
                    f"tar entry {_show(entry.name)} declares {data_size} bytes, past the stream limit of "
                    f"{limits.max_total_size}")
            self._pending_data = data_size
            self._pending_pad = -data_size % BLOCK
            yield entry

    @staticmethod
    def _apply_pax(entry: TarEntry, records: dict[bytes, bytes]) -> None:
        name = entry.name
        for key, value in records.items():
            if key == b"path":
                entry.name = value
            elif key == b"linkpath":
                entry.linkname = value
            elif key == b"size":
                entry.size = _pax_int(value, "size", name)
            elif key == b"uid":
                entry.uid = _pax_int(value, "uid", name)
            elif key == b"gid":
                entry.gid = _pax_int(value, "gid", name)
            elif key == b"mtime":
                entry.mtime_ns = _pax_time_ns(value, name)
            elif key == b"atime":
                entry.atime_ns = _pax_time_ns(value, name)
            elif key == b"uname":
                entry.uname = value.decode("utf-8", "replace")
            elif key == b"gname":
                entry.gname = value.decode("utf-8", "replace")
            elif key.startswith(b"SCHILY.xattr."):
                entry.xattrs[key[13:].decode("utf-8", "surrogateescape")] = value
            elif key.startswith(b"GNU.sparse."):
                raise InvalidArgument(f"tar entry {_show(name)}: sparse files are not supported")
            # Other keys (ctime, charset, comment, vendor records) carry
            # nothing a layer needs.


# -- writing -----------------------------------------------------------------


def _octal(value: int, width: int) -> bytes | None:
    """``value`` as a NUL-terminated octal field, or None if it does not fit."""
    text = b"%o" % value
    if len(text) > width - 1:
        return None
    return text.rjust(width - 1, b"0") + b"\0"


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    # The length prefix counts itself; find the fixed point.
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def _split_ustar_name(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) for ustar, or None if the path needs a pax record."""
    if len(name) <= 100:
        return b"", name
    if len(name) > 256:
        return None
    # Split at a slash so that prefix <= 155 and name <= 100.
    idx = name.rfind(b"/", 0, 156)
    while idx > 0:
        if len(name) - idx - 1 <= 100:
            return name[:idx], name[idx + 1 :]
        idx = name.rfind(b"/", 0, idx)
    return None


def encode_header(entry: TarEntry) -> bytes:
    """The header block(s) for ``entry``: a pax record first when a field
    does not fit ustar (long names, big ids or sizes, xattrs, non-ASCII
    names).  Times are written in whole seconds, as Docker does, so that
    the same tree always gives the same bytes."""
    pax: list[bytes] = []
    name = entry.name
    split = _split_ustar_name(name) if name.isascii() else None
    if split is None:
        pax.append(_pax_record(b"path", name))
        prefix, short = b"", name[:100]
    else:
        prefix, short = split
    linkname = entry.linkname
    if len(linkname) > 100 or not linkname.isascii():
        pax.append(_pax_record(b"linkpath", linkname))
        linkname = linkname[:100]
    mtime = entry.mtime_ns // 1_000_000_000
    fields = {}
    for key, value, width in ((b"uid", entry.uid, 8), (b"gid", entry.gid, 8), (b"size", entry.size, 12),
                              (b"mtime", mtime, 12)):
        encoded = _octal(value, width) if value >= 0 else None
        if encoded is None:
            pax.append(_pax_record(key, str(value).encode()))
            encoded = _octal(0, width)
        fields[key] = encoded
    for key in sorted(entry.xattrs):
        pax.append(_pax_record(b"SCHILY.xattr." + key.encode("utf-8", "surrogateescape"), entry.xattrs[key]))
    uname = entry.uname.encode()[:32]
    gname = entry.gname.encode()[:32]
    out = []
    if pax:
        data = b"".join(pax)
        # Go and GNU tar name the record after the member; readers ignore it.
        xname = (b"PaxHeaders.0/" + name.rsplit(b"/", 1)[-1])[:100]
        xentry = TarEntry(name=xname, type=XHD, mode=0o644, uid=0, gid=0, size=len(data), mtime_ns=0)
        out.append(_ustar_block(xentry, b"", xname, b"", _octal(0, 8), _octal(0, 8), _octal(len(data), 12),
                                _octal(0, 12), b"", b""))
        out.append(data)
        out.append(bytes(-len(data) % BLOCK))
    out.append(_ustar_block(entry, prefix, short, linkname, fields[b"uid"], fields[b"gid"], fields[b"size"],
                            fields[b"mtime"], uname, gname))
    return b"".join(out)


def _ustar_block(entry: TarEntry, prefix: bytes, name: bytes, linkname: bytes, uid: bytes, gid: bytes,
                 size: bytes, mtime: bytes, uname: bytes, gname: bytes) -> bytes:
    devmajor = _octal(entry.devmajor, 8) or _octal(0, 8)
    devminor = _octal(entry.devminor, 8) or _octal(0, 8)
    block = bytearray(_HEADER.pack(
        name, _octal(entry.mode & 0o7777, 8), uid, gid, size, mtime, b" " * 8, entry.type, linkname,
        _USTAR_MAGIC, b"00", uname, gname, devmajor, devminor, prefix))
    checksum = sum(block)
    block[148:156] = b"%06o\0 " % checksum
    return bytes(block)


def end_of_archive() -> bytes:
    """The two zero blocks that close an archive."""
    return bytes(2 * BLOCK)


def padding(size: int) -> bytes:
    return bytes(-size % BLOCK)
