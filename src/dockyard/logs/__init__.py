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
from typing import Any, Callable, Iterator, Protocol

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

    def render(self, timestamps: bool = False) -> bytes:
        """The bytes ``docker logs`` shows for this entry."""
        if not timestamps:
            return self.line
        from .timefmt import rfc3339nano_fixed

        return rfc3339nano_fixed(self.timestamp).encode() + b" " + self.line


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
