"""Docker's multiplexed stream format (``stdcopy``), client side.

Without a TTY, attach/exec/logs output arrives as frames: an 8-byte header
(stream id: 0 stdin, 1 stdout, 2 stderr, 3 system error; 3 zero bytes;
big-endian uint32 payload length) followed by the payload.
"""

from __future__ import annotations

import struct
from typing import Callable, Iterator

from dockyard.errors import Internal

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
HEADER = struct.Struct(">BxxxL")


def frame(stream: int, data: bytes) -> bytes:
    return HEADER.pack(stream, len(data)) + data


def demux(read: Callable[[int], bytes]) -> Iterator[tuple[int, bytes]]:
    """Split a multiplexed stream into (stream id, payload) pairs.

    ``read(n)`` returns up to n bytes, b"" at the end (a socket's recv, a
    response's read1).  A frame cut short by the end is an error: output
    would otherwise be silently lost.
    """
    buf = b""
    while True:
        while len(buf) < HEADER.size:
            data = read(65536)
            if not data:
                if buf:
                    raise Internal(f"stream ended inside a frame header ({len(buf)} of 8 bytes)")
                return
            buf += data
        stream, length = HEADER.unpack_from(buf)
        if stream > SYSTEMERR:
            raise Internal(f"bad frame header: stream id {stream}")
        buf = buf[HEADER.size:]
        while len(buf) < length:
            data = read(max(65536, length - len(buf)))
            if not data:
                raise Internal(f"stream ended inside a frame ({len(buf)} of {length} bytes)")
            buf += data
        yield stream, buf[:length]
        buf = buf[length:]
