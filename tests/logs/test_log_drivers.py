"""Log drivers on real files: encoding, splitting, rotation, compression,
readers with since/until/tail and follow across rotations."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from dockyard.errors import FailedPrecondition, InvalidArgument
from dockyard.logs import LogEntry, Partial, log_path, open_copier, open_reader, open_writer, validate
from dockyard.logs import jsonfile, local
from dockyard.logs.copier import MAX_LINE
from dockyard.logs.logfile import parse_size
from dockyard.logs.timefmt import parse_rfc3339, parse_timestamp, rfc3339nano, rfc3339nano_fixed

# A line written by Docker 20.10's json-file driver for the output
# printf 'a\tb<c>&"q\\ \001\033 \377\342\200\250 é\r\n' (see test_docker_interop.py,
# which checks the same against a live dockerd when one can be started).
DOCKER_SAMPLE = (b'{"log":"a\\u0009b\\u003cc\\u003e\\u0026\\"q\\\\ \\u0001\\u001b \\ufffd\\u2028 \xc3\xa9\\r\\n",'
                 b'"stream":"stdout","time":"2026-11-25T10:15:22.988804891Z"}\n')
SAMPLE_OUTPUT = b'a\tb<c>&"q\\ \x01\x1b \xff\xe2\x80\xa8 \xc3\xa9\r'


def test_json_line_matches_docker_sample():
    ts = parse_rfc3339("2026-11-25T10:15:22.988804891Z")
    assert jsonfile.encode_entry("stdout", SAMPLE_OUTPUT, ts, None) == DOCKER_SAMPLE
    # Trailing zeros of the fraction are trimmed (Go's RFC3339Nano).
    line = jsonfile.encode_entry("stderr", b"x", 1_700_000_000_120_000_000, None)
    assert line == b'{"log":"x\\n","stream":"stderr","time":"2023-11-14T22:13:20.12Z"}\n'
    line = jsonfile.encode_entry("stdout", b"piece", 1_700_000_000_000_000_000, Partial("id", 1, False))
    assert line == b'{"log":"piece","stream":"stdout","time":"2023-11-14T22:13:20Z"}\n'


def test_time_formats():
    assert rfc3339nano(1) == "1970-01-01T00:00:00.000000001Z"
    assert rfc3339nano_fixed(1_500_000_000) == "1970-01-01T00:00:01.500000000Z"
    assert parse_rfc3339("2023-11-14T22:13:20.12Z") == 1_700_000_000_120_000_000
    assert parse_rfc3339("2023-11-14T23:13:20+01:00") == 1_700_000_000_000_000_000
    assert parse_timestamp("1700000000.5") == 1_700_000_000_500_000_000
    assert parse_timestamp("10m", now_ns=600_000_000_000) == 0
    with pytest.raises(ValueError):
        parse_rfc3339("yesterday")


def test_options_validated():
    assert parse_size("10m") == 10 << 20 and parse_size("1.5k") == 1536 and parse_size("200") == 200
    validate("json-file", {"max-size": "1m", "max-file": "3", "compress": "true"})
    for driver, options in (("json-file", {"max-size": "ten"}), ("json-file", {"bogus": "1"}),
                            ("json-file", {"max-file": "0", "max-size": "1m"}),
                            ("json-file", {"max-file": "3"}), ("local", {"compress": "maybe"}),
                            ("none", {"max-size": "1m"}), ("syslog-ng", {})):
        with pytest.raises(InvalidArgument):
            validate(driver, options)
    assert local.validate({}) == local.DEFAULTS
    assert local.DEFAULTS.max_size == 20 << 20 and local.DEFAULTS.max_file == 5 and local.DEFAULTS.compress


def test_log_paths(tmp_path):
    assert log_path("json-file", tmp_path, "abc") == tmp_path / "abc-json.log"
    assert log_path("local", tmp_path, "abc") == tmp_path / "local-logs" / "container.log"
    assert log_path("none", tmp_path, "abc") is None
    with pytest.raises(FailedPrecondition):
        open_reader("none", None)


class ListWriter:
    def __init__(self):
        self.entries: list[tuple] = []
        self.flushes = 0

    def write(self, stream, line, timestamp, partial=None):
        self.entries.append((stream, line, timestamp, partial))

    def flush(self):
        self.flushes += 1

    def close(self):
        pass


def test_copier_splits_like_docker():
    from dockyard.logs.copier import Copier

    w = ListWriter()
    c = Copier(w)
    c.feed("stdout", b"one\ntw", now_ns=10)
    c.feed("stdout", b"o\n", now_ns=11)
    long = b"x" * (2 * MAX_LINE + 100)
    c.feed("stderr", long[:5000], now_ns=20)
    c.feed("stderr", long[5000:] + b"\nlast-no-newline", now_ns=21)
    c.feed("stdout", b"y" * MAX_LINE + b"\n", now_ns=30)
    c.close()
    out = w.entries
    assert out[0] == ("stdout", b"one", 10, None)
    assert out[1] == ("stdout", b"two", 11, None)
    pieces = [e for e in out if e[0] == "stderr"]
    assert [len(p[1]) for p in pieces] == [MAX_LINE, MAX_LINE, 100, len(b"last-no-newline")]
    first_id = pieces[0][3].id
    assert len(first_id) == 64
    assert [p[3] for p in pieces[:3]] == [Partial(first_id, 1, False), Partial(first_id, 2, False),
                                         Partial(first_id, 3, True)]
    # All pieces of one line carry the time of its first piece.
    assert {p[2] for p in pieces[:3]} == {21}
    tail = pieces[3][3]
    assert tail.ordinal == 1 and not tail.last and tail.id != first_id
    exact = [e for e in out if e[0] == "stdout"][2:]
    # A line of exactly 16 KiB fills the buffer: one piece, then an empty last piece.
    assert [(len(e[1]), e[3].ordinal, e[3].last) for e in exact] == [(MAX_LINE, 1, False), (0, 2, True)]
    assert b"".join(p[1] for p in pieces[:3]) == long


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_round_trip_and_filters(tmp_path, driver):
    path = tmp_path / "c.log"
    w = open_writer(driver, path, {})
    base = 1_700_000_000_000_000_000
    for i in range(10):
        w.write("stdout" if i % 2 else "stderr", b"line %d" % i, base + i * 1000)
    w.write("stdout", b"piece", base + 10_000, Partial("abc", 1, False))
    w.flush()
    w.close()
    r = open_reader(driver, path)
    entries = list(r.read())
    assert [e.line for e in entries[:10]] == [b"line %d\n" % i for i in range(10)]
    assert [e.stream for e in entries[:2]] == ["stderr", "stdout"]
    assert entries[0].timestamp == base
    assert entries[10].line == b"piece" and entries[10].partial is not None
    if driver == "local":
        assert entries[10].partial == Partial("abc", 1, False)
    assert [e.line for e in r.read(tail=2)] == [b"line 9\n", b"piece"]
    assert list(r.read(tail=0)) == []
    assert [e.line for e in r.read(since=base + 8000)] == [b"line 8\n", b"line 9\n", b"piece"]
    assert [e.line for e in r.read(until=base + 1000)] == [b"line 0\n", b"line 1\n"]
    assert entries[1].render(timestamps=True) == b"2023-11-14T22:13:20.000001000Z line 1\n"


def test_local_encoding_is_docker_protobuf():
    # Field by field: source=1, time_nano=2, line=3, partial=4, metadata=5 {last=1, id=2, ordinal=3}.
    record = local.encode_entry("stdout", b"hi", 300, Partial("p", 2, True))
    body = b"\x0a\x06stdout\x10\xac\x02\x1a\x02hi\x20\x01\x2a\x07\x08\x01\x12\x01p\x18\x02"
    assert record == len(body).to_bytes(4, "big") + body + len(body).to_bytes(4, "big")
    e = local.decode_entry(body)
    assert e == LogEntry("stdout", b"hi\n", 300, Partial("p", 2, True))
    # Unknown fields (Docker's newer attrs, field 6) are skipped.
    assert local.decode_entry(body + b"\x32\x04\x0a\x00\x12\x00").line == b"hi\n"
    assert local.decode_entry(b"\x10" + local._varint(-5)).timestamp == -5


def test_json_rotation_and_compress(tmp_path):
    path = tmp_path / "c-json.log"
    c = open_copier("json-file", path, {"max-size": "1k", "max-file": "3", "compress": "true"})
    for i in range(200):
        c.feed("stdout", b"line %04d\n" % i)
    c.close()
    names = sorted(os.listdir(tmp_path))
    # The .lock file is the writer's rotation lock that readers share.
    assert names == ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz", "c-json.log.lock"]
    names = names[:3]
    for name in names[1:]:
        raw = (tmp_path / name).read_bytes()
        # Docker's gzip Extra: JSON with the last entry's time.
        xlen = int.from_bytes(raw[10:12], "little")
        meta = json.loads(raw[12:12 + xlen])
        assert parse_rfc3339(meta["lastTime"]) > 0
        text = gzip.decompress(raw)
        assert text.endswith(b"\n") and len(text) >= 1024
    sizes = [len(gzip.decompress((tmp_path / n).read_bytes())) for n in names[1:]]
    assert all(s < 1024 + 80 for s in sizes), "a file grew past max-size by more than one entry"
    lines = [e.line for e in open_reader("json-file", path).read()]
    # The newest files survive, in order, without gaps.
    first = int(lines[0].split()[1])
    assert lines == [b"line %04d\n" % i for i in range(first, 200)]
    assert first > 0
    # tail reaches back across rotated (compressed) files, and no further than asked.
    reader = open_reader("json-file", path)
    assert len(lines) > 25
    assert [e.line for e in reader.read(tail=25)] == lines[-25:]
    assert [e.line for e in reader.read(tail=5)] == lines[-5:]
    assert [e.line for e in reader.read(tail=100000)] == lines


def test_json_max_file_one_truncates(tmp_path):
    path = tmp_path / "c-json.log"
    c = open_copier("json-file", path, {"max-size": "200", "max-file": "1"})
    for i in range(50):
        c.feed("stdout", b"line %04d\n" % i)
    c.close()
    assert sorted(os.listdir(tmp_path)) == ["c-json.log", "c-json.log.lock"]
    lines = [e.line for e in open_reader("json-file", path).read()]
    assert lines[-1] == b"line 0049\n" and len(lines) < 5


def test_writer_appends_to_existing_file(tmp_path):
    path = tmp_path / "c-json.log"
    for word in (b"before", b"after"):
        c = open_copier("json-file", path, {})
        c.feed("stdout", word + b"\n")
        c.close()
    assert [e.line for e in open_reader("json-file", path).read()] == [b"before\n", b"after\n"]


WRITER = r"""
import sys, time
from dockyard.logs import open_copier
driver, path, n, opts = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
options = dict(o.split("=", 1) for o in opts)
c = open_copier(driver, path, options)
for i in range(n):
    c.feed("stdout", b"%06d %s\n" % (i, b"p" * (i % 50)))
    if i % 200 == 0:
        time.sleep(0.002)
