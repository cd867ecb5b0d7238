"""Content digests: ``algorithm ":" encoded`` (OCI image spec, descriptor.md).

Only the algorithms the OCI spec registers are accepted, with their exact
encodings: ``sha256`` (64 lowercase hex) and ``sha512`` (128 lowercase
hex).  ``sha256`` is the default everywhere; ``sha512`` is accepted where
the spec allows it (descriptors, references, blobs).

Error texts follow go-digest's, since they reach docker clients verbatim:
``invalid checksum digest format``, ``invalid checksum digest length``,
``unsupported digest algorithm``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import InvalidArgument

SHA256 = "sha256"
SHA512 = "sha512"

#: algorithm -> length of its hex encoding
ALGORITHMS: dict[str, int] = {SHA256: 64, SHA512: 128}
_HASHES = {SHA256: hashlib.sha256, SHA512: hashlib.sha512}

# The spec grammar: algorithm-component ([+._-] component)* ":" encoded.
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HEX_RE = re.compile(r"^[a-f0-9]+$")

#: read size for hashing files and streams
CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    """A validated digest.  ``str(d)`` is ``"sha256:<hex>"``."""

    algorithm: str
    encoded: str

    def __post_init__(self) -> None:
        size = ALGORITHMS.get(self.algorithm)
        if size is None:
            raise InvalidArgument(f"unsupported digest algorithm: {self.algorithm}:{self.encoded}")
        if not _HEX_RE.match(self.encoded):
            raise InvalidArgument(f"invalid checksum digest format: {self.algorithm}:{self.encoded}")
        if len(self.encoded) != size:
            raise InvalidArgument(f"invalid checksum digest length: {self.algorithm}:{self.encoded}")

    # --- constructors -------------------------------------------------
    @classmethod
    def parse(cls, text: str | Digest) -> Digest:
        """Parse ``"sha256:<hex>"``; raise InvalidArgument on anything else."""
        if isinstance(text, Digest):
            return text
        if not isinstance(text, str) or not _DIGEST_RE.match(text):
            raise InvalidArgument(f"invalid checksum digest format: {text!r}")
        algorithm, _, encoded = text.partition(":")
        return cls(algorithm, encoded)

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = SHA256) -> Digest:
        if algorithm not in _HASHES:
            raise InvalidArgument(f"unsupported digest algorithm: {algorithm}")
        return cls(algorithm, _HASHES[algorithm](data).hexdigest())

    @classmethod
    def from_stream(cls, stream: BinaryIO, algorithm: str = SHA256) -> tuple[Digest, int]:
        """Digest and size of everything left in ``stream``."""
        digester = Digester(algorithm)
        while chunk := stream.read(CHUNK):
            digester.update(chunk)
        return digester.digest(), digester.size

    # --- views ----------------------------------------------------------
    @property
    def hex(self) -> str:
        """The encoded part (for hex algorithms, the hex string)."""
        return self.encoded

    @property
    def short(self) -> str:
        """The 12-character short form Docker prints for IDs."""
        return self.encoded[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


def is_digest(text: str) -> bool:
    """True when ``text`` parses as a supported digest."""
    try:
        Digest.parse(text)
    except InvalidArgument:
        return False
    return True


class Digester:
    """Incremental digest of a byte stream, counting its size too."""

    __slots__ = ("algorithm", "_hash", "size")

    def __init__(self, algorithm: str = SHA256) -> None:
        if algorithm not in ALGORITHMS:
            raise InvalidArgument(f"unsupported digest algorithm: {algorithm}")
        self.algorithm = algorithm
        self._hash = _HASHES[algorithm]()
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hash.hexdigest())

    def copy(self) -> Digester:
        other = Digester.__new__(Digester)
        other.algorithm = self.algorithm
        other._hash = self._hash.copy()
        other.size = self.size
        return other
