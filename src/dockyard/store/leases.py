"""Leases: protection from garbage collection for work in flight.

A load or pull writes blobs and snapshots before the image record that
will reference them exists.  Until then they are protected by a *lease*:
a row naming the resources it holds.  Garbage collection keeps whatever a
live lease holds, and a snapshot whose ``LEASE_LABEL`` names a live lease.

A lease dies when it is deleted (normally at the end of the operation,
after the image record is in place), when it *expires*, or when its
*owner* process is gone (a crash): leases record the creating process
(boot id, pid, start time), so the next start-up can tell at once that a
lease's operation will never finish, without waiting for the expiry.

Typical use::

    with store.leases.lease() as lease:
        store.ingest(blob, expected=digest, lease=lease.id)
        sn.prepare(key, parent, labels={LEASE_LABEL: lease.id})
        ...
        store.metadata.put_image(...)      # now the image references them
    # lease deleted: GC may take whatever the image does not reference

Resource kinds: ``"content"`` (a blob digest; may be added before the
blob exists, which is how an ingest stays safe while GC runs) and
``"snapshot"`` (a snapshot key or name; for a chain ID it also keeps the
layer record).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import AlreadyExists, InvalidArgument, NotFound
from .db import Database

#: snapshot label naming the lease that protects it
LEASE_LABEL = "dockyard/lease"
#: snapshot label: never collect this snapshot (nor its ancestors)
GC_ROOT_LABEL = "dockyard/gc.root"

CONTENT, SNAPSHOT = "content", "snapshot"
RESOURCE_KINDS = frozenset({CONTENT, SNAPSHOT})

#: default lifetime of a lease; long enough for a slow pull
DEFAULT_EXPIRY = 24 * 3600.0


@dataclass(frozen=True)
class Lease:
    id: str
    created: float
    expires: float | None = None
    owner: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Resource:
    kind: str
    id: str


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: tells a pid from a reused one."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses.
    fields = stat[stat.rfind(b")") + 2:].split()
    return fields[19].decode()


def current_owner() -> str:
    pid = os.getpid()
    return f"{_boot_id()}/{pid}/{_start_time(pid)}"


def owner_alive(owner: str | None) -> bool:
    """True unless ``owner`` names a process that is certainly gone."""
    if not owner:
        return True
    try:
        boot, pid_text, start = owner.split("/")
        pid = int(pid_text)
    except ValueError:
        return True
    if boot != _boot_id():
        return False
    return _start_time(pid) == start


class LeaseManager:
    """Leases stored in the metadata database (tables from the ``store``
    component's migration 2)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, lease_id: str | None = None, expires_in: float | None = DEFAULT_EXPIRY,
               labels: dict[str, str] | None = None, owned: bool = True) -> Lease:
        """A new lease.  ``owned`` ties it to this process: it dies with it.
        ``expires_in=None`` never expires (use for leases handed to clients)."""
        lease_id = lease_id or f"lease-{secrets.token_hex(8)}"
        if not lease_id or "\0" in lease_id:
            raise InvalidArgument(f"invalid lease id {lease_id!r}")
        now = time.time()
        lease = Lease(lease_id, now, now + expires_in if expires_in is not None else None,
                      current_owner() if owned else None, dict(labels or {}))
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM leases WHERE id = ?", (lease_id,)).fetchone():
                raise AlreadyExists(f"lease {lease_id} exists already")
            conn.execute("INSERT INTO leases (id, created, expires, owner, labels) VALUES (?, ?, ?, ?, ?)",
                         (lease.id, lease.created, lease.expires, lease.owner, json.dumps(lease.labels)))
        return lease

    def get(self, lease_id: str) -> Lease:
        row = self.db.query_one("SELECT * FROM leases WHERE id = ?", (lease_id,))
        if row is None:
            raise NotFound(f"no such lease: {lease_id}")
        return _lease(row)

    def list(self) -> list[Lease]:
        return [_lease(r) for r in self.db.query("SELECT * FROM leases ORDER BY created")]

    def delete(self, lease_id: str) -> None:
        cur = self.db.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
        if cur.rowcount == 0:
            raise NotFound(f"no such lease: {lease_id}")

    @contextlib.contextmanager
    def lease(self, **kwargs) -> Iterator[Lease]:
        """A lease for the duration of a ``with`` block; deleted on every
        exit path (what it held becomes collectable unless referenced)."""
        lease = self.create(**kwargs)
        try:
            yield lease
        finally:
            with contextlib.suppress(NotFound):
                self.delete(lease.id)

    def add_resource(self, lease_id: str, kind: str, resource: str) -> None:
        """Hold ``resource`` (idempotent).  NotFound if the lease is gone."""
        if kind not in RESOURCE_KINDS:
            raise InvalidArgument(f"invalid lease resource kind {kind!r}")
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM leases WHERE id = ?", (lease_id,)).fetchone() is None:
                raise NotFound(f"no such lease: {lease_id}")
            conn.execute("INSERT OR IGNORE INTO lease_resources (lease_id, kind, resource) VALUES (?, ?, ?)",
                         (lease_id, kind, str(resource)))

    def remove_resource(self, lease_id: str, kind: str, resource: str) -> None:
        self.db.execute("DELETE FROM lease_resources WHERE lease_id = ? AND kind = ? AND resource = ?",
                        (lease_id, kind, str(resource)))

    def resources(self, lease_id: str) -> list[Resource]:
        rows = self.db.query("SELECT kind, resource FROM lease_resources WHERE lease_id = ? ORDER BY kind, resource",
                             (lease_id,))
        return [Resource(r[0], r[1]) for r in rows]

    # --- for garbage collection ---------------------------------------------
    def is_live(self, lease: Lease, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if lease.expires is not None and lease.expires <= now:
            return False
        return owner_alive(lease.owner)

    def expire(self, now: float | None = None, dry_run: bool = False) -> list[str]:
        """Delete leases that expired or whose owner died; returns their ids."""
        dead = [lease.id for lease in self.list() if not self.is_live(lease, now)]
        if dead and not dry_run:
            with self.db.transaction() as conn:
                conn.executemany("DELETE FROM leases WHERE id = ?", [(i,) for i in dead])
        return dead

    def live_ids(self, now: float | None = None) -> set[str]:
        return {lease.id for lease in self.list() if self.is_live(lease, now)}

    def held(self, kind: str, now: float | None = None) -> set[str]:
        """Resources of ``kind`` that some live lease holds."""
        live = self.live_ids(now)
        rows = self.db.query("SELECT lease_id, resource FROM lease_resources WHERE kind = ?", (kind,))
        return {r[1] for r in rows if r[0] in live}


def _lease(row) -> Lease:
    return Lease(row["id"], row["created"], row["expires"], row["owner"], json.loads(row["labels"] or "{}"))


__all__ = ["LEASE_LABEL", "GC_ROOT_LABEL", "CONTENT", "SNAPSHOT", "Lease", "Resource", "LeaseManager",
           "current_owner", "owner_alive", "DEFAULT_EXPIRY"]