c.close()
"""


@pytest.mark.parametrize("driver,compress", [("json-file", "false"), ("json-file", "true"), ("local", "true")])
def test_follow_across_rapid_rotation(tmp_path, driver, compress):
    """A writer in another process rotates every ~1 KiB while a reader
    follows: every line arrives once, in order."""
    path = tmp_path / ("c-json.log" if driver == "json-file" else "container.log")
    n = 4000
    proc = subprocess.Popen([sys.executable, "-c", WRITER, driver, str(path), str(n), "max-size=1k",
                             "max-file=500", f"compress={compress}"])
    done = threading.Event()

    def watch():
        proc.wait()
        done.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        reader = open_reader(driver, path)
        seen = []
        deadline = time.monotonic() + 120
        for entry in reader.read(follow=True, stop=done.is_set, poll_interval=0.005):
            seen.append(int(entry.line.split()[0]))
            assert time.monotonic() < deadline
        assert proc.returncode == 0
        rotated = [p for p in os.listdir(tmp_path) if p not in (path.name, path.name + ".lock")]
        assert len(rotated) > 100, "the writer did not rotate often enough to test anything"
        assert seen == list(range(n))
    finally:
        proc.kill()
        proc.wait()


def test_follow_sees_new_lines_and_stops(tmp_path):
    path = tmp_path / "c-json.log"
    c = open_copier("json-file", path, {"max-size": "300", "max-file": "5"})
    c.feed("stdout", b"old\n")
    stop = threading.Event()
    got: list[bytes] = []

    def follow():
        for e in open_reader("json-file", path).read(tail=1, follow=True, stop=stop.is_set, poll_interval=0.01):
            got.append(e.line)

    t = threading.Thread(target=follow)
    t.start()
    time.sleep(0.1)
    for i in range(20):
        c.feed("stdout", b"new %d\n" % i)
        time.sleep(0.005)
    c.close()
    stop.set()
    t.join(10)
    assert not t.is_alive()
    assert got == [b"old\n"] + [b"new %d\n" % i for i in range(20)]


def _follow_in_thread(reader, **kwargs):
    got: list[bytes] = []

    def follow():
        for e in reader.read(follow=True, **kwargs):
            got.append(e.line)

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    return t, got


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_follow_of_removed_log_ends_when_stop_says(tmp_path, driver):
    """A removed container's log goes with its directory: the follower
    keeps what it read, keeps waiting while ``stop()`` is false, and ends
    once it is true (it used to wait forever for a successor file)."""
    directory = tmp_path / "container"
    directory.mkdir()
    path = log_path(driver, directory, "c" * 64)
    path.parent.mkdir(parents=True, exist_ok=True)
    c = open_copier(driver, path, {})
    c.feed("stdout", b"before removal\n")
    stop = threading.Event()
    t, got = _follow_in_thread(open_reader(driver, path), stop=stop.is_set, poll_interval=0.01)
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    c.close()
    import shutil
    shutil.rmtree(directory)
    time.sleep(0.2)
    assert t.is_alive()  # stop() is still false: it may be a rotation in progress
    stop.set()
    t.join(2)
    assert not t.is_alive(), "the follow of a removed log did not end"
    assert got == [b"before removal\n"]


def test_follow_wakes_on_wait_instead_of_polling(tmp_path):
    """With a ``wait`` that returns when the writer is done, a follow ends
    at once, not after its poll interval."""
    path = tmp_path / "c-json.log"
    c = open_copier("json-file", path, {})
    c.feed("stdout", b"one\n")
    done = threading.Event()
    t, got = _follow_in_thread(open_reader("json-file", path), stop=done.is_set, poll_interval=30, wait=done.wait)
    time.sleep(0.2)
    c.feed("stdout", b"two\n")
    c.close()
    started = time.monotonic()
    done.set()
    t.join(5)
    assert not t.is_alive() and time.monotonic() - started < 1.0
    assert got == [b"one\n", b"two\n"]
