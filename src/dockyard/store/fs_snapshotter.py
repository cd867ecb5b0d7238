"""What the overlay and native snapshotters share: metadata in SQLite and
one directory per snapshot.

Layout under the snapshotter root::

    metadata.db           snapshot records (component "snapshots")
    snapshots/<id>/fs     the snapshot's own tree (overlay: its layer)
    snapshots/<id>/work   overlay's workdir (overlay only)
    l/<short>             -> ../snapshots/<id>/fs, short names for lowerdir
    snapshots/new-*       being created (not yet recorded)
    snapshots/rm-*        being removed (no longer recorded)

``<id>`` is a number that never changes: commit renames the record from
key to name, not the directory, so commit is cheap and atomic.  A record
is committed to the database only after its directory is in place, and
removed before its directory goes, so a crash leaves at worst a directory
without a record, which the first opener of the root deletes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from .db import Database, Migration
from .reaper import Reaper
from .snapshot import Info, Kind, Mount, Usage, valid_key

COMPONENT = "snapshots"

MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
        parent INTEGER REFERENCES snapshots(id),
        labels TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        updated REAL NOT NULL,
        size INTEGER,
        inodes INTEGER
    );
    CREATE INDEX snapshots_parent ON snapshots(parent);
    """,
]

# Characters that overlay's option parser treats specially; a root
# containing them could not be mounted, so it is refused up front.
_BAD_ROOT_CHARS = ",:\\\n"


