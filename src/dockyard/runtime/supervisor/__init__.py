"""Per-container supervisors: the processes that hold a container's stdio,
wait for it and record its exit, so the daemon can stop, restart or crash
without touching running containers.

Pieces: :mod:`.zygote` (a prepared process that forks supervisors),
:mod:`.server` (the supervisor's loop), :mod:`.client` (what the daemon
calls), :mod:`.protocol` (files and wire format), :mod:`.spec` (values).

The names below are imported on first use: the zygote imports this
package on its way to :mod:`.zygote` and needs none of the client's
imports (every module it holds is memory each supervisor maps).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "SupervisorClient": ".client", "SupervisorHandle": ".client", "Stream": ".client",
    "SupervisorSpec": ".spec", "SupervisorInfo": ".spec", "ExitStatus": ".spec",
}

if TYPE_CHECKING:
    from .client import Stream, SupervisorClient, SupervisorHandle
    from .spec import ExitStatus, SupervisorInfo, SupervisorSpec


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = ["SupervisorClient", "SupervisorHandle", "Stream", "SupervisorSpec", "SupervisorInfo", "ExitStatus"]
