"""Exec, attach (with stdin, logs replay, detach keys), resize and
healthchecks on real containers, through the supervisor."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.container.execs import DetachScanner, parse_detach_keys
from dockyard.errors import FailedPrecondition, InvalidArgument, NotFound


def collect(env, session, stdin: bytes | None = None, close_stdin: bool = True):
    async def go():
        if stdin is not None:
            await session.write(stdin)
            if close_stdin:
                await session.close_stdin()
        out = {1: b"", 2: b""}
        async for kind, data in session.output():
            out[kind] += data
        await session.close()
        return out
    return env.run(go())


def exec_run(env, cid, cmd, **config):
    exec_id = env.run(env.service.exec_create(cid, {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True,
                                                    **config}))["Id"]
    session = env.run(env.service.exec_start(exec_id))
    out = collect(env, session, config.get("_stdin"))
    return exec_id, session.exit_code, out


def test_detach_keys():
    assert parse_detach_keys(None) == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    with pytest.raises(InvalidArgument, match="Invalid detach keys"):
        parse_detach_keys("ctrl-1")
    scanner = DetachScanner(b"\x10\x11")
    assert scanner.feed(b"ab\x10") == (b"ab", False)
    assert scanner.feed(b"c") == (b"\x10c", False)
    assert scanner.feed(b"\x10\x11rest") == (b"", True)


def test_exec_output_exit_code_and_inspect(env):
    cid = env.create(["sleep", "100"], Env=["FROM_CONTAINER=1"], WorkingDir="/tmp")
    with pytest.raises(FailedPrecondition, match="is not running"):
        env.run(env.service.exec_create(cid, {"Cmd": ["true"]}))
    env.run(env.service.start(cid))
    with pytest.raises(InvalidArgument, match="No exec command specified"):
        env.run(env.service.exec_create(cid, {"Cmd": []}))
    exec_id, code, out = exec_run(env, cid, ["sh", "-c", "echo $FROM_CONTAINER $X $(pwd); echo e >&2; exit 4"],
                                  Env=["X=2"])
    assert code == 4 and out[1] == b"1 2 /tmp\n" and out[2] == b"e\n"
    info = env.run(env.service.exec_inspect(exec_id))
    assert info["ExitCode"] == 4 and info["Running"] is False and info["ContainerID"] == cid
    assert info["ProcessConfig"] == {"arguments": ["-c", "echo $FROM_CONTAINER $X $(pwd); echo e >&2; exit 4"],
                                     "entrypoint": "sh", "privileged": False, "tty": False}  # no "user" when unset
    # Docker lists running (and created) execs only; a finished one can
    # still be inspected.
    assert env.inspect(cid)["ExecIDs"] is None
    with pytest.raises(FailedPrecondition, match="has already run"):
        env.run(env.service.exec_start(exec_id))
    with pytest.raises(NotFound, match="No such exec instance: nope"):
        env.run(env.service.exec_inspect("nope"))
    actions = [a.split(":")[0] for a in env.actions(cid)]
    assert actions.count("exec_create") == 1 and actions.count("exec_start") == 1 and "exec_die" in actions


def test_exec_user_workdir_stdin_tty(env):
    cid = env.create(["sleep", "100"])
    env.run(env.service.start(cid))
    _, code, out = exec_run(env, cid, ["sh", "-c", "id -u; pwd"], User="nobody", WorkingDir="/etc")
    assert out[1].split() == [b"65534", b"/etc"]
    exec_id = env.run(env.service.exec_create(cid, {"Cmd": ["cat"], "AttachStdin": True, "AttachStdout": True}))["Id"]
    session = env.run(env.service.exec_start(exec_id))
    out = collect(env, session, b"through stdin\n")
    assert out[1] == b"through stdin\n" and session.exit_code == 0
    exec_id = env.run(env.service.exec_create(cid, {"Cmd": ["sh", "-c", "tty; stty size; echo $TERM"], "Tty": True,
                                                    "AttachStdout": True, "ConsoleSize": [30, 100]}))["Id"]
    session = env.run(env.service.exec_start(exec_id))
    out = collect(env, session)
    assert out[1].replace(b"\r", b"").split(b"\n")[:3] == [b"/dev/pts/0", b"30 100", b"xterm"]
    assert out[2] == b""  # a tty has one stream


def test_exec_detached(env):
    cid = env.create(["sleep", "100"])
    env.run(env.service.start(cid))
    exec_id = env.run(env.service.exec_create(cid, {"Cmd": ["sh", "-c", "sleep 0.3; exit 9"]}))["Id"]
    assert env.run(env.service.exec_start(exec_id, detach=True)) is None
    assert env.run(env.service.exec_inspect(exec_id))["Running"] is True
    env.wait_for(lambda: env.run(env.service.exec_inspect(exec_id))["ExitCode"] == 9, what="detached exec exit")


def test_attach_stdin_logs_and_detach(env):
    cid = env.create(["sh", "-c", "echo started; while read line; do echo got $line; done; echo eof"],
                     OpenStdin=True, StdinOnce=True)
    env.run(env.service.start(cid))
    env.wait_for(lambda: "started" in env.logs(cid), what="started")
    session = env.run(env.service.attach(cid, stdin=True, stream=True, logs=True))

    async def talk():
        out = b""
        it = session.output().__aiter__()
        while b"started" not in out:
            out += (await it.__anext__())[1]
        await session.write(b"one\n")
        while b"got one" not in out:
            out += (await it.__anext__())[1]
        await session.close_stdin()   # StdinOnce: the container's stdin closes
        async for _, data in it:
            out += data
        return out

    out = env.run(talk())
    assert out == b"started\ngot one\neof\n"
    assert env.run(env.service.wait(cid))["StatusCode"] == 0
    assert "attach" in env.actions(cid)


def test_attach_detach_keys_leave_container_running(env):
    cid = env.create(["sh", "-c", "while read line; do echo got $line; done"], OpenStdin=True, Tty=True)
    env.run(env.service.start(cid))
    session = env.run(env.service.attach(cid, stdin=True, detach_keys="ctrl-x"))

    async def go():
        ok = await session.write(b"abc\r")
        detached = await session.write(b"\x18")
        return ok, detached

    assert env.run(go()) == (True, False)
    assert session.detached
    assert env.inspect(cid)["State"]["Running"] is True
    env.run(env.service.resize(cid, 40, 120))
    _, code, out = exec_run(env, cid, ["sh", "-c", "stty size < /proc/1/fd/0"])
    assert out[1] == b"40 120\n"
    assert "resize" in env.actions(cid)


def test_healthcheck_healthy_and_unhealthy(env):
    interval = 200_000_000  # 0.2 s
    healthy = env.create(["sleep", "100"], Healthcheck={"Test": ["CMD-SHELL", "test -e /tmp/ok || touch /tmp/ok"],
                                                         "Interval": interval, "Retries": 2})
    sick = env.create(["sleep", "100"], Healthcheck={"Test": ["CMD", "false"], "Interval": interval,
                                                      "Retries": 2, "Timeout": 1_000_000_000})
    env.run(env.service.start(healthy))
    env.run(env.service.start(sick))
    assert env.inspect(healthy)["State"]["Health"]["Status"] == "starting"
    env.wait_for(lambda: env.inspect(healthy)["State"]["Health"]["Status"] == "healthy", what="healthy")
    env.wait_for(lambda: env.inspect(sick)["State"]["Health"]["Status"] == "unhealthy", what="unhealthy")
    health = env.inspect(sick)["State"]["Health"]
    assert health["FailingStreak"] >= 2 and health["Log"][-1]["ExitCode"] == 1
    env.wait_for(lambda: len(env.inspect(sick)["State"]["Health"]["Log"]) == 5, what="five log entries")
    env.run(asyncio.sleep(0.5))
    assert len(env.inspect(sick)["State"]["Health"]["Log"]) == 5  # only the last five are kept
    assert "health_status: healthy" in env.actions(healthy)
    assert "health_status: unhealthy" in env.actions(sick)
    ids = [c["Id"] for c in env.run(env.service.list(filters={"health": ["unhealthy"]}))]
    assert ids == [sick]
    assert "(unhealthy)" in [c for c in env.run(env.service.list()) if c["Id"] == sick][0]["Status"]


def test_healthcheck_timeout(env):
    cid = env.create(["sleep", "100"], Healthcheck={"Test": ["CMD", "sleep", "5"], "Interval": 100_000_000,
                                                     "Timeout": 200_000_000, "Retries": 1})
    env.run(env.service.start(cid))
    env.wait_for(lambda: env.inspect(cid)["State"]["Health"]["Status"] == "unhealthy", what="unhealthy by timeout")
    entry = env.inspect(cid)["State"]["Health"]["Log"][0]
    assert entry["ExitCode"] == -1 and entry["Output"] == "Health check exceeded timeout (200ms)"


def test_attach_before_start_sees_everything(env):
    """docker run / start -a: attach first, then start; no output is lost."""
    cid = env.create(["sh", "-c", "echo first; read x; echo got $x; echo err >&2"], OpenStdin=True, StdinOnce=True)

    async def run():
        session = await env.service.attach(cid, stdin=True, stdout=True, stderr=True)
        waiter = asyncio.get_running_loop().create_task(env.service.wait(cid, "next-exit"))
        await env.service.start(cid)
        await session.write(b"hello\n")
        await session.close_stdin()
        out = {1: b"", 2: b""}
        async for kind, data in session.output():
            out[kind] += data
        return out, await waiter

    out, result = env.run(run())
    assert out == {1: b"first\ngot hello\n", 2: b"err\n"} and result["StatusCode"] == 0
    # attaching to an exited container waits for its next start (docker start -a)
    session = env.run(env.service.attach(cid, stdin=True, stdout=True, stderr=True))
    got = env.loop.create_task(collect_async(session))
    env.run(asyncio.sleep(0.1))
    assert not got.done()
    env.run(env.service.start(cid))
    env.run(session.write(b"again\n"))
    env.run(session.close_stdin())
    assert env.run(got) == {1: b"first\ngot again\n", 2: b"err\n"}


async def collect_async(session):
    out = {1: b"", 2: b""}
    async for kind, data in session.output():
        out[kind] += data
    return out


def test_attach_and_start_again_right_after_the_stream_ended(env):
    """The end of an attach stream comes before the service has recorded
    the exit; a client that attaches and starts again at once (a loop of
    `docker start -a`) must get the new run, not a supervisor that is gone."""
    cid = env.create(["sh", "-c", "echo run"])

    async def runs(n):
        outputs = []
        for _ in range(n):
            session = await env.service.attach(cid, stdout=True, stderr=True)
            await env.service.start(cid)
            outputs.append(await collect_async(session))
        return outputs

    assert env.run(runs(10)) == [{1: b"run\n", 2: b""}] * 10


def test_tty_ignores_stdin_once_on_detach(env):
    """`run -it` sends StdinOnce with Tty; Docker ignores StdinOnce for a
    TTY, so detaching (ctrl-p ctrl-q) leaves the shell running and its
    input open for the next attach.  Inspect shows what the client sent."""
    cid = env.create(["sh"], Tty=True, OpenStdin=True, StdinOnce=True, AttachStdin=True)
    assert env.inspect(cid)["Config"]["StdinOnce"] is True

    async def first():
        session = await env.service.attach(cid, stdin=True)
        await env.service.start(cid)
        seen = bytearray()

        async def read():
            async for _, data in session.output():
                seen.extend(data)

        reader = asyncio.get_running_loop().create_task(read())
        assert await session.write(b"echo one\r") is True
        while b"one\r\n" not in seen:  # the echo of the command, then its output
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert await session.write(b"\x10\x11") is False  # detached
        await asyncio.wait_for(reader, 5)
        return session.detached

    assert env.run(first()) is True
    env.run(asyncio.sleep(0.5))
    assert env.inspect(cid)["State"]["Running"] is True

    async def again():
        session = await env.service.attach(cid, stdin=True)
        await session.write(b"exit 3\r")
        await collect_async(session)
        return await env.service.wait(cid)

    assert env.run(again())["StatusCode"] == 3


def test_stdin_once_without_tty_closes_stdin_when_the_client_goes(env):
    cid = env.create(["sh", "-c", "cat; echo stdin-closed"], OpenStdin=True, StdinOnce=True)

    async def go():
        session = await env.service.attach(cid, stdin=True)
        await env.service.start(cid)
        await session.write(b"data\n")
        await session.close_stdin()
        return await collect_async(session)

    assert env.run(go()) == {1: b"data\nstdin-closed\n", 2: b""}


def test_exec_records_of_finished_execs_are_dropped(env):
    """The service's exec bookkeeping is bounded: a finished exec can be
    inspected for a while (Docker's), then its record goes; at most
    ``exec_history_limit`` finished ones are kept per container."""
    env.service.exec_history_limit = 3
    cid = env.create(["sleep", "100"])
    env.run(env.service.start(cid))
    pending = env.run(env.service.exec_create(cid, {"Cmd": ["true"]}))["Id"]
    finished = [exec_run(env, cid, ["sh", "-c", f"exit {i}"])[0] for i in range(5)]
    assert env.run(env.service.exec_inspect(finished[-1]))["ExitCode"] == 4
    kept = [e for e in finished if e in env.service._execs]
    assert kept == finished[-3:]
    with pytest.raises(NotFound, match="No such exec instance"):
        env.run(env.service.exec_inspect(finished[0]))
    assert env.inspect(cid)["ExecIDs"] == [pending]  # created, not started: listed and kept
    env.service.exec_record_ttl = 0.2
    env.run(asyncio.sleep(0.3))
    env.run(env.service.exec_create(cid, {"Cmd": ["true"]}))
    assert not [e for e in finished if e in env.service._execs]
    assert pending in env.service._execs
