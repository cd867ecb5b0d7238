"""The ``json-file`` driver, byte-compatible with Docker's files.

Each entry is one line::

    {"log":"hello\\n","stream":"stdout","time":"2026-11-25T09:50:52.783726158Z"}

``log`` is the line with its newline (none for a partial piece that is not
the last), escaped as Docker's encoder does: ``"`` and ``\\`` with a
backslash, newline and carriage return as ``\\n`` ``\\r``, other control
bytes and ``< > &`` as ``\\u00XX``, U+2028/2029 as ``\\u2028``/``\\u2029``,
each byte of invalid UTF-8 as ``\\ufffd``; everything else verbatim.
``time`` is RFC 3339 UTC with nanoseconds, trailing zeros trimmed.  The
file is ``<container dir>/<id>-json.log``; rotation as in ``logfile``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from dockyard.errors import InvalidArgument
from . import ATTRS_OPTION, LogEntry, Partial
from .logfile import FileLogReader, FileLogWriter, FileOptions, parse_file_options, require_path
from .timefmt import parse_rfc3339, rfc3339nano

#: Options dockerd accepts for json-file; the attribute ones (labels, env
#: and their regexes) become each entry's "attrs" (computed by the daemon,
#: see ATTRS_OPTION); tag is accepted and unused.
KNOWN_OPTIONS = frozenset({"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex",
                           "tag"})
DEFAULTS = FileOptions(max_size=-1, max_file=1, compress=False)


def _escape_table() -> dict[int, str]:
    table: dict[int, str] = {c: f"\\u00{c:02x}" for c in range(0x20)}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord('"'): '\\"', ord("\\"): "\\\\",
                  ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                  0x2028: "\\u2028", 0x2029: "\\u2029"})
    # Bytes that are not valid UTF-8 decode (surrogateescape) to U+DC80..U+DCFF.
    table.update({c: "\\ufffd" for c in range(0xDC80, 0xDD00)})
    return table


_ESCAPES = _escape_table()
#: Bytes that are copied verbatim: printable ASCII except " \ < > &.
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord(c) for c in '"\\<>&'}


def encode_string(data: bytes) -> bytes:
    """``data`` as a JSON string literal, escaped exactly as Docker does."""
    if data.isascii() and not _has_special(data):
        return b'"' + data + b'"'
    text = data.decode("utf-8", "surrogateescape").translate(_ESCAPES)
    return b'"' + text.encode("utf-8") + b'"'


def _has_special(data: bytes) -> bool:
    # Fast path for the common case: printable ASCII without " \ < > &.
    return bool(data.translate(None, _PLAIN_BYTES))


_PLAIN_BYTES = bytes(sorted(_PLAIN))


def encode_entry(stream: str, line: bytes, timestamp: int, partial: Partial | None,
                 attrs: bytes = b"") -> bytes:
    """One line of the file; ``attrs``: the encoded attributes object
    (:func:`encode_attrs`), written between stream and time as dockerd
    does when there are any."""
    log = line if partial is not None and not partial.last else line + b"\n"
    parts = [b"{"]
    if log:
        parts += [b'"log":', encode_string(log)]
    if stream:
        parts += [b"," if log else b"", b'"stream":', encode_string(stream.encode())]
    if attrs:
        parts += [b"," if (log or stream) else b"", b'"attrs":', attrs]
    parts += [b"," if (log or stream or attrs) else b"", b'"time":"', rfc3339nano(timestamp).encode(), b'"}\n']
    return b"".join(parts)


def encode_attrs(attrs: dict[str, str]) -> bytes:
    """The attributes as Go's json.Marshal writes a map: keys sorted,
    < > & and U+2028/2029 escaped; empty for none."""
    if not attrs:
        return b""
    text = json.dumps(attrs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode("utf-8", "surrogatepass")


def file_name(container_id: str) -> str:
    return f"{container_id}-json.log"


def validate(options: dict[str, str]) -> FileOptions:
    return parse_file_options("json-file", options, known=KNOWN_OPTIONS, defaults=DEFAULTS)


def decode(buf: bytes) -> tuple[list[LogEntry], int]:
    entries = []
    start = 0
    while True:
        nl = buf.find(b"\n", start)
        if nl < 0:
            break
        raw = buf[start:nl]
        start = nl + 1
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
            ts = parse_rfc3339(doc["time"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn or foreign line: skip it as Docker's decoder would fail on it
        line = doc.get("log", "").encode("utf-8", "surrogatepass")
        partial = None if line.endswith(b"\n") else Partial("", 0, False)
        attrs = doc.get("attrs")
        pairs = tuple(sorted((str(k), str(v)) for k, v in attrs.items())) if isinstance(attrs, dict) else ()
        entries.append(LogEntry(doc.get("stream", ""), line, ts, partial, pairs))
    return entries, start


def open_writer(path: Path | None, options: dict[str, str]) -> FileLogWriter:
    options = dict(options)
    try:
        attrs = json.loads(options.pop(ATTRS_OPTION, None) or "{}")
    except ValueError:
        raise InvalidArgument(f"json-file: {ATTRS_OPTION} is not a JSON object") from None
    if not isinstance(attrs, dict):
        raise InvalidArgument(f"json-file: {ATTRS_OPTION} is not a JSON object")
    raw = encode_attrs({str(k): str(v) for k, v in attrs.items()})
    encode = functools.partial(encode_entry, attrs=raw) if raw else encode_entry
    return FileLogWriter(require_path("json-file", path), validate(options), encode)


def open_reader(path: Path | None, options: dict[str, str]) -> FileLogReader:
    return FileLogReader(require_path("json-file", path), decode)
