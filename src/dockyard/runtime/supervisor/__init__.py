"""Per-container supervisors: the processes that hold a container's stdio,
wait for it and record its exit, so the daemon can stop, restart or crash
without touching running containers.

Pieces: :mod:`.zygote` (a prepared process that forks supervisors),
:mod:`.server` (the supervisor's loop), :mod:`.client` (what the daemon
calls), :mod:`.protocol` (files and wire format), :mod:`.spec` (values).
"""

from .client import Stream, SupervisorClient, SupervisorHandle
from .spec import ExitStatus, SupervisorInfo, SupervisorSpec

__all__ = ["SupervisorClient", "SupervisorHandle", "Stream", "SupervisorSpec", "SupervisorInfo", "ExitStatus"]
