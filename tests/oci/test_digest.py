from __future__ import annotations

import hashlib
import io

import pytest

from dockyard.errors import InvalidArgument
from dockyard.oci import Digest, Digester, is_digest


def test_parse_and_str():
    hexd = hashlib.sha256(b"x").hexdigest()
    d = Digest.parse(f"sha256:{hexd}")
    assert d.algorithm == "sha256" and d.encoded == hexd and d.hex == hexd
    assert str(d) == f"sha256:{hexd}"
    assert d.short == hexd[:12]
    assert Digest.parse(d) is d
    assert d == Digest("sha256", hexd) and hash(d) == hash(Digest("sha256", hexd))


def test_sha512():
    hexd = hashlib.sha512(b"x").hexdigest()
    assert str(Digest.parse(f"sha512:{hexd}")) == f"sha512:{hexd}"
    assert Digest.from_bytes(b"x", "sha512").encoded == hexd


@pytest.mark.parametrize("text,message", [
    ("sha256:" + "a" * 63, "invalid checksum digest length"),
    ("sha256:" + "a" * 65, "invalid checksum digest length"),
    ("sha512:" + "a" * 64, "invalid checksum digest length"),
    ("sha256:" + "A" * 64, "invalid checksum digest format"),
    ("sha256:" + "g" * 64, "invalid checksum digest format"),
    ("sha384:" + "a" * 96, "unsupported digest algorithm"),
    ("md5:" + "a" * 32, "unsupported digest algorithm"),
    ("sha256" + "a" * 64, "invalid checksum digest format"),
    ("", "invalid checksum digest format"),
    (":abc", "invalid checksum digest format"),
])
def test_invalid(text, message):
    with pytest.raises(InvalidArgument, match=message):
        Digest.parse(text)
    assert not is_digest(text)


def test_from_bytes_and_stream_agree():
    data = b"hello world" * 100_000
    d1 = Digest.from_bytes(data)
    d2, size = Digest.from_stream(io.BytesIO(data))
    digester = Digester()
    for i in range(0, len(data), 4096):
        digester.update(data[i:i + 4096])
    assert d1 == d2 == digester.digest()
    assert size == digester.size == len(data)
    assert d1.encoded == hashlib.sha256(data).hexdigest()


def test_digester_copy_is_independent():
    a = Digester()
    a.update(b"ab")
    b = a.copy()
    b.update(b"c")
    assert a.digest() == Digest.from_bytes(b"ab")
    assert b.digest() == Digest.from_bytes(b"abc")


def test_ordering_for_sorting():
    ds = [Digest.from_bytes(bytes([i])) for i in range(5)]
    assert sorted(ds) == sorted(ds, key=str)
