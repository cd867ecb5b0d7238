"""The API framework pieces with test-only routes served in-process:
hijacked connections (attach/exec), JSON progress streams, streamed
request bodies, error mapping, live events."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from aiohttp import web

from dockyard.client import Client
from dockyard.client.errors import (
    RemoteAlreadyExists,
    RemoteFailedPrecondition,
    RemoteInternal,
    RemoteInvalidArgument,
    RemoteNotFound,
    RemoteUnavailable,
)
from dockyard.client.stdcopy import demux, frame
from dockyard.daemon.app import RouteTable, engine_of, json_response
from dockyard.daemon.hijack import STDERR, STDOUT, hijack
from dockyard.daemon.streaming import BodyReader, JSONMessageStream, run_streaming
from dockyard.errors import (
    AlreadyExists,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    Unavailable,
)

from .inprocess import InProcessDaemon

# -- test routes --------------------------------------------------------------

ERRORS = {"notfound": NotFound, "exists": AlreadyExists, "invalid": InvalidArgument,
          "precondition": FailedPrecondition, "unavailable": Unavailable, "internal": Internal}


async def echo(request: web.Request) -> web.StreamResponse:
    """Hijack; echo stdin as stdout frames and upper-cased as stderr frames
    until the client half-closes; then say bye and close."""
    multiplexed = request.query.get("tty") != "1"
    conn = await hijack(request, multiplexed=multiplexed)
    try:
        while data := await conn.read():
            await conn.write_frame(STDOUT, data)
            if multiplexed:
                await conn.write_frame(STDERR, data.upper())
        await conn.write_frame(STDOUT, b"bye\n")
    finally:
        await conn.close()
    return conn.response


async def progress(request: web.Request) -> web.StreamResponse:
    fail = request.query.get("fail")
    stream = JSONMessageStream(request)

    def work(report) -> str:
        if fail == "before":
            raise NotFound("nothing to load: no such thing")
        for i in range(5):
            report.status("Loading layer", id="abc", current=i * 10, total=40)
        if fail == "after":
            raise InvalidArgument("layer 2 is corrupt")
        if fail == "crash":
            raise RuntimeError("unexpected")
        report.stream("Loaded image: test:latest\n")
        return "done"

    result = await run_streaming(stream, work)
    await stream.status(result)
    return await stream.finish()


async def body(request: web.Request) -> web.StreamResponse:
    import asyncio

    reader = BodyReader(request.content, asyncio.get_running_loop())

    def digest() -> tuple[str, int]:
        h = hashlib.sha256()
        while chunk := reader.read(1 << 16):
            h.update(chunk)
        return h.hexdigest(), reader.bytes_read

    hexdigest, size = await asyncio.get_running_loop().run_in_executor(None, digest)
    return json_response({"sha256": hexdigest, "size": size})


async def fail(request: web.Request) -> web.StreamResponse:
    kind = request.match_info["kind"]
    if kind == "crash":
        raise ZeroDivisionError("boom")
    raise ERRORS[kind](f"test error {kind}")


async def publish(request: web.Request) -> web.StreamResponse:
    doc = await request.json()
    for item in doc:
        engine_of(request).events.publish(item["type"], item["action"], item["id"], item.get("attributes"))
    return json_response({})


def register(routes: RouteTable, engine) -> None:
    routes.post("/test/echo", echo)
    routes.post("/test/progress", progress)
    routes.post("/test/body", body)
    routes.get("/test/fail/{kind}", fail)
    routes.post("/test/publish", publish)


# -- fixtures -------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory) -> InProcessDaemon:
    from dockyard.daemon.routes import system

    root = Path(os.path.realpath(tmp_path_factory.mktemp("fw")))
    if len(str(root / "t.sock")) > 100:
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="dyfw", dir="/tmp"))
    daemon = InProcessDaemon(root, [system, sys.modules[__name__]]).start()
    try:
        yield daemon
    finally:
        daemon.stop()


# -- hijack -----------------------------------------------------------------------

def test_hijack_multiplexed_with_half_close(served: InProcessDaemon) -> None:
    client = Client(served.host)
    with client.hijack("POST", "/test/echo") as conn:
        assert conn.response.status == 101
        assert conn.response.header("upgrade") == "tcp"
        assert conn.multiplexed
        conn.sendall(b"hello\n")
        frames = demux(conn.recv)
        assert next(frames) == (1, b"hello\n")
        assert next(frames) == (2, b"HELLO\n")
        conn.sendall(b"second")
        assert next(frames) == (1, b"second")
        assert next(frames) == (2, b"SECOND")
        conn.close_write()  # end of stdin: the daemon must still be able to answer
        assert list(frames) == [(1, b"bye\n")]


def test_hijack_raw_tty_stream(served: InProcessDaemon) -> None:
    client = Client(served.host)
    with client.hijack("POST", "/test/echo", query={"tty": "1"}) as conn:
        assert not conn.multiplexed
        conn.sendall(b"abc")
        assert conn.recv(3) == b"abc"
        conn.close_write()
        rest = b""
        while data := conn.recv():
            rest += data
        assert rest == b"bye\n"


def test_hijack_raw_socket_conversation(served: InProcessDaemon) -> None:
    """The wire format byte for byte, as the docker CLI drives it: wait for
    the 101, send stdin, half-close, read frames until the daemon closes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(served.sock))
    s.sendall(b"POST /v1.45/test/echo HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
              b"Content-Length: 0\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(1)
    s.sendall(b"early")
    s.shutdown(socket.SHUT_WR)  # as docker does once its stdin ends
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    assert b"Content-Type: application/vnd.docker.multiplexed-stream" in head
    assert rest == frame(1, b"early") + frame(2, b"EARLY") + frame(1, b"bye\n")


def test_hijack_old_client_gets_200_raw_stream(served: InProcessDaemon) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(served.sock))
    s.sendall(b"POST /v1.30/test/echo HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 200 OK")
    # API < 1.42 gets the raw-stream content type even when multiplexed.
    assert b"Content-Type: application/vnd.docker.raw-stream" in head
    s.sendall(b"x")
    assert s.recv(9) == frame(1, b"x")
    s.close()


