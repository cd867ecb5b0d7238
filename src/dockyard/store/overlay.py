"""The overlay snapshotter: each layer unpacked once, in its own directory;
a container's root filesystem is ``overlay(lowers = its image's layer
dirs, upper, work)``.

Mounts it returns (lowers are short links ``<root>/l/<id36>``, topmost
first):

* active, no parent: ``bind`` of its ``fs`` dir, read-write;
* active with parents: ``overlay`` with ``upperdir=<fs>``,
  ``workdir=<work>``, ``lowerdir=<ancestors>``;
* view of one layer: read-only ``bind`` of that layer's dir; of several:
  ``overlay`` with only ``lowerdir``; of nothing: read-only bind of an
  empty dir.

Overlay options always include ``index=off``, ``redirect_dir=off`` and
``metacopy=off``: an upper dir then holds every changed file in full,
with deletions as overlay whiteouts (char device 0/0) and replaced
directories marked opaque (xattr ``trusted.overlay.opaque=y``), and
nothing else.  That is what makes the upper dir a complete *diff*, which
the image layer turns into a layer tar.

For the image layer:

* ``upper_dir(key)``: the writable dir of an active snapshot.  A layer tar
  may be applied straight into it (no mount needed) as long as the
  applier writes whiteouts in overlay's form (``.wh.name`` -> char 0/0
  ``name``; ``.wh..wh..opq`` -> ``trusted.overlay.opaque=y`` on the dir).
  This is how each layer is unpacked once: ``prepare(key, parent)``,
  apply into ``upper_dir(key)``, ``commit(chain_id, key)``.
* ``chain_dirs(name)``: a committed chain's layer dirs, top first (for
  export/flatten); ``lower_dirs(key)``: a snapshot's ancestors.
* ``backing_fs``: the filesystem type under the root (``ext4``, ``xfs``...),
  what ``usage`` measures on.

Mount with :mod:`dockyard.store.mounting`; images of hundreds of layers
mount too (see :mod:`dockyard.linux.overlay`).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..errors import FailedPrecondition, Unavailable
from ..linux.mount import mountinfo
from .fs_snapshotter import DirectorySnapshotter
from .snapshot import Kind, Mount

#: what every overlay mount carries (see module docstring)
OVERLAY_OPTIONS = ("index=off", "redirect_dir=off", "metacopy=off")


def filesystem_type(path: str | os.PathLike) -> str:
    """The type of the filesystem holding ``path`` (from mountinfo)."""
    dev = os.stat(path).st_dev
    wanted = f"{os.major(dev)}:{os.minor(dev)}"
    best = ""
    best_type = "unknown"
    real = os.path.realpath(path)
    for m in mountinfo():
        if m.major_minor != wanted:
            continue
        mp = m.mount_point
        if (real == mp or real.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
            best, best_type = mp, m.fstype
    return best_type


def _mangle(text: str) -> bytes:
    """``text`` as /proc/self/mountinfo writes it (space, tab, newline and
    backslash as octal escapes)."""
    raw = os.fsencode(text)
    for ch in b"\\ \t\n":
        raw = raw.replace(bytes([ch]), b"\\%03o" % ch)
    return raw


def overlay_supported() -> bool:
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False


class OverlaySnapshotter(DirectorySnapshotter):
    """Snapshots on overlayfs.  See the module docstring."""

    uses_links = True
    uses_workdir = True

    def __init__(self, root: str | os.PathLike) -> None:
        if not overlay_supported():
            raise Unavailable("overlay snapshotter: the kernel has no overlay filesystem (modprobe overlay)")
        os.makedirs(root, exist_ok=True)
        fstype = filesystem_type(root)
        if fstype in ("overlay", "aufs"):
            raise Unavailable(f"overlay snapshotter: {root} is on {fstype}, which cannot hold overlay upper dirs")
        self.backing_fs = fstype
        super().__init__(root)

    def _mounts(self, row: sqlite3.Row, ancestors: list[sqlite3.Row]) -> list[Mount]:
        fs = str(self._fs(row["id"]))
        if row["kind"] == Kind.ACTIVE:
            if not ancestors:
                return [Mount("bind", fs, ("rw", "rbind"))]
            return [Mount("overlay", "overlay", OVERLAY_OPTIONS + (
                f"workdir={self._dir(row['id']) / 'work'}",
                f"upperdir={fs}",
                "lowerdir=" + ":".join(str(self._link(a["id"])) for a in ancestors),
            ))]
        # a view
        if not ancestors:
            return [Mount("bind", fs, ("ro", "rbind"))]
        if len(ancestors) == 1:
            return [Mount("bind", str(self._fs(ancestors[0]["id"])), ("ro", "rbind"))]
        return [Mount("overlay", "overlay", OVERLAY_OPTIONS + (
            "lowerdir=" + ":".join(str(self._link(a["id"])) for a in ancestors),
        ))]

    def remove(self, key: str) -> None:
        """As the Protocol says, plus: an active snapshot still mounted as
        an overlay's upper dir (a live container's rootfs) is refused with
        FailedPrecondition instead of being deleted under its user."""
        with self.db.reading() as conn:
            row = self._row(conn, key)
        if row["kind"] == Kind.ACTIVE:
            option = f"upperdir={self._fs(row['id'])}"
            # Most removals are of unmounted snapshots: a substring test of
            # the raw table (escaped as the kernel escapes it) settles those
            # without parsing every line.
            with open("/proc/self/mountinfo", "rb") as f:
                table = f.read()
            if _mangle(option) in table:
                for m in mountinfo():
                    if m.fstype == "overlay" and option in m.super_options:
                        raise FailedPrecondition(f"snapshot {key} is mounted at {m.mount_point}; unmount it first")
        super().remove(key)

    def upper_dir(self, key: str) -> Path:
        """The writable directory of active snapshot ``key``."""
        with self.db.reading() as conn:
            row = self._row(conn, key)
        if row["kind"] != Kind.ACTIVE:
            raise FailedPrecondition(f"snapshot {key} is {row['kind']}; only an active snapshot has an upper dir")
        return self._fs(row["id"])

    def work_dir(self, key: str) -> Path:
        with self.db.reading() as conn:
            return self._dir(self._row(conn, key)["id"]) / "work"
