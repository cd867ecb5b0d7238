"""Layer compression: detection by magic bytes, streaming decompression and
the two digests of a layer computed in the same pass.

A layer blob has two identities (see shared/DESIGN.md): its ``digest``,
the sha256 of the bytes as stored and sent (compressed or not), and its
``diff_id``, the sha256 of the uncompressed tar.  :class:`LayerStream`
reads a blob once and yields the uncompressed bytes while hashing both.
"""

from __future__ import annotations

import bz2
import enum
import hashlib
import lzma
import zlib
from typing import BinaryIO

from ..errors import InvalidArgument


class Compression(enum.Enum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"
    BZIP2 = "bzip2"
    XZ = "xz"


_MAGIC: tuple[tuple[bytes, Compression], ...] = (
    (b"\x1f\x8b", Compression.GZIP),
    (b"\x28\xb5\x2f\xfd", Compression.ZSTD),
    (b"BZh", Compression.BZIP2),
    (b"\xfd7zXZ\x00", Compression.XZ),
)


def detect(head: bytes) -> Compression:
    """The compression of a stream from its first bytes (at least 6)."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return Compression.NONE


class _Hashing:
    """A reader that hashes what passes through it and counts it."""

    __slots__ = ("_raw", "hash", "size", "_prefix")

    def __init__(self, raw: BinaryIO, prefix: bytes, hashed: bool = True) -> None:
        self._raw = raw
        self.hash = hashlib.sha256() if hashed else None
        self.size = 0
        self._prefix = prefix
        if prefix:
            if self.hash is not None:
                self.hash.update(prefix)
            self.size += len(prefix)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 20
        if self._prefix:
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            return data
        data = self._raw.read(n)
        if data:
            if self.hash is not None:
                self.hash.update(data)
            self.size += len(data)
        return data

    # gzip.GzipFile & co. probe for these.
    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _corrupt_errors(compression: "Compression") -> tuple[type, ...]:
    if compression is Compression.ZSTD:
        import zstandard

        return (zstandard.ZstdError, EOFError, zlib.error, lzma.LZMAError)
    return (EOFError, zlib.error, lzma.LZMAError)


def _open_decompressor(compression: "Compression", src: _Hashing):
    """A file-like reader of the decompressed stream.  Each wrapper bounds
    the output of one read() (so a bomb cannot balloon memory) and reads
    concatenated members/frames, as layer tools may write them."""
    if compression is Compression.GZIP:
        import gzip

        return gzip.GzipFile(fileobj=src, mode="rb")
    if compression is Compression.ZSTD:
        import zstandard  # imported lazily: only zstd layers pay for it

        return zstandard.ZstdDecompressor(max_window_size=1 << 31).stream_reader(
            src, read_size=1 << 20, read_across_frames=True, closefd=False)
    if compression is Compression.BZIP2:
        return bz2.BZ2File(src, mode="rb")
    return lzma.LZMAFile(src, mode="rb")


class LayerStream:
    """Reads a (possibly compressed) layer blob once, returning uncompressed
    bytes from :meth:`read`, and hashes both forms on the way.

    After the consumer has read to EOF (call :meth:`finish` to make sure),
    :attr:`digest`/:attr:`size` describe the blob as stored and
    :attr:`diff_id`/:attr:`uncompressed_size` the tar inside it.  With
    ``hashed=False`` (the caller knows both already, e.g. it wrote the
    stream itself) nothing is hashed and both digests are None.
    """

    def __init__(self, raw: BinaryIO, hashed: bool = True) -> None:
        head = raw.read(6)
        self.compression = detect(head)
        self._raw = _Hashing(raw, head, hashed)
        if self.compression is Compression.NONE:
            self._dec = None
            self._plain_hash = self._raw.hash  # one hash serves both identities
        else:
            self._plain_hash = hashlib.sha256() if hashed else None
            self._errors = _corrupt_errors(self.compression)
            self._dec = _open_decompressor(self.compression, self._raw)
        self.uncompressed_size = 0

    def read(self, n: int = 1 << 20) -> bytes:
        if self._dec is None:
            data = self._raw.read(n)
        else:
            try:
                data = self._dec.read(n)
            except self._errors as exc:
                raise InvalidArgument(f"layer is not a valid {self.compression.value} stream: {exc}") from None
            except OSError as exc:
                if exc.errno is not None:  # a real I/O error from the source
                    raise
                # gzip and bz2 report corrupt data as OSError without errno
                raise InvalidArgument(f"layer is not a valid {self.compression.value} stream: {exc}") from None
            if data and self._plain_hash is not None:
                self._plain_hash.update(data)
        self.uncompressed_size += len(data)
        return data

    def finish(self) -> None:
        """Consume whatever is left, so the digests cover the whole blob."""
        while self.read(1 << 20):
            pass
        self._raw.drain()

    @property
    def digest(self) -> str | None:
        return "sha256:" + self._raw.hash.hexdigest() if self._raw.hash is not None else None

    @property
    def size(self) -> int:
        return self._raw.size

    @property
    def diff_id(self) -> str | None:
        return "sha256:" + self._plain_hash.hexdigest() if self._plain_hash is not None else None
