"""Restart policies, AutoRemove, pause, live update, stats, top, cp,
changes and export on real containers."""

from __future__ import annotations

import io
import re
import json
import asyncio
import base64
import tarfile
import time

import pytest

from dockyard.errors import DockyardError, FailedPrecondition, InvalidArgument, NotFound


def test_restart_on_failure_twice(env):
    cid = env.create(["sh", "-c", "echo run; exit 1"], {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}})
    env.run(env.service.start(cid))
    env.wait_for(lambda: env.inspect(cid)["State"]["Status"] == "exited" and env.inspect(cid)["RestartCount"] == 2,
                 what="two restarts then exited")
    time.sleep(0.5)
    info = env.inspect(cid)
    assert info["RestartCount"] == 2 and info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 1
    assert env.logs(cid) == "run\n" * 3
    assert env.actions(cid).count("start") == 3 and env.actions(cid).count("die") == 3


def test_restart_always_and_manual_stop(env):
    cid = env.create(["sh", "-c", "sleep 0.2; exit 0"], {"RestartPolicy": {"Name": "always"}})
    env.run(env.service.start(cid))
    env.wait_for(lambda: env.inspect(cid)["RestartCount"] >= 2, what="always restarts")
    env.run(env.service.stop(cid, timeout=1))
    count = env.inspect(cid)["RestartCount"]
    time.sleep(1.0)
    info = env.inspect(cid)
    assert info["State"]["Status"] == "exited" and info["RestartCount"] == count  # a manual stop sticks


def test_backoff_doubles(env):
    cid = env.create(["false"], {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 4}})
    t0 = time.monotonic()
    env.run(env.service.start(cid))
    env.wait_for(lambda: env.inspect(cid)["RestartCount"] == 4 and env.inspect(cid)["State"]["Status"] == "exited",
                 what="four restarts")
    # 0.1 + 0.2 + 0.4 + 0.8 s of back-off at least
    assert time.monotonic() - t0 >= 1.5


def test_auto_remove(env):
    cid = env.create(["sh", "-c", "exit 5"], {"AutoRemove": True})
    env.run(env.service.start(cid))
    result = env.run(env.service.wait(cid, "removed"))
    assert result["StatusCode"] == 5
    env.wait_for(lambda: not env.run(env.service.list(all=True)), what="removal")
    assert env.actions(cid)[-1] == "destroy"


def test_auto_remove_when_the_start_fails(env):
    """As dockerd: a container that was to be removed at its exit is removed
    when it cannot start at all; a `wait removed` registered before the
    start (docker run --rm) answers with the start's exit code."""
    cid = env.create(["no-such-command"], {"AutoRemove": True})

    async def start_and_wait():
        waiter = env.loop.create_task(env.service.wait(cid, "removed"))
        await asyncio.sleep(0)
        with pytest.raises(DockyardError, match="executable file not found"):
            await env.service.start(cid)
        return await asyncio.wait_for(waiter, 10)

    assert env.run(start_and_wait())["StatusCode"] == 127
    assert not env.run(env.service.list(all=True))
    assert env.actions(cid)[-1] == "destroy"
    # Without AutoRemove the container stays, with the start's exit code.
    kept = env.create(["no-such-command"])
    with pytest.raises(DockyardError):
        env.run(env.service.start(kept))
    state = env.inspect(kept)["State"]
    assert (state["Status"], state["ExitCode"]) == ("created", 127)
    assert 'exec: "no-such-command": executable file not found in $PATH' in state["Error"]


@pytest.mark.parametrize("cmd, code, cause", [
    (["no-such-command"], 127, 'exec: "no-such-command": executable file not found in $PATH'),
    (["/etc/passwd"], 126, 'exec: "/etc/passwd": permission denied'),
    # Go's (runc's) lower-case errno text: the CLI looks for it to exit 127
    (["/no/such"], 127, 'exec: "/no/such": stat /no/such: no such file or directory'),
])
def test_start_failure_is_a_bad_parameter_in_dockers_words(env, cmd, code, cause):
    """dockerd answers 400 for a command that cannot be found or run, with
    containerd's words around the cause (the docker CLI takes 127/126 from
    them); the container records the exit code."""
    cid = env.create(cmd)
    with pytest.raises(InvalidArgument) as failed:
        env.run(env.service.start(cid))
    message = failed.value.message
    assert message.startswith("failed to create task for container: ") and message.endswith(": unknown")
    assert cause in message
    state = env.inspect(cid)["State"]
    assert state["ExitCode"] == code and state["Error"] == message


