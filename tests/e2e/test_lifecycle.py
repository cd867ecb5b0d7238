"""Detached containers end to end: logs, exec, ps, top, stats, cp, diff,
commit/history, save/load, pause, rename, update, wait, export, events,
prune -- through the docker CLI, Dockyard's CLI and docker-py."""

from __future__ import annotations

import io
import json
import re
import tarfile
import time

import pytest
from testlib import ok as _ok
from testlib import wait_for

COUNTER = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done"


def test_detached_logs_exec_stop_rm(e2e, test_id):
    name = f"counter-{test_id}"
    cid = _ok(e2e.docker("run", "-d", "--name", name, "busybox", "sh", "-c", COUNTER)).strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    wait_for(lambda: "line 5" in _ok(e2e.cli("logs", name)), what="five lines")
    for logs in (_ok(e2e.docker("logs", name)), _ok(e2e.cli("logs", name))):
        numbers = [int(n) for n in re.findall(r"^line (\d+)$", logs, re.M)]
        assert numbers[:6] == list(range(6))
    tail = _ok(e2e.cli("logs", "--tail", "2", "-t", name)).splitlines()
    assert len(tail) == 2 and all(re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z line \d+$", t) for t in tail)
    assert _ok(e2e.docker("logs", "-n", "1", name)).count("\n") == 1
    # exec: output, exit status, environment and user.
    r = e2e.docker("exec", "-e", "X=1", "-u", "nobody", name, "sh", "-c", "echo $X $(id -u); exit 7")
    assert (r.returncode, r.stdout) == (7, b"1 65534\n")
    r = e2e.cli("exec", "-w", "/etc", name, "pwd")
    assert (r.returncode, r.stdout) == (0, b"/etc\n")
    r = e2e.docker("exec", "-i", name, "cat", input=b"via stdin\n")
    assert (r.returncode, r.stdout) == (0, b"via stdin\n")
    r = e2e.cli("exec", name, "no-such-command")
    assert r.returncode in (126, 127), r
    _ok(e2e.docker("exec", "-d", name, "sh", "-c", "echo detached > /tmp/mark"))
    wait_for(lambda: e2e.cli("exec", name, "cat", "/tmp/mark").stdout == b"detached\n", what="detached exec")
    # logs -f ends when the container stops.
    started = time.monotonic()
    follow = e2e.client().logs(name, follow=True, tail="1")
    _ok(e2e.docker("stop", "-t", "1", name))
    rest = follow.read()
    follow.close()
    assert time.monotonic() - started < 10 and b"line" in rest
    status = _ok(e2e.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name)).split()
    assert status[0] == "exited" and status[1] in ("137", "143")
    assert e2e.docker("stop", name).returncode == 0  # stopping a stopped container is fine (304)
    _ok(e2e.cli("rm", name))
    assert e2e.docker("inspect", name).returncode == 1


