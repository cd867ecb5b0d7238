"""Live-restore through the real daemon: containers outlive ``kill -9`` of
dockyardd; a new dockyardd on the same data root re-adopts them (ps,
continuous logs, exec, stop, wait work) and reports the true exit code of
one that ended while no daemon was running."""

from __future__ import annotations

import json
import os
import re
import signal
import time

from e2e.conftest import new_e2e_daemon
from testlib import ok as _ok

COUNTER = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done"


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"^line (\d+)$", text, re.M)]


def test_kill_9_and_restart(test_id):
    e2e = new_e2e_daemon()
    try:
        names = [f"live{i}-{test_id}" for i in range(5)]
        for name in names:
            _ok(e2e.docker("run", "-d", "--name", name, "busybox", "sh", "-c", COUNTER))
        short = f"short-{test_id}"
        _ok(e2e.cli("run", "-d", "--name", short, "busybox", "sh", "-c", "echo going; sleep 2; exit 7"))
        pids = {name: int(_ok(e2e.docker("inspect", "-f", "{{.State.Pid}}", name))) for name in names}
        time.sleep(0.5)
        at_kill = {name: max(_numbers(_ok(e2e.docker("logs", name))) or [0]) for name in names}

        assert e2e.daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        # Nobody watches: the short one exits, the counters keep counting.
        time.sleep(3.0)
        for name, pid in pids.items():
            os.kill(pid, 0)  # still alive: the daemon's death did not touch them

        e2e.daemon.start()
        running = _ok(e2e.docker("ps", "--format", "{{.Names}} {{.Status}}")).splitlines()
        assert sorted(line.split()[0] for line in running) == sorted(names)
        assert all(" Up " in f" {line} " for line in running)
        for name, pid in pids.items():
            info = json.loads(_ok(e2e.docker("inspect", name)))[0]
            assert info["State"]["Running"] is True and info["State"]["Pid"] == pid
            # Logs are continuous: every line, including those written while
            # the daemon was down (~30 of them), in order, no gap.
            numbers = _numbers(_ok(e2e.docker("logs", name)))
            assert numbers == list(range(len(numbers))), name
            assert numbers[-1] >= at_kill[name] + 20, (name, at_kill[name], numbers[-1])
        state = json.loads(_ok(e2e.docker("inspect", short)))[0]["State"]
        assert (state["Status"], state["ExitCode"], state["Running"]) == ("exited", 7, False)
        assert _ok(e2e.docker("logs", short)) == "going\n"
        # Re-adopted means managed again: exec, stop, wait, follow.
        assert _ok(e2e.docker("exec", names[0], "echo", "exec-after-restore")) == "exec-after-restore\n"
        assert _ok(e2e.cli("exec", names[1], "sh", "-c", "exit 0")) == ""
        _ok(e2e.docker("kill", names[2]))
        assert _ok(e2e.docker("wait", names[2])) == "137\n"
        assert _ok(e2e.cli("stop", "-t", "1", names[3])) == names[3] + "\n"
        assert _ok(e2e.docker("inspect", "-f", "{{.State.Status}}", names[3])) == "exited\n"
        stats = _ok(e2e.docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", names[4])).split()
        assert stats[0] == names[4] and int(stats[1]) >= 1
        _ok(e2e.docker("rm", "-f", *names, short))
        for pid in pids.values():
            _wait_gone(pid)
    finally:
        e2e.cleanup()


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} is still alive after rm -f")
