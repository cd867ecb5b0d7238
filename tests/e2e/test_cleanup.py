"""The fixtures leave no process behind: a daemon that died with its
containers running (as after a failed test) still gets its zygote, its
supervisors and their containers stopped at clean-up."""

from __future__ import annotations

import json
import os
import signal

from container.cleanup import supervisor_processes
from e2e.conftest import new_e2e_daemon


def test_cleanup_after_the_daemon_died_leaves_no_supervisor(test_id):
    e2e = new_e2e_daemon()
    try:
        r = e2e.docker("run", "-d", "--name", f"orphan-{test_id}", "busybox", "sleep", "300")
        assert r.returncode == 0, r.stderr
        info = json.loads(e2e.docker("inspect", f"orphan-{test_id}").stdout)[0]
        container_pid = info["State"]["Pid"]
        state_dir = e2e.daemon.exec_root / "supervisors"
        assert len(supervisor_processes(state_dir)) == 2  # the zygote and the container's supervisor
        # The daemon dies: the clean-up cannot remove the container through it.
        e2e.daemon.stop(signal.SIGKILL)
    finally:
        e2e.cleanup()
    assert supervisor_processes(state_dir) == []
    assert not os.path.exists(f"/proc/{container_pid}")
