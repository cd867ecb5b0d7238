"""Restart policies, healthchecks, AutoRemove of detached containers and
name rules, seen through the docker CLI and Dockyard's."""

from __future__ import annotations

import functools
import json

from testlib import ok as _ok
from testlib import wait_for


_eventually = functools.partial(wait_for, timeout=20.0, interval=0.1)


def test_on_failure_restarts_then_gives_up(e2e, test_id):
    name = f"flaky-{test_id}"
    _ok(e2e.docker("run", "-d", "--name", name, "--restart", "on-failure:2", "busybox", "sh", "-c",
                   "echo run; exit 1"))

    def settled():
        info = json.loads(_ok(e2e.docker("inspect", name)))[0]
        return info if info["State"]["Status"] == "exited" and info["RestartCount"] == 2 else None

    info = _eventually(settled, what="two restarts")
    assert info["State"]["ExitCode"] == 1
    assert _ok(e2e.docker("logs", name)) == "run\nrun\nrun\n"
    _ok(e2e.cli("rm", name))


def test_healthcheck_states(e2e, test_id):
    good, bad = f"healthy-{test_id}", f"sick-{test_id}"
    _ok(e2e.cli("run", "-d", "--name", good, "--health-cmd", "true", "--health-interval", "200ms",
                "busybox", "sleep", "60"))
    _ok(e2e.docker("run", "-d", "--name", bad, "--health-cmd", "exit 1", "--health-interval", "200ms",
                   "--health-retries", "2", "busybox", "sleep", "60"))
    _eventually(lambda: _ok(e2e.docker("inspect", "-f", "{{.State.Health.Status}}", good)) == "healthy\n",
                what="healthy")
    _eventually(lambda: _ok(e2e.docker("inspect", "-f", "{{.State.Health.Status}}", bad)) == "unhealthy\n",
                what="unhealthy")
    assert "(healthy)" in _ok(e2e.cli("ps", "--filter", f"name={good}", "--format", "{{.Status}}"))
    assert _ok(e2e.docker("ps", "-q", "--filter", "health=unhealthy", "--filter", f"name={bad}")).strip()
    _ok(e2e.docker("rm", "-f", good, bad))


def test_detached_rm_and_name_rules(e2e, test_id):
    name = f"gone-{test_id}"
    _ok(e2e.docker("run", "-d", "--rm", "--name", name, "busybox", "sh", "-c", "sleep 0.3"))
    _eventually(lambda: e2e.docker("inspect", name).returncode == 1, what="auto-removal")
    bad = e2e.docker("create", "--name", "bad name!", "busybox")
    assert bad.returncode == 1 and b"Invalid container name (bad name!)" in bad.stderr
    # Renaming onto a taken name is a conflict; the old name stays.
    a, b = f"a-{test_id}", f"b-{test_id}"
    _ok(e2e.cli("create", "--name", a, "busybox"))
    _ok(e2e.cli("create", "--name", b, "busybox"))
    r = e2e.cli("rename", a, b)
    assert r.returncode == 1 and b"is already in use" in r.stderr
    _ok(e2e.docker("rm", a, b))
    # Restart policy changed on a live container.
    live = f"live-{test_id}"
    _ok(e2e.cli("run", "-d", "--name", live, "busybox", "sleep", "60"))
    _ok(e2e.docker("update", "--restart", "always", live))
    assert _ok(e2e.docker("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", live)) == "always\n"
    _ok(e2e.docker("rm", "-f", live))
