"""The per-container supervisor with real containers under each runtime:
surviving its caller, re-adoption, exit records, stdin, tty, exec, OOM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dockyard.errors import AlreadyExists, FailedPrecondition, NotFound
from dockyard.logs import open_reader
from dockyard.runtime.supervisor import SupervisorClient, SupervisorHandle
from dockyard.runtime.supervisor import protocol as P
from supervisor_helpers import kill_pid, pid_alive, wait_for

PROC = {"cwd": "/", "env": ["PATH=/bin:/usr/bin"], "user": {"uid": 0, "gid": 0}}

DAEMON = r"""
import json, sys, time
from pathlib import Path
from dockyard.runtime.supervisor import SupervisorClient, SupervisorSpec
state_dir, cid, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
info = SupervisorClient(Path(state_dir)).spawn(cid, SupervisorSpec.from_json(spec))
print(json.dumps({"pid": info.pid, "supervisor_pid": info.supervisor_pid}), flush=True)
time.sleep(3600)
"""


def lines_of(harness, cid):
    return [e.line for e in open_reader("json-file", harness.log_path(cid)).read()]


def test_survives_caller_and_is_readopted(harness, make_bundle, test_id):
    """kill -9 the "daemon" that spawned a container: the container runs on,
    a new client re-adopts it (status, attach, exec, wait) and its log has
    every line, in order, across the daemon's death."""
    script = "i=0; while [ ! -e /tmp/stop ]; do echo line $i; i=$((i+1)); sleep 0.02; done; " \
             "echo bye; exit 7"
    bundle = make_bundle(["sh", "-c", script])
    spec = harness.spec(bundle, log_driver="json-file", log_path=str(harness.log_path(test_id)))
    harness.ids.append(test_id)
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, str(harness.state_dir), test_id,
                               json.dumps(spec.to_json())], stdout=subprocess.PIPE)
    try:
        started = json.loads(daemon.stdout.readline())
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait()
    finally:
        daemon.kill()
        daemon.wait()
        daemon.stdout.close()
    time.sleep(0.3)  # output keeps being logged while nobody is connected
    assert pid_alive(started["pid"]), "the container died with its caller"
    assert pid_alive(started["supervisor_pid"])

    client = SupervisorClient(harness.state_dir)  # the restarted daemon
    found = {i.container_id: i for i in client.list()}
    assert found[test_id].status == "running" and found[test_id].pid == started["pid"]
    handle = client.connect(test_id)
    status = handle.status()
    assert status.status == "running" and status.supervisor_pid == started["supervisor_pid"]

    with handle.attach() as stream:
        kind, payload = stream.read(timeout=10)
        assert kind == P.STDOUT and payload.startswith(b"line ")
    assert harness.runtime_name in ("runc", "crun", "native")
    code, out, err = handle.exec(dict(PROC, args=["sh", "-c", "echo from-exec; echo oops >&2; exit 3"])) \
        .communicate(timeout=30)
    assert (code, out, err) == (3, b"from-exec\n", b"oops\n")
    assert handle.exec(dict(PROC, args=["touch", "/tmp/stop"])).communicate(timeout=30)[0] == 0

    exit_status = handle.wait(timeout=30)
    assert exit_status.exit_code == 7 and exit_status.signal is None and not exit_status.oom_killed
    assert exit_status.pid == started["pid"] and exit_status.finished_at > exit_status.started_at
    lines = lines_of(harness, test_id)
    assert lines[-1] == b"bye\n"
    numbers = [int(line.split()[1]) for line in lines[:-1]]
    if numbers != list(range(len(numbers))):
        gap = next(i for i, n in enumerate(numbers) if n != i)
        raw = harness.log_path(test_id).read_bytes().splitlines()
        raise AssertionError(f"{harness.runtime_name}: gap at {gap}: {raw[max(0, gap - 2):gap + 2]}")
    assert len(numbers) > 10
    # Gone from the runtime, recorded on disk, supervisor exited.
    wait_for(lambda: not handle.alive())
    assert test_id not in [s.id for s in harness.runtime().list()]
    assert client.connect(test_id).wait() == exit_status
    assert {i.container_id: i for i in client.list()}[test_id].status == "exited"
    client.remove(test_id)
    # The supervisor's files are gone; the log (the daemon's) stays.
    assert sorted(os.listdir(harness.state_dir / test_id)) == [f"{test_id}-json.log"]
    with pytest.raises(NotFound):
        client.connect(test_id)


