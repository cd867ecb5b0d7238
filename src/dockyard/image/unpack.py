"""Concurrent layer unpacking for the overlay snapshotter.

On overlay every layer is its own directory, and what a layer tar puts
there does not depend on the layers below it.  So layers can be unpacked
side by side, on all cores, before their stacking order is even known
(while a ``docker save`` archive is still being read, its manifest coming
last), and stacked afterwards:

1. *loose*: ``prepare("extract-* loose <blob>", parent=None)`` and apply
   the blob into that snapshot's upper dir, in a worker thread;
2. *stack*: once the layer's parent chain is committed,
   ``prepare("extract-* <chain>", parent)``, move the loose tree's entries
   into the new upper dir (renames within one filesystem: cheap), remove
   the loose snapshot, commit under the chain ID.

Both snapshots carry the operation's lease label, so a crash at any point
leaves only collectable leftovers; a loose snapshot that is never stacked
(a speculation that was not a layer after all, or an error elsewhere) is
removed by :meth:`LayerUnpacker.close`.

Progress callbacks may come from the worker threads; they are serialised.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from ..errors import AlreadyExists, NotFound
from ..oci.digest import Digest
from ..store import LEASE_LABEL
from .apply import AppliedLayer, ApplyOptions, WhiteoutMode, apply_layer
from .compression import Compression, detect
from .progress import LOADING_LAYER, ProgressEvent, ProgressFn, short


def looks_like_layer(head: bytes) -> bool:
    """Whether a blob's first bytes (at least 512) start a layer: a known
    compression, or a tar header ("ustar" magic at offset 257)."""
    if detect(head) is not Compression.NONE:
        return True
    return head[257:262] == b"ustar" or (len(head) >= 1024 and head[:1024] == bytes(1024))


def move_tree(src: Path, dst: Path) -> None:
    """Move the content of directory ``src`` into the empty directory
    ``dst`` on the same filesystem, and give ``dst`` the owner, mode,
    xattrs (an opaque marker among them) and times of ``src``."""
    src_b, dst_b = os.fsencode(src), os.fsencode(dst)
    st = os.lstat(src_b)  # before the renames, which touch its mtime
    for name in os.listdir(src_b):
        os.rename(src_b + b"/" + name, dst_b + b"/" + name)
    os.chown(dst_b, st.st_uid, st.st_gid)
    os.chmod(dst_b, stat.S_IMODE(st.st_mode))
    for key in os.listxattr(src_b):
        os.setxattr(dst_b, key, os.getxattr(src_b, key))
    os.utime(dst_b, ns=(st.st_atime_ns, st.st_mtime_ns))


class LayerUnpacker:
    """Loose unpacking jobs of one install operation (overlay only)."""

    def __init__(self, store, lease_id: str, options: ApplyOptions, progress: ProgressFn,
                 pool: ThreadPoolExecutor) -> None:
        """``pool`` is shared and long-lived: worker threads keep their
        database connections, so a pool per operation would pile them up."""
        self.store = store
        self.lease_id = lease_id
        self.options = ApplyOptions(whiteouts=WhiteoutMode.OVERLAY, allow_devices=options.allow_devices,
                                    same_owner=options.same_owner, limits=options.limits)
        self._progress_lock = threading.Lock()
        self._progress = progress
        self._pool = pool
        self._jobs: dict[Digest, Future] = {}
        self._lock = threading.Lock()

    def report(self, event: ProgressEvent) -> None:
        with self._progress_lock:
            self._progress(event)

    # -- loose unpacking --------------------------------------------------------

    def submit(self, blob: Digest) -> None:
        """Start unpacking ``blob`` loose (once per blob)."""
        with self._lock:
            if blob not in self._jobs:
                self._jobs[blob] = self._pool.submit(self._loose, blob)

    def submit_if_layer(self, blob: Digest) -> None:
        """Speculate: unpack ``blob`` if its first bytes look like a layer
        and no stored layer was made from it already."""
        meta = self.store.metadata
        if meta.layer_by_digest(blob) is not None:
            return
        with self.store.content.open(blob) as f:
            head = f.read(1024)
        if looks_like_layer(head):
            self.submit(blob)

    def _loose(self, blob: Digest) -> tuple[str, AppliedLayer]:
        sn = self.store.snapshotter
        key = f"extract-{secrets.token_hex(8)} loose {blob}"
        sn.prepare(key, None, labels={LEASE_LABEL: self.lease_id})
        try:
            label = short(blob)

            def on_bytes(n: int) -> None:
                self.report(ProgressEvent(LOADING_LAYER, label, n, None))

            with self.store.content.open(blob) as source:
                applied = apply_layer(source, sn.upper_dir(key), self.options, on_bytes)
            return key, applied
        except BaseException:
            with contextlib.suppress(NotFound):
                sn.remove(key)
            raise

    def has(self, blob: Digest) -> bool:
        with self._lock:
            return blob in self._jobs

    def take(self, blob: Digest) -> tuple[str, AppliedLayer]:
        """Wait for ``blob``'s loose unpack; the caller now owns the loose
        snapshot.  Re-raises the job's error (e.g. a malicious layer)."""
        with self._lock:
            future = self._jobs.pop(blob)
        return future.result()

    # -- stacking -----------------------------------------------------------------

    def stack(self, loose_key: str, parent: Digest | None, chain: Digest) -> None:
        """Commit the loose tree as snapshot ``chain`` over ``parent``."""
        sn = self.store.snapshotter
        if parent is None:
            try:
                sn.commit(str(chain), loose_key)
            except AlreadyExists:
                sn.remove(loose_key)
            return
        key = f"extract-{secrets.token_hex(8)} {chain}"
        try:
            sn.prepare(key, str(parent), labels={LEASE_LABEL: self.lease_id})
            try:
                move_tree(sn.upper_dir(loose_key), sn.upper_dir(key))
                sn.commit(str(chain), key)
            except BaseException:
                with contextlib.suppress(NotFound):
                    sn.remove(key)
                raise
        except AlreadyExists:
            pass  # another load committed this chain first
        finally:
            with contextlib.suppress(NotFound):
                sn.remove(loose_key)

    def close(self) -> None:
        """Wait for this operation's jobs; remove loose snapshots nobody
        took."""
        with self._lock:
            leftover = list(self._jobs.values())
            self._jobs.clear()
        sn = self.store.snapshotter
        for future in leftover:
            try:
                key, _ = future.result()
            except BaseException:  # its own snapshot is gone already
                continue
            with contextlib.suppress(NotFound):
                sn.remove(key)


Callback = Callable[[Digest], None]

__all__ = ["LayerUnpacker", "looks_like_layer", "move_tree"]
