"""dockyard.store: content store, metadata DB, snapshotters, leases, GC.

Open everything under one data root with :func:`open_store`::

    from dockyard.store import open_store
    store = open_store("/var/lib/dockyard")      # crash leftovers cleaned here
    store.content      # LocalContentStore   (blobs by digest)
    store.metadata     # MetadataStore       (images, refs, layers)
    store.leases       # LeaseManager        (GC protection for work in flight)
    store.snapshotter  # OverlaySnapshotter  (or NativeSnapshotter)
    store.db           # Database            (other layers: db.migrate("containers", [...]))
    store.collect()    # garbage collection (dry_run=True to preview)
    store.discard(path)  # delete a tree under the root off the caller's path
    store.close()

Layout of a data root::

    <root>/metadata.db                  SQLite, WAL (images, refs, layers, leases, + other layers' tables)
    <root>/content/blobs/sha256/<hex>   blobs, read-only
    <root>/content/ingest/              blobs being written
    <root>/snapshots/<driver>/          the snapshotter's own root
    <root>/gc.lock                      see dockyard.store.gc
    <root>/trash/                       trees being deleted by discard()

Modules, each with the details in its docstring:

``content``   ContentStore Protocol, LocalContentStore, Writer, BlobInfo
``db``        Database: per-thread connections, transaction(), migrate()
``metadata``  MetadataStore, ImageRecord, LayerRecord, RefRecord
``snapshot``  Snapshotter Protocol, Mount, Info, Kind, Usage
``overlay``   OverlaySnapshotter (upper_dir, chain_dirs, backing_fs)
``native``    NativeSnapshotter (copies; no overlayfs needed)
``mounting``  mount_all / unmount / mounted: performing Mount lists
``leases``    LeaseManager, LEASE_LABEL, GC_ROOT_LABEL
``gc``        collect(), GCLock, GCReport
``reaper``    Reaper: deletes renamed-away trees on a background thread

Loading an image, the intended sequence (the image layer's job)::

    with store.leases.lease() as lease, store.gc_lock.shared():
        store.ingest(config_bytes, expected=config_digest, lease=lease.id)
        for each layer (bottom first):
            store.leases.add_resource(lease.id, "snapshot", chain_id)
            if not store.snapshotter has chain_id:
                key = f"extract-{random} {chain_id}"
                sn.prepare(key, parent_chain_id, labels={LEASE_LABEL: lease.id})
                apply the layer tar into sn.upper_dir(key)
                sn.commit(chain_id, key)       # AlreadyExists: sn.remove(key), someone else won
            store.metadata.put_layer(LayerRecord(chain_id, diff_id, parent, size, digest, media_type))
        with store.metadata.transaction():
            store.metadata.put_image(ImageRecord(config_digest, chain_ids, size, ...))
            store.metadata.set_ref("docker.io/library/busybox:latest", config_digest)
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import InvalidArgument
from ..oci.digest import Digest
from .content import BlobInfo, CheckReport, ContentStore, LocalContentStore, Writer
from .db import Database
from .gc import GCLock, GCReport, collect
from .leases import CONTENT, GC_ROOT_LABEL, LEASE_LABEL, SNAPSHOT, Lease, LeaseManager
from .metadata import DIGEST, TAG, ImageRecord, LayerRecord, MetadataStore, RefRecord
from .mounting import mount_all, mounted, unmount
from .native import NativeSnapshotter
from .overlay import OverlaySnapshotter
from .reaper import Reaper
from .snapshot import Info, Kind, Mount, Snapshotter, Usage

#: snapshotter name -> class
SNAPSHOTTERS: dict[str, type] = {"overlay": OverlaySnapshotter, "native": NativeSnapshotter}


@dataclass
class Store:
    """Everything under one data root.  Thread-safe; close once."""

    root: Path
    db: Database
    content: LocalContentStore
    metadata: MetadataStore
    leases: LeaseManager
    snapshotter: OverlaySnapshotter | NativeSnapshotter
    snapshotter_name: str
    gc_lock: GCLock
    _reaper: Reaper = field(default_factory=lambda: Reaper("dockyard-trash"), repr=False)

    @property
    def trash(self) -> Path:
        return self.root / "trash"

    def discard(self, path: str | os.PathLike) -> None:
        """Delete the tree at ``path`` (on the data root's filesystem) without
        waiting for it: it is renamed into ``<root>/trash`` at once - gone
        for every reader - and deleted on a background thread.  The caller
        unmounts anything under it first.  Trash left by a crash is emptied
        by the next ``open_store(cleanup=True)``.  A missing path is fine."""
        self.trash.mkdir(exist_ok=True)
        doomed = self.trash / secrets.token_hex(8)
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        except OSError:
            # another filesystem (EXDEV) or an odd path: delete in place
            shutil.rmtree(path, ignore_errors=True)
            return
        self._reaper.reap(doomed)

    def ingest(self, source: bytes | BinaryIO, expected: Digest | str | None = None, size: int | None = None,
               *, lease: str | None = None, ref: str | None = None) -> BlobInfo:
        """Ingest a blob; with ``lease``, the blob is added to the lease
        before it becomes visible (so GC can never take it in between)."""
        def protect(digest: Digest) -> None:
            self.leases.add_resource(lease, CONTENT, str(digest))

        return self.content.ingest(source, expected, size, ref=ref,
                                   before_publish=protect if lease is not None else None)

    def collect(self, dry_run: bool = False) -> GCReport:
        return collect(self, dry_run=dry_run)

    def close(self) -> None:
        self._reaper.drain()
        self.snapshotter.close()
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(root: str | os.PathLike, snapshotter: str = "overlay", cleanup: bool = True) -> Store:
    """Open (creating if needed) the store under ``root``.  With
    ``cleanup``, crash leftovers go: ingest temp files no writer holds,
    snapshot dirs without a record, dead leases and whatever only they
    protected (see :mod:`dockyard.store.gc`)."""
    if snapshotter not in SNAPSHOTTERS:
        raise InvalidArgument(f"unknown snapshotter {snapshotter!r} (known: {', '.join(sorted(SNAPSHOTTERS))})")
    root = Path(os.path.abspath(root))
    root.mkdir(parents=True, exist_ok=True)
    db = Database(root / "metadata.db")
    try:
        metadata = MetadataStore(db)
        content = LocalContentStore(root / "content")
        sn = SNAPSHOTTERS[snapshotter](root / "snapshots" / snapshotter)
    except BaseException:
        db.close()
        raise
    store = Store(root, db, content, metadata, LeaseManager(db), sn, snapshotter, GCLock(root / "gc.lock"))
    if cleanup:
        try:
            content.cleanup_ingests()
            if store.trash.is_dir():
                for entry in os.scandir(store.trash):
                    store._reaper.reap(entry.path)
            store.collect()
            # Start-up is not in a hurry: leave the disk as clean as the
            # records (what collect removed is deleted in the background).
            store._reaper.drain()
            sn.drain()
        except BaseException:
            store.close()
            raise
    return store


__all__ = [
    "Store", "open_store", "SNAPSHOTTERS",
    "BlobInfo", "CheckReport", "ContentStore", "LocalContentStore", "Writer",
    "Database",
    "GCLock", "GCReport", "collect",
    "CONTENT", "SNAPSHOT", "GC_ROOT_LABEL", "LEASE_LABEL", "Lease", "LeaseManager",
    "DIGEST", "TAG", "ImageRecord", "LayerRecord", "MetadataStore", "RefRecord",
    "mount_all", "mounted", "unmount",
    "NativeSnapshotter", "OverlaySnapshotter",
    "Info", "Kind", "Mount", "Snapshotter", "Usage",
]