def test_exit_codes_and_signals(harness, make_bundle, test_id):
    harness.spawn(test_id, make_bundle(["sh", "-c", "exit 42"]))
    assert harness.client.connect(test_id).wait(timeout=30).exit_code == 42

    cid = test_id + "k"
    info = harness.spawn(cid, make_bundle(["sleep", "100"]))
    handle = harness.client.connect(cid)
    assert pid_alive(info.pid)
    handle.kill(signal.SIGKILL)
    status = handle.wait(timeout=30)
    assert (status.exit_code, status.signal) == (137, signal.SIGKILL)
    with pytest.raises(FailedPrecondition):
        handle.kill(signal.SIGTERM)


def test_stdin_half_close(harness, make_bundle, test_id):
    """`cat` echoes what a client wrote and exits 0 once the client closes
    its write side (docker run -i with a pipe)."""
    harness.spawn(test_id, make_bundle(["cat"]), stdin=True, start=False)
    handle = harness.client.connect(test_id)
    assert handle.status().status == "created"
    stream = handle.attach(stdin=True)
    handle.start()
    payload = b"".join(b"chunk %d\n" % i for i in range(2000))
    code, out, err = stream.communicate(stdin=payload, timeout=30)
    assert out == payload and err == b""
    assert code == 0
    assert handle.wait(timeout=30).exit_code == 0
    assert b"".join(lines_of(harness, test_id)) == payload


def test_stdin_socket_shutdown_closes(harness, make_bundle, test_id):
    harness.spawn(test_id, make_bundle(["sh", "-c", "read a; echo got $a; cat >/dev/null; echo eof"]), stdin=True)
    stream = harness.client.connect(test_id).attach(stdin=True)
    stream.write(b"x\n")
    stream.sock.shutdown(socket_shut_wr())
    code, out, _ = stream.communicate(timeout=30)
    assert (code, out) == (0, b"got x\neof\n")


def socket_shut_wr():
    import socket

    return socket.SHUT_WR


def test_tty_and_resize(harness, make_bundle, test_id):
    bundle = make_bundle(["sh", "-c", "stty size; read x; stty size; tty"], terminal=True)
    harness.spawn(test_id, bundle, stdin=True, start=False, console_size=(24, 80))
    handle = harness.client.connect(test_id)
    assert handle.status().tty
    stream = handle.attach(stdin=True)
    handle.start()
    out = b""
    while b"24 80" not in out:
        kind, payload = stream.read(timeout=10)
        assert kind == P.STDOUT
        out += payload
    handle.resize(30, 100)
    stream.write(b"go\r")
    while True:
        frame = stream.read(timeout=10)
        if frame is None or frame[0] == P.EXIT:
            break
        out += frame[1]
    assert b"30 100" in out and b"/dev/pts/" in out
    assert handle.wait(timeout=30).exit_code == 0
    # Everything the terminal showed went to the log as stdout.
    logged = b"".join(lines_of(harness, test_id))
    assert b"24 80" in logged and b"30 100" in logged
    assert {e.stream for e in open_reader("json-file", harness.log_path(test_id)).read()} == {"stdout"}


def test_exec_variants(harness, make_bundle, test_id):
    harness.spawn(test_id, make_bundle(["sleep", "100"]))
    handle = harness.client.connect(test_id)
    code, out, _ = handle.exec(dict(PROC, args=["cat"]), stdin=True).communicate(stdin=b"in\nput\n", timeout=30)
    assert (code, out) == (0, b"in\nput\n")
    stream = handle.exec(dict(PROC, args=["sh", "-c", "tty; stty size"]), tty=True, console_size=(33, 44))
    code, out, _ = stream.communicate(timeout=30)
    assert code == 0 and b"/dev/pts/" in out and b"33 44" in out
    pid = handle.exec(dict(PROC, args=["sh", "-c", "sleep 0.2; exit 9"]), detach=True, exec_id="bg")
    assert pid > 0
    wait_for(lambda: not handle.exec_inspect("bg")["running"])
    assert handle.exec_inspect("bg")["exit_code"] == 9
    with pytest.raises(NotFound):
        handle.exec_inspect("nonesuch")
    # A probe's result is read from its stream and not kept (health checks
    # would otherwise fill the supervisor's history).
    assert handle.exec(dict(PROC, args=["sh", "-c", "exit 4"]), exec_id="probe", record=False) \
        .communicate(timeout=30)[0] == 4
    with pytest.raises(NotFound):
        handle.exec_inspect("probe")
    assert handle.exec(dict(PROC, args=["true"]), exec_id="kept").communicate(timeout=30)[0] == 0
    assert handle.exec_inspect("kept")["exit_code"] == 0
    with pytest.raises(NotFound):
        handle.exec(dict(PROC, args=["/no/such/binary"]))
    assert handle.status().status == "running"
    pids = handle.ps()
    assert harness.client.connect(test_id).status().pid in pids
    handle.pause()
    assert handle.status().status == "paused"
    handle.resume()
    assert handle.status().status == "running"
    handle.kill(signal.SIGKILL)
    assert handle.wait(timeout=30).exit_code == 137


