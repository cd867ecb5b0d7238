"""LocalContentStore: the shared suite, plus what only a local, on-disk
store can show (its layout, other processes, crashed writers)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from dockyard.oci import Digest
from dockyard.store.content import LocalContentStore

from .content_suite import *  # noqa: F401,F403  (the suite's tests run here)

BACKENDS = {"local": LocalContentStore}


@pytest.fixture(params=sorted(BACKENDS))
def content_store(request, tmp_path):
    yield BACKENDS[request.param](tmp_path / "content")


def test_layout(tmp_path):
    store = LocalContentStore(tmp_path)
    info = store.ingest(b"layout")
    assert store.path(info.digest) == tmp_path / "blobs" / "sha256" / info.digest.encoded
    assert sorted(p.name for p in (tmp_path / "ingest").iterdir()) == [".lock"]


_INGEST_SCRIPT = textwrap.dedent("""
    import sys
    from dockyard.store.content import LocalContentStore
    store = LocalContentStore(sys.argv[1])
    data = open(sys.argv[2], "rb").read()
    with store.open_writer(ref="proc", expected=sys.argv[3]) as w:
        for i in range(0, len(data), 4096):
            w.write(data[i:i + 4096])
        w.commit(len(data), sys.argv[3])
""")


def test_concurrent_processes_same_blob(tmp_path):
    data = os.urandom(4 * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    src = tmp_path / "src"
    src.write_bytes(data)
    root = tmp_path / "content"
    LocalContentStore(root)
    procs = [subprocess.Popen([sys.executable, "-c", _INGEST_SCRIPT, str(root), str(src), digest],
                              stderr=subprocess.PIPE) for _ in range(6)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    store = LocalContentStore(root)
    assert store.read_bytes(digest) == data
    assert [str(b.digest) for b in store.walk()] == [digest]
    assert store.check().ok
    assert sorted(p.name for p in (root / "ingest").iterdir()) == [".lock"]


_CRASHING_WRITER = textwrap.dedent("""
    import os, sys
    from dockyard.store.content import LocalContentStore
    store = LocalContentStore(sys.argv[1])
    w = store.open_writer(ref="crashy")
    w.write(b"half a blob")
    print("written", flush=True)
    os.kill(os.getpid(), 9)
""")


def test_cleanup_ingests_removes_only_dead_writers(tmp_path):
    root = tmp_path / "content"
    store = LocalContentStore(root)
    proc = subprocess.run([sys.executable, "-c", _CRASHING_WRITER, str(root)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL and "written" in proc.stdout
    leftovers = [p.name for p in (root / "ingest").iterdir() if p.name != ".lock"]
    assert len(leftovers) == 1 and leftovers[0].endswith("-crashy")
    with store.open_writer(ref="alive") as live:
        live.write(b"in progress")
        removed = store.cleanup_ingests()
        assert removed == leftovers
        remaining = [p.name for p in (root / "ingest").iterdir() if p.name != ".lock"]
        assert len(remaining) == 1 and remaining[0].endswith("-alive")
        info = live.commit()
    assert store.read_bytes(info.digest) == b"in progress"
    assert list(store.walk()) and store.cleanup_ingests() == []


def test_stray_files_reported_not_checked(tmp_path):
    store = LocalContentStore(tmp_path)
    store.ingest(b"real")
    (tmp_path / "blobs" / "sha256" / "not-a-digest").write_bytes(b"?")
    report = store.check()
    assert report.checked == 1
    assert report.stray == ("sha256/not-a-digest",)
    assert [str(b.digest) for b in store.walk()] == ["sha256:" + hashlib.sha256(b"real").hexdigest()]


def test_ingest_is_fast_enough(tmp_path):
    # 64 MiB through the writer: hashing and one write per chunk, no re-read.
    store = LocalContentStore(tmp_path)
    chunk = os.urandom(1 << 20)
    t0 = time.monotonic()
    with store.open_writer() as w:
        for _ in range(64):
            w.write(chunk)
        info = w.commit(64 << 20)
    assert info.size == 64 << 20
    assert time.monotonic() - t0 < 10
    assert Digest.parse(str(info.digest)) == info.digest
