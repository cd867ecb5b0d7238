"""The ``local`` driver: Docker's compact binary format.

A file is a sequence of records, each ``[size: uint32 BE][LogEntry][size:
uint32 BE]`` where LogEntry is the protobuf message Docker defines
(``api/types/plugins/logdriver/entry.proto``)::

    message LogEntry {
        string source = 1;  int64 time_nano = 2;  bytes line = 3;
        bool partial = 4;   PartialLogEntryMetadata partial_log_metadata = 5;
    }
    message PartialLogEntryMetadata { bool last = 1; string id = 2; int32 ordinal = 3; }

Encoded by hand (proto3: fields in number order, default values omitted);
the decoder skips fields it does not know (Docker's newer ``attrs``).
Lines are stored without their newline; the reader adds it back unless the
entry is a partial piece that is not the last.  Files live in
``<container dir>/local-logs/container.log``; defaults max-size 20m,
max-file 5, compress true.
"""

from __future__ import annotations

from pathlib import Path

from . import LogEntry, Partial
from .logfile import FileLogReader, FileLogWriter, FileOptions, parse_file_options, require_path

KNOWN_OPTIONS = frozenset({"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex",
                           "tag"})
DEFAULTS = FileOptions(max_size=20 * 1024 * 1024, max_file=5, compress=True)


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # two's complement, ten bytes, as protobuf encodes negative int64/int32
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field_bytes(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def encode_entry(stream: str, line: bytes, timestamp: int, partial: Partial | None) -> bytes:
    parts = []
    if stream:
        parts.append(_field_bytes(1, stream.encode()))
    if timestamp:
        parts.append(b"\x10" + _varint(timestamp))
    if line:
        parts.append(_field_bytes(3, line))
    if partial is not None:
        parts.append(b"\x20\x01")
        meta = []
        if partial.last:
            meta.append(b"\x08\x01")
        if partial.id:
            meta.append(_field_bytes(2, partial.id.encode()))
        if partial.ordinal:
            meta.append(b"\x18" + _varint(partial.ordinal))
        parts.append(_field_bytes(5, b"".join(meta)))
    body = b"".join(parts)
    size = len(body).to_bytes(4, "big")
    return size + body + size


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            value = buf[pos:pos + size]
            if len(value) != size:
                raise ValueError("truncated field")
            pos += size
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def decode_entry(body: bytes) -> LogEntry:
    source, time_nano, line, is_partial = "", 0, b"", False
    last, pid, ordinal = False, "", 0
    for number, wire, value in _fields(body):
        if number == 1 and wire == 2:
            source = value.decode(errors="replace")
        elif number == 2 and wire == 0:
            time_nano = _signed64(value)
        elif number == 3 and wire == 2:
            line = value
        elif number == 4 and wire == 0:
            is_partial = bool(value)
        elif number == 5 and wire == 2:
            for n2, w2, v2 in _fields(value):
                if n2 == 1 and w2 == 0:
                    last = bool(v2)
                elif n2 == 2 and w2 == 2:
                    pid = v2.decode(errors="replace")
                elif n2 == 3 and w2 == 0:
                    ordinal = _signed64(v2)
    partial = Partial(pid, ordinal, last) if is_partial else None
    if partial is None or partial.last:
        line += b"\n"
    return LogEntry(source, line, time_nano, partial)


def decode(buf: bytes) -> tuple[list[LogEntry], int]:
    entries = []
    pos = 0
    while len(buf) - pos >= 4:
        size = int.from_bytes(buf[pos:pos + 4], "big")
        end = pos + 4 + size + 4
        if len(buf) < end:
            break
        try:
            entries.append(decode_entry(buf[pos + 4:pos + 4 + size]))
        except ValueError:
            pass  # a corrupt record: skip it, its length framing is intact
        pos = end
    return entries, pos


def file_name(container_id: str) -> str:
    return "local-logs/container.log"


def validate(options: dict[str, str]) -> FileOptions:
    return parse_file_options("local", options, known=KNOWN_OPTIONS, defaults=DEFAULTS)


def open_writer(path: Path | None, options: dict[str, str]) -> FileLogWriter:
    return FileLogWriter(require_path("local", path), validate(options), encode_entry)


def open_reader(path: Path | None, options: dict[str, str]) -> FileLogReader:
    return FileLogReader(require_path("local", path), decode)
