"""From a container's raw output to log entries, as Docker's copier does.

A stream is split at newlines; the newline is not part of the entry's line
(the driver adds it back when it stores or reads a complete line).  A line
longer than :data:`MAX_LINE` (16 KiB) is cut into *partial* entries of that
size which share one random id, count up an ordinal from 1 and carry the
timestamp of their first piece; the piece that finally ends in a newline is
marked ``last``.  Text left without a newline when the stream closes is
logged as a partial entry that is not last, so ``printf hi`` is stored as
``"hi"`` with no newline, byte for byte as Docker stores it.
"""

from __future__ import annotations

import os
import time

from . import Partial, Writer

#: Docker's copier buffer: the longest piece one entry carries.
MAX_LINE = 16 * 1024


class _StreamState:
    __slots__ = ("pending", "partial_id", "ordinal", "partial_ts")

    def __init__(self) -> None:
        self.pending = b""
        self.partial_id = ""
        self.ordinal = 0
        self.partial_ts = 0


class Copier:
    """Feeds a container's stdout/stderr chunks into a :class:`Writer`.

    ``feed(stream, data)`` as bytes arrive, ``end(stream)`` when a stream
    reaches EOF, ``close()`` at the end (which closes the writer).
    """

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self._streams: dict[str, _StreamState] = {}

    def feed(self, stream: str, data: bytes, now_ns: int | None = None) -> None:
        state = self._streams.get(stream)
        if state is None:
            state = self._streams[stream] = _StreamState()
        now = now_ns if now_ns is not None else time.time_ns()
        buf = state.pending + data if state.pending else data
        start = 0
        write = self.writer.write
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            while nl - start >= MAX_LINE:
                # Docker's 16 KiB buffer fills before the newline arrives.
                self._write_piece(stream, state, buf[start:start + MAX_LINE], now)
                start += MAX_LINE
            if state.ordinal:
                # The end of a line that was logged in pieces.
                write(stream, buf[start:nl], state.partial_ts, Partial(state.partial_id, state.ordinal, True))
                state.ordinal = 0
            else:
                write(stream, buf[start:nl], now, None)
            start = nl + 1
        while len(buf) - start >= MAX_LINE:
            self._write_piece(stream, state, buf[start:start + MAX_LINE], now)
            start += MAX_LINE
        state.pending = buf[start:] if start < len(buf) else b""
        self.writer.flush()

    def _write_piece(self, stream: str, state: _StreamState, piece: bytes, now: int) -> None:
        if not state.ordinal:
            state.partial_id = os.urandom(32).hex()
            state.partial_ts = now
            state.ordinal = 1
        self.writer.write(stream, piece, state.partial_ts, Partial(state.partial_id, state.ordinal, False))
        state.ordinal += 1

    def end(self, stream: str, now_ns: int | None = None) -> None:
        """The stream closed: log what is left of its last line."""
        state = self._streams.pop(stream, None)
        if state is not None and state.pending:
            self._write_piece(stream, state, state.pending, now_ns if now_ns is not None else time.time_ns())
            self.writer.flush()

    def close(self) -> None:
        for stream in list(self._streams):
            self.end(stream)
        self.writer.close()
