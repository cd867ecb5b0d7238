"""Streaming helpers for routes: Docker's JSON message stream, and request
bodies read by worker threads.

JSON message stream (Docker's ``jsonmessage``)
    One JSON object per line, as ``docker load``/``import``/``pull`` print::

        {"status": "Loading layer", "progressDetail": {"current": 512, "total": 4096}, "id": "a1b2c3"}
        {"stream": "Loaded image: busybox:latest\\n"}
        {"errorDetail": {"message": "..."}, "error": "..."}

    The response starts lazily, on the first message, so an error raised
    before anything was sent still becomes a normal HTTP error with its
    status code (as dockerd does); after that, errors become an ``error``
    line in a 200 stream.

Bodies
    Image tarballs can be gigabytes.  :class:`BodyReader` turns the request's
    async stream into a blocking file object that a worker thread (running
    the synchronous image service) reads chunk by chunk, so the body is never
    held in memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

from aiohttp import web

from dockyard.errors import DockyardError, Internal

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Threads for work that streams to or from a client (load, import, save):
#: they block on the client's pace, so they get a pool of their own and
#: cannot starve the default executor that short requests use.
STREAM_WORKERS = 32
_stream_pool: ThreadPoolExecutor | None = None


def stream_executor() -> ThreadPoolExecutor:
    global _stream_pool
    if _stream_pool is None:
        _stream_pool = ThreadPoolExecutor(max_workers=STREAM_WORKERS, thread_name_prefix="dockyard-stream")
    return _stream_pool


async def in_stream_executor(func: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(stream_executor(), func, *args)


#: Progress lines for the same id closer together than this are dropped
#: (except the final one): clients redraw, they need no 1000 updates a second.
PROGRESS_INTERVAL = 0.1


def progress_message(status: str, *, id: str | None = None, current: int | None = None,
                     total: int | None = None, progress: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"status": status}
    if current is not None:
        detail: dict[str, int] = {"current": current}
        if total is not None:
            detail["total"] = total
        doc["progressDetail"] = detail
    if progress is not None:
        doc["progress"] = progress
    if id is not None:
        doc["id"] = id
    return doc


def error_message(message: str) -> dict[str, Any]:
    return {"errorDetail": {"message": message}, "error": message}


class JSONMessageStream:
    """Writes jsonmessage lines to ``request``'s response, started lazily."""

    def __init__(self, request: web.Request, *, content_type: str = "application/json") -> None:
        self.request = request
        self.content_type = content_type
        self.response: web.StreamResponse | None = None
        self._last_progress: dict[str | None, float] = {}

    @property
    def started(self) -> bool:
        return self.response is not None

    async def _start(self) -> web.StreamResponse:
        if self.response is None:
            response = web.StreamResponse(status=200)
            response.content_type = self.content_type
            await response.prepare(self.request)
            self.response = response
        return self.response

    async def send(self, doc: dict[str, Any]) -> None:
        if self._throttled(doc):
            return
        response = await self._start()
        await response.write(json.dumps(doc, ensure_ascii=False).encode() + b"\r\n")

    def _throttled(self, doc: dict[str, Any]) -> bool:
        detail = doc.get("progressDetail")
        if not detail:
            return False
        if detail.get("total") is not None and detail.get("current") == detail.get("total"):
            return False
        now = time.monotonic()
        key = doc.get("id")
        if now - self._last_progress.get(key, 0.0) < PROGRESS_INTERVAL:
            return True
        self._last_progress[key] = now
        return False

    async def status(self, status: str, **kw: Any) -> None:
        await self.send(progress_message(status, **kw))

    async def stream(self, text: str) -> None:
        await self.send({"stream": text})

    async def error(self, message: str) -> None:
        response = await self._start()
        await response.write(json.dumps(error_message(message), ensure_ascii=False).encode() + b"\r\n")

    async def finish(self) -> web.StreamResponse:
        response = await self._start()
        await response.write_eof()
        return response


