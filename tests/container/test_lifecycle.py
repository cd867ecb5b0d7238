"""Real containers through the service: run, logs, stop, rm, names,
events, errors in Docker's words."""

from __future__ import annotations

import os

import pytest

from dockyard.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tests.container.conftest import BOTH_RUNTIMES

pytestmark = pytest.mark.parametrize("env", BOTH_RUNTIMES, indirect=True)


def test_run_output_and_exit_code(env):
    cid, code = env.run_container(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert code == 3
    assert env.logs(cid) == "out\nerr\n"
    assert env.logs(cid, stderr=False) == "out\n"
    assert env.logs(cid, stdout=False) == "err\n"
    info = env.inspect(cid)
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 3
    assert info["State"]["StartedAt"] != "0001-01-01T00:00:00Z"
    assert info["Path"] == "sh" and info["Args"] == ["-c", "echo out; echo err >&2; exit 3"]
    assert env.actions(cid) == ["create", "start", "die"]
    die = [attrs for _, a, actor, attrs in env.events if a == "die" and actor == cid][0]
    assert die["exitCode"] == "3" and die["image"] == "busybox"


def test_detached_logs_stop_rm(env):
    cid = env.create(["sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done"],
                     name="web")
    assert env.run(env.service.start("web")) is True
    assert env.run(env.service.start(cid)) is False  # already running: 304
    env.wait_for(lambda: "ready" in env.logs(cid), what="ready in logs")
    info = env.inspect("web")
    assert info["State"]["Running"] is True and info["State"]["Pid"] > 0
    assert info["Name"] == "/web"
    with pytest.raises(FailedPrecondition, match='cannot remove container "/web": container is running'):
        env.run(env.service.remove("web"))
    assert env.run(env.service.stop("web", timeout=5)) is True
    assert env.run(env.service.stop("web")) is False  # not running: 304
    info = env.inspect(cid)
    assert info["State"]["ExitCode"] == 0 and info["State"]["Status"] == "exited"
    assert "bye" in env.logs(cid)
    env.run(env.service.remove(cid))
    with pytest.raises(NotFound, match="No such container: web"):
        env.run(env.service.inspect("web"))
    assert env.actions(cid) == ["create", "start", "kill", "die", "stop", "destroy"]
    assert not os.path.exists(env.root / "data" / "containers" / cid)


def test_stop_timeout_kills(env):
    cid = env.create(["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"])
    env.run(env.service.start(cid))
    assert env.run(env.service.stop(cid, timeout=1)) is True
    assert env.inspect(cid)["State"]["ExitCode"] == 137


def test_kill_with_signal_and_errors(env):
    cid = env.create(["sh", "-c", "trap 'exit 42' USR1; while true; do sleep 0.1; done"])
    with pytest.raises(FailedPrecondition, match=f"Container {cid} is not running"):
        env.run(env.service.kill(cid))
    env.run(env.service.start(cid))
    env.wait_for(lambda: env.run(env.service.top(cid))["Processes"], what="processes")
    with pytest.raises(InvalidArgument, match="Invalid signal: SIGBOGUS"):
        env.run(env.service.kill(cid, "SIGBOGUS"))
    env.run(env.service.kill(cid, "USR1"))
    assert env.run(env.service.wait(cid))["StatusCode"] == 42


def test_force_remove_running(env):
    cid = env.create(["sleep", "100"])
    env.run(env.service.start(cid))
    env.run(env.service.remove(cid, force=True))
    assert env.run(env.service.list(all=True)) == []


def test_names_conflicts_and_lookup(env):
    a = env.create(["true"], name="alpha")
    with pytest.raises(AlreadyExists) as err:
        env.create(["true"], name="alpha")
    assert str(err.value) == (f'Conflict. The container name "/alpha" is already in use by container "{a}". '
                              f'You have to remove (or rename) that container to be able to reuse that name.')
    with pytest.raises(InvalidArgument, match="Invalid container name"):
        env.create(["true"], name="bad name")
    b = env.create(["true"])
    generated = env.inspect(b)["Name"]
    assert generated.startswith("/") and "_" in generated
    assert env.inspect(a[:12])["Id"] == a
    env.run(env.service.rename("alpha", "beta"))
    assert env.inspect("beta")["Id"] == a
    with pytest.raises(AlreadyExists, match="Error when allocating new name: Conflict"):
        env.run(env.service.rename(b, "beta"))
    with pytest.raises(InvalidArgument, match="same name as its current name"):
        env.run(env.service.rename("beta", "beta"))
    with pytest.raises(NotFound, match="No such image: nonexistent:latest"):
        env.run(env.service.create({"Image": "nonexistent", "Cmd": ["true"]}))
    with pytest.raises(NotFound, match="No such container: nothing"):
        env.run(env.service.start("nothing"))


def test_list_and_filters(env):
    running = env.create(["sleep", "100"], name="runner", Labels={"tier": "web"})
    env.run(env.service.start(running))
    done, code = env.run_container(["sh", "-c", "exit 2"], Labels={"tier": "db"})
    created = env.create(["true"], name="fresh")
    ids = lambda items: [i["Id"] for i in items]
    assert ids(env.run(env.service.list())) == [running]
    assert set(ids(env.run(env.service.list(all=True)))) == {running, done, created}
    assert ids(env.run(env.service.list(all=True)))[0] == created  # newest first
    assert ids(env.run(env.service.list(filters={"status": ["exited"]}))) == [done]
    assert ids(env.run(env.service.list(all=True, filters={"label": ["tier=web"]}))) == [running]
    assert ids(env.run(env.service.list(all=True, filters={"exited": ["2"]}))) == [done]
    assert ids(env.run(env.service.list(all=True, filters={"name": ["fre"]}))) == [created]
    assert ids(env.run(env.service.list(all=True, filters={"ancestor": ["busybox"]}))) != []
    assert ids(env.run(env.service.list(all=True, filters={"before": ["fresh"]}))) == [done, running]
    summary = env.run(env.service.list(size=True))[0]
    assert summary["Names"] == ["/runner"] and summary["State"] == "running"
    assert summary["Status"].startswith("Up ") and summary["Command"] == "sleep 100"
    assert "SizeRw" in summary
    with pytest.raises(InvalidArgument, match="invalid filter 'bogus'"):
        env.run(env.service.list(filters={"bogus": ["x"]}))
    result = env.run(env.service.prune())
    assert set(result["ContainersDeleted"]) == {done, created}
    assert ids(env.run(env.service.list(all=True))) == [running]


def test_bad_input_leaves_nothing_behind(env, tmp_path):
    from testlib import mounts_under
    containers = env.root / "data" / "containers"
    before = set(os.listdir(containers))
    snapshots = {i.name for i in env.store.snapshotter.walk()}
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        env.create(["true"], {"Mounts": [{"Type": "bind", "Source": str(tmp_path / "missing"), "Target": "/x"}]})
    with pytest.raises(InvalidArgument, match="Minimum memory limit allowed is 6MB"):
        env.create(["true"], {"Memory": 1})
    assert set(os.listdir(containers)) == before
    assert {i.name for i in env.store.snapshotter.walk()} == snapshots
    assert env.run(env.service.list(all=True)) == []
    # a start that fails (unknown user) keeps the container, with no mount
    cid = env.create(["true"], User="ghost")
    with pytest.raises(InvalidArgument):
        env.run(env.service.start(cid))
    assert mounts_under(containers / cid) == []
    env.run(env.service.remove(cid))
    assert set(os.listdir(containers)) == before
    assert {i.name for i in env.store.snapshotter.walk()} == snapshots
