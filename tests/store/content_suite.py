"""The content store suite: written once, run against every ContentStore.

A test module imports these functions and provides a ``content_store``
fixture yielding a fresh, empty store (see test_content.py)::

    from .content_suite import *  # noqa: F401,F403

    @pytest.fixture(params=["local"])
    def content_store(request, tmp_path): ...

Only the ContentStore Protocol is used here, nothing of one backend.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading

import pytest

from dockyard.errors import InvalidArgument, NotFound
from dockyard.oci import Digest
from dockyard.store.content import ContentStore


def _digest(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def test_suite_ingest_and_read(content_store: ContentStore):
    assert isinstance(content_store, ContentStore)
    data = b"hello, blob"
    info = content_store.ingest(data)
    assert info.digest == _digest(data)
    assert info.size == len(data)
    assert content_store.exists(info.digest)
    assert content_store.read_bytes(info.digest) == data
    with content_store.open(str(info.digest)) as f:
        assert f.read() == data
    assert content_store.path(info.digest).read_bytes() == data
    assert content_store.info(info.digest).size == len(data)


def test_suite_blob_is_read_only(content_store: ContentStore):
    info = content_store.ingest(b"ro")
    mode = os.stat(content_store.path(info.digest)).st_mode & 0o777
    assert mode == 0o444


def test_suite_ingest_stream_with_expected(content_store: ContentStore):
    data = os.urandom(3 * 1024 * 1024 + 17)
    info = content_store.ingest(io.BytesIO(data), expected=_digest(data), size=len(data))
    assert info.size == len(data)
    assert content_store.read_bytes(info.digest) == data


def test_suite_digest_mismatch_leaves_nothing(content_store: ContentStore):
    data = b"actual content"
    wrong = _digest(b"other content")
    with pytest.raises(InvalidArgument, match="unexpected commit digest"):
        content_store.ingest(data, expected=wrong)
    assert not content_store.exists(wrong)
    assert not content_store.exists(_digest(data))
    assert list(content_store.walk()) == []
    assert content_store.cleanup_ingests() == []  # no temp file was left either


def test_suite_size_mismatch_leaves_nothing(content_store: ContentStore):
    data = b"12345"
    with pytest.raises(InvalidArgument, match="unexpected commit size"):
        content_store.ingest(data, expected=_digest(data), size=4)
    assert not content_store.exists(_digest(data))
    assert list(content_store.walk()) == []


def test_suite_writer_chunks(content_store: ContentStore):
    chunks = [os.urandom(1000) for _ in range(10)]
    whole = b"".join(chunks)
    with content_store.open_writer(ref="chunked") as w:
        for c in chunks:
            w.write(c)
        assert w.offset == len(whole)
        assert not content_store.exists(_digest(whole))  # invisible until commit
        info = w.commit(len(whole), _digest(whole))
    assert content_store.read_bytes(info.digest) == whole


def test_suite_writer_abort_on_error(content_store: ContentStore):
    with pytest.raises(RuntimeError):
        with content_store.open_writer(ref="aborted") as w:
            w.write(b"partial")
            raise RuntimeError("boom")
    assert list(content_store.walk()) == []
    assert content_store.cleanup_ingests() == []


def test_suite_writer_closed_after_commit(content_store: ContentStore):
    w = content_store.open_writer()
    w.write(b"x")
    w.commit()
    with pytest.raises(InvalidArgument):
        w.write(b"y")
    with pytest.raises(InvalidArgument):
        w.commit()


def test_suite_before_publish(content_store: ContentStore):
    data = b"published after the hook"
    seen = []

    def hook(digest: Digest) -> None:
        seen.append((digest, content_store.exists(digest)))

    content_store.ingest(data, before_publish=hook)
    assert seen == [(_digest(data), False)]

    def failing(digest: Digest) -> None:
        raise RuntimeError("lease gone")

    other = b"never published"
    with pytest.raises(RuntimeError):
        content_store.ingest(other, before_publish=failing)
    assert not content_store.exists(_digest(other))


def test_suite_ingest_existing_is_success(content_store: ContentStore):
    data = b"twice"
    first = content_store.ingest(data)
    second = content_store.ingest(data)
    third = content_store.ingest(data, expected=first.digest)
    assert first.digest == second.digest == third.digest
    assert [b.digest for b in content_store.walk()] == [first.digest]


def test_suite_concurrent_threads_same_blob(content_store: ContentStore):
    data = os.urandom(2 * 1024 * 1024)
    digest = _digest(data)
    results, errors = [], []
    start = threading.Barrier(12)

    def ingest() -> None:
        try:
            start.wait()
            with content_store.open_writer(ref="race", expected=digest) as w:
                for i in range(0, len(data), 65536):
                    w.write(data[i:i + 65536])
                results.append(w.commit(len(data), digest))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ingest) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {r.digest for r in results} == {digest}
    assert content_store.read_bytes(digest) == data
    assert content_store.check().ok
    assert content_store.cleanup_ingests() == []


def test_suite_sha512(content_store: ContentStore):
    data = b"five-twelve"
    expected = Digest("sha512", hashlib.sha512(data).hexdigest())
    w = content_store.open_writer(algorithm="sha512")
    w.write(data)
    info = w.commit(expected_digest=expected)
    assert info.digest == expected
    assert content_store.read_bytes(expected) == data
    assert content_store.ingest(data, expected=expected).digest == expected


def test_suite_delete(content_store: ContentStore):
    info = content_store.ingest(b"doomed")
    content_store.delete(info.digest)
    assert not content_store.exists(info.digest)
    with pytest.raises(NotFound):
        content_store.delete(info.digest)
    with pytest.raises(NotFound):
        content_store.info(info.digest)
    with pytest.raises(NotFound):
        content_store.open(info.digest)


def test_suite_open_file_survives_delete(content_store: ContentStore):
    info = content_store.ingest(b"still readable")
    with content_store.open(info.digest) as f:
        content_store.delete(info.digest)
        assert f.read() == b"still readable"


def test_suite_walk(content_store: ContentStore):
    blobs = {content_store.ingest(f"blob {i}".encode()).digest for i in range(20)}
    assert {b.digest for b in content_store.walk()} == blobs


def test_suite_check_finds_corruption(content_store: ContentStore):
    good = content_store.ingest(b"good")
    bad = content_store.ingest(b"will rot")
    report = content_store.check()
    assert report.ok and report.checked == 2
    path = content_store.path(bad.digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"bit rot")
    report = content_store.check()
    assert not report.ok
    assert report.corrupt == (bad.digest,)
    assert content_store.exists(bad.digest)
    report = content_store.check(remove_corrupt=True)
    assert report.corrupt == (bad.digest,)
    assert not content_store.exists(bad.digest)
    assert content_store.exists(good.digest)
    assert content_store.check().ok


def test_suite_bad_digest_arguments(content_store: ContentStore):
    with pytest.raises(InvalidArgument):
        content_store.info("sha256:nothex")
    with pytest.raises(InvalidArgument):
        content_store.ingest(b"x", expected="md5:" + "0" * 32)
