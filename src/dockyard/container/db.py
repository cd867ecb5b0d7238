"""Container records in the metadata DB (component ``"container"``).

One row per container: the columns that must be unique or looked up
(``id``, ``name``) and the whole record as JSON.  Every change is one
transaction; the ``UNIQUE`` name column makes a name conflict impossible to
race past, whatever the callers' locking.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Iterator

from ..errors import AlreadyExists, NotFound
from ..store.db import Database
from .model import Container

COMPONENT = "container"

MIGRATIONS = [
    # v1
    """
    CREATE TABLE containers (
        id       TEXT PRIMARY KEY,
        name     TEXT NOT NULL UNIQUE,
        image_id TEXT NOT NULL,
        created  TEXT NOT NULL,
        record   TEXT NOT NULL
    );
    CREATE INDEX containers_image ON containers (image_id);
    """,
]


def name_conflict(name: str, owner: str) -> AlreadyExists:
    return AlreadyExists(f"Conflict. The container name \"{name}\" is already in use by container "
                         f"\"{owner}\". You have to remove (or rename) that container to be able to "
                         f"reuse that name.")


class ContainerDB:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate(COMPONENT, MIGRATIONS)

    def _owner(self, name: str) -> str | None:
        row = self.db.query_one("SELECT id FROM containers WHERE name = ?", (name,))
        return row[0] if row else None

    def insert(self, container: Container) -> None:
        try:
            with self.db.transaction() as conn:
                conn.execute("INSERT INTO containers (id, name, image_id, created, record) VALUES (?, ?, ?, ?, ?)",
                             (container.id, container.name, container.image_id, container.created,
                              json.dumps(container.to_record())))
        except sqlite3.IntegrityError:
            owner = self._owner(container.name)
            if owner is not None:
                raise name_conflict(container.name, owner) from None
            raise AlreadyExists(f"container {container.id} already exists") from None

    def save(self, container: Container) -> None:
        with self.db.transaction() as conn:
            cur = conn.execute("UPDATE containers SET name = ?, record = ? WHERE id = ?",
                               (container.name, json.dumps(container.to_record()), container.id))
            if cur.rowcount == 0:
                raise NotFound(f"No such container: {container.id}")

    def rename(self, container: Container, new_name: str) -> None:
        """Change the name column and record together (conflict-checked)."""
        old = container.name
        container.name = new_name
        try:
            self.save(container)
        except sqlite3.IntegrityError:
            container.name = old
            owner = self._owner(new_name)
            raise name_conflict(new_name, owner or "?") from None
        except BaseException:
            container.name = old
            raise

    def delete(self, container_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    def get(self, container_id: str) -> Container:
        row = self.db.query_one("SELECT record FROM containers WHERE id = ?", (container_id,))
        if row is None:
            raise NotFound(f"No such container: {container_id}")
        return Container.from_record(json.loads(row[0]))

    def all(self) -> Iterator[Container]:
        for row in self.db.query("SELECT record FROM containers ORDER BY created"):
            yield Container.from_record(json.loads(row[0]))

    def image_ids(self) -> set[str]:
        return {r[0] for r in self.db.query("SELECT DISTINCT image_id FROM containers")}
