"""Values exchanged with a supervisor: what to run (:class:`SupervisorSpec`),
what runs (:class:`SupervisorInfo`) and how it ended (:class:`ExitStatus`).

NamedTuples, not dataclasses: the zygote imports this module, and a
dataclass compiles its generated methods at import (and, for its
defaults, pulls in more); NamedTuples are immutable values just the same."""

from __future__ import annotations

import time
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple

#: default of mapping fields (shared, so it must not be mutable)
_NO_OPTIONS: Mapping[str, str] = MappingProxyType({})


class SupervisorSpec(NamedTuple):
    """How a supervisor runs one container.

    The log driver is named, not imported, here: the supervisor imports
    ``log_module`` (default ``dockyard.logs``) by name and calls its
    ``open_copier(log_driver, log_path, log_options)``, so the runtime
    layer never imports the logs layer statically.
    """

    bundle: str
    #: registry name (native, runc, crun) or absolute path of a runc-compatible binary
    runtime: str = "native"
    runtime_root: str | None = None
    #: give the container a stdin pipe (docker run -i / OpenStdin)
    stdin: bool = False
    #: close the container's stdin when the first attached client closes its
    #: write side (docker run -i with a pipe, StdinOnce)
    stdin_once: bool = True
    log_driver: str = "none"
    log_path: str | None = None
    log_options: Mapping[str, str] = _NO_OPTIONS
    log_module: str = "dockyard.logs"
    #: OCI linux.cgroupsPath, recorded for the caller.  OOM kills are counted
    #: in the memory cgroup found from /proc/<init pid>/cgroup, which is right
    #: whatever path a runtime chose.
    cgroups_path: str = ""
    #: initial terminal size (height, width) when process.terminal is true
    console_size: tuple[int, int] | None = None
    #: start right after create; False leaves it created until ``start``
    #: (so a client can attach before any output is produced)
    start: bool = True
    #: after init exits, how long to wait for the output pipes to close
    #: (a process that escaped the pid namespace may hold them)
    drain_timeout: float = 2.0
    #: process.terminal of the bundle, when the caller knows it (it made
    #: the bundle); None: read from config.json
    terminal: bool | None = None

    def to_json(self) -> dict[str, Any]:
        doc = self._asdict()
        doc["log_options"] = dict(self.log_options)
        doc["console_size"] = list(self.console_size) if self.console_size else None
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "SupervisorSpec":
        known = {k: v for k, v in doc.items() if k in cls._fields}
        if known.get("console_size"):
            known["console_size"] = tuple(known["console_size"])
        known["log_options"] = dict(known.get("log_options") or {})
        return cls(**known)


class ExitStatus(NamedTuple):
    """How a container ended, as recorded in ``exit.json``."""

    exit_code: int
    signal: int | None = None  # the signal that killed init, if one did
    oom_killed: bool = False
    started_at: str = ""  # RFC 3339 with nanoseconds
    finished_at: str = ""
    pid: int = 0
    error: str = ""  # set when the supervisor could not observe a real exit

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "ExitStatus":
        return cls(**{k: v for k, v in doc.items() if k in cls._fields})

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


class SupervisorInfo(NamedTuple):
    """What the client knows about one container's supervisor."""

    container_id: str
    directory: str
    supervisor_pid: int
    pid: int  # the container's init, host pid
    status: str  # created, running, paused, exited, lost (supervisor died without a record)
    started_at: str = ""
    tty: bool = False
    stdin: bool = False
    exit: ExitStatus | None = None

    @property
    def alive(self) -> bool:
        return self.status not in ("exited", "lost")


def rfc3339nano(ns: int | None = None) -> str:
    """RFC 3339 UTC with nanoseconds, trailing zeros trimmed (Go's
    RFC3339Nano, which Docker's StartedAt/FinishedAt use)."""
    if ns is None:
        ns = time.time_ns()
    seconds, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return (f"{base}.{frac:09d}".rstrip("0") if frac else base) + "Z"
