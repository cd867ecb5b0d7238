"""``run`` end to end with three clients (Dockyard's CLI, the docker CLI,
docker-py): output, exit codes, errors in Docker's words, piped stdin,
inspect fields, resource limits seen from inside, isolation probes."""

from __future__ import annotations

import json
import os
import socket

import pytest

from dockyard.container.model import parse_time
from testlib import ok as _ok

CLIENTS = ["dockyard", "docker"]


def _run(e2e, client: str, *args: str, input: bytes | None = None):
    return (e2e.cli if client == "dockyard" else e2e.docker)(*args, input=input)


@pytest.mark.parametrize("client", CLIENTS)
def test_output_and_exit_codes(e2e, client):
    r = _run(e2e, client, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (r.returncode, r.stdout) == (0, b"out\n")
    assert b"err\n" in r.stderr
    assert _run(e2e, client, "run", "--rm", "busybox", "sh", "-c", "exit 3").returncode == 3
    missing = _run(e2e, client, "run", "--rm", "busybox", "no-such-command")
    assert missing.returncode == 127, missing.stderr
    assert b"no-such-command" in missing.stderr
    not_executable = _run(e2e, client, "run", "--rm", "busybox", "/etc/passwd")
    assert not_executable.returncode == 126, not_executable.stderr
    assert b"permission denied" in not_executable.stderr
    # --rm leaves nothing behind, even when the command could not start.
    with e2e.client() as c:
        assert not [x for x in c.containers(all=True) if x["Image"] == "busybox" and
                    x["Command"] in ("no-such-command", "/etc/passwd")]


@pytest.mark.parametrize("client", CLIENTS)
def test_start_failure_exit_codes_without_rm_and_detached(e2e, client, test_id):
    """127/126 whichever way run starts the container: attached, detached,
    with and without --rm (the daemon answers 400 in dockerd's words, and
    each CLI finds the code its own way: docker's from the message, ours
    from what the container recorded)."""
    cases = [((), "no-such-command", 127), ((), "/etc/passwd", 126), (("-d",), "no-such-command", 127),
             (("-d",), "/etc/passwd", 126), (("-d", "--rm"), "no-such-command", 127)]
    for n, (flags, cmd, code) in enumerate(cases):
        name = f"fail-{client}-{test_id}-{n}"
        r = _run(e2e, client, "run", *flags, "--name", name, "busybox", cmd)
        assert r.returncode == code, (flags, cmd, r.stderr)
        assert b"failed to create task for container: " in r.stderr, r.stderr
        if "--rm" not in flags:
            _run(e2e, client, "rm", name)


@pytest.mark.parametrize("client", CLIENTS)
def test_port_publishing_is_refused_until_bridge_networking(e2e, client, test_id):
    """-p/-P reach the daemon, which refuses them plainly (nothing is
    created) rather than running a container whose ports no one can reach;
    --expose is fine, and with the host's network the ports are the host's."""
    for flags in (("-p", "8080:80"), ("-P", "--expose", "80")):
        name = f"ports-{client}-{test_id}-{flags[0]}"
        r = _run(e2e, client, "run", "--rm", "--name", name, *flags, "busybox", "true")
        assert r.returncode == 125, r.stderr
        assert b"port publishing needs bridge networking, which this Dockyard does not have yet" in r.stderr
        assert _run(e2e, client, "inspect", name).returncode != 0
    assert _run(e2e, client, "run", "--rm", "--expose", "80", "busybox", "true").returncode == 0
    r = _run(e2e, client, "run", "--rm", "--network", "host", "-p", "8080:80", "busybox", "true")
    assert r.returncode == 0 and b"Published ports are discarded when using host network mode" in r.stderr


def test_start_failure_is_400_with_dockers_message(e2e):
    from dockyard.client import RemoteError

    with e2e.client() as c:
        cid = c.create_container({"Image": "busybox", "Cmd": ["no-such-command"]})["Id"]
        try:
            with pytest.raises(RemoteError) as failed:
                c.start_container(cid)
            assert failed.value.status == 400
            message = failed.value.message
            assert message.startswith("failed to create task for container: ") and message.endswith(": unknown")
            assert 'exec: "no-such-command": executable file not found in $PATH' in message
        finally:
            c.remove_container(cid, force=True)


@pytest.mark.parametrize("client", CLIENTS)
def test_piped_stdin_is_half_closed(e2e, client):
    data = b"".join(b"line %d\n" % i for i in range(2000))
    r = _run(e2e, client, "run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done", input=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data + b"done\n"


@pytest.mark.parametrize("client", CLIENTS)
def test_missing_image_and_bad_flags(e2e, client):
    r = _run(e2e, client, "run", "--rm", "no-such-image")
    assert r.returncode == 125
    assert b"Unable to find image 'no-such-image:latest' locally" in r.stderr
    assert b"no registry configured" in r.stderr
    r = _run(e2e, client, "run", "--bogus-flag", "busybox")
    assert r.returncode == 125 and b"unknown flag: --bogus-flag" in r.stderr


@pytest.mark.parametrize("client", CLIENTS)
def test_name_conflict_and_missing_objects(e2e, client, test_id):
    name = f"conflict-{client}-{test_id}"
    cid = _ok(_run(e2e, client, "create", "--name", name, "busybox", "true")).strip().splitlines()[-1]
    again = _run(e2e, client, "create", "--name", name, "busybox", "true")
    assert again.returncode == 1
    assert again.stderr.startswith(b"Error response from daemon: Conflict.")
    assert f'The container name "/{name}" is already in use by container "{cid}"'.encode() in again.stderr
    for verb in (["start"], ["stop"], ["rm"], ["logs"], ["inspect", "--type", "container"], ["kill"],
                 ["restart"], ["pause"], ["top"], ["diff"]):
        r = _run(e2e, client, *verb, f"nothere-{test_id}")
        assert r.returncode == 1, (verb, r.stderr)
        assert f"No such container: nothere-{test_id}".encode() in r.stderr, (verb, r.stderr)
    rm_running = _run(e2e, client, "run", "-d", "--name", name + "-up", "busybox", "sleep", "30")
    _ok(rm_running)
    r = _run(e2e, client, "rm", name + "-up")
    assert r.returncode == 1 and b"container is running" in r.stderr
    _ok(_run(e2e, client, "rm", "-f", name + "-up", name))


@pytest.mark.timeout(30)
def test_run_with_docker_py(e2e):
    # docker-py's run(remove=True) removes the container before it reads
    # the log stream it opened with follow: the follow must end then.
    import docker

    client = e2e.docker_py()
    assert client.containers.run("busybox", ["echo", "hello"], remove=True) == b"hello\n"
    with pytest.raises(docker.errors.ContainerError) as failed:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert failed.value.exit_status == 3 and b"bad" in failed.value.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.create("no-such-image")
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("no-such-container")
    with pytest.raises(docker.errors.APIError):
        client.containers.run("busybox", ["no-such-command"], remove=True)


def test_inspect_fields_and_host_config_round_trip(e2e, tmp_path, test_id):
    name = f"inspected-{test_id}"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "hello.txt").write_text("from the host\n")
    out = _ok(e2e.cli(
        "run", "--name", name, "-e", "FOO=bar", "-l", "team=blue", "-w", "/tmp", "--memory", "64m",
        "--pids-limit", "50", "--cpus", "0.5", "--cap-drop", "NET_RAW", "--read-only", "--tmpfs", "/scratch",
        "-v", f"{tmp_path / 'data'}:/data:ro", "--hostname", "boxhost", "--stop-signal", "SIGINT",
        "--restart", "on-failure:2", "busybox", "sh", "-c", "cat /data/hello.txt; echo $FOO; pwd; exit 0"))
    assert out == "from the host\nbar\n/tmp\n"
    info = json.loads(_ok(e2e.docker("inspect", name)))[0]
    state = info["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0 and state["OOMKilled"] is False
    # RFC 3339 with trailing zeros trimmed: compare as times, not strings
    assert state["Pid"] == 0 and parse_time(state["StartedAt"]) <= parse_time(state["FinishedAt"])
    assert not state["StartedAt"].startswith("0001")
    assert info["Name"] == "/" + name and info["Path"] == "sh"
    assert info["Config"]["Env"][:1] == ["FOO=bar"] or "FOO=bar" in info["Config"]["Env"]
    assert info["Config"]["Labels"] == {"team": "blue"}
    assert info["Config"]["WorkingDir"] == "/tmp" and info["Config"]["Hostname"] == "boxhost"
    assert info["Config"]["StopSignal"] == "SIGINT"
    hc = info["HostConfig"]
    assert hc["Memory"] == 64 << 20 and hc["PidsLimit"] == 50 and hc["NanoCpus"] == 500_000_000
    assert [c.removeprefix("CAP_") for c in hc["CapDrop"]] == ["NET_RAW"] and hc["ReadonlyRootfs"] is True
    assert hc["Tmpfs"] == {"/scratch": ""}
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert hc["Binds"] == [f"{tmp_path / 'data'}:/data:ro"]
    mount = next(m for m in info["Mounts"] if m["Destination"] == "/data")
    assert mount["Type"] == "bind" and mount["Source"] == str(tmp_path / "data") and mount["RW"] is False
    assert info["GraphDriver"]["Name"] == "overlay2" and info["GraphDriver"]["Data"]["UpperDir"]
    # The formats people script against.
    assert _ok(e2e.docker("inspect", "-f", "{{.State.ExitCode}} {{.HostConfig.Memory}}", name)) == \
        f"0 {64 << 20}\n"
    assert _ok(e2e.cli("inspect", "-f", "{{.Config.Labels.team}}", name)) == "blue\n"
    _ok(e2e.cli("rm", name))


def test_running_state_and_oom(e2e, test_id):
    name = f"running-{test_id}"
    _ok(e2e.docker("run", "-d", "--name", name, "busybox", "sleep", "30"))
    info = json.loads(_ok(e2e.cli("inspect", name)))[0]
    assert info["State"]["Running"] is True and info["State"]["Pid"] > 0
    assert os.path.exists(f"/proc/{info['State']['Pid']}")
    _ok(e2e.docker("rm", "-f", name))
    oom = e2e.docker("run", "--name", name + "-oom", "--memory", "8m", "--memory-swap", "8m", "busybox", "sh",
                     "-c", "x=a; while true; do x=$x$x$x$x; done")
    assert oom.returncode == 137
    assert _ok(e2e.docker("inspect", "-f", "{{.State.OOMKilled}}", name + "-oom")) == "true\n"
    _ok(e2e.docker("rm", name + "-oom"))


def test_resource_limits_seen_inside(e2e):
    out = _ok(e2e.cli(
        "run", "--rm", "--memory", "96m", "--pids-limit", "33", "--cpus", "0.5", "busybox", "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; "
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; "
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null "
        "|| cat /sys/fs/cgroup/cpu.max"))
    lines = out.split()
    assert lines[0] == str(96 << 20)
    assert lines[1] == "33"
    assert lines[2:] in (["50000", "100000"], ["50000 100000"])


def test_isolation_probes(e2e, test_id):
    out = _ok(e2e.docker("run", "--rm", "--hostname", "probe", "busybox", "sh", "-c",
                         "hostname; ps -o pid,comm | tail -n +2; echo ---; cat /proc/mounts"))
    hostname, rest = out.split("\n", 1)
    processes, mounts = rest.split("---\n")
    assert hostname == "probe" != socket.gethostname()
    # Only its own processes: sh as pid 1 and ps.
    pids = [line.split()[0] for line in processes.strip().splitlines()]
    assert pids[0] == "1" and len(pids) <= 3, processes
    # None of the host's mounts (the data root, /work, /home ...).
    for line in mounts.splitlines():
        target = line.split()[1]
        assert not target.startswith(("/work", "/tmp/", "/home", "/var/lib")), line
    # Network: a private namespace with only lo (no bridge networking yet).
    links = _ok(e2e.cli("run", "--rm", "busybox", "ip", "-o", "link"))
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]
    # --network host shares the host's.
    host_links = _ok(e2e.cli("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link"))
    assert len(host_links.splitlines()) > 1


def test_tty_output_without_stdin(e2e):
    r = e2e.docker("run", "--rm", "-t", "busybox", "sh", "-c", "echo tty; [ -t 1 ] && echo is-a-tty")
    assert r.returncode == 0 and r.stdout.replace(b"\r\n", b"\n") == b"tty\nis-a-tty\n"
    r = e2e.cli("run", "--rm", "-t", "busybox", "sh", "-c", "[ -t 1 ] && echo is-a-tty; exit 4")
    assert r.returncode == 4 and r.stdout.replace(b"\r\n", b"\n") == b"is-a-tty\n"


@pytest.mark.parametrize("client", CLIENTS)
def test_signals_are_proxied(e2e, client):
    import signal
    import subprocess
    import sys
    import time

    from daemon.harness import _daemon_env

    base = ["docker"] if client == "docker" else [sys.executable, "-m", "dockyard.cli.main"]
    proc = subprocess.Popen(base + ["run", "--rm", "busybox", "sh", "-c",
                                    'trap "echo got-term; exit 42" TERM; echo ready; '
                                    "while true; do sleep 0.1; done"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**e2e.daemon.env(), **_daemon_env()})
    try:
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, out) == (42, b"got-term\n")


def test_run_path_stays_light(e2e):
    """`dockyard run` is benchmarked end to end: no asyncio, aiohttp, rich,
    dataclasses or daemon-side module on its path."""
    import subprocess
    import sys

    from daemon.harness import _daemon_env

    code = ("import sys\n"
            "from dockyard.cli.main import run\n"
            "rc = run(['run', '--rm', 'busybox', 'true'])\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('asyncio', 'aiohttp', 'rich',\n"
            "               'dataclasses') or (m.startswith('dockyard.') and not m.startswith(\n"
            "               ('dockyard.cli', 'dockyard.client', 'dockyard.errors'))))\n"
            "print(rc, heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env={**e2e.daemon.env(), **_daemon_env()},
                         timeout=60)
    assert out.stdout.decode().strip() == "0 []", out