def test_ps_format_and_filters(e2e, test_id):
    up = f"ps-up-{test_id}"
    done = f"ps-done-{test_id}"
    _ok(e2e.cli("run", "-d", "--name", up, "-l", f"suite={test_id}", "busybox", "sleep", "60"))
    e2e.cli("run", "--name", done, "-l", f"suite={test_id}", "busybox", "sh", "-c", "exit 2")
    for out in (_ok(e2e.cli("ps", "-a", "--filter", f"label=suite={test_id}")),
                _ok(e2e.docker("ps", "-a", "--filter", f"label=suite={test_id}"))):
        lines = out.splitlines()
        assert re.match(r"CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$", lines[0])
        rows = {line.split()[-1]: line for line in lines[1:]}
        assert set(rows) == {up, done}
        assert re.search(r'busybox\s+"sleep 60"\s+.* ago\s+Up \d+ seconds?|Up Less than a second', rows[up])
        assert re.search(r"Exited \(2\) .* ago", rows[done])
    ours = _ok(e2e.cli("ps", "-a", "--filter", f"label=suite={test_id}", "--format",
                       "{{.Names}}|{{.Status}}|{{.Command}}|{{.Image}}"))
    theirs = _ok(e2e.docker("ps", "-a", "--filter", f"label=suite={test_id}", "--format",
                            "{{.Names}}|{{.Status}}|{{.Command}}|{{.Image}}"))
    # "Up 1 second" may tick to "Up 2 seconds" between the two calls
    ago = re.compile(r"(Up|\)) (Less than a second|About a minute|an? \w+|\d+ \w+)")
    assert ago.sub(r"\1 <when>", ours) == ago.sub(r"\1 <when>", theirs)
    running = _ok(e2e.cli("ps", "-q", "--filter", f"label=suite={test_id}")).split()
    assert len(running) == 1 and len(running[0]) == 12
    exited = _ok(e2e.docker("ps", "-aq", "--no-trunc", "--filter", "exited=2", "--filter",
                            f"label=suite={test_id}")).split()
    assert len(exited) == 1 and len(exited[0]) == 64
    as_json = [json.loads(line) for line in _ok(e2e.cli("ps", "--format", "json", "--filter",
                                                        f"name={up}")).splitlines()]
    assert [row["Names"] for row in as_json] == [up] and as_json[0]["State"] == "running"
    assert _ok(e2e.cli("ps", "-a", "-n", "1", "--format", "{{.Names}}")).strip() == done
    _ok(e2e.docker("rm", "-f", up, done))


def test_top_stats_pause_rename_update_wait(e2e, test_id):
    name = f"worker-{test_id}"
    _ok(e2e.docker("run", "-d", "--name", name, "--memory", "64m", "busybox", "sh", "-c",
                   "sleep 300 & while true; do sleep 1; done"))
    top = wait_for(lambda: [line for line in _ok(e2e.docker("top", name)).splitlines()
                             if "sleep 300" in line or line.startswith("UID")], what="sleep 300 in top")
    assert top[0].split()[:3] == ["UID", "PID", "PPID"] and len(top) >= 2
    assert _ok(e2e.cli("top", name, "-o", "pid,comm")).splitlines()[0].split() == ["PID", "COMMAND"]
    stats = _ok(e2e.docker("stats", "--no-stream", name)).splitlines()
    assert re.match(r"CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE / LIMIT\s+MEM %\s+NET I/O\s+BLOCK I/O\s+PIDS",
                    stats[0])
    fields = re.split(r"\s{2,}", stats[1].strip())
    assert fields[1] == name and fields[2].endswith("%") and fields[3].endswith(" / 64MiB")
    assert int(fields[-1]) >= 2
    ours = _ok(e2e.cli("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", name)).split()
    assert ours[0] == name and ours[3] == "64MiB" and int(ours[4]) >= 2
    _ok(e2e.cli("pause", name))
    assert _ok(e2e.docker("inspect", "-f", "{{.State.Status}}", name)) == "paused\n"
    assert "(Paused)" in _ok(e2e.docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}"))
    _ok(e2e.docker("unpause", name))
    _ok(e2e.docker("rename", name, name + "-2"))
    _ok(e2e.cli("update", "--memory", "128m", "--memory-swap", "256m", "--pids-limit", "40", name + "-2"))
    inside = _ok(e2e.cli("exec", name + "-2", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                                          "/sys/fs/cgroup/pids/pids.max")).split()
    assert inside == [str(128 << 20), "40"]
    _ok(e2e.cli("kill", "-s", "KILL", name + "-2"))
    assert _ok(e2e.cli("wait", name + "-2")) == "137\n"
    assert _ok(e2e.docker("wait", name + "-2")) == "137\n"
    assert e2e.cli("kill", name + "-2").returncode == 1
    _ok(e2e.docker("rm", name + "-2"))


