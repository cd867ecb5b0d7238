"""Teardown help for fixtures that run containers: stop the supervisor
zygote of a private state dir and whatever supervisors (and their
containers) are still running from it, whether or not the test and its
own clean-up got that far.

Supervisors are forked from the zygote, so they carry its command line
(``python -c "from dockyard.runtime.supervisor.zygote import main; main()"
<state dir> <fd>``): the state dir in the command line tells which are a
fixture's own, even after a daemon that knew them was killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

ZYGOTE_MARK = b"dockyard.runtime.supervisor.zygote"


def _cmdline(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def supervisor_processes(state_dir: Path | str) -> list[int]:
    """Pids of the zygote and supervisors started for ``state_dir``."""
    wanted = os.fsencode(str(Path(state_dir).absolute()))
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        args = _cmdline(int(entry))
        if any(ZYGOTE_MARK in a for a in args) and wanted in args:
            found.append(int(entry))
    return found


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if os.path.exists(f"/proc/{pid}")]
        if left:
            time.sleep(0.02)
    return left


def reap_supervisors(state_dir: Path | str, containers_dir: Path | str | None = None) -> None:
    """Stop the zygote of ``state_dir``, then every supervisor it forked:
    their containers first (found from the supervisors' state files under
    ``containers_dir``, and only if still the supervisor's child), so that
    each supervisor records the exit and cleans up after its container
    itself; whatever is left after a few seconds is killed."""
    from dockyard.runtime.supervisor import SupervisorClient

    with contextlib.suppress(Exception):
        SupervisorClient(Path(state_dir)).stop_zygote()
    ours = supervisor_processes(state_dir)
    if not ours:
        return
    if containers_dir is not None:
        for state in Path(containers_dir).glob("*/supervisor/state.json"):
            with contextlib.suppress(OSError, ValueError, TypeError):
                pid = int(json.loads(state.read_text()).get("pid") or 0)
                if pid and _ppid(pid) in ours:
                    os.kill(pid, signal.SIGKILL)
    left = _wait_gone(ours, 5.0)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_gone(left, 5.0)
