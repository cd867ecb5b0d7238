"""Hijacked connections for attach and exec.

Docker turns the HTTP connection of ``POST /containers/{id}/attach`` and
``POST /exec/{id}/start`` into a raw bidirectional byte stream:

- a client that sends ``Connection: Upgrade`` and ``Upgrade: tcp`` (the
  docker CLI, docker-py) gets ``HTTP/1.1 101 UPGRADED`` with ``Upgrade: tcp``;
- an old client that does not gets ``HTTP/1.1 200 OK`` and the raw stream;
- without a TTY, output is multiplexed: each frame is an 8-byte header
  (stream id: 0 stdin, 1 stdout, 2 stderr, 3 system error; 3 zero bytes;
  big-endian uint32 length) and the payload.  With a TTY it is raw bytes.

The client writes stdin as raw bytes once it has read the response head
(the docker CLI and docker-py wait for it; aiohttp's C parser drops bytes
that arrive in the same packet as a request head) and may half-close (shutdown(SHUT_WR))
when its stdin ends; the connection stays open for output until the daemon
closes it.  aiohttp would close the socket on that EOF, so the hijack moves
the transport to a protocol of its own (:class:`_HijackProtocol`), which
keeps the write side open and reports EOF to the reader.

Usage in a route::

    conn = await hijack(request, multiplexed=not tty)
    try:
        await conn.write_frame(STDOUT, b"hello\\n")
        data = await conn.read()          # b"" once stdin is closed
    finally:
        await conn.close()
    return conn.response
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from aiohttp import web

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

_HEADER = struct.Struct(">BxxxL")


def frame(stream: int, data: bytes) -> bytes:
    """One stdcopy frame (the multiplexed stream format)."""
    return _HEADER.pack(stream, len(data)) + data


def wants_upgrade(request: web.Request) -> bool:
    connection = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    return "upgrade" in connection and request.headers.get("Upgrade", "").lower() == "tcp"


class _TailCollector:
    """Receives the bytes aiohttp buffered after the request head (the
    client's first stdin bytes, when it did not wait for our answer)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.data += data
        return False, b""

    def feed_eof(self) -> None:
        pass


class _HijackProtocol(asyncio.Protocol):
    def __init__(self, reader: asyncio.StreamReader, previous: Any) -> None:
        self.reader = reader
        self.previous = previous  # aiohttp's RequestHandler, told when we are done
        self.closed = False
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []

    def data_received(self, data: bytes) -> None:
        self.reader.feed_data(data)

    def eof_received(self) -> bool:
        # The client closed its write side (end of stdin): tell the reader,
        # keep our side open for the output still to come.
        self.reader.feed_eof()
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if not self.reader.at_eof():
            self.reader.feed_eof()
        self._wake(exc)
        # Let aiohttp forget the connection (its manager tracks it).
        self.previous.connection_lost(exc)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake(None)

    def _wake(self, exc: BaseException | None) -> None:
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("hijacked connection closed")
        if self._paused:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter
            if self.closed:
                raise ConnectionResetError("hijacked connection closed")


class HijackResponse(web.StreamResponse):
    """What a hijacking handler returns: the response head was written by
    hand, so aiohttp must neither prepare nor end it."""

    def __init__(self, status: int) -> None:
        super().__init__(status=status)

    async def prepare(self, request: web.BaseRequest) -> None:  # type: ignore[override]
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class HijackedConnection:
    def __init__(self, request: web.Request, transport: asyncio.Transport, protocol: _HijackProtocol,
                 reader: asyncio.StreamReader, *, multiplexed: bool, upgraded: bool) -> None:
        self.request = request
        self.transport = transport
        self.multiplexed = multiplexed
        self.upgraded = upgraded
        self.response = HijackResponse(101 if upgraded else 200)
        self._protocol = protocol
        self._reader = reader

    @property
    def closed(self) -> bool:
        return self._protocol.closed or self.transport.is_closing()

    async def read(self, n: int = 65536) -> bytes:
        """Client bytes (stdin); b"" once the client half-closed or left."""
        return await self._reader.read(n)

    async def write(self, data: bytes) -> None:
        """Raw bytes to the client (TTY output)."""
        if self.closed:
            raise ConnectionResetError("hijacked connection closed")
        self.transport.write(data)
        await self._protocol.drain()

    async def write_frame(self, stream: int, data: bytes) -> None:
        """Output of ``stream``: framed when multiplexed, raw otherwise."""
        if not data:
            return
        await self.write(frame(stream, data) if self.multiplexed else data)

    async def close_write(self) -> None:
        """Half-close our side (no more output); the client sees EOF."""
        if not self.closed and self.transport.can_write_eof():
            self.transport.write_eof()

    async def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()
        # aiohttp must not try to reuse this connection for another request.
        self.request.protocol.force_close()


async def hijack(request: web.Request, *, multiplexed: bool) -> HijackedConnection:
    """Take over ``request``'s connection and answer with the raw-stream head."""
    transport = request.transport
    protocol = request.protocol
    if transport is None or transport.is_closing():
        raise ConnectionResetError("client went away before the stream started")
    upgraded = wants_upgrade(request)

    tail = _TailCollector()
    if upgraded:
        # aiohttp buffered what followed the head; collect it.
        protocol.set_parser(tail)  # type: ignore[arg-type]
    reader = asyncio.StreamReader(limit=1 << 20)
    hp = _HijackProtocol(reader, protocol)
    reader.set_transport(transport)
    transport.set_protocol(hp)
    if tail.data:
        reader.feed_data(bytes(tail.data))
    if not transport.is_reading():
        transport.resume_reading()

    from dockyard.daemon.app import api_version

    api = api_version(request)
    content_type = MULTIPLEXED_STREAM if multiplexed and api >= (1, 42) else RAW_STREAM
    if upgraded:
        head = (f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {content_type}\r\n"
                "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    else:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\r\n"
    transport.write(head.encode())
    return HijackedConnection(request, transport, hp, reader, multiplexed=multiplexed, upgraded=upgraded)