def test_cp_both_ways(e2e, tmp_path, test_id):
    name = f"cp-{test_id}"
    _ok(e2e.docker("run", "-d", "--name", name, "busybox", "sleep", "60"))
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.txt").write_text("beta\n")
    for tool, run in (("docker", e2e.docker), ("dockyard", e2e.cli)):
        _ok(run("cp", str(src / "a.txt"), f"{name}:/tmp/{tool}-a.txt"))
        _ok(run("cp", str(src), f"{name}:/tmp/{tool}-dir"))
        assert _ok(e2e.docker("exec", name, "cat", f"/tmp/{tool}-a.txt", f"/tmp/{tool}-dir/sub/b.txt")) == \
            "alpha\nbeta\n"
        back = tmp_path / f"back-{tool}"
        _ok(run("cp", f"{name}:/tmp/{tool}-dir", str(back)))
        assert (back / "a.txt").read_text() == "alpha\n" and (back / "sub" / "b.txt").read_text() == "beta\n"
        _ok(run("cp", f"{name}:/etc/hostname", str(tmp_path / f"hostname-{tool}")))
        assert (tmp_path / f"hostname-{tool}").read_text().strip() == \
            _ok(e2e.docker("inspect", "-f", "{{.Config.Hostname}}", name)).strip()
        streamed = run("cp", f"{name}:/tmp/{tool}-a.txt", "-")
        with tarfile.open(fileobj=io.BytesIO(_ok_bytes(streamed))) as tar:
            assert tar.extractfile(f"{tool}-a.txt").read() == b"alpha\n"
        missing = run("cp", f"{name}:/no/such/file", str(tmp_path / "x"))
        assert missing.returncode == 1 and b"Could not find the file /no/such/file" in missing.stderr
    # A tar on stdin.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("piped.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"piped\n"))
    _ok(e2e.cli("cp", "-", f"{name}:/tmp", input=buf.getvalue()))
    assert _ok(e2e.cli("exec", name, "cat", "/tmp/piped.txt")) == "piped\n"
    _ok(e2e.docker("rm", "-f", name))


def _ok_bytes(result) -> bytes:
    assert result.returncode == 0, (result.returncode, result.stderr)
    return result.stdout


def test_diff_commit_history_save_load(e2e, tmp_path, test_id):
    name = f"changed-{test_id}"
    _ok(e2e.cli("run", "--name", name, "busybox", "sh", "-c",
                "mkdir /data && echo hi > /data/file && rm /bin/vi && echo x >> /etc/profile"))
    diff = dict(reversed(line.split(" ", 1)) for line in _ok(e2e.docker("diff", name)).splitlines())
    assert diff["/data"] == "A" and diff["/data/file"] == "A" and diff["/bin/vi"] == "D"
    assert diff["/etc/profile"] in ("A", "C")
    assert _ok(e2e.cli("diff", name)) == _ok(e2e.docker("diff", name))
    image_id = _ok(e2e.docker("commit", "-m", "add data", "-a", "tester", "-c", "ENV FROM_COMMIT=yes", name,
                              f"committed-{test_id}:v1")).strip()
    assert image_id.startswith("sha256:")
    history = _ok(e2e.docker("history", "--no-trunc", f"committed-{test_id}:v1")).splitlines()
    assert "add data" in history[1]
    out = _ok(e2e.cli("run", "--rm", f"committed-{test_id}:v1", "sh", "-c",
                      "cat /data/file; echo $FROM_COMMIT; ls /bin/vi 2>&1 || true"))
    assert out.startswith("hi\nyes\n") and "No such file" in out
    info = json.loads(_ok(e2e.cli("image", "inspect", f"committed-{test_id}:v1")))[0]
    assert info["Author"] == "tester"
    # save / rmi / load: the same image comes back.
    archive = tmp_path / "saved.tar"
    _ok(e2e.docker("save", "-o", str(archive), f"committed-{test_id}:v1"))
    _ok(e2e.docker("rm", name))
    _ok(e2e.docker("rmi", f"committed-{test_id}:v1"))
    assert e2e.docker("image", "inspect", f"committed-{test_id}:v1").returncode == 1
    loaded = _ok(e2e.cli("load", "-i", str(archive)))
    assert f"committed-{test_id}:v1" in loaded
    assert _ok(e2e.docker("image", "inspect", "-f", "{{.Id}}", f"committed-{test_id}:v1")).strip() == image_id
    assert _ok(e2e.docker("run", "--rm", f"committed-{test_id}:v1", "cat", "/data/file")) == "hi\n"
    # docker-py commit.
    client = e2e.docker_py()
    container = client.containers.run("busybox", ["sh", "-c", "echo py > /py"], detach=True)
    assert container.wait()["StatusCode"] == 0
    image = container.commit(f"pycommit-{test_id}", "v2")
    assert f"pycommit-{test_id}:v2" in image.tags
    check = client.containers.run(image.id, ["cat", "/py"], detach=True)
    assert check.wait()["StatusCode"] == 0 and check.logs() == b"py\n"
    check.remove()
    container.remove()
    _ok(e2e.cli("rmi", f"committed-{test_id}:v1", f"pycommit-{test_id}:v2"))