def test_wait_conditions(env):
    cid = env.create(["sh", "-c", "sleep 0.3; exit 7"])
    with pytest.raises(InvalidArgument, match="invalid condition"):
        env.run(env.service.wait(cid, "whenever"))
    # not-running on a created container answers at once
    assert env.run(env.service.wait(cid))["StatusCode"] == 0

    async def start_and_wait():
        waiter = env.loop.create_task(env.service.wait(cid, "next-exit"))
        await env.service.start(cid)
        return await waiter

    assert env.run(start_and_wait())["StatusCode"] == 7


def test_pause_unpause(env):
    cid = env.create(["sh", "-c", "while true; do date +%s%N > /tmp/tick; sleep 0.05; done"])
    with pytest.raises(FailedPrecondition, match="is not running"):
        env.run(env.service.pause(cid))
    env.run(env.service.start(cid))
    env.run(env.service.pause(cid))
    assert env.inspect(cid)["State"]["Status"] == "paused" and env.inspect(cid)["State"]["Paused"]
    with pytest.raises(FailedPrecondition, match="is already paused"):
        env.run(env.service.pause(cid))
    with pytest.raises(FailedPrecondition, match="cannot start a paused container, try unpause instead"):
        env.run(env.service.start(cid))
    with open(f"/sys/fs/cgroup/freezer{env.cgroup_parent}/{cid}/freezer.state") as f:
        assert f.read().strip() == "FROZEN"
    env.run(env.service.unpause(cid))
    with pytest.raises(FailedPrecondition, match="is not paused"):
        env.run(env.service.unpause(cid))
    env.run(env.service.pause(cid))
    # stop works on a paused container
    assert env.run(env.service.stop(cid, timeout=2)) is True
    assert env.inspect(cid)["State"]["Status"] == "exited"
    assert [a for a in env.actions(cid) if a in ("pause", "unpause")] == ["pause", "unpause", "pause"]


def test_update_memory_live(env):
    cid = env.create(["sleep", "100"], {"Memory": 64 << 20})
    env.run(env.service.start(cid))
    result = env.run(env.service.update(cid, {"Memory": 128 << 20, "MemorySwap": 256 << 20, "PidsLimit": 30,
                                              "RestartPolicy": {"Name": "unless-stopped"}}))
    assert result == {"Warnings": None}  # dockerd's null
    base = f"/sys/fs/cgroup/memory{env.cgroup_parent}/{cid}"
    with open(f"{base}/memory.limit_in_bytes") as f:
        assert int(f.read()) == 128 << 20
    with open(f"/sys/fs/cgroup/pids{env.cgroup_parent}/{cid}/pids.max") as f:
        assert f.read().strip() == "30"
    hc = env.inspect(cid)["HostConfig"]
    assert hc["Memory"] == 128 << 20 and hc["RestartPolicy"]["Name"] == "unless-stopped"
    with pytest.raises(InvalidArgument, match="Minimum memory limit allowed is 6MB"):
        env.run(env.service.update(cid, {"Memory": 1024}))


