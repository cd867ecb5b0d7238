"""The zygote's warm-up of the supervisor's own path runs the real code on
dummy fds and must leave the zygote as it found it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import os, signal, sys
    from dockyard.runtime.supervisor import server
    import dockyard.logs
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    before = sorted(os.listdir("/proc/self/fd"))
    directory = sys.argv[1]
    server.warm_up(directory, {"log_driver": "json-file", "log_module": "dockyard.logs"}, rounds=3)
    after = sorted(os.listdir("/proc/self/fd"))
    assert before == after, (before, after)
    assert os.listdir(directory) == [], os.listdir(directory)
    assert signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN
    assert signal.set_wakeup_fd(-1) == -1  # none was installed
    print("ok")
""")


def test_warm_up_leaves_no_fd_file_or_handler(tmp_path):
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
