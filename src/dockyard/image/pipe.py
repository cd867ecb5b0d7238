"""An in-process pipe of byte chunks between two threads.

Commit produces a layer tar once and consumes it twice: the producer
writes it into the content store and into a :class:`ChunkPipe`, from which
the applier unpacks the same bytes into the new snapshot, concurrently.
The pipe is bounded (the producer waits when the consumer falls behind),
and either side can end it early: the producer with :meth:`fail` (the
consumer's next read raises :class:`PipeBroken`), the consumer with
:meth:`abort` (the producer's next write does).
"""

from __future__ import annotations

import threading
from collections import deque

from ..errors import Internal


class PipeBroken(Internal):
    """The other side of a :class:`ChunkPipe` gave up."""


class ChunkPipe:
    """``write(bytes)`` on one thread, ``read(n)`` on another."""

    def __init__(self, limit: int = 16 << 20) -> None:
        self._limit = limit
        self._chunks: deque[bytes] = deque()
        self._head = b""  # the part of a chunk a short read left over
        self._queued = 0
        self._closed = False
        self._broken: str | None = None
        self._cond = threading.Condition()

    # -- producer ----------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> int:
        # A copy: the producer may reuse its buffer once write returns.
        chunk = bytes(data)
        n = len(chunk)
        if not n:
            return 0
        with self._cond:
            while self._queued >= self._limit and self._broken is None:
                self._cond.wait()
            if self._broken is not None:
                raise PipeBroken(f"pipe closed by its reader: {self._broken}")
            self._chunks.append(chunk)
            self._queued += n
            self._cond.notify_all()
        return n

    def flush(self) -> None:
        pass

    def close(self) -> None:
        """End of stream: the reader gets b"" once the queue is empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def fail(self, why: str) -> None:
        """The producer gave up; the reader's next read raises."""
        self._break(why)

    # -- consumer ----------------------------------------------------------------

    def read(self, n: int = -1) -> bytes:
        if self._head:
            data = self._head if n < 0 or n >= len(self._head) else self._head[:n]
            self._head = self._head[len(data):]
            return data
        with self._cond:
            while not self._chunks and not self._closed and self._broken is None:
                self._cond.wait()
            if self._broken is not None:
                raise PipeBroken(f"pipe closed by its writer: {self._broken}")
            if not self._chunks:
                return b""
            chunk = self._chunks.popleft()
            self._queued -= len(chunk)
            self._cond.notify_all()
        if 0 <= n < len(chunk):
            self._head = chunk[n:]
            return chunk[:n]
        return chunk

    def readable(self) -> bool:
        return True

    def abort(self, why: str) -> None:
        """The consumer gave up; the producer's next write raises."""
        self._break(why)

    def _break(self, why: str) -> None:
        with self._cond:
            if self._broken is None:
                self._broken = why
            self._chunks.clear()
            self._queued = 0
            self._cond.notify_all()


__all__ = ["ChunkPipe", "PipeBroken"]