def test_spawn_errors_leave_nothing(harness, make_bundle, test_id, tmp_path):
    with pytest.raises(NotFound):
        harness.spawn(test_id, tmp_path / "no-bundle")
    with pytest.raises(NotFound):
        harness.spawn(test_id, make_bundle(["/no/such/binary"]))
    handle = SupervisorHandle(test_id, harness.state_dir / test_id)
    assert not handle.alive() and handle.exit_status() is None
    assert test_id not in [s.id for s in harness.runtime().list()]
    harness.spawn(test_id, make_bundle(["sleep", "100"]))
    with pytest.raises(AlreadyExists):
        harness.spawn(test_id, make_bundle(["true"]))


def test_lost_supervisor_is_reported(harness, make_bundle, test_id):
    info = harness.spawn(test_id, make_bundle(["sleep", "100"]))
    kill_pid(info.supervisor_pid)
    handle = harness.client.connect(test_id)
    wait_for(lambda: not handle.alive())
    assert handle.info().status == "lost"
    assert {i.container_id: i.status for i in harness.client.list()}[test_id] == "lost"


def test_zygote_shared_and_restarted(harness, make_bundle, test_id):
    harness.spawn(test_id, make_bundle(["true"]))
    zygote = harness.client.zygote_pid()
    assert zygote and SupervisorClient(harness.state_dir).ensure_zygote() == zygote
    kill_pid(zygote)
    wait_for(lambda: harness.client.zygote_pid() is None)
    info = harness.spawn(test_id + "b", make_bundle(["sh", "-c", "exit 5"]))
    assert harness.client.zygote_pid() not in (None, zygote)
    assert harness.client.connect(info.container_id).wait(timeout=30).exit_code == 5
    # A zygote running other code (an upgrade) is replaced by the next client.
    second = harness.client.zygote_pid()
    lock = harness.state_dir / P.ZYGOTE_LOCK
    lock.write_text(json.dumps({"pid": second, "version": "older"}))
    third = SupervisorClient(harness.state_dir).ensure_zygote()
    assert third != second and not pid_alive(second)


def test_oom_killed_is_recorded(harness, make_bundle, test_id):
    if not os.path.exists("/sys/fs/cgroup/memory/memory.oom_control") and \
            not os.path.exists("/sys/fs/cgroup/memory.events"):
        pytest.skip("no memory cgroup with OOM accounting on this host")
    hog = "x=0123456789; while true; do x=$x$x; done"
    harness.spawn(test_id, make_bundle(["sh", "-c", hog], memory=32 << 20))
    status = harness.client.connect(test_id).wait(timeout=60)
    assert status.oom_killed and status.exit_code == 137

    cid = test_id + "n"
    harness.spawn(cid, make_bundle(["sh", "-c", "exit 1"], memory=32 << 20))
    assert not harness.client.connect(cid).wait(timeout=30).oom_killed


def test_full_log_disk_loses_lines_not_the_container(harness, make_bundle, test_id, tmp_path):
    """A log on a full filesystem: lines are lost, the container and its
    exit record are not."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        bundle = make_bundle(["sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done; exit 4"])
        harness.spawn(test_id, bundle, log_path=str(small / "c-json.log"))
        handle = harness.client.connect(test_id)
        status = handle.wait(timeout=60)
        assert status.exit_code == 4
        assert (small / "c-json.log").stat().st_size > 0
        assert b"No space left on device" in (harness.state_dir / "zygote.log").read_bytes()
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def _children(pid: int) -> set[int]:
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found |= {int(p) for p in f.read().split()}
        except FileNotFoundError:
            pass
    return found


def test_start_after_attach_is_made_by_the_set_up_child(harness, make_bundle, test_id):
    """Spawned without its start (clients attach first), the container is
    started by the set-up child that created it, which then exits: the
    supervisor is left with the container's init as its only child."""
    info = harness.spawn(test_id, make_bundle(["sh", "-c", "echo hi; sleep 0.2"]), start=False)
    handle = harness.client.connect(test_id)
    assert _children(info.supervisor_pid) - {info.pid}, "no set-up child waits to start the container"
    stream = handle.attach()
    assert handle.start().status == "running"
    wait_for(lambda: _children(info.supervisor_pid) == {info.pid})  # reaped by the loop
    code, out, _ = stream.communicate(timeout=30)
    assert (code, out) == (0, b"hi\n")