class Reporter:
    """A thread-safe sink for jsonmessage dicts, handed to worker threads;
    the messages are written out by :func:`run_streaming` on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._loop = loop
        self._queue = queue

    def __call__(self, doc: dict[str, Any]) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, doc)

    def status(self, status: str, **kw: Any) -> None:
        self(progress_message(status, **kw))

    def stream(self, text: str) -> None:
        self({"stream": text})


async def run_streaming(stream: JSONMessageStream, work: Callable[[Reporter], T]) -> T:
    """Run ``work(reporter)`` in a worker thread and write what it reports.

    If ``work`` raises a DockyardError before anything was written, it
    propagates (a normal HTTP error); afterwards it is written as an error
    line and re-raised as :class:`StreamFailed` for the caller to finish the
    response.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    reporter = Reporter(loop, queue)
    task = loop.run_in_executor(stream_executor(), work, reporter)
    getter: asyncio.Task | None = None
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                await stream.send(getter.result())
                getter = None
                continue
            getter.cancel()
            getter = None
            # Drain what the worker queued before it finished.
            while not queue.empty():
                await stream.send(queue.get_nowait())
            break
        return task.result()
    except ConnectionError:
        # The client went away (mid-upload or mid-stream): nobody to tell.
        log.info("%s %s: the client went away", stream.request.method, stream.request.path)
        raise
    except DockyardError as e:
        if not stream.started:
            raise
        await _report(stream, e.message)
        raise StreamFailed(e, stream.response) from e
    except Exception as e:
        if not stream.started:
            raise
        # Headers are gone: the fault can only be reported in the stream.
        log.exception("streaming %s %s failed", stream.request.method, stream.request.path)
        failure = Internal(f"internal error: {type(e).__name__}: {e}")
        await _report(stream, failure.message)
        raise StreamFailed(failure, stream.response) from e
    finally:
        if getter is not None:
            getter.cancel()


async def _report(stream: JSONMessageStream, message: str) -> None:
    try:
        await stream.error(message)
    except ConnectionError:
        log.info("%s %s: the client went away before the error could be sent", stream.request.method,
                 stream.request.path)


class StreamFailed(Exception):
    """The work failed after the stream had started; the error line has been
    written.  The error middleware ends ``response`` and returns it, so a
    handler may simply let this propagate."""

    def __init__(self, error: DockyardError, response: web.StreamResponse | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.response = response


class BodyReader:
    """A blocking, read-only file object over an aiohttp request body, for
    use from a worker thread (never from the loop: it would deadlock).

    Each trip to the loop fetches up to :data:`FETCH` bytes, so callers that
    read in small pieces (tar headers) do not pay a thread hand-off each."""

    FETCH = 1 << 20

    def __init__(self, content: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._content = content
        self._loop = loop
        self._eof = False
        self._buffer = b""
        self._offset = 0
        self.bytes_read = 0

    def _fill(self) -> bool:
        if self._eof:
            return False
        future = asyncio.run_coroutine_threadsafe(self._content.read(self.FETCH), self._loop)
        data = future.result()
        if not data:
            self._eof = True
            return False
        self._buffer, self._offset = data, 0
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(self.FETCH):
                chunks.append(chunk)
            return b"".join(chunks)
        if size == 0:
            return b""
        if self._offset >= len(self._buffer) and not self._fill():
            return b""
        data = self._buffer[self._offset:self._offset + size]
        self._offset += len(data)
        self.bytes_read += len(data)
        return data

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        n = len(data)
        buf[:n] = data
        return n

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._eof = True


class ResponseWriter:
    """A blocking, write-only file object that streams into an aiohttp
    response from a worker thread (``docker save``).  The response starts
    on the first write, so errors found before any byte is produced can
    still be answered with a status code.  Writes are coalesced into
    :data:`CHUNK`-sized pieces to limit thread hand-offs."""

    CHUNK = 1 << 20

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop, *,
                 content_type: str = "application/x-tar") -> None:
        self.request = request
        self.loop = loop
        self.content_type = content_type
        self.response: web.StreamResponse | None = None
        self._pending = bytearray()
        self.bytes_written = 0

    async def _start_and_write(self, data: bytes) -> None:
        if self.response is None:
            response = web.StreamResponse(status=200)
            response.content_type = self.content_type
            await response.prepare(self.request)
            self.response = response
        if data:
            await self.response.write(data)

    def _send(self, data: bytes) -> None:
        asyncio.run_coroutine_threadsafe(self._start_and_write(data), self.loop).result()

    def write(self, data: Any) -> int:
        n = len(data)
        self._pending += data
        self.bytes_written += n
        if len(self._pending) >= self.CHUNK:
            self._send(bytes(self._pending))
            self._pending.clear()
        return n

    def flush(self) -> None:
        if self._pending:
            self._send(bytes(self._pending))
            self._pending.clear()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    async def finish(self) -> web.StreamResponse:
        """On the loop, after the worker is done: end the response."""
        if self._pending:
            await self._start_and_write(bytes(self._pending))
            self._pending.clear()
        if self.response is None:
            await self._start_and_write(b"")
        await self.response.write_eof()  # type: ignore[union-attr]
        return self.response  # type: ignore[return-value]


def spool(body: BodyReader, directory: Path, *, prefix: str = "upload-", chunk: int = 1 << 20) -> Path:
    """Copy ``body`` into a new file in ``directory`` (for consumers that need
    random access, e.g. a docker-save archive whose manifest comes last).
    The caller removes the file.  Runs in a worker thread."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tar", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            while data := body.read(chunk):
                out.write(data)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)
