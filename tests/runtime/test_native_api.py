"""The native runtime as a library: NativeRuntime called in-process, the
way the supervisor calls it."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from runtime_testlib import cgroup_dirs, processes_rooted_in

from dockyard.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from dockyard.linux.process import is_child_subreaper, set_child_subreaper
from dockyard.runtime.base import Runtime, Stdio
from dockyard.runtime.native import NativeRuntime
from dockyard.runtime.native.config import INIT_ANNOTATION


@pytest.fixture
def native(rt_tmp: Path):
    """A NativeRuntime; the test process is made a child subreaper (in a
    forked helper when needed) so it can waitpid the containers."""
    if not is_child_subreaper():
        set_child_subreaper()
    rt = NativeRuntime(rt_tmp / "native-state")
    try:
        yield rt
    finally:
        for st in rt.list():
            try:
                rt.delete(st.id, force=True)
            except Exception:  # noqa: BLE001 - best effort in teardown
                pass
        _reap_all()


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _wait(pid: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"pid {pid} did not exit")
        time.sleep(0.005)


def _run(rt: NativeRuntime, cid: str, bundle: Path) -> tuple[int, bytes, bytes]:
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    null = os.open("/dev/null", os.O_RDONLY)
    try:
        pid = rt.create(cid, bundle, stdio=Stdio(null, w_out, w_err))
    finally:
        os.close(w_out)
        os.close(w_err)
        os.close(null)
    rt.start(cid)
    code = _wait(pid)
    with os.fdopen(r_out, "rb") as out, os.fdopen(r_err, "rb") as err:
        result = code, out.read(), err.read()
    rt.delete(cid)
    return result


def test_protocol(native):
    assert isinstance(native, Runtime)
    assert native.name == "native"


def test_create_start_wait_delete_with_stdio(native, make_bundle, config_for, test_id):
    bundle = make_bundle(config_for(["sh", "-c", "echo out; echo err >&2; exit 3"]))
    code, out, err = _run(native, test_id, bundle)
    assert (code, out, err) == (3, b"out\n", b"err\n")
    assert not cgroup_dirs(test_id)
    with pytest.raises(NotFound):
        native.state(test_id)


def test_states_and_errors(native, make_bundle, config_for, test_id):
    bundle = make_bundle(config_for(["sleep", "30"]))
    null = os.open("/dev/null", os.O_RDWR)
    try:
        pid = native.create(test_id, bundle, stdio=Stdio(null, null, null))
    finally:
        os.close(null)
    assert native.state(test_id).status == "created"
    assert native.state(test_id).pid == pid
    with pytest.raises(AlreadyExists):
        native.create(test_id, bundle)
    native.start(test_id)
    assert native.state(test_id).status == "running"
    with pytest.raises(FailedPrecondition):
        native.start(test_id)
    with pytest.raises(FailedPrecondition):
        native.delete(test_id)
    assert native.ps(test_id) == [pid]
    native.pause(test_id)
    assert native.state(test_id).status == "paused"
    with pytest.raises(FailedPrecondition):
        native.pause(test_id)
    native.resume(test_id)
    native.kill(test_id, signal.SIGKILL)
    assert _wait(pid) == -signal.SIGKILL
    assert native.state(test_id).status == "stopped"
    with pytest.raises(FailedPrecondition):
        native.kill(test_id, signal.SIGTERM)
    native.delete(test_id)
    for call in (native.state, native.start, native.ps, native.pause):
        with pytest.raises(NotFound):
            call(test_id)
    with pytest.raises(InvalidArgument):
        native.state("../etc")


def test_exec_with_stdio_returns_pid(native, make_bundle, config_for, test_id):
    bundle = make_bundle(config_for(["sleep", "30"]))
    null = os.open("/dev/null", os.O_RDWR)
    init = native.create(test_id, bundle, stdio=Stdio(null, null, null))
    native.start(test_id)
    r, w = os.pipe()
    try:
        pid = native.exec(test_id, {"args": ["sh", "-c", "echo $$ $FOO; cat /proc/self/cgroup | grep pids; exit 4"],
                                    "env": ["FOO=bar", "PATH=/bin"], "cwd": "/tmp"},
                          stdio=Stdio(null, w, w))
    finally:
        os.close(w)
        os.close(null)
    assert _wait(pid) == 4
    with os.fdopen(r, "rb") as f:
        lines = f.read().decode().split("\n")
    inner_pid, foo = lines[0].split()
    assert foo == "bar" and int(inner_pid) > 1  # its own pid inside the container's pid namespace
    assert lines[1].endswith(":/")  # the container's cgroup, seen through its cgroup namespace
    with pytest.raises(NotFound):
        native.exec(test_id, {"args": ["nope"], "env": ["PATH=/bin"], "cwd": "/"})
    with pytest.raises(FailedPrecondition):
        native.exec(test_id, {"args": ["/etc/passwd"], "cwd": "/"})
    with pytest.raises(InvalidArgument, match="process.args"):
        native.exec(test_id, {"args": [], "cwd": "/"})
    native.delete(test_id, force=True)
    assert _wait(init) == -signal.SIGKILL


def test_create_failure_is_reported_by_kind_and_cleaned(native, make_bundle, config_for, test_id):
    bundle = make_bundle(config_for(["no-such-program"]))
    with pytest.raises(NotFound, match='exec: "no-such-program": executable file not found in \\$PATH'):
        native.create(test_id, bundle)
    assert not (native.root / test_id).exists()
    assert not cgroup_dirs(test_id)
    assert not processes_rooted_in(bundle / "fs" / "rootfs")
    config = config_for(["/etc/passwd"], hostname=test_id + "x")
    bundle = make_bundle(config, name=test_id + "x")
    with pytest.raises(FailedPrecondition, match="permission denied"):
        native.create(test_id + "x", bundle)


@pytest.mark.parametrize("change, field", [
    (lambda c: c["process"].update(args=[]), "config.json: process.args: must be a non-empty array"),
    (lambda c: c["process"].update(cwd="relative"), "config.json: process.cwd"),
    (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_NOPE"), "process.capabilities.bounding"),
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[6].type"),
    (lambda c: c["mounts"].append({"destination": "rel"}), "mounts[7].destination"),
    (lambda c: c.update(ociVersion="0.9"), "ociVersion"),
    (lambda c: c["linux"].update(sysctl={"kernel.panic": "1"}), "linux.sysctl.kernel.panic"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]),
     "process.rlimits[0].type"),
    (lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_FOO"}), "linux.seccomp.defaultAction"),
    (lambda c: c.update(hooks={"prestart": [{"path": "rel"}]}), "hooks.prestart[0].path"),
    (lambda c: c["linux"]["namespaces"].append({"type": "user"}), "linux.uidMappings"),
])
def test_invalid_config_names_the_field(native, make_bundle, config_for, test_id, change, field):
    config = config_for(["true"])
    change(config)
    bundle = make_bundle(config)
    with pytest.raises(InvalidArgument, match=field.replace("[", r"\[").replace("]", r"\]")):
        native.create(test_id, bundle)
    assert not (native.root / test_id).exists()
    assert not cgroup_dirs(test_id)


def test_missing_bundle(native, rt_tmp, test_id):
    with pytest.raises(NotFound):
        native.create(test_id, rt_tmp / "nothing-here")
    (rt_tmp / "bad").mkdir()
    (rt_tmp / "bad" / "config.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        native.create(test_id, rt_tmp / "bad")


def _init_config(config_for, script: str, use_init: bool, **changes):
    config = config_for(["sh", "-c", script], **changes)
    if use_init:
        config["annotations"] = {INIT_ANNOTATION: "true"}
    return config


@pytest.mark.parametrize("use_init", [True, False])
def test_init_reaps_zombies(native, make_bundle, config_for, test_id, use_init):
    # The orphaned `sleep 0.1` is re-parented to PID 1.  With the built-in
    # init it is reaped; without it PID 1 is `sleep` (exec'd), which never
    # waits, so the orphan stays a zombie: the control case.
    script = "(sleep 0.1 &); exec sleep 3"
    bundle = make_bundle(_init_config(config_for, script, use_init))
    null = os.open("/dev/null", os.O_RDWR)
    try:
        pid = native.create(test_id, bundle, stdio=Stdio(null, null, null))
    finally:
        os.close(null)
    native.start(test_id)
    time.sleep(0.6)
    states = {}
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        children = [int(c) for c in f.read().split()]
    for p in children:  # zombies have left the cgroup: look at PID 1's children
        with open(f"/proc/{p}/stat") as f:
            stat = f.read()
        states[p] = stat[stat.rfind(")") + 2]
    zombies = [p for p, s in states.items() if s == "Z"]
    if use_init:
        assert not zombies, states
        with open(f"/proc/{pid}/comm") as f:
            assert f.read().strip() == "dockyard-init"
    else:
        assert zombies, states
    native.delete(test_id, force=True)


def test_init_forwards_signals_and_exit_status(native, make_bundle, config_for, test_id):
    script = "trap 'exit 42' TERM; sleep 30 & wait"
    bundle = make_bundle(_init_config(config_for, script, True))
    null = os.open("/dev/null", os.O_RDWR)
    try:
        pid = native.create(test_id, bundle, stdio=Stdio(null, null, null))
    finally:
        os.close(null)
    native.start(test_id)
    time.sleep(0.3)
    # Memory of the init (a forked Python process): report it, bound it.
    with open(f"/proc/{pid}/smaps_rollup") as f:
        rollup = {line.split(":")[0]: int(line.split()[1]) for line in f if line.split()[-1] == "kB"}
    print(f"built-in init: Rss {rollup['Rss']} kB, Pss {rollup['Pss']} kB")
    assert rollup["Pss"] < 64 * 1024
    native.kill(test_id, signal.SIGTERM)
    assert _wait(pid) == 42
    native.delete(test_id)


def test_join_network_namespace_by_path(native, make_bundle, config_for, test_id):
    first = make_bundle(config_for(["sleep", "30"]))
    null = os.open("/dev/null", os.O_RDWR)
    try:
        pid = native.create(test_id, first, stdio=Stdio(null, null, null))
        native.start(test_id)
        second_id = test_id + "b"
        config = config_for(["readlink", "/proc/self/ns/net"], hostname=second_id)
        for ns in config["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/proc/{pid}/ns/net"
        code, out, _err = _run(native, second_id, make_bundle(config, name=second_id))
    finally:
        os.close(null)
    assert code == 0
    assert out.decode().strip() == os.readlink(f"/proc/{pid}/ns/net")
    native.delete(test_id, force=True)


def test_sysctl_oom_score_and_no_pivot(rt_tmp, make_bundle, config_for, test_id):
    set_child_subreaper()
    rt = NativeRuntime(rt_tmp / "nopivot-state", no_pivot=True)
    config = config_for(["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj; "
                                     "grep -c ' / ' /proc/self/mountinfo"])
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    config["process"]["oomScoreAdj"] = 345
    code, out, err = _run(rt, test_id, make_bundle(config))
    assert code == 0, err
    assert out.decode().split()[:2] == ["1", "345"]


def test_create_from_a_multithreaded_caller(native, make_bundle, config_for, test_id):
    stop = threading.Event()

    def busy():
        # Threads that allocate and import-free churn while we fork.
        while not stop.is_set():
            json.dumps({"x": list(range(100))})

    threads = [threading.Thread(target=busy) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(5):
            cid = f"{test_id}m{i}"
            code, out, _ = _run(native, cid, make_bundle(config_for(["echo", str(i)], hostname=cid), name=cid))
            assert (code, out) == (0, f"{i}\n".encode())
    finally:
        stop.set()
        for t in threads:
            t.join()
