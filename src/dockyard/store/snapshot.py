"""The snapshotter interface, in containerd's words.

Terms:

snapshot
    A directory tree the snapshotter manages, named by a *key* (active and
    view snapshots) or a *name* (committed snapshots).  Keys and names
    share one namespace: no two snapshots have the same one.
active
    Writable.  Made by ``prepare(key, parent)``: starts as the parent's
    content, and what its user writes lands in its own *upper* layer.
view
    Read-only.  Made by ``view(key, parent)``; cannot be committed.
committed
    Read-only and immutable.  ``commit(name, key)`` turns the active
    snapshot ``key`` into the committed snapshot ``name``; ``key`` is gone
    afterwards.  Only committed snapshots can be parents.
parent
    A committed snapshot's name, or ``None`` (start empty).

Lifecycle of an image layer (the image layer names snapshots by chain ID)::

    key = f"extract-{random} {chain_id}"
    mounts = sn.prepare(key, parent=parent_chain_id, labels={LEASE_LABEL: lease.id})
    ... fill it (mount ``mounts`` somewhere, or for the overlay
        snapshotter write straight into ``sn.upper_dir(key)``) ...
    sn.commit(chain_id, key)     # AlreadyExists if another load won: remove(key)

and of a container's root filesystem::

    mounts = sn.prepare(container_id, parent=top_chain_id)
    with mounted(mounts, rootfs_dir): ...run the container...
    sn.remove(container_id)

The snapshotter never mounts anything itself: ``prepare``/``view``/
``mounts`` return :class:`Mount` descriptions and the caller mounts them
(``dockyard.store.mounting.mount_all`` / ``mounted``).

``remove`` refuses (FailedPrecondition) a snapshot that has children.
Labels are free-form strings; ``dockyard.store.leases.LEASE_LABEL`` and
``GC_ROOT_LABEL`` are the ones garbage collection reads.

Implementations: ``OverlaySnapshotter`` (overlayfs, one directory per
layer, unpacked once) and ``NativeSnapshotter`` (plain copies; works on
any filesystem).  Both pass ``tests/store/snapshotter_suite.py``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterator, Protocol, runtime_checkable


class Kind(str, enum.Enum):
    ACTIVE = "active"
    VIEW = "view"
    COMMITTED = "committed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Mount:
    """One mount to perform, as for mount(8): ``mount -t type -o options
    source target``.  ``options`` mixes flags (``ro``, ``bind``) and
    filesystem data (``lowerdir=...``); ``dockyard.linux.mount.
    parse_options`` splits them."""

    type: str
    source: str
    options: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The OCI runtime spec's mount shape (minus destination)."""
        return {"type": self.type, "source": self.source, "options": list(self.options)}

    def option(self, name: str) -> str | None:
        """The value of ``name=value`` in options, or None."""
        prefix = name + "="
        for opt in self.options:
            if opt.startswith(prefix):
                return opt[len(prefix):]
        return None

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


@dataclass(frozen=True)
class Info:
    """What the snapshotter records about a snapshot."""

    kind: Kind
    name: str  # the key for active/view snapshots
    parent: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0


@dataclass(frozen=True)
class Usage:
    """Disk used by a snapshot's own layer (not its parents')."""

    size: int  # bytes (allocated blocks)
    inodes: int


@runtime_checkable
class Snapshotter(Protocol):
    """See the module docstring for the terms and lifecycle.  Every method
    is safe to call from several threads; errors are ``NotFound`` (no such
    key), ``AlreadyExists`` (key or name taken), ``FailedPrecondition``
    (wrong kind, has children), ``InvalidArgument`` (bad key)."""

    def stat(self, key: str) -> Info: ...

    def update(self, key: str, labels: dict[str, str]) -> Info:
        """Replace the labels of a snapshot (an empty value removes one)."""
        ...

    def usage(self, key: str) -> Usage: ...

    def mounts(self, key: str) -> list[Mount]:
        """Mounts for an active or view snapshot (again)."""
        ...

    def prepare(self, key: str, parent: str | None = None, labels: dict[str, str] | None = None) -> list[Mount]: ...

    def view(self, key: str, parent: str | None = None, labels: dict[str, str] | None = None) -> list[Mount]: ...

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> Info: ...

    def remove(self, key: str) -> None: ...

    def walk(self, kind: Kind | None = None, label: tuple[str, str | None] | None = None) -> Iterator[Info]:
        """Every snapshot, optionally only of ``kind`` and/or carrying label
        ``(name, value)`` (value None: any value)."""
        ...

    def close(self) -> None: ...


def valid_key(key: str) -> str:
    """Keys are non-empty, printable, without NUL or newlines; they never
    become paths, so anything else is allowed."""
    from ..errors import InvalidArgument

    if not isinstance(key, str) or not key or len(key) > 4096 or any(c in key for c in "\0\n"):
        raise InvalidArgument(f"invalid snapshot key {key!r}")
    return key


__all__ = ["Kind", "Mount", "Info", "Usage", "Snapshotter", "valid_key"]
