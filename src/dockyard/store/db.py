"""SQLite with a schema version per component, ordered migrations and
one-transaction-per-operation.

A *component* is a layer that owns some tables (``"store"`` for images,
layers and leases; later ``"containers"``, ``"networks"``, ...).  Each
component has an ordered list of migrations; migration *n* (1-based) takes
the component's tables from version *n-1* to *n*.  The version each
component has reached is kept in the ``schema_versions`` table, and the
layout of that bookkeeping itself in ``PRAGMA user_version``.  A component
registers its tables by calling, once at start-up::

    db.migrate("containers", [
        "CREATE TABLE containers (id TEXT PRIMARY KEY, ...)",   # v1
        "ALTER TABLE containers ADD COLUMN restart_count ...",  # v2
    ])

Each migration runs in its own transaction together with the version bump,
so a crash mid-upgrade leaves a consistent, older version that the next
start continues from.  A migration is an SQL script (``str``) or a callable
taking the ``sqlite3.Connection`` (for data rewrites); it must not commit.
A database newer than the code (a downgrade) is refused with
``FailedPrecondition`` instead of being misread.  Never edit a released
migration: append a new one.

Transactions: ``with db.transaction() as conn:`` runs ``BEGIN IMMEDIATE``
(taking the write lock up front, so two writers queue instead of failing
half-way), commits on success and rolls back on any exception.  Nested
``transaction()`` calls become savepoints.  Reads outside a transaction
see the last committed state (WAL).

Writers in one process queue on a lock of their own (one per database
file) before ``BEGIN IMMEDIATE``: SQLite's busy handler *sleeps* between
retries (1, 2, 5 ... 100 ms) instead of waking when the lock frees, so
100 threads each committing a transaction that holds the lock 0.5 ms took
~2 s through it and take ~0.1 s queued on a ``threading`` lock.  Other
processes still meet in the busy handler, which is what it is for.

Connections: one per thread (``sqlite3`` connections must not cross
threads), opened lazily, re-opened after ``fork``, and closed when their
thread ends (a daemon's executor threads come and go; their connections
and file descriptors must not pile up).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Callable, Iterator, Sequence, Union

from ..errors import FailedPrecondition, Internal, InvalidArgument, Unavailable

Migration = Union[str, Callable[[sqlite3.Connection], None]]

#: version of the bookkeeping layout (the schema_versions table)
FORMAT_VERSION = 1

_BUSY_TIMEOUT_MS = 30_000

# One writer lock per database file in this process (two Database objects
# on one file share it).  Re-entrant: a thread's nested transaction() is a
# savepoint and must not wait for itself.
_writer_locks: dict[str, threading.RLock] = {}
_writer_locks_guard = threading.Lock()


def _writer_lock(path: Path) -> threading.RLock:
    key = os.path.realpath(path)
    with _writer_locks_guard:
        lock = _writer_locks.get(key)
        if lock is None:
            lock = _writer_locks[key] = threading.RLock()
        return lock


class _ThreadConnection:
    """A thread's connection and transaction depth.  Held only by the
    thread-local slot (and weakly by the Database), so it is dropped, and
    its connection closed, when the thread ends."""

    __slots__ = ("conn", "pid", "depth", "__weakref__")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()
        self.depth = 0

    def close(self) -> None:
        # A connection inherited across fork belongs to the parent: leave
        # its file locks and WAL alone (SQLite forbids using it here).
        if self.pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()

    def __del__(self) -> None:
        self.close()


class Database:
    """A SQLite database file shared by threads (and processes)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self._all_lock = threading.Lock()
        self._writer = _writer_lock(self.path)
        self._closed = False
        self._bootstrap()

    # --- connections ------------------------------------------------------
    def _slot(self) -> _ThreadConnection:
        """This thread's connection slot, opened on first use."""
        if self._closed:
            raise FailedPrecondition(f"database {self.path} is closed")
        slot = getattr(self._local, "slot", None)
        if slot is None or slot.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            # WAL: readers never block the writer; NORMAL sync is durable
            # across process crashes and only loses the last commits on
            # power loss, which the start-up reconciliation tolerates.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            slot = _ThreadConnection(conn)
            self._local.slot = slot
            with self._all_lock:
                self._all.add(slot)
        return slot

    def connection(self) -> sqlite3.Connection:
        """This thread's connection."""
        return self._slot().conn

    @property
    def open_connections(self) -> int:
        """How many threads' connections are open (ended threads' are closed)."""
        with self._all_lock:
            return len(self._all)

    def close(self) -> None:
        """Close every thread's connection (call once, at shutdown)."""
        self._closed = True
        with self._all_lock:
            slots = list(self._all)
            self._all = weakref.WeakSet()
        for slot in slots:
            slot.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions -------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work; nested calls are savepoints."""
        slot = self._slot()
        conn = slot.conn
        depth = slot.depth
        if depth == 0:
            # Queue behind this process's other writers first (see the
            # module docstring); the timeout mirrors SQLite's own.
            if not self._writer.acquire(timeout=_BUSY_TIMEOUT_MS / 1000):
                raise Unavailable(f"database {self.path}: no write turn within {_BUSY_TIMEOUT_MS // 1000} s")
            try:
                conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._writer.release()
                raise
        else:
            conn.execute(f"SAVEPOINT sp{depth}")
        slot.depth = depth + 1
        try:
            yield conn
        except BaseException:
            slot.depth = depth
            if depth == 0:
                try:
                    conn.execute("ROLLBACK")
                finally:
                    self._writer.release()
            else:
                conn.execute(f"ROLLBACK TO sp{depth}")
                conn.execute(f"RELEASE sp{depth}")
            raise
        else:
            slot.depth = depth
            if depth == 0:
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    # Never hand the next writer a connection still inside
                    # this transaction.
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                finally:
                    self._writer.release()
            else:
                conn.execute(f"RELEASE sp{depth}")

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent read of several statements (a deferred transaction:
        takes no write lock).  Inside a transaction, just that one."""
        slot = self._slot()
        conn = slot.conn
        if slot.depth > 0:
            yield conn
            return
        conn.execute("BEGIN")
        slot.depth = 1
        try:
            yield conn
        finally:
            slot.depth = 0
            conn.execute("COMMIT")

    @property
    def in_transaction(self) -> bool:
        slot = getattr(self._local, "slot", None)
        return slot is not None and slot.depth > 0 and slot.pid == os.getpid()

    def execute(self, sql: str, params: Sequence | dict = ()) -> sqlite3.Cursor:
        return self.connection().execute(sql, params)

    def query(self, sql: str, params: Sequence | dict = ()) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence | dict = ()) -> sqlite3.Row | None:
        return self.connection().execute(sql, params).fetchone()

    # --- schema -------------------------------------------------------------
    def _bootstrap(self) -> None:
        conn = self.connection()
        with self.transaction():
            (fmt,) = conn.execute("PRAGMA user_version").fetchone()
            if fmt > FORMAT_VERSION:
                raise FailedPrecondition(
                    f"metadata database {self.path} has format {fmt}, newer than this dockyard "
                    f"understands ({FORMAT_VERSION}); refusing to open it")
            if fmt < 1:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_versions ("
                             " component TEXT PRIMARY KEY,"
                             " version INTEGER NOT NULL,"
                             " updated REAL NOT NULL)")
                conn.execute("PRAGMA user_version = 1")

    def version(self, component: str) -> int:
        row = self.query_one("SELECT version FROM schema_versions WHERE component = ?", (component,))
        return row[0] if row else 0

    def versions(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.query("SELECT component, version FROM schema_versions")}

    def migrate(self, component: str, migrations: Sequence[Migration]) -> int:
        """Bring ``component``'s tables up to ``len(migrations)``; returns the
        version reached.  Safe to call from several processes at once."""
        if not component or not isinstance(component, str):
            raise InvalidArgument(f"invalid schema component {component!r}")
        target = len(migrations)
        while True:
            with self.transaction() as conn:
                row = conn.execute("SELECT version FROM schema_versions WHERE component = ?",
                                   (component,)).fetchone()
                current = row[0] if row else 0
                if current > target:
                    raise FailedPrecondition(
                        f"metadata database {self.path}: schema of {component!r} is version {current}, "
                        f"newer than this dockyard supports ({target}); refusing to downgrade")
                if current == target:
                    return current
                step = migrations[current]
                try:
                    if isinstance(step, str):
                        _run_script(conn, step)
                    else:
                        step(conn)
                except sqlite3.Error as exc:
                    raise Internal(f"migrating {component!r} from version {current} to {current + 1}: {exc}") from exc
                conn.execute(
                    "INSERT INTO schema_versions (component, version, updated) VALUES (?, ?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version = excluded.version, updated = excluded.updated",
                    (component, current + 1, time.time()))


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT our transaction first; run statement by
    # statement instead, cutting at each ";" that sqlite3 says ends one
    # (a ";" inside a string literal or trigger body does not).
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\r\n;"):
                conn.execute(buf)
            buf = ""
    if buf.strip(" \t\r\n;"):
        conn.execute(buf)


__all__ = ["Database", "Migration", "FORMAT_VERSION"]
