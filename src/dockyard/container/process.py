"""How the container service runs a container's processes: the interface
to the per-container supervisor (implemented in :mod:`.supervised` over
dockyard.runtime.supervisor).

Terms:

supervisor
    A small process per container, not a child of the daemon, that starts
    the container from its bundle through an OCI runtime, holds its stdio
    (writing output to the log driver), waits for it and records its exit
    status in a file.  It outlives the daemon, so a daemon restart loses
    nothing (live-restore).
handle
    What the service persists to find a supervisor again after a restart:
    a JSON-able dict whose keys only the backend interprets.

Lifecycle, as the service drives it::

    handle = backend.spawn(request)            # the container is running
    status = await backend.wait_exit(handle)   # ... it exited
    backend.release(handle)                    # supervisor files removed

After a daemon restart: ``backend.exit_status(handle)`` says whether it
exited meanwhile (and how); ``backend.alive(handle)`` whether it still
runs; ``wait_exit`` works on a re-adopted handle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class LogSpec:
    driver: str
    path: str | None
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SpawnRequest:
    container_id: str
    bundle: Path
    runtime: str
    runtime_root: Path
    state_dir: Path                 # where the supervisor keeps its files
    log: LogSpec
    tty: bool = False
    open_stdin: bool = False
    #: close the container's stdin when the first attached client closes its side
    stdin_once: bool = False
    #: initial terminal size (height, width)
    console_size: tuple[int, int] | None = None
    #: cgroup of the container, for OOM accounting
    cgroups_path: str = ""
    #: start the container at once; False leaves it created so clients can
    #: attach before it produces any output (``start(handle)`` then)
    start: bool = True


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int
    oom_killed: bool = False
    finished_at: str = ""           # RFC 3339
    error: str = ""
    started_at: str = ""            # RFC 3339, when the process was started (the supervisor's clock)


class ProcessBackend(Protocol):
    def spawn(self, request: SpawnRequest, prepare: Callable[[], None] | None = None) -> dict[str, Any]:
        """Start the container under a new supervisor and return its handle
        once the container process runs.  Raises a DockyardError (the
        runtime's) when it could not start; nothing is left behind then.
        ``prepare`` makes the bundle: the backend calls it (in the calling
        thread) while it readies the supervisor, and creates the container
        after; what it raises is raised, nothing spawned."""
        ...

    def start(self, handle: dict[str, Any]) -> None:
        """Start a container spawned with ``start=False``."""
        ...

    def pid(self, handle: dict[str, Any]) -> int:
        """Host pid of the container's init."""
        ...

    def alive(self, handle: dict[str, Any]) -> bool:
        """Whether the supervisor still runs (the container may be exiting)."""
        ...

    def exit_status(self, handle: dict[str, Any]) -> ExitStatus | None:
        """The recorded exit, or None while the container runs."""
        ...

    async def wait_exit(self, handle: dict[str, Any]) -> ExitStatus:
        """Wait (without a thread) until the container exited."""
        ...

    def release(self, handle: dict[str, Any]) -> None:
        """Forget a container whose exit was consumed: remove the
        supervisor's files and the runtime's state."""
        ...

    # stdio, relayed by the supervisor: blocking calls returning its
    # framed streams (see dockyard.runtime.supervisor.protocol)

    def attach(self, handle: dict[str, Any], *, stdin: bool, stdout: bool, stderr: bool, start: bool = False) -> Any:
        """A stream of the container's output from now on (and its stdin);
        ``start``: then start a container spawned with ``start=False``, no
        output lost (``start(handle)`` in the same trip)."""
        ...

    def exec(self, handle: dict[str, Any], process: dict[str, Any], *, exec_id: str, tty: bool, stdin: bool,
             detach: bool, console_size: tuple[int, int] | None = None, record: bool = True) -> Any:
        """A stream whose EXIT frame carries the exit code, or the pid when
        ``detach``.  ``record=False``: nothing is kept for ``exec_inspect``
        (health probes: their caller reads the code from the stream)."""
        ...

    def exec_inspect(self, handle: dict[str, Any], exec_id: str) -> dict[str, Any]: ...

    def resize(self, handle: dict[str, Any], height: int, width: int, exec_id: str | None = None) -> None: ...

    def close_stdin(self, handle: dict[str, Any]) -> None: ...
