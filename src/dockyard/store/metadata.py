"""Image metadata: images, references (tags and repo digests), layers.

Tables (component ``"store"`` in :mod:`dockyard.store.db`):

``images``
    ``id`` (config digest = image ID), ``created`` (when stored here),
    ``size`` (sum of its layers' unpacked sizes), ``parent`` (parent image
    ID, set by commit/build), ``last_used``.
``image_refs``
    ``ref`` (fully normalised, e.g. ``docker.io/library/busybox:latest``
    or ``docker.io/library/busybox@sha256:...``) -> ``image_id``;
    ``kind`` is ``"tag"`` (RepoTags) or ``"digest"`` (RepoDigests).  A tag
    names one image; moving it is an update.
``layers``
    ``chain_id`` (primary key; also the committed snapshot's name),
    ``diff_id``, ``parent`` (parent chain ID), ``size`` (unpacked bytes),
    and when known the compressed blob: ``digest``, ``media_type``,
    ``compressed_size``.
``image_layers``
    ``(image_id, position)`` -> ``chain_id``, position 0 = bottom layer.
``image_content``
    Other blobs an image keeps alive (manifests, indexes): ``(image_id,
    digest)``.
``leases``, ``lease_resources``
    See :mod:`dockyard.store.leases`.

Every mutating method is one transaction; wrap several calls in
``db.transaction()`` to make them one (nested transactions are
savepoints).  Records are frozen dataclasses; digests are
:class:`~dockyard.oci.Digest`.

Who deletes what: ``delete_image`` removes the image row, its refs and
layer links, nothing else.  Layers, snapshots and blobs no image needs any
more are reclaimed by :func:`dockyard.store.gc.collect`.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Iterable

from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ..oci.digest import Digest
from .db import Database, Migration

COMPONENT = "store"

TAG, DIGEST = "tag", "digest"

#: Ordered migrations of the "store" component.  Append; never edit.
MIGRATIONS: list[Migration] = [
    # 1: images, references and layers
    """
    CREATE TABLE layers (
        chain_id TEXT PRIMARY KEY,
        diff_id TEXT NOT NULL,
        parent TEXT REFERENCES layers(chain_id),
        size INTEGER NOT NULL,
        digest TEXT,
        media_type TEXT,
        created REAL NOT NULL
    );
    CREATE INDEX layers_parent ON layers(parent);
    CREATE TABLE images (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        size INTEGER NOT NULL,
        parent TEXT,
        last_used REAL
    );
    CREATE INDEX images_parent ON images(parent);
    CREATE TABLE image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        chain_id TEXT NOT NULL REFERENCES layers(chain_id),
        PRIMARY KEY (image_id, position)
    );
    CREATE INDEX image_layers_chain ON image_layers(chain_id);
    CREATE TABLE image_refs (
        ref TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('tag', 'digest')),
        created REAL NOT NULL
    );
    CREATE INDEX image_refs_image ON image_refs(image_id);
    """,
    # 2: leases (GC protection for in-flight work), the compressed size of
    # layer blobs, and extra blobs images keep alive (manifests)
    """
    CREATE TABLE leases (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        expires REAL,
        owner TEXT,
        labels TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE lease_resources (
        lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        resource TEXT NOT NULL,
        PRIMARY KEY (lease_id, kind, resource)
    );
    CREATE INDEX lease_resources_resource ON lease_resources(kind, resource);
    ALTER TABLE layers ADD COLUMN compressed_size INTEGER;
    CREATE TABLE image_content (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        PRIMARY KEY (image_id, digest)
    );
    CREATE INDEX image_content_digest ON image_content(digest);
    """,
]


@dataclass(frozen=True)
class LayerRecord:
    """A layer as stored: unpacked once, as the committed snapshot named
    ``chain_id``."""

    chain_id: Digest
    diff_id: Digest
    parent: Digest | None  # the chain ID below, None for a bottom layer
    size: int  # unpacked bytes
    digest: Digest | None = None  # compressed blob, when known
    media_type: str | None = None
    compressed_size: int | None = None
    created: float = 0.0


@dataclass(frozen=True)
class ImageRecord:
    id: Digest  # the config digest
    layers: tuple[Digest, ...] = ()  # chain IDs, bottom first
    size: int = 0
    parent: Digest | None = None
    created: float = 0.0
    last_used: float | None = None
    content: tuple[Digest, ...] = ()  # manifests etc. kept alive with it


@dataclass(frozen=True)
class RefRecord:
    ref: str
    image_id: Digest
    kind: str  # TAG or DIGEST
    created: float = 0.0


def _d(text: str | None) -> Digest | None:
    return Digest.parse(text) if text is not None else None


def _layer(row: sqlite3.Row) -> LayerRecord:
    return LayerRecord(
        chain_id=Digest.parse(row["chain_id"]), diff_id=Digest.parse(row["diff_id"]),
        parent=_d(row["parent"]), size=row["size"], digest=_d(row["digest"]),
        media_type=row["media_type"], compressed_size=row["compressed_size"], created=row["created"])


class MetadataStore:
    """Images, references and layers over a :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate(COMPONENT, MIGRATIONS)

    def transaction(self):
        return self.db.transaction()

    # --- layers ---------------------------------------------------------
    def put_layer(self, layer: LayerRecord) -> LayerRecord:
        """Record a layer (idempotent).  If it exists, fills in the
        compressed digest/media type when they were unknown; returns the
        stored record."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM layers WHERE chain_id = ?", (str(layer.chain_id),)).fetchone()
            if row is None:
                if layer.parent is not None and conn.execute(
                        "SELECT 1 FROM layers WHERE chain_id = ?", (str(layer.parent),)).fetchone() is None:
                    raise FailedPrecondition(f"layer {layer.chain_id}: parent layer {layer.parent} is not recorded")
                conn.execute(
                    "INSERT INTO layers (chain_id, diff_id, parent, size, digest, media_type, compressed_size, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (str(layer.chain_id), str(layer.diff_id), _s(layer.parent), layer.size, _s(layer.digest),
                     layer.media_type, layer.compressed_size, layer.created or time.time()))
            else:
                existing = _layer(row)
                if existing.diff_id != layer.diff_id or existing.parent != layer.parent:
                    raise AlreadyExists(f"layer {layer.chain_id} is recorded with a different diff_id or parent")
                if layer.digest is not None and existing.digest is None:
                    conn.execute("UPDATE layers SET digest = ?, media_type = ?, compressed_size = ? WHERE chain_id = ?",
                                 (str(layer.digest), layer.media_type, layer.compressed_size, str(layer.chain_id)))
            return _layer(conn.execute("SELECT * FROM layers WHERE chain_id = ?", (str(layer.chain_id),)).fetchone())

    def get_layer(self, chain_id: Digest | str) -> LayerRecord:
        row = self.db.query_one("SELECT * FROM layers WHERE chain_id = ?", (str(Digest.parse(chain_id)),))
        if row is None:
            raise NotFound(f"no such layer: {chain_id}")
        return _layer(row)

    def has_layer(self, chain_id: Digest | str) -> bool:
        return self.db.query_one("SELECT 1 FROM layers WHERE chain_id = ?", (str(chain_id),)) is not None

    def layers(self) -> list[LayerRecord]:
        return [_layer(r) for r in self.db.query("SELECT * FROM layers ORDER BY created")]

    def layer_by_digest(self, digest: Digest | str) -> LayerRecord | None:
        """A layer whose compressed blob is ``digest`` (to skip a download)."""
        row = self.db.query_one("SELECT * FROM layers WHERE digest = ? LIMIT 1", (str(digest),))
        return _layer(row) if row else None

    def layer_users(self, chain_id: Digest | str) -> list[Digest]:
        """IDs of images that use the layer."""
        rows = self.db.query("SELECT DISTINCT image_id FROM image_layers WHERE chain_id = ?", (str(chain_id),))
        return [Digest.parse(r[0]) for r in rows]

    def delete_layer(self, chain_id: Digest | str) -> None:
        """Forget a layer no image and no child layer uses."""
        key = str(chain_id)
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM layers WHERE chain_id = ?", (key,)).fetchone() is None:
                raise NotFound(f"no such layer: {chain_id}")
            if conn.execute("SELECT 1 FROM image_layers WHERE chain_id = ? LIMIT 1", (key,)).fetchone():
                raise FailedPrecondition(f"layer {chain_id} is used by an image")
            if conn.execute("SELECT 1 FROM layers WHERE parent = ? LIMIT 1", (key,)).fetchone():
                raise FailedPrecondition(f"layer {chain_id} has child layers")
            conn.execute("DELETE FROM layers WHERE chain_id = ?", (key,))

    # --- images -----------------------------------------------------------
    def put_image(self, image: ImageRecord) -> ImageRecord:
        """Record an image whose layers are recorded already.  Idempotent:
        storing an image again keeps its creation time and adds any new
        ``content`` digests."""
        key = str(image.id)
        with self.db.transaction() as conn:
            for chain in image.layers:
                if conn.execute("SELECT 1 FROM layers WHERE chain_id = ?", (str(chain),)).fetchone() is None:
                    raise FailedPrecondition(f"image {image.id}: layer {chain} is not recorded")
            row = conn.execute("SELECT * FROM images WHERE id = ?", (key,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO images (id, created, size, parent, last_used) VALUES (?, ?, ?, ?, ?)",
                             (key, image.created or time.time(), image.size, _s(image.parent), image.last_used))
                conn.executemany("INSERT INTO image_layers (image_id, position, chain_id) VALUES (?, ?, ?)",
                                 [(key, i, str(c)) for i, c in enumerate(image.layers)])
            else:
                stored = [Digest.parse(r[0]) for r in conn.execute(
                    "SELECT chain_id FROM image_layers WHERE image_id = ? ORDER BY position", (key,))]
                if tuple(stored) != tuple(image.layers):
                    raise AlreadyExists(f"image {image.id} is recorded with different layers")
                if image.parent is not None and row["parent"] is None:
                    conn.execute("UPDATE images SET parent = ? WHERE id = ?", (str(image.parent), key))
            conn.executemany("INSERT OR IGNORE INTO image_content (image_id, digest) VALUES (?, ?)",
                             [(key, str(d)) for d in image.content])
        return self.get_image(image.id)

    def get_image(self, image_id: Digest | str) -> ImageRecord:
        key = str(Digest.parse(image_id))
        conn = self.db.connection()
        # One read transaction, so the rows belong to one state.
        with self.db.reading():
            row = conn.execute("SELECT * FROM images WHERE id = ?", (key,)).fetchone()
            if row is None:
                raise NotFound(f"no such image: {image_id}")
            layers = conn.execute("SELECT chain_id FROM image_layers WHERE image_id = ? ORDER BY position",
                                  (key,)).fetchall()
            content = conn.execute("SELECT digest FROM image_content WHERE image_id = ? ORDER BY digest",
                                   (key,)).fetchall()
        return ImageRecord(
            id=Digest.parse(row["id"]), layers=tuple(Digest.parse(r[0]) for r in layers), size=row["size"],
            parent=_d(row["parent"]), created=row["created"], last_used=row["last_used"],
            content=tuple(Digest.parse(r[0]) for r in content))

    def has_image(self, image_id: Digest | str) -> bool:
        return self.db.query_one("SELECT 1 FROM images WHERE id = ?", (str(image_id),)) is not None

    def image_ids(self) -> list[Digest]:
        return [Digest.parse(r[0]) for r in self.db.query("SELECT id FROM images ORDER BY created")]

    def images(self) -> list[ImageRecord]:
        return [self.get_image(i) for i in self.image_ids()]

    def find_images(self, prefix: str) -> list[Digest]:
        """Image IDs starting with ``prefix`` (hex, with or without
        ``sha256:``), for Docker's short IDs."""
        hexpart = prefix[len("sha256:"):] if prefix.startswith("sha256:") else prefix
        if not hexpart or any(c not in "0123456789abcdef" for c in hexpart):
            return []
        rows = self.db.query("SELECT id FROM images WHERE id >= ? AND id < ?",
                             (f"sha256:{hexpart}", f"sha256:{hexpart}\uffff"))
        return [Digest.parse(r[0]) for r in rows]

    def children(self, image_id: Digest | str) -> list[Digest]:
        rows = self.db.query("SELECT id FROM images WHERE parent = ?", (str(image_id),))
        return [Digest.parse(r[0]) for r in rows]

    def touch_image(self, image_id: Digest | str, when: float | None = None) -> None:
        """Record that the image was used (run, built on) now."""
        cur = self.db.execute("UPDATE images SET last_used = ? WHERE id = ?",
                              (when if when is not None else time.time(), str(image_id)))
        if cur.rowcount == 0:
            raise NotFound(f"no such image: {image_id}")

    def delete_image(self, image_id: Digest | str) -> list[str]:
        """Remove the image, its references and layer links; returns the
        references removed.  Layers and blobs are left for GC."""
        key = str(Digest.parse(image_id))
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM images WHERE id = ?", (key,)).fetchone() is None:
                raise NotFound(f"no such image: {image_id}")
            refs = [r[0] for r in conn.execute("SELECT ref FROM image_refs WHERE image_id = ? ORDER BY ref", (key,))]
            conn.execute("DELETE FROM image_refs WHERE image_id = ?", (key,))
            conn.execute("DELETE FROM image_layers WHERE image_id = ?", (key,))
            conn.execute("DELETE FROM image_content WHERE image_id = ?", (key,))
            conn.execute("UPDATE images SET parent = NULL WHERE parent = ?", (key,))
            conn.execute("DELETE FROM images WHERE id = ?", (key,))
        return refs

    # --- references ---------------------------------------------------------
    def set_ref(self, ref: str, image_id: Digest | str, kind: str = TAG) -> Digest | None:
        """Point ``ref`` (a normalised reference string) at an image;
        returns the image it pointed at before, if any other."""
        if kind not in (TAG, DIGEST):
            raise InvalidArgument(f"invalid reference kind {kind!r}")
        if not ref or not isinstance(ref, str):
            raise InvalidArgument(f"invalid reference {ref!r}")
        key = str(Digest.parse(image_id))
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM images WHERE id = ?", (key,)).fetchone() is None:
                raise NotFound(f"no such image: {image_id}")
            row = conn.execute("SELECT image_id FROM image_refs WHERE ref = ?", (ref,)).fetchone()
            conn.execute(
                "INSERT INTO image_refs (ref, image_id, kind, created) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(ref) DO UPDATE SET image_id = excluded.image_id, kind = excluded.kind,"
                " created = excluded.created",
                (ref, key, kind, time.time()))
        previous = Digest.parse(row[0]) if row else None
        return previous if previous is not None and str(previous) != key else None

    def remove_ref(self, ref: str) -> Digest:
        """Remove a reference; returns the image it named."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT image_id FROM image_refs WHERE ref = ?", (ref,)).fetchone()
            if row is None:
                raise NotFound(f"no such image: {ref}")
            conn.execute("DELETE FROM image_refs WHERE ref = ?", (ref,))
        return Digest.parse(row[0])

    def resolve_ref(self, ref: str) -> Digest:
        row = self.db.query_one("SELECT image_id FROM image_refs WHERE ref = ?", (ref,))
        if row is None:
            raise NotFound(f"no such image: {ref}")
        return Digest.parse(row[0])

    def get_ref(self, ref: str) -> RefRecord | None:
        row = self.db.query_one("SELECT * FROM image_refs WHERE ref = ?", (ref,))
        return RefRecord(row["ref"], Digest.parse(row["image_id"]), row["kind"], row["created"]) if row else None

    def refs(self, image_id: Digest | str | None = None, kind: str | None = None) -> list[RefRecord]:
        """References, of one image and/or one kind, sorted by ref."""
        sql, params = "SELECT * FROM image_refs WHERE 1", []
        if image_id is not None:
            sql += " AND image_id = ?"
            params.append(str(image_id))
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        rows = self.db.query(sql + " ORDER BY ref", params)
        return [RefRecord(r["ref"], Digest.parse(r["image_id"]), r["kind"], r["created"]) for r in rows]

    # --- for garbage collection ---------------------------------------------
    def referenced_blobs(self) -> set[str]:
        """Digests (as strings) that images keep: configs, their layers'
        compressed blobs, and their extra content."""
        rows = self.db.query(
            "SELECT id FROM images"
            " UNION SELECT l.digest FROM layers l JOIN image_layers il ON il.chain_id = l.chain_id"
            "  WHERE l.digest IS NOT NULL"
            " UNION SELECT digest FROM image_content")
        return {r[0] for r in rows}

    def referenced_layers(self) -> set[str]:
        """Chain IDs used by some image."""
        return {r[0] for r in self.db.query("SELECT DISTINCT chain_id FROM image_layers")}

    def layer_blobs(self, chain_ids: Iterable[str]) -> set[str]:
        wanted = list(chain_ids)
        result: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            rows = self.db.query(
                f"SELECT digest FROM layers WHERE digest IS NOT NULL AND chain_id IN ({','.join('?' * len(chunk))})",
                chunk)
            result.update(r[0] for r in rows)
        return result


def _s(d: Digest | None) -> str | None:
    return str(d) if d is not None else None


__all__ = ["COMPONENT", "MIGRATIONS", "TAG", "DIGEST", "LayerRecord", "ImageRecord", "RefRecord", "MetadataStore"]