def test_start_without_the_set_up_child_forks_its_own(harness, make_bundle, test_id):
    """The set-up child may be gone before the start (it waits a while
    only, or was killed): the supervisor starts the container another way."""
    info = harness.spawn(test_id, make_bundle(["sh", "-c", "echo hi"]), start=False)
    for helper in _children(info.supervisor_pid) - {info.pid}:
        kill_pid(helper)
    wait_for(lambda: _children(info.supervisor_pid) == {info.pid})
    handle = harness.client.connect(test_id)
    stream = handle.attach()
    assert handle.start().status == "running"
    assert stream.communicate(timeout=30)[:2] == (0, b"hi\n")


def test_a_container_removed_before_its_start_leaves_no_set_up_child(harness, make_bundle, test_id):
    info = harness.spawn(test_id, make_bundle(["true"]), start=False)
    handle = harness.client.connect(test_id)
    handle.kill(signal.SIGKILL)
    handle.wait(timeout=30)
    wait_for(lambda: not pid_alive(info.supervisor_pid), timeout=20)
    helpers = [p for p in _children(os.getpid()) if p != info.supervisor_pid]
    assert all(not pid_alive(p) for p in helpers)


def test_a_stdin_once_client_reset_closes_the_stdin(harness, make_bundle, test_id):
    """A client that leaves with unread output in its buffer resets the
    connection (no orderly end); with stdin_once the container's stdin
    closes all the same."""
    harness.spawn(test_id, make_bundle(["sh", "-c", "echo ready; cat; echo done"]), stdin=True, stdin_once=True,
                  start=False)
    handle = harness.client.connect(test_id)
    stream = handle.attach(stdin=True)
    handle.start()
    wait_for(lambda: b"ready" in b"".join(lines_of(harness, test_id)))
    stream.close()  # "ready" unread: the supervisor's next read is a reset
    assert handle.wait(timeout=30).exit_code == 0
    assert b"".join(lines_of(harness, test_id)) == b"ready\ndone\n"


def test_attach_that_starts(harness, make_bundle, test_id):
    """An attach may carry the start (docker run's path in one trip): the
    stream has the run's first byte; a second such attach is refused."""
    harness.spawn(test_id, make_bundle(["sh", "-c", "printf first; echo; echo second >&2; sleep 0.3"]),
                  start=False)
    handle = harness.client.connect(test_id)
    stream = handle.attach(start=True)
    assert stream.header["status"] == "running"
    with pytest.raises(FailedPrecondition):
        handle.attach(start=True)
    code, out, err = stream.communicate(timeout=30)
    assert (code, out, err) == (0, b"first\n", b"second\n")


def test_held_spawn_creates_after_the_bundle_is_made(harness, make_bundle, test_id, tmp_path):
    """spawn(prepare=...): the bundle may be made while the supervisor is
    forked (the container is created after prepare returns), and a prepare
    that does nothing sends its word at once (it may reach the zygote with
    the request)."""
    source = make_bundle(["sh", "-c", "echo made late"])
    bundle = tmp_path / "late-bundle"
    bundle.mkdir()

    def prepare():
        time.sleep(0.2)  # the supervisor is forked and waits meanwhile
        (bundle / "config.json").write_bytes((source / "config.json").read_bytes())

    harness.ids.append(test_id)
    info = harness.client.spawn(test_id, harness.spec(bundle, log_driver="json-file",
                                                      log_path=str(harness.log_path(test_id))), prepare=prepare)
    assert info.pid > 0
    assert harness.client.connect(test_id).wait(timeout=30).exit_code == 0
    assert b"".join(lines_of(harness, test_id)) == b"made late\n"

    quick = test_id + "q"
    harness.ids.append(quick)
    harness.client.spawn(quick, harness.spec(source), prepare=lambda: None)
    assert harness.client.connect(quick).wait(timeout=30).exit_code == 0


def test_held_spawn_whose_prepare_fails_leaves_nothing(harness, make_bundle, test_id):
    class Broken(Exception):
        pass

    def prepare():
        raise Broken("no bundle")

    harness.ids.append(test_id)
    with pytest.raises(Broken):
        harness.client.spawn(test_id, harness.spec(make_bundle(["true"])), prepare=prepare)
    assert not (harness.state_dir / test_id / P.SUPERVISOR_LOCK).exists()
    assert [i for i in harness.client.list() if i.container_id == test_id] == []
