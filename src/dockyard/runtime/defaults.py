"""Docker's defaults that belong to a container's OCI runtime config and
that both makers of bundles here use: ``dockyard-runtime spec`` (the
native runtime's example spec) and the container service (every
``docker run``).  One list each, so the two cannot drift apart.

Importing this module imports nothing else: the container layer reads it
on its create path.
"""

from __future__ import annotations

#: Docker's default ``linux.maskedPaths``: hidden from the container (an
#: empty read-only tmpfs over directories, /dev/null over files).
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)

#: Docker's default ``linux.readonlyPaths``: bind-mounted read-only.
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)