def test_many_hijacks_do_not_leak(served: InProcessDaemon) -> None:
    client = Client(served.host)
    for i in range(30):
        with client.hijack("POST", "/test/echo") as conn:
            conn.sendall(b"%d" % i)
            conn.close_write()
            assert [d for _, d in conn.frames()] == [b"%d" % i, b"%d" % i, b"bye\n"]
    # The daemon still serves ordinary requests on new connections.
    assert client.version()["ApiVersion"] == "1.45"


# -- progress streams -----------------------------------------------------------

def test_progress_stream(served: InProcessDaemon) -> None:
    messages = list(Client(served.host).stream_json("POST", "/test/progress"))
    assert messages[0] == {"status": "Loading layer", "progressDetail": {"current": 0, "total": 40}, "id": "abc"}
    assert {"stream": "Loaded image: test:latest\n"} in messages
    assert messages[-1] == {"status": "done"}


def test_error_before_output_is_an_http_error(served: InProcessDaemon) -> None:
    with pytest.raises(RemoteNotFound) as err:
        list(Client(served.host).stream_json("POST", "/test/progress", query={"fail": "before"}))
    assert err.value.message == "nothing to load: no such thing"


@pytest.mark.parametrize("mode, message", [("after", "layer 2 is corrupt"),
                                           ("crash", "internal error: RuntimeError: unexpected")])
def test_error_after_output_is_a_stream_message(served: InProcessDaemon, mode: str, message: str) -> None:
    messages = list(Client(served.host).stream_json("POST", "/test/progress", query={"fail": mode}))
    assert messages[0]["status"] == "Loading layer"
    assert messages[-1] == {"errorDetail": {"message": message}, "error": message}


# -- bodies ---------------------------------------------------------------------

def test_large_body_is_streamed(served: InProcessDaemon) -> None:
    chunk = os.urandom(1 << 20)
    total = 64
    expected = hashlib.sha256(chunk * total).hexdigest()

    def chunks():
        for _ in range(total):
            yield chunk

    response = Client(served.host).request("POST", "/test/body", body=chunks())
    assert response.json() == {"sha256": expected, "size": total << 20}


def test_file_body_with_length(served: InProcessDaemon, tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 300_000)
    with open(path, "rb") as f:
        response = Client(served.host).request("POST", "/test/body", body=f)
    assert response.json()["size"] == 300_000


# -- errors -----------------------------------------------------------------------

@pytest.mark.parametrize("kind, cls, status", [
    ("notfound", RemoteNotFound, 404), ("exists", RemoteAlreadyExists, 409),
    ("invalid", RemoteInvalidArgument, 400), ("precondition", RemoteFailedPrecondition, 409),
    ("unavailable", RemoteUnavailable, 503), ("internal", RemoteInternal, 500),
])
def test_error_table(served: InProcessDaemon, kind: str, cls: type, status: int) -> None:
    with pytest.raises(cls) as err:
        Client(served.host).get_json(f"/test/fail/{kind}")
    assert err.value.status == status
    assert err.value.message == f"test error {kind}"


def test_unexpected_exception_is_a_logged_500(served: InProcessDaemon, caplog) -> None:
    with caplog.at_level("ERROR"):
        with pytest.raises(RemoteInternal) as err:
            Client(served.host).get_json("/test/fail/crash")
    assert err.value.status == 500
    assert "ZeroDivisionError: boom" in err.value.message
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


# -- live events -----------------------------------------------------------------

def test_live_events_with_filters(served: InProcessDaemon) -> None:
    client = Client(served.host)
    received: list[dict] = []
    until = time.time() + 3

    def watch() -> None:
        for event in Client(served.host).events(until=f"{until:.9f}",
                                                filters={"type": ["image"], "event": ["tag"]}):
            received.append(event)

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.5)  # let the subscription start
    client.post_json("/test/publish", json_body=[
        {"type": "image", "action": "tag", "id": "sha256:aa", "attributes": {"name": "busybox:latest"}},
        {"type": "image", "action": "untag", "id": "sha256:aa", "attributes": {"name": "busybox:latest"}},
        {"type": "container", "action": "tag", "id": "c1", "attributes": {}},
        {"type": "image", "action": "tag", "id": "sha256:bb", "attributes": {"name": "x:1"}},
    ])
    watcher.join(10)
    assert not watcher.is_alive()
    assert [(e["Type"], e["Action"], e["id"]) for e in received] == [("image", "tag", "sha256:aa"),
                                                                     ("image", "tag", "sha256:bb")]
    assert received[0]["status"] == "tag"
    assert received[0]["Actor"]["Attributes"] == {"name": "busybox:latest"}
    # The same events replay from the buffer, with since/until.
    replay = list(client.events(since="0", until=f"{time.time():.9f}", filters={"image": ["busybox"]}))
    assert [(e["Action"], e["id"]) for e in replay] == [("tag", "sha256:aa"), ("untag", "sha256:aa")]
