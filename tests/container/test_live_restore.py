"""Live-restore: containers outlive the daemon (killed with -9) and a new
service re-adopts them; exits that happened meanwhile are reported with
their true exit code; AutoRemove and restart policies apply."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

COUNTER = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done"


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"^line (\d+)$", text, re.M)]


def test_live_restore_after_kill_9(env, tmp_path):
    report = tmp_path / "ids.json"
    request = {
        "data_root": str(env.root / "data"), "runtime_root": str(env.runtime_root), "runtime": env.runtime,
        "supervisor_root": str(env.supervisor_root),
        "cgroup_parent": env.cgroup_parent,
        "containers": {
            **{f"counter{i}": {"cmd": ["sh", "-c", COUNTER]} for i in range(4)},
            "exits7": {"cmd": ["sh", "-c", "echo going; sleep 1.5; exit 7"]},
            "autorm": {"cmd": ["sh", "-c", "sleep 1.5"], "host_config": {"AutoRemove": True}},
            "always": {"cmd": ["sh", "-c", "echo run; sleep 1.5; exit 3"],
                       "host_config": {"RestartPolicy": {"Name": "always"}}},
        },
    }
    daemon = subprocess.Popen([sys.executable, str(Path(__file__).with_name("daemonlike.py")),
                               json.dumps(request), str(report)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not report.exists():
            assert daemon.poll() is None, daemon.communicate()[1].decode()[-3000:]
            assert time.monotonic() < deadline, "the daemon-like process did not report"
            time.sleep(0.05)
        ids = json.loads(report.read_text())
    finally:
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait()
    # Nobody watches now; the short-lived ones exit while "down".
    time.sleep(2.5)
    for name in ("counter0", "counter1", "counter2", "counter3"):
        os.kill(ids[name]["pid"], 0)  # still alive: the daemon's death did not touch them

    env.service = env.new_service()   # a new daemon: re-adopt
    svc = env.service

    for i in range(4):
        cid = ids[f"counter{i}"]["id"]
        info = env.inspect(cid)
        assert info["State"]["Running"] is True and info["State"]["Pid"] == ids[f"counter{i}"]["pid"]
    # One exited while down: its true exit code, not a guess.
    info = env.inspect(ids["exits7"]["id"])
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 7
    assert env.logs(ids["exits7"]["id"]) == "going\n"
    # AutoRemove applies to an exit that happened while down.
    env.wait_for(lambda: all(c["Id"] != ids["autorm"]["id"] for c in env.run(svc.list(all=True))),
                 what="autoremove after restore")
    # A restart policy resumes.
    env.wait_for(lambda: env.inspect(ids["always"]["id"])["RestartCount"] >= 1, what="restart after restore")
    env.wait_for(lambda: env.logs(ids["always"]["id"]).count("run\n") >= 2, what="second run's output")

    # Logs are continuous: the supervisor kept writing while no daemon ran,
    # and keeps writing after.
    cid = ids["counter0"]["id"]
    before = _numbers(env.logs(cid))
    env.wait_for(lambda: len(_numbers(env.logs(cid))) > len(before) + 5, what="more log lines")
    numbers = _numbers(env.logs(cid))
    assert numbers == list(range(len(numbers)))  # no gap, no duplicate
    assert len(numbers) >= 25  # seconds of output, written across the kill

    # Re-adopted containers are fully managed: wait, stop, top, stats.
    assert env.run(svc.top(cid))["Processes"]
    result = {}

    async def stop_and_wait():
        waiter = env.loop.create_task(svc.wait(cid, "next-exit"))
        await svc.stop(cid, timeout=1)
        result.update(await waiter)

    env.run(stop_and_wait())
    assert result["StatusCode"] == 137 or result["StatusCode"] == 143
    assert env.inspect(cid)["State"]["Status"] == "exited"
    # The others keep running; a third service instance (no kill) sees them.
    env.run(svc.close())
    env.service = env.new_service()
    assert sum(1 for c in env.run(env.service.list()) if c["Id"] in {ids[f"counter{i}"]["id"] for i in range(1, 4)}) == 3


def test_close_never_kills(env):
    cid = env.create(["sleep", "100"])
    env.run(env.service.start(cid))
    pid = env.inspect(cid)["State"]["Pid"]
    env.run(env.service.close())
    time.sleep(0.3)
    os.kill(pid, 0)
    env.service = env.new_service()
    assert env.inspect(cid)["State"]["Running"] is True


def test_exit_while_down_without_record_is_marked(env):
    cid = env.create(["sleep", "100"])
    env.run(env.service.start(cid))
    pid = env.inspect(cid)["State"]["Pid"]
    env.run(env.service.close())
    # Kill the supervisor and the container behind the service's back: no
    # exit status gets recorded.
    c = env.service._records[cid]
    os.kill(c.supervisor["supervisor_pid"], signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    env.service = env.new_service()
    info = env.inspect(cid)
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 255
    assert "exit status unknown" in info["State"]["Error"] or "without recording" in info["State"]["Error"]


def test_policies_on_daemon_start(env):
    always = env.create(["sleep", "100"], {"RestartPolicy": {"Name": "always"}})
    unless = env.create(["sleep", "100"], {"RestartPolicy": {"Name": "unless-stopped"}})
    plain = env.create(["sleep", "100"])
    for cid in (always, unless, plain):
        env.run(env.service.start(cid))
        env.run(env.service.stop(cid, timeout=1))
    env.run(env.service.close())
    env.service = env.new_service()
    env.wait_for(lambda: env.inspect(always)["State"]["Running"], what="always container back")
    env.run(asyncio.sleep(0.3))
    assert not env.inspect(unless)["State"]["Running"]   # stopped by hand: stays stopped
    assert not env.inspect(plain)["State"]["Running"]
