"""Deleting trees off the caller's path.

A removed snapshot is first renamed out of sight (``rm-<id>``) and its
record deleted, in the caller's transaction; what is left is an invisible
directory whose deletion the caller need not wait for.  :class:`Reaper`
deletes such trees on one background thread, so ``remove`` answers after
a rename instead of after walking and unlinking the tree (for 100
containers removed in parallel, that walk was a third of the daemon's
samples).

Crash safety comes from the names, not from the thread: whatever is still
queued when the process dies is an ``rm-*`` directory without a record,
which the next exclusive opener of the root deletes
(``DirectorySnapshotter.cleanup``).  :meth:`Reaper.drain` waits for what is
queued, so ``close()`` leaves nothing behind for a test or a shutdown.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import deque
from pathlib import Path


class Reaper:
    """One lazily started daemon thread deleting queued trees in order."""

    def __init__(self, name: str = "dockyard-reaper") -> None:
        self._name = name
        self._queue: deque[Path] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def reap(self, path: str | os.PathLike) -> None:
        """Delete ``path`` (already invisible to readers) soon."""
        with self._cond:
            if self._thread is None or self._pid != os.getpid():
                # A forked child gets no copy of the thread: start its own.
                self._queue.clear()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.append(Path(path))
            self._cond.notify()

    def drain(self) -> None:
        """Return once every tree queued so far is deleted."""
        with self._cond:
            while (self._queue or self._busy) and self._pid == os.getpid():
                self._cond.wait()

    def _run(self) -> None:
        # Not niced: a low-priority thread preempted while it holds the GIL
        # would stall the request threads it was meant to yield to.
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                path = self._queue.popleft()
                self._busy = True
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


__all__ = ["Reaper"]
