"""ExternalRuntime (runc/crun through their CLIs) and the runtime registry,
against the real binaries."""

from __future__ import annotations

import os
import signal
import time

import pytest

from dockyard.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from dockyard.runtime.base import Runtime, Stdio
from dockyard.runtime.external import ExternalRuntime
from dockyard.runtime.registry import available_runtimes, get_runtime

from supervisor_helpers import runtime_names, runtime_params

#: The runc-compatible binaries usable here (crun is skipped on hybrid
#: cgroup hosts it refuses; see conftest.crun_unusable).
EXTERNAL = [n for n in runtime_names() if n != "native"]


@pytest.fixture(params=runtime_params(external_only=True))
def runtime(request, tmp_path):
    rt = ExternalRuntime(request.param, tmp_path / "state")
    made: list[str] = []
    rt.made = made  # type: ignore[attr-defined]
    try:
        yield rt
    finally:
        for cid in made:
            try:
                rt.delete(cid, force=True)
            except Exception:  # noqa: BLE001 - best-effort teardown
                pass


def wait_exit(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} still running")


def test_lifecycle_with_pipes(runtime, make_bundle, test_id):
    bundle = make_bundle(["sh", "-c", "read x; echo got:$x; echo err >&2; hostname"])
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    runtime.made.append(test_id)
    pid = runtime.create(test_id, bundle, stdio=Stdio(r_in, w_out, w_err))
    for fd in (r_in, w_out, w_err):
        os.close(fd)
    assert pid > 0
    state = runtime.state(test_id)
    assert state.status == "created" and state.pid == pid and state.id == test_id
    assert state.bundle == str(bundle)
    assert test_id in [s.id for s in runtime.list()]
    runtime.start(test_id)
    os.write(w_in, b"hello\n")
    os.close(w_in)
    out = b""
    while chunk := os.read(r_out, 4096):
        out += chunk
    err = os.read(r_err, 4096)
    os.close(r_out)
    os.close(r_err)
    assert out == b"got:hello\nbox\n"
    assert err == b"err\n"
    wait_exit(pid)
    assert runtime.state(test_id).status == "stopped"
    runtime.delete(test_id)
    with pytest.raises(NotFound):
        runtime.state(test_id)
    assert not (runtime.root / test_id).exists()


def test_exec_ps_kill_pause(runtime, make_bundle, test_id):
    bundle = make_bundle(["sleep", "60"])
    null = os.open("/dev/null", os.O_RDWR)
    runtime.made.append(test_id)
    try:
        pid = runtime.create(test_id, bundle, stdio=Stdio(null, null, null))
        runtime.start(test_id)
        r, w = os.pipe()
        epid = runtime.exec(test_id, {"args": ["sh", "-c", "echo $$ inside; hostname"], "cwd": "/",
                                      "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}},
                            stdio=Stdio(null, w, w))
        os.close(w)
        out = b""
        while chunk := os.read(r, 4096):
            out += chunk
        os.close(r)
        assert out.endswith(b"box\n") and b"inside" in out
        assert epid > 0
        # If an earlier test in this worker made it a child subreaper, the
        # exec'd process is this process's zombie now, and the container's
        # init cannot finish dying (zap_pid_ns_processes) until it is reaped.
        try:
            os.waitpid(epid, 0)
        except ChildProcessError:
            pass
        assert pid in runtime.ps(test_id)
        runtime.pause(test_id)
        assert runtime.state(test_id).status == "paused"
        with pytest.raises(FailedPrecondition):
            runtime.start(test_id)
        runtime.resume(test_id)
        assert runtime.state(test_id).status == "running"
        with pytest.raises(FailedPrecondition):
            runtime.delete(test_id)  # running, no force
        runtime.kill(test_id, signal.SIGKILL)
        wait_exit(pid)
        with pytest.raises(FailedPrecondition):
            runtime.exec(test_id, {"args": ["true"], "cwd": "/"}, stdio=Stdio(null, null, null))
        runtime.delete(test_id)
    finally:
        os.close(null)


def test_errors(runtime, make_bundle, test_id, tmp_path):
    for call in (lambda: runtime.state(test_id), lambda: runtime.start(test_id),
                 lambda: runtime.kill(test_id), lambda: runtime.delete(test_id), lambda: runtime.ps(test_id),
                 lambda: runtime.pause(test_id)):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(NotFound):
        runtime.create(test_id, tmp_path / "nobundle")
    null = os.open("/dev/null", os.O_RDWR)
    try:
        with pytest.raises(NotFound) as e:
            runtime.create(test_id, make_bundle(["/no/such/binary"]), stdio=Stdio(null, null, null))
        assert runtime.name in str(e.value)
        assert not (runtime.root / test_id).exists(), "failed create left state behind"
        runtime.made.append(test_id)
        runtime.create(test_id, make_bundle(["true"]), stdio=Stdio(null, null, null))
        with pytest.raises(AlreadyExists):
            runtime.create(test_id, make_bundle(["true"]), stdio=Stdio(null, null, null))
        bad = make_bundle(["true"])
        (bad / "config.json").write_text("{not json")
        with pytest.raises(InvalidArgument):
            runtime.create(test_id + "b", bad, stdio=Stdio(null, null, null))
        assert not (runtime.root / (test_id + "b")).exists()
    finally:
        os.close(null)


def test_registry(tmp_path):
    assert set(EXTERNAL) <= set(available_runtimes())
    for name in EXTERNAL:
        rt = get_runtime(name, tmp_path)
        assert isinstance(rt, Runtime) and rt.name == name and rt.root == tmp_path
    with pytest.raises(InvalidArgument):
        get_runtime("nonesuch")
    with pytest.raises(Unavailable):
        get_runtime("/no/such/runc")
    if EXTERNAL:
        import shutil

        path = shutil.which(EXTERNAL[0])
        assert get_runtime(path, tmp_path).name == EXTERNAL[0]
    missing = ExternalRuntime("no-such-runtime-binary", tmp_path)
    with pytest.raises(Unavailable):
        missing.state("x")
