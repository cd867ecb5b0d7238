"""Healthchecks: probe a running container on its schedule and keep its
Health state as Docker does.

Schedule: a probe every ``Interval`` (``StartInterval`` while within
``StartPeriod`` of the start), each limited to ``Timeout``.  A probe is an
exec of ``Test[1:]`` (``CMD``) or of the container's shell with ``Test[1]``
(``CMD-SHELL``).  Exit 0 is healthy.  A failure counts towards
``Retries`` unless the container never was healthy and is still within its
start period; ``Retries`` failures in a row make it unhealthy.  The last
five results are kept; every status change emits ``health_status: <s>``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ..errors import DockyardError
from .model import HEALTH_OUTPUT_LIMIT, HEALTHY, RUNNING, STARTING, UNHEALTHY, HealthResult, format_time, parse_time

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger("dockyard.container.health")

NANO = 1_000_000_000
#: exit code Docker records for a probe that timed out or could not run
PROBE_FAILED = -1


def probe_argv(config: dict[str, Any], test: list[str]) -> list[str]:
    if test[0] == "CMD-SHELL":
        shell = list(config.get("Shell") or ["/bin/sh", "-c"])
        return shell + [test[1]]
    return list(test[1:])


def next_status(status: str, streak: int, exit_code: int, *, retries: int, in_start_period: bool) -> tuple[str, int]:
    """Docker's transition on one probe result: (new status, failing streak)."""
    if exit_code == 0:
        return HEALTHY, 0
    if status == STARTING and in_start_period:
        return status, streak
    streak += 1
    if streak >= retries:
        return UNHEALTHY, streak
    return status, streak


async def run_health_checks(service: ContainerService, cid: str, settings: dict[str, Any]) -> None:
    """The probe loop of one container run (cancelled when it stops)."""
    interval = settings["Interval"] / NANO
    start_interval = settings["StartInterval"] / NANO
    start_period = settings["StartPeriod"] / NANO
    timeout = settings["Timeout"] / NANO
    retries = settings["Retries"]
    while True:
        c = service._records.get(cid)
        if c is None or c.state.status != RUNNING and c.state.status != "paused":
            return
        started = parse_time(c.state.started_at)
        in_start = time.time() - started < start_period
        health = c.state.health
        never_healthy = health is None or health.status == STARTING
        await asyncio.sleep(start_interval if (in_start and never_healthy and start_period) else interval)
        c = service._records.get(cid)
        if c is None or c.state.status != RUNNING:
            if c is not None and c.state.status == "paused":
                continue  # no probes while paused
            return
        argv = probe_argv(c.config, settings["Test"])
        start_text = format_time()
        start_ts = time.time()
        try:
            exit_code, output = await service._exec_probe(cid, argv, timeout)
        except DockyardError as exc:
            exit_code, output = PROBE_FAILED, str(exc)
        except asyncio.TimeoutError:
            exit_code, output = PROBE_FAILED, f"Health check exceeded timeout ({_duration(timeout)})"
        c = service._records.get(cid)
        if c is None or c.state.health is None or c.state.status not in (RUNNING, "paused"):
            return
        result = HealthResult(start=start_text, end=format_time(), exit_code=exit_code,
                              output=output[:HEALTH_OUTPUT_LIMIT])
        in_start_period = start_ts - parse_time(c.state.started_at) < start_period
        old = c.state.health
        status, streak = next_status(old.status, old.failing_streak, exit_code, retries=retries,
                                     in_start_period=in_start_period)
        service._set_state(c, health=old.record(result, status, streak))
        if status != old.status:
            service._emit(c, f"health_status: {status}")


def _duration(seconds: float) -> str:
    """Go's time.Duration formatting for whole and fractional seconds."""
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    if seconds >= 1:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"
