"""The runtime interface: an OCI bundle in, a process in namespaces out.

Terms (OCI runtime spec, "Runtime and Lifecycle"):

bundle
    A directory holding ``config.json`` and the root filesystem it names
    (``root.path``, usually ``rootfs``).  The runtime reads nothing else.
container id
    The caller's name for the container, unique within a runtime ``root``
    (the state directory, e.g. ``/run/dockyard-runtime``).

Lifecycle, the same for every implementation (native, runc, crun):

1. ``create(id, bundle)`` builds the environment: namespaces, mounts,
   cgroup, then leaves the container's init process waiting before it
   execs the user program.  Hooks prestart/createRuntime/createContainer
   run.  Returns the init pid; status is ``created``.
2. ``start(id)`` lets init exec ``process.args``; startContainer and
   poststart hooks run; status is ``running``.
3. The process exits; status becomes ``stopped``.  Its exit status goes to
   whoever waits for it: the init is re-parented to the nearest *child
   subreaper* of the caller (``prctl(PR_SET_CHILD_SUBREAPER)``), so a
   supervisor that sets that flag before ``create`` can ``waitpid`` it.
4. ``delete(id)`` removes what create made (cgroup, state); poststop hooks
   run.  ``delete(id, force=True)`` kills a running container first.

``exec`` starts another process inside a running container's namespaces
and cgroup; ``kill`` signals init (or every process with ``all=True``);
``pause``/``resume`` freeze and thaw the cgroup.

Standard I/O: without a terminal, the container's fds 0-2 are the ``Stdio``
fds given (or the caller's own when ``None``).  With ``process.terminal``
true, the runtime makes a pty and sends its master fd over the unix socket
``console_socket`` with SCM_RIGHTS, as runc does.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

#: OCI state "status" values, plus "paused" which runc and crun report too.
CREATING, CREATED, RUNNING, STOPPED, PAUSED = "creating", "created", "running", "stopped", "paused"


@dataclass(frozen=True)
class State:
    """The OCI state of a container (``runc state`` JSON)."""

    id: str
    status: str
    pid: int
    bundle: str
    oci_version: str = "1.0.2"
    annotations: dict[str, str] = field(default_factory=dict)
    created: str | None = None  # RFC 3339, when known

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": self.status,
            "pid": self.pid,
            "bundle": self.bundle,
        }
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        if self.created:
            doc["created"] = self.created
        return doc


@dataclass(frozen=True)
class Stdio:
    """File descriptors to become the container process's 0, 1 and 2.

    ``None`` for one of them means "inherit the caller's"; to give the
    process nothing, pass an fd open on /dev/null.
    """

    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None


@runtime_checkable
class Runtime(Protocol):
    """An OCI runtime driven as a library.  Implementations: the native one
    (``dockyard.runtime.native``) and runc/crun (``dockyard.runtime.external``).

    Errors: ``NotFound`` for an unknown id, ``AlreadyExists`` for a taken id,
    ``InvalidArgument`` for a bad config.json (the message names the field),
    ``FailedPrecondition`` for a wrong state (start of a running container),
    ``Unavailable`` when the implementation is not installed.
    """

    name: str
    root: Path

    def create(self, container_id: str, bundle: Path, *, stdio: Stdio | None = None,
               console_socket: Path | None = None, pid_file: Path | None = None) -> int: ...

    def start(self, container_id: str) -> None: ...

    def state(self, container_id: str) -> State: ...

    def list(self) -> list[State]: ...

    def kill(self, container_id: str, sig: int = signal.SIGTERM, *, all: bool = False) -> None: ...

    def delete(self, container_id: str, *, force: bool = False) -> None: ...

    def exec(self, container_id: str, process: dict[str, Any], *, stdio: Stdio | None = None,
             console_socket: Path | None = None, pid_file: Path | None = None) -> int:
        """Start ``process`` (an OCI ``process`` object) in the container and
        return its host pid without waiting; it is re-parented like init."""
        ...

    def ps(self, container_id: str) -> list[int]: ...

    def pause(self, container_id: str) -> None: ...

    def resume(self, container_id: str) -> None: ...
