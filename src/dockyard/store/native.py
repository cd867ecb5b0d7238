"""The native snapshotter: every active or view snapshot is a full copy of
its parent chain (``cp -a``, keeping owners, modes, xattrs, hard links and
device nodes; reflinks where the filesystem has them).  Mounts are binds.

Slow and space-hungry, but needs no overlayfs: the fallback where the data
root sits on a filesystem overlay cannot use, and the second
implementation that keeps ``tests/store/snapshotter_suite.py`` honest
about what is generic.  ``fs_dir(key)`` is the whole tree.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from ..errors import Internal
from .fs_snapshotter import DirectorySnapshotter
from .snapshot import Kind, Mount


class NativeSnapshotter(DirectorySnapshotter):

    def _populate(self, fs: Path, ancestors: list[Path], kind: Kind) -> None:
        if not ancestors:
            return
        # The nearest committed ancestor already holds the whole tree.
        proc = subprocess.run(["cp", "-a", "--reflink=auto", "--", f"{ancestors[0]}/.", str(fs)],
                              capture_output=True, text=True)
        if proc.returncode:
            raise Internal(f"native snapshotter: copying {ancestors[0]} failed: {proc.stderr.strip()}")

    def _mounts(self, row: sqlite3.Row, ancestors: list[sqlite3.Row]) -> list[Mount]:
        mode = "rw" if row["kind"] == Kind.ACTIVE else "ro"
        return [Mount("bind", str(self._fs(row["id"])), (mode, "rbind"))]