def test_export_and_prune(e2e, tmp_path, test_id):
    name = f"exported-{test_id}"
    _ok(e2e.docker("run", "--name", name, "busybox", "sh", "-c", "echo inside > /marker"))
    out = tmp_path / "export.tar"
    _ok(e2e.cli("export", "-o", str(out), name))
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert {"marker", "bin/busybox"} <= {n.lstrip("./") for n in names}
    streamed = e2e.docker("export", name)
    assert streamed.returncode == 0 and len(streamed.stdout) > 100_000
    kept = f"kept-{test_id}"
    _ok(e2e.docker("run", "-d", "--name", kept, "busybox", "sleep", "60"))
    report = _ok(e2e.cli("container", "prune", "-f"))
    assert report.startswith("Deleted Containers:\n") and "Total reclaimed space:" in report
    assert e2e.docker("inspect", name).returncode == 1
    assert _ok(e2e.docker("inspect", "-f", "{{.State.Running}}", kept)) == "true\n"
    assert "Total reclaimed space" in _ok(e2e.docker("container", "prune", "-f"))
    _ok(e2e.docker("rm", "-f", kept))


def test_events_show_the_lifecycle(e2e, test_id):
    name = f"evented-{test_id}"
    since = f"{time.time() - 1:.3f}"
    e2e.docker("run", "--rm", "--name", name, "busybox", "true")
    until = f"{time.time() + 1:.3f}"
    for run in (e2e.docker, e2e.cli):
        out = _ok(run("events", "--since", since, "--until", until, "--filter", f"container={name}",
                      "--format", "{{.Action}}"))
        actions = out.split()
        for wanted in ("create", "attach", "start", "die", "destroy"):
            assert wanted in actions, (wanted, actions)
        assert actions.index("create") < actions.index("start") < actions.index("die") < actions.index("destroy")
    client = e2e.docker_py()
    seen = [e["Action"] for e in client.events(since=float(since), until=float(until), decode=True,
                                               filters={"container": name})]
    assert "start" in seen and "destroy" in seen


@pytest.mark.parametrize("tool", ["docker", "dockyard"])
def test_attach_to_running_container(e2e, tool, test_id):
    """attach (no TTY) sees live output and ends with the container's status."""
    import subprocess

    from daemon.harness import _daemon_env

    name = f"attached-{tool}-{test_id}"
    _ok(e2e.docker("run", "-d", "-i", "--name", name, "busybox", "sh", "-c",
                   "read line; echo got $line; exit 5"))
    cmd = (["docker"] if tool == "docker" else [__import__("sys").executable, "-m", "dockyard.cli.main"])
    proc = subprocess.Popen(cmd + ["attach", name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**e2e.daemon.env(), **_daemon_env()})
    try:
        time.sleep(1.0)  # attached before we type
        out, err = proc.communicate(b"hello\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, out) == (5, b"got hello\n"), err
    _ok(e2e.docker("rm", name))
