"""Garbage collection: remove what nothing references, never what something
does.

Roots (kept, with everything they reach):

* every image record: its config blob, its layers (records, committed
  snapshots named by chain ID, compressed blobs) and its extra content;
* every live lease: the blobs and snapshots it holds, and snapshots
  labelled with its id (``LEASE_LABEL``);
* every active or view snapshot *without* a lease label (a container's
  root filesystem), and anything labelled ``GC_ROOT_LABEL``;
* the ancestors of every kept snapshot and layer.

Collected: the rest - blobs, committed snapshots, layer records, and
active/view snapshots whose lease label names a dead lease (a load that
crashed half-way: the "extract" snapshots).  Dead leases (expired, or
owned by a process that is gone) are deleted first.

Races: ``collect`` lists candidates *before* reading references, so
anything created while it runs is not a candidate.  A writer that finds
something existing and then relies on it ("the blob is there, skip the
download") must add it to its lease first and look second, both under
``GCLock.shared()``; ``collect`` runs under ``GCLock.exclusive()``.  The
lock is an ``flock`` on ``<root>/gc.lock``, so it works across threads
and processes alike.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..errors import FailedPrecondition, NotFound
from .leases import CONTENT, GC_ROOT_LABEL, LEASE_LABEL, SNAPSHOT
from .snapshot import Info, Kind

if TYPE_CHECKING:
    from . import Store


class GCLock:
    """Readers-writer lock over a file: ``shared()`` for work that adds
    references, ``exclusive()`` for collection.  Each use opens its own
    file description, so threads of one process exclude each other too -
    which also means a thread holding ``shared()`` must not call
    ``collect()`` (it would wait for itself)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.touch(exist_ok=True)

    @contextlib.contextmanager
    def _locked(self, how: int) -> Iterator[None]:
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, how)
            yield
        finally:
            os.close(fd)  # releases the flock

    def shared(self):
        return self._locked(fcntl.LOCK_SH)

    def exclusive(self):
        return self._locked(fcntl.LOCK_EX)


@dataclass(frozen=True)
class GCReport:
    """What was (or, with ``dry_run``, would be) removed."""

    dry_run: bool
    leases: tuple[str, ...] = ()
    snapshots: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    blobs: tuple[str, ...] = ()
    ingests: tuple[str, ...] = ()
    reclaimed_bytes: int = 0
    errors: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not (self.leases or self.snapshots or self.layers or self.blobs or self.ingests)


def _snapshot_order(doomed: set[str], infos: dict[str, Info]) -> list[str]:
    """Children before parents."""
    depth: dict[str, int] = {}

    def depth_of(name: str) -> int:
        if name not in depth:
            parent = infos[name].parent if name in infos else None
            depth[name] = 0 if parent is None or parent not in infos else depth_of(parent) + 1
        return depth[name]

    return sorted(doomed, key=lambda n: (-depth_of(n), n))


def collect(store: Store, dry_run: bool = False, now: float | None = None) -> GCReport:
    """Mark and sweep.  See the module docstring for what is kept."""
    now = time.time() if now is None else now
    with store.gc_lock.exclusive():
        return _collect(store, dry_run, now)


def _collect(store: Store, dry_run: bool, now: float) -> GCReport:
    meta, leases, sn, content = store.metadata, store.leases, store.snapshotter, store.content
    errors: list[str] = []

    # Dead leases go first: what they held becomes unprotected below.
    dead_leases = leases.expire(now, dry_run=dry_run)

    # Candidates before references (see "Races").
    blob_candidates = {str(b.digest): b.size for b in content.walk()}
    snapshots = {info.name: info for info in sn.walk()}

    live = leases.live_ids(now)
    held_content = leases.held(CONTENT, now)
    held_snapshots = leases.held(SNAPSHOT, now)
    image_layers = meta.referenced_layers()

    # --- snapshots ---
    keep: set[str] = set()
    for name, info in snapshots.items():
        lease = info.labels.get(LEASE_LABEL)
        if GC_ROOT_LABEL in info.labels or name in held_snapshots or (lease is not None and lease in live):
            keep.add(name)
        elif info.kind in (Kind.ACTIVE, Kind.VIEW):
            if lease is None:
                keep.add(name)  # a container's rootfs or someone's view
        elif name in image_layers:
            keep.add(name)
    for name in list(keep):
        parent = snapshots[name].parent
        while parent is not None and parent not in keep:
            keep.add(parent)
            parent = snapshots[parent].parent if parent in snapshots else None
    doomed_snapshots = _snapshot_order(set(snapshots) - keep, snapshots)

    # --- layer records ---
    layers = {str(layer.chain_id): layer for layer in meta.layers()}
    keep_layers = {c for c in layers if c in image_layers or c in held_snapshots or c in keep}
    for chain in list(keep_layers):
        parent = layers[chain].parent
        while parent is not None and str(parent) not in keep_layers:
            keep_layers.add(str(parent))
            parent = layers[str(parent)].parent if str(parent) in layers else None
    doomed_layers = sorted(set(layers) - keep_layers,
                           key=lambda c: -_layer_depth(c, layers))

    # --- blobs ---
    keep_blobs = meta.referenced_blobs() | held_content | {
        str(layers[c].digest) for c in keep_layers if layers[c].digest is not None}
    doomed_blobs = sorted(set(blob_candidates) - keep_blobs)
    reclaimed = sum(blob_candidates[d] for d in doomed_blobs)

    if not dry_run:
        for name in doomed_snapshots:
            try:
                sn.remove(name)
            except NotFound:
                pass
            except FailedPrecondition as exc:  # a child appeared meanwhile
                errors.append(str(exc))
        for chain in doomed_layers:
            try:
                meta.delete_layer(chain)
            except NotFound:
                pass
            except FailedPrecondition as exc:
                errors.append(str(exc))
        for digest in doomed_blobs:
            with contextlib.suppress(NotFound):
                content.delete(digest)

    return GCReport(dry_run, tuple(dead_leases), tuple(doomed_snapshots), tuple(doomed_layers),
                    tuple(doomed_blobs), (), reclaimed, tuple(errors))


def _layer_depth(chain: str, layers: dict) -> int:
    depth = 0
    parent = layers[chain].parent
    while parent is not None and str(parent) in layers and depth < 10_000:
        depth += 1
        parent = layers[str(parent)].parent
    return depth


__all__ = ["GCLock", "GCReport", "collect"]