def _link_name(snapshot_id: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    n, out = snapshot_id, ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def disk_usage(path: Path) -> Usage:
    """Allocated bytes and inodes of a tree, hard links counted once."""
    seen: set[int] = set()
    size = 0
    stack = [str(path)]
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Usage(0, 0)
    seen.add(st.st_ino)
    size += st.st_blocks * 512
    while stack:
        directory = stack.pop()
        try:
            entries = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if st.st_ino not in seen:
                    seen.add(st.st_ino)
                    size += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return Usage(size, len(seen))


class DirectorySnapshotter:
    """Base class; subclasses say how a new snapshot's directory is filled
    (:meth:`_populate`) and how it is mounted (:meth:`_mounts`)."""

    #: subclasses that use lowerdir links set this
    uses_links = False
    #: subclasses that need an overlay workdir set this
    uses_workdir = False

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(os.path.abspath(root))
        if any(c in str(self.root) for c in _BAD_ROOT_CHARS):
            raise InvalidArgument(f"snapshotter root {self.root} must not contain any of , : \\ or a newline")
        self.snapshots_dir = self.root / "snapshots"
        self.links_dir = self.root / "l"
        self.snapshots_dir.mkdir(parents=True, exist_ok=True)
        if self.uses_links:
            self.links_dir.mkdir(exist_ok=True)
        # Every instance holds the root lock shared; whoever gets it
        # exclusively at open knows nobody is mid-operation and may clean.
        self._lock_fd = os.open(self.root / ".lock", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._reaper = Reaper(f"dockyard-reaper-{self.snapshots_dir}")
        self.db = Database(self.root / "metadata.db")
        try:
            self.db.migrate(COMPONENT, MIGRATIONS)
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                self.cleanup()
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
        except BaseException:
            self.close()
            raise

    # --- records ----------------------------------------------------------
    def _row(self, conn: sqlite3.Connection, key: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM snapshots WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise NotFound(f"snapshot {key} does not exist")
        return row

    def _ancestors(self, conn: sqlite3.Connection, row: sqlite3.Row) -> list[sqlite3.Row]:
        """The parent chain of ``row``, nearest first."""
        chain = []
        parent = row["parent"]
        while parent is not None:
            prow = conn.execute("SELECT * FROM snapshots WHERE id = ?", (parent,)).fetchone()
            if prow is None:  # pragma: no cover - foreign keys prevent it
                raise NotFound(f"snapshot {row['key']}: parent record {parent} is missing")
            chain.append(prow)
            parent = prow["parent"]
        return chain

    def _info(self, conn: sqlite3.Connection, row: sqlite3.Row) -> Info:
        parent = None
        if row["parent"] is not None:
            parent = conn.execute("SELECT key FROM snapshots WHERE id = ?", (row["parent"],)).fetchone()[0]
        return Info(Kind(row["kind"]), row["key"], parent, json.loads(row["labels"]), row["created"], row["updated"])

    def _dir(self, snapshot_id: int) -> Path:
        return self.snapshots_dir / str(snapshot_id)

    def _fs(self, snapshot_id: int) -> Path:
        return self.snapshots_dir / str(snapshot_id) / "fs"

    def _link(self, snapshot_id: int) -> Path:
        return self.links_dir / _link_name(snapshot_id)

    # --- hooks ----------------------------------------------------------------
    def _populate(self, fs: Path, ancestors: list[Path], kind: Kind) -> None:
        """Fill a new snapshot's ``fs`` dir; ``ancestors`` nearest first."""

    def _mounts(self, row: sqlite3.Row, ancestors: list[sqlite3.Row]) -> list[Mount]:  # pragma: no cover
        raise NotImplementedError

    # --- Snapshotter ------------------------------------------------------------
    def stat(self, key: str) -> Info:
        with self.db.reading() as conn:
            return self._info(conn, self._row(conn, key))

    def update(self, key: str, labels: dict[str, str]) -> Info:
        clean = {k: v for k, v in labels.items() if v}
        with self.db.transaction() as conn:
            row = self._row(conn, key)
            conn.execute("UPDATE snapshots SET labels = ?, updated = ? WHERE id = ?",
                         (json.dumps(clean, sort_keys=True), time.time(), row["id"]))
            return self._info(conn, self._row(conn, key))

    def usage(self, key: str) -> Usage:
        with self.db.reading() as conn:
            row = self._row(conn, key)
        if row["kind"] == Kind.COMMITTED and row["size"] is not None:
            return Usage(row["size"], row["inodes"])
        usage = disk_usage(self._fs(row["id"]))
        if row["kind"] == Kind.COMMITTED:
            # Committed snapshots never change: remember the answer.
            self.db.execute("UPDATE snapshots SET size = ?, inodes = ? WHERE id = ?",
                            (usage.size, usage.inodes, row["id"]))
        return usage

    def mounts(self, key: str) -> list[Mount]:
        with self.db.reading() as conn:
            row = self._row(conn, key)
            if row["kind"] == Kind.COMMITTED:
                raise FailedPrecondition(f"snapshot {key} is committed; only active and view snapshots mount")
            return self._mounts(row, self._ancestors(conn, row))

    def prepare(self, key: str, parent: str | None = None, labels: dict[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.ACTIVE, key, parent, labels)

    def view(self, key: str, parent: str | None = None, labels: dict[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.VIEW, key, parent, labels)

    def _create(self, kind: Kind, key: str, parent: str | None, labels: dict[str, str] | None) -> list[Mount]:
        valid_key(key)
        clean = {k: v for k, v in (labels or {}).items() if v}
        with self.db.reading() as conn:
            if conn.execute("SELECT 1 FROM snapshots WHERE key = ?", (key,)).fetchone():
                raise AlreadyExists(f"snapshot {key} already exists")
            parent_id = None
            ancestor_dirs: list[Path] = []
            if parent is not None:
                prow = conn.execute("SELECT * FROM snapshots WHERE key = ?", (parent,)).fetchone()
                if prow is None:
                    raise NotFound(f"parent snapshot {parent} does not exist")
                if prow["kind"] != Kind.COMMITTED:
                    raise FailedPrecondition(f"parent snapshot {parent} is not committed")
                parent_id = prow["id"]
                ancestor_dirs = [self._fs(r["id"]) for r in [prow] + self._ancestors(conn, prow)]
        tmp = self.snapshots_dir / f"new-{secrets.token_hex(8)}"
        tmp.mkdir()
        renamed: Path | None = None
        try:
            (tmp / "fs").mkdir(mode=0o755)
            if self.uses_workdir:
                (tmp / "work").mkdir(mode=0o700)
            self._populate(tmp / "fs", ancestor_dirs, kind)
            now = time.time()
            with self.db.transaction() as conn:
                if conn.execute("SELECT 1 FROM snapshots WHERE key = ?", (key,)).fetchone():
                    raise AlreadyExists(f"snapshot {key} already exists")
                if parent_id is not None:
                    prow = conn.execute("SELECT kind FROM snapshots WHERE id = ?", (parent_id,)).fetchone()
                    if prow is None:
                        raise NotFound(f"parent snapshot {parent} does not exist (removed meanwhile)")
                cur = conn.execute(
                    "INSERT INTO snapshots (key, kind, parent, labels, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
                    (key, kind.value, parent_id, json.dumps(clean, sort_keys=True), now, now))
                snapshot_id = cur.lastrowid
                # Put the directory in place before the record commits.
                os.rename(tmp, self._dir(snapshot_id))
                renamed = self._dir(snapshot_id)
                if self.uses_links:
                    link = self._link(snapshot_id)
                    with contextlib.suppress(FileNotFoundError):
                        link.unlink()  # a crash leftover with our new id
                    link.symlink_to(f"../snapshots/{snapshot_id}/fs")
                row = self._row(conn, key)
                mounts = self._mounts(row, self._ancestors(conn, row))
            return mounts
        except BaseException:
            victim = renamed or tmp
            if renamed is not None and self.uses_links:
                with contextlib.suppress(OSError):
                    self._link(int(renamed.name)).unlink()
            shutil.rmtree(victim, ignore_errors=True)
            raise

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> Info:
        """Commit active ``key`` as ``name``.  The active snapshot's labels
        carry over, updated by ``labels`` (so a lease label keeps protecting
        the new layer until the image that uses it is recorded)."""
        valid_key(name)
        with self.db.transaction() as conn:
            row = self._row(conn, key)
            if row["kind"] != Kind.ACTIVE:
                raise FailedPrecondition(f"snapshot {key} is {row['kind']}; only active snapshots can be committed")
            if conn.execute("SELECT 1 FROM snapshots WHERE key = ?", (name,)).fetchone():
                raise AlreadyExists(f"snapshot {name} already exists")
            merged = json.loads(row["labels"])
            merged.update(labels or {})
            merged = {k: v for k, v in merged.items() if v}
            conn.execute("UPDATE snapshots SET key = ?, kind = 'committed', labels = ?, updated = ? WHERE id = ?",
                         (name, json.dumps(merged, sort_keys=True), time.time(), row["id"]))
            return self._info(conn, self._row(conn, name))

    def remove(self, key: str) -> None:
        """Remove a snapshot without children.  The caller unmounts it first."""
        doomed: Path | None = None
        try:
            with self.db.transaction() as conn:
                row = self._row(conn, key)
                child = conn.execute("SELECT key FROM snapshots WHERE parent = ? LIMIT 1", (row["id"],)).fetchone()
                if child is not None:
                    raise FailedPrecondition(f"cannot remove snapshot {key}: snapshot {child[0]} depends on it")
                conn.execute("DELETE FROM snapshots WHERE id = ?", (row["id"],))
                # Out of the way before the record goes, so a crash leaves
                # a directory the next open deletes, never a half tree.
                doomed = self.snapshots_dir / f"rm-{row['id']}"
                os.rename(self._dir(row["id"]), doomed)
        except BaseException:
            if doomed is not None and doomed.exists():
                os.rename(doomed, self._dir(row["id"]))
            raise
        if self.uses_links:
            with contextlib.suppress(FileNotFoundError):
                self._link(row["id"]).unlink()
        # Renamed and unrecorded: invisible already, so delete it off the
        # caller's path (a crash leaves rm-<id> for cleanup()).
        self._reaper.reap(doomed)

    def walk(self, kind: Kind | str | None = None, label: tuple[str, str | None] | None = None) -> Iterator[Info]:
        with self.db.reading() as conn:
            rows = conn.execute("SELECT * FROM snapshots ORDER BY id").fetchall()
            names = {r["id"]: r["key"] for r in rows}
        for row in rows:
            if kind is not None and row["kind"] != str(kind):
                continue
            labels = json.loads(row["labels"])
            if label is not None:
                name, value = label
                if name not in labels or (value is not None and labels[name] != value):
                    continue
            yield Info(Kind(row["kind"]), row["key"], names.get(row["parent"]), labels, row["created"],
                       row["updated"])

    def drain(self) -> None:
        """Wait until the trees of removed snapshots are deleted."""
        self._reaper.drain()

    def close(self) -> None:
        # Finish deleting removed snapshots while still holding the root
        # lock, so the next exclusive opener finds no rm-* being deleted.
        self._reaper.drain()
        self.db.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- paths, for the image layer -------------------------------------------
    def fs_dir(self, key: str) -> Path:
        """The snapshot's own tree: the writable upper of an active overlay
        snapshot, a layer's content for a committed one, a full copy for the
        native snapshotter."""
        with self.db.reading() as conn:
            return self._fs(self._row(conn, key)["id"])

    def lower_dirs(self, key: str) -> list[Path]:
        """The own trees of the snapshot's ancestors, nearest first (the
        order overlay stacks them)."""
        with self.db.reading() as conn:
            return [self._fs(r["id"]) for r in self._ancestors(conn, self._row(conn, key))]

    def chain_dirs(self, key: str) -> list[Path]:
        """``fs_dir(key)`` followed by ``lower_dirs(key)``: a committed
        chain's layers, top first."""
        with self.db.reading() as conn:
            row = self._row(conn, key)
            return [self._fs(r["id"]) for r in [row] + self._ancestors(conn, row)]

    # --- crash recovery -----------------------------------------------------
    def cleanup(self) -> list[str]:
        """Remove directories and links without a record (a crash between
        creating and recording, or between unrecording and deleting).
        Called at open when no other instance has the root open."""
        with self.db.reading() as conn:
            ids = {r[0] for r in conn.execute("SELECT id FROM snapshots")}
        removed = []
        for entry in os.scandir(self.snapshots_dir):
            name = entry.name
            if name.isdigit() and int(name) in ids:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(f"snapshots/{name}")
        if self.uses_links:
            wanted = {_link_name(i) for i in ids}
            for entry in os.scandir(self.links_dir):
                if entry.name not in wanted:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                    removed.append(f"l/{entry.name}")
        return removed
