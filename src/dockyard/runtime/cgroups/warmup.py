"""Keep the kernel's cgroup-migration lock warm while containers start.

Why.  Moving a process into a cgroup (a write to ``cgroup.procs``) takes
the kernel's global ``cgroup_threadgroup_rwsem`` for writing.  That lock is
a per-cpu rwsem guarded by an RCU sync: the first writer after a quiet
spell waits for a full RCU grace period (4-20 ms on this kind of host)
before it may proceed; writers that come while the sync is still "passed"
(during and about one grace period after another writer) do not wait.
Every runtime pays this once per container start, on the critical path
between "fork the container's init" and "let it run" (runc and crun too;
only cgroup2's ``favordynmods`` mount option or ``CLONE_INTO_CGROUP`` avoid
it).

What.  While a caller holds :meth:`MigrationWarmer.held` (the container
service holds it from the start request until the runtime has created the
container), a thread moves the daemon into the cgroup it is already in, a
no-op migration, and repeats that every couple of milliseconds.  The first
such write waits out the grace period *in parallel* with the bundle's
preparation and the supervisor's spawn; the runtime's own migration then
finds the sync passed and takes microseconds.  Failures are ignored: this
only moves a wait off the critical path, it changes nothing anyone reads.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator

#: Repeat the no-op migration this often while held: well under the
#: shortest grace period, so the sync never falls back to idle.
INTERVAL = 0.002


def own_procs_file(root: str = "/sys/fs/cgroup") -> str | None:
    """The ``cgroup.procs`` of this process's own cgroup in one mounted
    hierarchy (the lock is global, any hierarchy will do), or None."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            candidates = (root, f"{root}/unified")   # cgroup2: pure, or hybrid
        else:
            first = controllers.split(",")[0].removeprefix("name=")
            candidates = (f"{root}/{controllers}", f"{root}/{first}")
        for mount in candidates:
            procs = f"{mount}{path.rstrip('/')}/cgroup.procs"
            if os.path.exists(procs):
                return procs
    return None


class MigrationWarmer:
    """See the module docstring.  Thread-safe; a process needs one
    (:func:`shared`), tests make their own."""

    def __init__(self, procs_file: str | None = None) -> None:
        self._procs_file = procs_file
        self._resolved = procs_file is not None
        self._holders = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._cond:
            self._holders += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cgroup-warmer", daemon=True)
                self._thread.start()
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._holders -= 1

    def _run(self) -> None:
        if not self._resolved:
            self._procs_file = own_procs_file()
            self._resolved = True
        procs, pid = self._procs_file, str(os.getpid()).encode()
        if procs is None:
            return
        while True:
            with self._cond:
                while self._holders == 0:
                    self._cond.wait()
            try:
                fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)
            except OSError:
                return  # not allowed here (or gone): nothing to warm
            with self._cond:
                if self._holders:
                    self._cond.wait(INTERVAL)


_shared: MigrationWarmer | None = None
_shared_lock = threading.Lock()


def shared() -> MigrationWarmer:
    """This process's warmer (one thread, however many services use it)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MigrationWarmer()
        return _shared