def test_top_and_stats(env):
    cid = env.create(["sh", "-c", "sleep 100 & sleep 100 & wait"], {"Memory": 64 << 20, "PidsLimit": 50})
    with pytest.raises(FailedPrecondition, match="is not running"):
        env.run(env.service.top(cid))
    env.run(env.service.start(cid))
    def sleeps():
        t = env.run(env.service.top(cid))
        return t if sum(1 for p in t["Processes"] if p[-1] == "sleep 100") == 2 else None

    top = env.wait_for(sleeps, what="two sleep processes")
    assert "PID" in top["Titles"] and "CMD" in top["Titles"]
    assert len(top["Processes"]) == 3
    top = env.run(env.service.top(cid, "-o pid,comm"))
    assert top["Titles"] == ["PID", "COMMAND"]

    async def first_two():
        docs = []
        async for doc in env.service.stats(cid, stream=True):
            docs.append(doc)
            if len(docs) == 2:
                break
        return docs

    first, second = env.run(first_two())
    assert second["precpu_stats"] == first["cpu_stats"]
    assert second["preread"] == first["read"]
    assert second["memory_stats"]["limit"] == 64 << 20 and second["memory_stats"]["usage"] > 0
    assert second["pids_stats"] == {"current": 3, "limit": 50}
    assert second["cpu_stats"]["online_cpus"] >= 1 and second["cpu_stats"]["system_cpu_usage"] > 0
    assert second["name"] == env.inspect(cid)["Name"] and second["id"] == cid

    async def one():
        return [d async for d in env.service.stats(cid, stream=False)]

    docs = env.run(one())
    assert len(docs) == 1 and docs[0]["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    env.run(env.service.stop(cid, timeout=1))
    docs = env.run(one())
    assert docs[0]["read"] == "0001-01-01T00:00:00Z"


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.uid = 1234
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _get(env, cid, path):
    async def go():
        stat, chunks = await env.service.archive_get(cid, path)
        data = b"".join([c async for c in chunks])
        return stat, data
    return env.run(go())


@pytest.mark.parametrize("running", [False, True])
def test_cp_in_and_out(env, running):
    cid = env.create(["sleep", "100"] if running else ["true"])
    if running:
        env.run(env.service.start(cid))
    env.run(env.service.archive_put(cid, "/tmp", _tar({"hello.txt": b"hi there\n", "sub/x": b"x"})))
    stat, data = _get(env, cid, "/tmp/hello.txt")
    assert stat.name == "hello.txt" and stat.size == 9 and stat.mode == 0o644
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.getmember("hello.txt")
        assert tar.extractfile(member).read() == b"hi there\n"
        assert member.uid == 0  # copyUIDGID off: owned by the container's root
    stat, data = _get(env, cid, "/tmp/sub")
    assert stat.mode & (1 << 31)  # Go's ModeDir
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert sorted(tar.getnames()) == ["sub", "sub/x"]
    header = json.loads(base64.b64decode(stat.header_value()))
    assert header["name"] == "sub" and header["linkTarget"] == ""
    link = io.BytesIO()
    with tarfile.open(fileobj=link, mode="w") as tar:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../bin/busybox"
        tar.addfile(info)
    env.run(env.service.archive_put(cid, "/tmp", link.getvalue()))
    stat = env.run(env.service.archive_stat(cid, "/tmp/link"))
    assert stat.mode & (1 << 27) and stat.link_target == "/bin/busybox"
    with pytest.raises(NotFound, match="Could not find the file /nope in container"):
        env.run(env.service.archive_stat(cid, "/nope"))
    with pytest.raises(InvalidArgument):
        env.run(env.service.archive_put(cid, "/tmp/hello.txt", _tar({"a": b"a"})))
    # a path escaping through .. stays inside the container
    stat, data = _get(env, cid, "/../../../etc/passwd")
    assert data and stat.name == "passwd"


def test_cp_into_readonly_rootfs_refused(env):
    cid = env.create(["true"], {"ReadonlyRootfs": True})
    with pytest.raises(FailedPrecondition, match="container rootfs is marked read-only"):
        env.run(env.service.archive_put(cid, "/tmp", _tar({"a": b"a"})))


def test_changes_and_export(env):
    cid, code = env.run_container(["sh", "-c", "mkdir /newdir && echo x > /newdir/f && rm /bin/vi && "
                                              "echo y >> /etc/passwd"])
    assert code == 0
    changes = {(c["Path"], c["Kind"]) for c in env.run(env.service.changes(cid))}
    assert ("/newdir", 1) in changes and ("/newdir/f", 1) in changes
    assert ("/bin/vi", 2) in changes and ("/etc/passwd", 0) in changes

    async def export():
        return b"".join([c async for c in env.service.export(cid)])

    data = env.run(export())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(n.lstrip("./") for n in tar.getnames())
    assert "newdir/f" in names and "bin/busybox" in names and "bin/vi" not in names


def test_changes_hide_the_etc_mount_points(env):
    """/etc/hostname, /etc/hosts and /etc/resolv.conf are bind-mounted from
    the container's directory; the empty files made to mount them on are
    not the container's changes (Docker keeps them in an init layer)."""
    quiet, code = env.run_container(["true"])
    assert code == 0 and env.run(env.service.changes(quiet)) == []
    host_net, _ = env.run_container(["true"], {"NetworkMode": "host"})
    assert env.run(env.service.changes(host_net)) == []
    added, _ = env.run_container(["sh", "-c", "echo x > /etc/foo; echo 1.2.3.4 h >> /etc/hosts"])
    assert sorted((c["Path"], c["Kind"]) for c in env.run(env.service.changes(added))) == [
        ("/etc", 0), ("/etc/foo", 1)]
    chmodded, _ = env.run_container(["chmod", "700", "/etc"])
    assert env.run(env.service.changes(chmodded)) == [{"Path": "/etc", "Kind": 0}]
    # Written while stopped (docker cp), the mount point is a change.
    env.run(env.service.archive_put(quiet, "/etc", _tar({"hosts": b"10.0.0.1 db\n"})))
    assert sorted((c["Path"], c["Kind"]) for c in env.run(env.service.changes(quiet))) == [
        ("/etc", 0), ("/etc/hosts", 1)]
    # Never started: nothing was mounted, nothing to hide or show.
    assert env.run(env.service.changes(env.create(["true"]))) == []


def test_commit_and_run_the_new_image(env):
    cid, code = env.run_container(["sh", "-c", "echo committed > /marker"], Env=["STAGE=one"])
    result = env.run(env.service.commit(cid, repo="myimage", tag="v1", comment="made in a test",
                                        author="tester", changes=["CMD cat /marker"]))
    assert result["Id"].startswith("sha256:")
    new, code = env.run_container(None, Image="myimage:v1")
    assert code == 0 and env.logs(new) == "committed\n"
    info = env.images.inspect("myimage:v1")
    assert info["Author"] == "tester"
    assert env.images.history("myimage:v1")[0]["Comment"] == "made in a test"
    assert "STAGE=one" in info["Config"]["Env"]
    assert "commit" in env.actions(cid)
    # the image is in use: the image layer refuses to remove it without force
    users = env.service.image_users(result["Id"])
    assert [u.container_id for u in users] == [new]


def test_logs_follow_tail_since_timestamps(env):
    cid = env.create(["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done"])
    env.run(env.service.start(cid))

    async def follow():
        lines = []
        async for stream, data in env.service.logs(cid, follow=True):
            lines.append(data)
        return lines

    # follow ends when the container exits, with everything it wrote
    assert env.run(follow()) == [f"line {i}\n".encode() for i in range(1, 6)]
    assert env.logs(cid, tail=2) == "line 4\nline 5\n"
    assert env.logs(cid, tail=0) == ""
    stamped = env.logs(cid, timestamps=True).splitlines()
    assert len(stamped) == 5 and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line 1$", stamped[0])
    from dockyard.container.model import parse_time_ns
    ns = parse_time_ns(stamped[2].split()[0])
    third = f"{ns // 10**9}.{ns % 10**9:09d}"
    assert env.logs(cid, since=third) == "line 3\nline 4\nline 5\n"
    assert env.logs(cid, until=third) == "line 1\nline 2\nline 3\n"  # Docker: until is inclusive
    with pytest.raises(InvalidArgument, match="you must choose at least one stream"):
        env.logs(cid, stdout=False, stderr=False)
    none = env.create(["true"], {"LogConfig": {"Type": "none"}})
    with pytest.raises(FailedPrecondition, match="configured logging driver does not support reading"):
        env.logs(none)
    with pytest.raises(InvalidArgument, match='^error looking up logging plugin bogus: plugin "bogus" not found$'):
        env.create(["true"], {"LogConfig": {"Type": "bogus"}})


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_logs_follow_ends_with_an_auto_removed_container(env, driver):
    """docker-py's run(remove=True) and `docker run --rm` follow a container
    that removes itself: the follow ends with everything it wrote, though
    the log file is gone."""
    cid = env.create(["sh", "-c", "echo one; sleep 0.3; echo two"],
                     {"AutoRemove": True, "LogConfig": {"Type": driver}})

    async def follow():
        await env.service.start(cid)
        lines = []
        async for stream, data in env.service.logs(cid, follow=True):
            lines.append(data)
        return lines

    assert env.run(follow(), timeout=20) == [b"one\n", b"two\n"]
    env.wait_for(lambda: not env.run(env.service.list(all=True)), what="removal")
    assert not env.service._log_followers


def test_logs_follow_is_woken_by_the_exit(env):
    """A follow ends at the container's exit, not at its next poll."""
    env.service.log_poll_interval = 30.0
    cid = env.create(["sh", "-c", "echo one; sleep 0.3; echo two"])

    async def follow():
        await env.service.start(cid)
        lines = []
        async for stream, data in env.service.logs(cid, follow=True):
            lines.append(data)
        return lines, time.monotonic()

    lines, ended = env.run(follow(), timeout=20)
    finished = env.inspect(cid)["State"]["FinishedAt"]
    assert lines == [b"one\n", b"two\n"]
    from dockyard.container.model import parse_time
    assert time.time() - parse_time(finished) < 5  # not 30 s later


def test_local_log_driver_and_options(env):
    cid, code = env.run_container(["sh", "-c", "echo via local"], {"LogConfig": {"Type": "local", "Config": {"max-size": "1m"}}})
    assert env.logs(cid) == "via local\n"
    assert env.inspect(cid)["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {"max-size": "1m"}}


def test_oom_killed(env):
    cid = env.create(["sh", "-c", "x=a; while true; do x=$x$x; done"], {"Memory": 8 << 20, "MemorySwap": 8 << 20})
    env.run(env.service.start(cid))
    result = env.run(env.service.wait(cid))
    info = env.inspect(cid)
    assert result["StatusCode"] == 137
    assert info["State"]["OOMKilled"] is True
    assert "oom" in env.actions(cid)


def test_native_runtime_init_without_tini(env):
    env.service.init_binary = None   # a host without docker-init/tini
    cid, code = env.run_container(["sh", "-c", "cat /proc/1/comm; echo $$"], {"Init": True})
    out = env.logs(cid).split()
    assert code == 0 and out[0] == "dockyard-init" and out[1] != "1"


def test_restart_events_and_update_stopped(env):
    cid = env.create(["sleep", "100"])
    env.run(env.service.start(cid))
    env.run(env.service.restart(cid, timeout=1))
    assert env.actions(cid)[-5:] == ["kill", "die", "stop", "start", "restart"]
    env.run(env.service.stop(cid, timeout=1))
    # Memory alone above the swap set (none: 0) is refused, as dockerd does
    with pytest.raises(FailedPrecondition, match="update the memoryswap at the same time"):
        env.run(env.service.update(cid, {"Memory": 32 << 20}))
    env.run(env.service.update(cid, {"Memory": 32 << 20, "MemorySwap": -1,
                                     "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 1}}))
    env.run(env.service.start(cid))
    with open(f"/sys/fs/cgroup/memory{env.cgroup_parent}/{cid}/memory.limit_in_bytes") as f:
        assert int(f.read()) == 32 << 20
    auto = env.create(["true"], {"AutoRemove": True})
    with pytest.raises(InvalidArgument, match="Restart policy cannot be updated because AutoRemove is enabled"):
        env.run(env.service.update(auto, {"RestartPolicy": {"Name": "always"}}))
    with pytest.raises(InvalidArgument, match="unknown field"):
        env.run(env.service.update(cid, {"Image": "x"}))


def test_prune_filters(env):
    keep = env.create(["true"], Labels={"keep": "yes"})
    old = env.create(["true"], Labels={"keep": "no"})
    result = env.run(env.service.prune({"label!": ["keep=yes"]}))
    assert result["ContainersDeleted"] == [old]
    result = env.run(env.service.prune({"until": ["1h"]}))   # nothing is an hour old
    assert result["ContainersDeleted"] is None
    with pytest.raises(InvalidArgument, match="invalid filter 'status'"):
        env.run(env.service.prune({"status": ["exited"]}))
    result = env.run(env.service.prune({"label": ["keep"]}))
    assert result["ContainersDeleted"] == [keep]


def test_wait_removed(env):
    cid = env.create(["true"])

    async def wait_then_remove():
        waiter = env.loop.create_task(env.service.wait(cid, "removed"))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await env.service.remove(cid)
        return await waiter

    assert env.run(wait_then_remove())["StatusCode"] == 0


def test_remove_restarting_needs_force(env):
    cid = env.create(["false"], {"RestartPolicy": {"Name": "always"}})
    env.run(env.service.start(cid))
    env.wait_for(lambda: env.inspect(cid)["RestartCount"] >= 3, what="restarting")
    # it flips between running and restarting; either refuses removal
    with pytest.raises(FailedPrecondition,
                       match="container is (running|restarting)"):
        env.run(env.service.remove(cid))
    env.run(env.service.remove(cid, force=True))
    assert env.run(env.service.list(all=True)) == []


def test_etc_files_left_empty_or_missing_are_rebuilt_at_start(env):
    """The per-container /etc files are written without fsync (they are
    derived from the record); a crash can leave one empty or missing, and
    the next start rebuilds it."""
    cid = env.create(["cat", "/etc/hostname", "/etc/hosts"], Hostname="web")
    cdir = env.service.containers_dir / cid
    (cdir / "hosts").write_bytes(b"")
    (cdir / "hostname").unlink()
    env.run(env.service.start(cid))
    assert env.run(env.service.wait(cid))["StatusCode"] == 0
    out = env.logs(cid)
    assert out.startswith("web\n") and "localhost" in out
    assert (cdir / "hostname").read_text() == "web\n"
