"""Log drivers: where a container's stdout and stderr are kept, and how
``docker logs`` reads them back.

Terms:

entry
    One piece of output: the stream it came from (``stdout``/``stderr``),
    its line (bytes), the time it was read (nanoseconds since the epoch)
    and, for pieces of an over-long or unterminated line, its
    :class:`Partial` metadata.  A writer is given lines *without* their
    newline; a reader yields them *with* it, except for a partial piece
    that is not the last of its line.
driver
    A name (``json-file``, ``local``, ``none``) and the module that
    implements it, with Docker's options (``max-size``, ``max-file``,
    ``compress``).  Files are named as Docker names them.

Who calls what: the per-container supervisor holds a :class:`Writer`
(through :func:`open_copier`, which splits raw output into entries) and
keeps writing while the daemon is down; the daemon only ever reads, with
:func:`open_reader`.  Readers and writers live in different processes, so a
reader finds rotations on disk by itself (see ``logfile``).

Lifecycle of a writer: ``open_writer`` -> ``write``... -> ``flush`` ->
``close``.  Of a reader: ``open_reader`` -> ``read(...)`` (an iterator; with
``follow`` it ends when ``stop()`` turns true and everything written before
has been read, or the files were removed).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from dockyard.errors import InvalidArgument


@dataclass(frozen=True)
class Partial:
    """Docker's PartialLogMetaData: pieces of one line share ``id``;
    ``ordinal`` counts from 1; ``last`` marks the piece that ends it."""

    id: str
    ordinal: int
    last: bool


@dataclass(frozen=True)
class LogEntry:
    stream: str
    line: bytes
    timestamp: int  # ns since the epoch, UTC
    partial: Partial | None = None
    #: the log's extra attributes (json-file's "attrs": chosen labels and
    #: env), sorted by key
    attrs: tuple[tuple[str, str], ...] = ()

    def render(self, timestamps: bool = False, details: bool = False) -> bytes:
        """The bytes ``docker logs`` shows for this entry: [time ]
        [details ]line, details being the attributes as ``k=v`` joined by
        commas, each side query-escaped (empty with none, so a lone space)."""
        line = self.line
        if details:
            from urllib.parse import quote_plus

            shown = ",".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in self.attrs)
            line = shown.encode() + b" " + line
        if not timestamps:
            return line
        from .timefmt import rfc3339nano_fixed

        return rfc3339nano_fixed(self.timestamp).encode() + b" " + line


#: The log option that carries a container's extra attributes (JSON object)
#: from the daemon to the writer; set by the daemon, never by a user.
ATTRS_OPTION = "dockyard-attrs"


def extra_attributes(options: Mapping[str, str], labels: Mapping[str, str] | None,
                     env: Sequence[str] | None) -> dict[str, str]:
    """dockerd's extra log attributes of a container: the labels named by
    the ``labels`` option (comma-separated) or matching ``labels-regex``,
    and the env variables named by ``env`` or matching ``env-regex``
    (a regex matches anywhere in the key, as Go's MatchString)."""
    import re

    labels = dict(labels or {})
    extra: dict[str, str] = {}
    for key in filter(None, (options.get("labels") or "").split(",")):
        if key in labels:
            extra[key] = labels[key]
    if options.get("labels-regex"):
        pattern = _compile(options["labels-regex"], "labels-regex", re)
        extra.update({k: v for k, v in labels.items() if pattern.search(k)})
    variables: dict[str, str] = {}
    for item in env or ():
        key, sep, value = item.partition("=")
        if sep:
            variables[key] = value
    for key in filter(None, (options.get("env") or "").split(",")):
        if key in variables:
            extra[key] = variables[key]
    if options.get("env-regex"):
        pattern = _compile(options["env-regex"], "env-regex", re)
        extra.update({k: v for k, v in variables.items() if pattern.search(k)})
    return extra


def _compile(expression: str, option: str, re: Any) -> Any:
    try:
        return re.compile(expression)
    except re.error as exc:
        raise InvalidArgument(f"invalid {option} log option {expression!r}: {exc}") from None


class Writer(Protocol):
    def write(self, stream: str, line: bytes, timestamp: int, partial: Partial | None = None) -> None:
        """Record one entry; ``line`` has no trailing newline."""
        ...

    def flush(self) -> None:
        """Make what was written visible to readers (one write(2) per batch)."""
        ...

    def close(self) -> None: ...


class Reader(Protocol):
    def read(self, *, since: int | None = None, until: int | None = None, tail: int | None = None,
             follow: bool = False, stop: Callable[[], bool] | None = None,
             poll_interval: float = 0.05, wait: Callable[[float], object] | None = None) -> Iterator[LogEntry]:
        """Entries in the order written.  ``since``/``until`` are ns bounds
        (inclusive/exclusive as Docker: entries at or after since, before
        until); ``tail`` keeps only the last N of the stored entries (None
        or negative: all); ``follow`` keeps reading new entries, across
        rotations, until ``stop()`` is true and the files are drained (or
        gone: a follow of a removed container's log ends when ``stop()``
        says so).  Between polls for new entries the reader calls
        ``wait(poll_interval)`` (``time.sleep`` by default); a caller that
        learns when the writer is done passes a wait that returns then
        (``threading.Event().wait``), so the follow ends without a poll's
        delay."""
        ...


#: driver name -> module implementing ``open_writer(path, options)``,
#: ``open_reader(path, options)``, ``validate(options)`` and ``FILE_NAME``
#: (how the log file is named inside the container's directory).
DRIVERS: dict[str, str] = {
    "json-file": "dockyard.logs.jsonfile",
    "local": "dockyard.logs.local",
    "none": "dockyard.logs.none",
}


def driver_module(driver: str) -> Any:
    module = DRIVERS.get(driver)
    if module is None:
        raise InvalidArgument(f"logger: no log driver named '{driver}' is registered")
    # sys.modules first: import_module runs importlib's Python code even
    # for a loaded module, which a forked supervisor would pay for in pages.
    return sys.modules.get(module) or importlib.import_module(module)


def validate(driver: str, options: dict[str, str]) -> None:
    """Raise InvalidArgument for an unknown driver or option."""
    driver_module(driver).validate(dict(options or {}))


def log_path(driver: str, container_dir: Path, container_id: str) -> Path | None:
    """Where ``driver`` keeps the log of the container whose directory is
    ``container_dir``, named as Docker names it (``<id>-json.log``,
    ``local-logs/container.log``); None for ``none``."""
    name = driver_module(driver).file_name(container_id)
    return Path(container_dir) / name if name else None


def open_writer(driver: str, path: Path | str | None, options: dict[str, str] | None = None) -> Writer:
    return driver_module(driver).open_writer(Path(path) if path else None, dict(options or {}))


def open_reader(driver: str, path: Path | str | None, options: dict[str, str] | None = None) -> Reader:
    return driver_module(driver).open_reader(Path(path) if path else None, dict(options or {}))


def open_copier(driver: str, path: Path | str | None, options: dict[str, str] | None = None):
    """A :class:`~dockyard.logs.copier.Copier` over ``driver``'s writer: what
    the supervisor feeds raw stdout/stderr chunks into."""
    from .copier import Copier

    return Copier(open_writer(driver, path, options))


__all__ = ["Partial", "LogEntry", "Writer", "Reader", "DRIVERS", "validate", "log_path", "open_writer",
           "open_reader", "open_copier"]
