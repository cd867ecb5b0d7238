"""Container operations answered as dockerd answers them (same docker CLI,
same docker-py): update's checks and reply, exec inspect, top's ps errors.
Each expectation was read off a private dockerd beside dockyardd."""

from __future__ import annotations

import docker
import pytest
from testlib import ok as _ok


def test_update_memory_needs_memoryswap_as_dockerd(e2e, test_id):
    name = f"upd-{test_id}"
    _ok(e2e.docker("run", "-d", "--name", name, "busybox", "sleep", "30"))
    try:
        # No limit at create: MemorySwap is 0, so a Memory alone is refused.
        refused = e2e.docker("update", "--memory", "32m", name)
        assert refused.returncode == 1
        assert b"Error response from daemon: Cannot update container " in refused.stderr
        assert refused.stderr.rstrip().endswith(
            b"Memory limit should be smaller than already set memoryswap limit, "
            b"update the memoryswap at the same time")
        assert _ok(e2e.docker("update", "--memory", "32m", "--memory-swap", "-1", name)).strip() == name
        fmt = "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}"
        assert _ok(e2e.docker("inspect", "-f", fmt, name)).split() == [str(32 << 20), "-1"]
        # A bad value is a parameter error worded as at create: no prefix.
        small = e2e.docker("update", "--memory", "1k", name)
        assert small.returncode == 1
        assert small.stderr.decode().strip() == "Error response from daemon: Minimum memory limit allowed is 6MB"
        with e2e.client() as client:
            reply = client.post_json(f"/containers/{name}/update", json_body={"PidsLimit": 50})
        assert reply == {"Warnings": None}
    finally:
        e2e.docker("rm", "-f", name)


def test_exec_inspect_shape(e2e, test_id):
    name = f"exi-{test_id}"
    client = e2e.docker_py()
    try:
        container = client.containers.run("busybox", ["sleep", "30"], name=name, detach=True, network_mode="none")
        try:
            exec_id = client.api.exec_create(container.id, ["sh", "-c", "exit 7"])["Id"]
            created = client.api.exec_inspect(exec_id)
            assert created["ExitCode"] is None and created["Running"] is False and created["Pid"] == 0
            assert created["ProcessConfig"] == {"tty": False, "entrypoint": "sh", "arguments": ["-c", "exit 7"],
                                                "privileged": False}
            client.api.exec_start(exec_id)
            done = client.api.exec_inspect(exec_id)
            assert done["ExitCode"] == 7 and done["Running"] is False and done["Pid"] > 0
            as_user = client.api.exec_create(container.id, ["true"], user="nobody")["Id"]
            assert client.api.exec_inspect(as_user)["ProcessConfig"]["user"] == "nobody"
        finally:
            container.remove(force=True)
    finally:
        client.close()


def test_top_bad_ps_args_worded_as_dockerd(e2e, test_id):
    name = f"top-{test_id}"
    _ok(e2e.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "30"))
    try:
        result = e2e.docker("top", name, "--bogus")
        assert result.returncode == 1
        assert result.stderr.decode().strip() == "Error response from daemon: ps: error: unknown gnu long option"
        titles = _ok(e2e.docker("top", name, "-o", "pid,comm")).splitlines()[0].split()
        assert titles == ["PID", "COMMAND"]
    finally:
        e2e.docker("rm", "-f", name)


def test_kill_signal_checked_first_and_worded_as_dockerd(e2e, test_id):
    name = f"kill-{test_id}"
    client = e2e.docker_py()
    try:
        # A bad signal is refused before the container is looked up.
        with pytest.raises(docker.errors.APIError) as refused:
            client.api.kill(f"nope-{test_id}", signal="FOO")
        assert refused.value.response.status_code == 400
        assert refused.value.explanation == f"cannot kill container: nope-{test_id}: Invalid signal: FOO"
    finally:
        client.close()
    _ok(e2e.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "30"))
    try:
        result = e2e.docker("kill", "-s", "999", name)
        assert result.returncode == 1
        assert result.stderr.decode().strip() == (
            f"Error response from daemon: cannot kill container: {name}: "
            "the linux daemon does not support signal 999")
        assert _ok(e2e.docker("kill", "-s", "9", name)).strip() == name
    finally:
        e2e.docker("rm", "-f", name)


def test_rename_errors_worded_as_dockerd(e2e, test_id):
    name = f"ren-{test_id}"
    _ok(e2e.docker("create", "--name", name, "--network", "none", "busybox"))
    client = e2e.docker_py()
    try:
        bad = e2e.docker("rename", name, "bad name")
        assert bad.returncode == 1
        assert bad.stderr.decode().splitlines()[0] == (
            "Error response from daemon: Error when allocating new name: Invalid container name (/bad name), "
            "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        with pytest.raises(docker.errors.APIError) as empty:
            client.api.rename(name, "")
        assert empty.value.response.status_code == 400
        assert empty.value.explanation == "Neither old nor new names may be empty"
        same = e2e.docker("rename", name, name)
        assert b"Renaming a container with the same name as its current name" in same.stderr
    finally:
        client.close()
        e2e.docker("rm", "-f", name)


def test_archive_missing_path_names_the_container_as_asked(e2e, test_id):
    name = f"arc-{test_id}"
    client = e2e.docker_py()
    try:
        container = client.containers.create("busybox", ["true"], name=name, network_mode="none")
        # docker-py's put_archive asks by ID
        with pytest.raises(docker.errors.NotFound) as missing:
            container.put_archive("/nonexist", b"")
        assert missing.value.explanation == f"Could not find the file /nonexist in container {container.id}"
        # and so does its get_archive (GET)
        with pytest.raises(docker.errors.NotFound) as missing:
            container.get_archive("/nonexist")
        assert missing.value.explanation == f"Could not find the file /nonexist in container {container.id}"
        # the docker CLI reads (GET) by the reference it was given
        for ref in (name, container.id[:12]):
            cp = e2e.docker("cp", f"{ref}:/nonexist", "-")
            assert cp.returncode == 1
            assert cp.stderr.decode().strip() == \
                f"Error response from daemon: Could not find the file /nonexist in container {ref}"
    finally:
        client.close()
        e2e.docker("rm", "-f", name)


def test_cp_into_a_file_worded_as_dockerd(e2e, test_id, tmp_path):
    name = f"cpf-{test_id}"
    (tmp_path / "f").write_text("x\n")
    _ok(e2e.docker("create", "--name", name, "--network", "none", "busybox"))
    try:
        result = e2e.docker("cp", str(tmp_path / "f"), f"{name}:/etc/hostname/x")
        assert result.returncode == 1
        assert result.stderr.decode().strip() == "Error response from daemon: extraction point is not a directory"
    finally:
        e2e.docker("rm", "-f", name)


def test_exec_that_cannot_start_exits_126(e2e, test_id):
    name = f"exf-{test_id}"
    _ok(e2e.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "30"))
    try:
        user = e2e.docker("exec", "-u", "nosuch", name, "true")
        assert user.returncode == 126, (user.stdout, user.stderr)
        assert b"unable to find user nosuch: no matching entries in passwd file" in user.stdout + user.stderr
        missing = e2e.docker("exec", name, "/nonexist")
        assert missing.returncode == 126
        text = (missing.stdout + missing.stderr).decode()
        assert text.startswith("OCI runtime exec failed: exec failed: unable to start container process: "), text
        assert 'exec: "/nonexist": stat /nonexist: no such file or directory' in text
        assert text.rstrip().endswith(": unknown")
    finally:
        e2e.docker("rm", "-f", name)


def test_update_without_restart_keeps_the_policy(e2e, test_id):
    """The docker CLI sends RestartPolicy {"Name": ""} with every update;
    dockerd keeps the policy already set."""
    name = f"keep-{test_id}"
    _ok(e2e.docker("create", "--name", name, "--restart", "on-failure:3", "--network", "none", "busybox"))
    try:
        _ok(e2e.docker("update", "--pids-limit", "20", name))
        fmt = "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        assert _ok(e2e.docker("inspect", "-f", fmt, name)).strip() == "on-failure:3"
        _ok(e2e.docker("update", "--restart", "always", name))
        assert _ok(e2e.docker("inspect", "-f", fmt, name)).strip() == "always:0"
    finally:
        e2e.docker("rm", "-f", name)


def test_exec_in_a_paused_container_names_it_as_asked(e2e, test_id):
    name = f"pz-{test_id}"
    _ok(e2e.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "30"))
    try:
        _ok(e2e.docker("pause", name))
        result = e2e.docker("exec", name, "true")
        assert result.returncode == 1
        assert result.stderr.decode().strip() == \
            f"Error response from daemon: Container {name} is paused, unpause the container before exec"
    finally:
        e2e.docker("rm", "-f", name)


def test_init_files_as_dockerd(e2e, test_id):
    """/.dockerenv (empty, 0755) and /etc/mtab -> /proc/mounts exist as in
    Docker's init layer: diff and commit leave them out, export has them;
    what a user changed there is a change."""
    import io
    import tarfile

    name = f"init-{test_id}"
    out = _ok(e2e.docker("run", "--name", name, "--network", "none", "busybox", "sh", "-c",
                         "stat -c '%a %s %F' /.dockerenv; readlink /etc/mtab"))
    try:
        assert out.splitlines() == ["755 0 regular empty file", "/proc/mounts"]
        assert _ok(e2e.docker("diff", name)) == ""
        exported = e2e.docker("export", name)
        assert exported.returncode == 0
        with tarfile.open(fileobj=io.BytesIO(exported.stdout)) as tar:
            members = {m.name: m for m in tar.getmembers()}
        assert members[".dockerenv"].isfile() and members[".dockerenv"].size == 0
        assert members["etc/mtab"].issym() and members["etc/mtab"].linkname == "/proc/mounts"
        assert members["dev/console"].isfile() and members["dev/pts"].isdir() and members["dev/shm"].isdir()
        image = f"init-{test_id}:c"
        _ok(e2e.docker("commit", name, image))
        try:
            # the committed layer is empty: the image's files are busybox's
            layers = _ok(e2e.docker("history", "--format", "{{.Size}}", image)).split()
            assert layers[0] == "0B", layers
        finally:
            e2e.docker("rmi", image)
    finally:
        e2e.docker("rm", "-f", name)
    changed = f"initc-{test_id}"
    _ok(e2e.docker("run", "--name", changed, "--network", "none", "busybox", "sh", "-c",
                   "echo x > /.dockerenv; ln -sf /nowhere /etc/mtab"))
    try:
        lines = _ok(e2e.docker("diff", changed)).splitlines()
        assert "/.dockerenv" in {line.split()[1] for line in lines}
        assert "/etc/mtab" in {line.split()[1] for line in lines}
    finally:
        e2e.docker("rm", "-f", changed)


def test_cp_of_a_stopped_containers_etc_files(e2e, test_id):
    """dockerd serves a stopped container's /etc/hostname, hosts and
    resolv.conf from its own copies (the files bind-mounted while it ran);
    one never started has the empty mount points of its init layer."""
    import io
    import tarfile

    def etc_files(ref: str) -> dict[str, bytes]:
        result = e2e.docker("cp", f"{ref}:/etc", "-")
        assert result.returncode == 0, result.stderr
        with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers()
                    if m.name in ("etc/hostname", "etc/hosts", "etc/resolv.conf")}

    name = f"cpe-{test_id}"
    _ok(e2e.docker("create", "--name", name, "--hostname", "h1", "--network", "none", "busybox", "true"))
    try:
        assert etc_files(name) == {"etc/hostname": b"", "etc/hosts": b"", "etc/resolv.conf": b""}
        _ok(e2e.docker("start", "-a", name))
        files = etc_files(name)
        assert files["etc/hostname"] == b"h1\n"
        assert b"127.0.0.1\tlocalhost" in files["etc/hosts"]
        assert files["etc/resolv.conf"]
        one = e2e.docker("cp", f"{name}:/etc/hostname", "-")
        with tarfile.open(fileobj=io.BytesIO(one.stdout)) as tar:
            member = tar.getmember("hostname")
            assert member.size == 3 and tar.extractfile(member).read() == b"h1\n"
    finally:
        e2e.docker("rm", "-f", name)


def test_commit_history_and_events_as_dockerd(e2e, test_id):
    """CREATED BY is the container's Cmd joined by spaces; a named commit
    announces the image tag, then the container commit (dockerd's order)."""
    import time

    name = f"cmt-{test_id}"
    image = f"cmt-{test_id}"
    _ok(e2e.docker("run", "--name", name, "--network", "none", "busybox", "sh", "-c", "echo hi > /x"))
    since = str(int(time.time()) - 1)
    try:
        image_id = _ok(e2e.docker("commit", name, image)).strip()
        created_by = _ok(e2e.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image)).splitlines()
        assert created_by[0] == "sh -c echo hi > /x"
        until = str(int(time.time()) + 1)
        events = _ok(e2e.docker("events", "--since", since, "--until", until, "--format",
                                "{{.Type}} {{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"name\"}} "
                                "{{index .Actor.Attributes \"imageRef\"}}")).splitlines()
        cid = _ok(e2e.docker("inspect", "-f", "{{.Id}}", name)).strip()
        assert events[-2:] == [f"image tag {image_id} {image}:latest ",
                               f"container commit {cid} {name} {image}:latest"], events
    finally:
        e2e.docker("rm", "-f", name)
        e2e.docker("rmi", image)


@pytest.mark.parametrize("driver,options,expected", [
    ("json-file", [], [b" out1", b" err1"]),
    ("local", [], [b" out1", b" err1"]),
    # keys sorted, each side query-escaped; the json-file entry keeps them
    ("json-file", ["--log-opt", "labels=a,missing", "--log-opt", "env=E", "--label", "a=x y,z", "-e", "E=p=q&r"],
     [b"E=p%3Dq%26r,a=x+y%2Cz out1", b"E=p%3Dq%26r,a=x+y%2Cz err1"]),
])
def test_logs_details_as_dockerd(e2e, test_id, driver, options, expected):
    name = f"det-{test_id}"
    _ok(e2e.docker("run", "--name", name, "--log-driver", driver, *options, "--network", "none", "busybox",
                   "sh", "-c", "echo out1; sleep 0.1; echo err1 >&2"))
    try:
        result = e2e.docker("logs", "--details", name)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() + result.stderr.splitlines() == expected
        plain = e2e.docker("logs", name)
        assert plain.stdout == b"out1\n" and plain.stderr == b"err1\n"
        if options:
            path = _ok(e2e.docker("inspect", "-f", "{{.LogPath}}", name)).strip()
            with open(path, "rb") as f:
                first = f.readline()
            assert first.startswith(b'{"log":"out1\\n","stream":"stdout","attrs":{"E":"p=q\\u0026r","a":"x y,z"},'
                                    b'"time":"'), first
    finally:
        e2e.docker("rm", "-f", name)


def test_init_and_exec_are_session_leaders_as_under_runc(e2e, test_id):
    name = f"sid-{test_id}"
    fields = "cut -d' ' -f1,5-8 /proc/$$/stat"
    out = _ok(e2e.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "30"))
    try:
        init = _ok(e2e.docker("exec", name, "cut", "-d", " ", "-f1,5-8", "/proc/1/stat"))
        assert init.split() == ["1", "1", "1", "0", "-1"], out
        pid, pgrp, session, tty, tpgid = _ok(e2e.docker("exec", name, "sh", "-c", fields)).split()
        assert (pgrp, session, tty, tpgid) == (pid, pid, "0", "-1")
        # with a terminal: its own session, and the tty its controlling one
        pid, pgrp, session, tty, tpgid = _ok(e2e.docker("exec", "-t", name, "sh", "-c", fields)).split()
        assert (pgrp, session, tpgid) == (pid, pid, pid) and tty != "0"
    finally:
        e2e.docker("rm", "-f", name)


def test_workdir_errors_worded_as_dockerd(e2e, test_id):
    name = f"wd-{test_id}"
    refused = e2e.docker("run", "--rm", "--name", name, "--network", "none", "-w", "/etc/passwd", "busybox", "true")
    assert refused.returncode == 125
    assert refused.stderr.decode().splitlines()[0] == \
        "docker: Error response from daemon: Cannot mkdir: /etc/passwd is not a directory"
    assert _ok(e2e.docker("ps", "-aq", "--filter", f"name={name}")) == ""
    # made at create, as dockerd does
    _ok(e2e.docker("create", "--name", name, "--network", "none", "-w", "/x/y", "busybox", "true"))
    try:
        assert _ok(e2e.docker("diff", name)).splitlines() == ["A /x", "A /x/y"]
    finally:
        e2e.docker("rm", "-f", name)
    _ok(e2e.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "30"))
    try:
        missing = e2e.docker("exec", "-w", "/nonexist", name, "true")
        assert missing.returncode == 126
        assert (missing.stdout + missing.stderr).decode().strip() == (
            "OCI runtime exec failed: exec failed: unable to start container process: "
            'chdir to cwd ("/nonexist") set in config.json failed: no such file or directory: unknown')
        a_file = e2e.docker("exec", "-w", "/etc/passwd", name, "true")
        assert a_file.returncode == 126
        assert (a_file.stdout + a_file.stderr).decode().strip() == (
            "OCI runtime exec failed: exec failed: unable to start container process: "
            'chdir to cwd ("/etc/passwd") set in config.json failed: not a directory: unknown: '
            "Are you trying to mount a directory onto a file (or vice-versa)? "
            "Check if the specified host path exists and is the expected type")
    finally:
        e2e.docker("rm", "-f", name)


def test_export_owner_names_as_dockerd(e2e, test_id):
    """dockerd archives an export chrooted in the container: owner names
    come from the container's own /etc/passwd and /etc/group (busybox's:
    root, nobody/nogroup, www-data, daemon), an ID without one gets none."""
    import io
    import tarfile

    name = f"own-{test_id}"
    _ok(e2e.docker("run", "--name", name, "--network", "none", "busybox", "sh", "-c",
                   "touch /a /b /c; chown 65534:65534 /a; chown 1000:1000 /b; chown 33:33 /c; "
                   "ln -s /a /l; chown -h 1:1 /l"))
    try:
        exported = e2e.docker("export", name)
        assert exported.returncode == 0
        with tarfile.open(fileobj=io.BytesIO(exported.stdout)) as tar:
            owners = {m.name: (m.uname, m.gname) for m in tar.getmembers()}
        # as dockerd's export of the same image showed them
        assert owners[".dockerenv"] == owners["etc"] == owners["bin/sh"] == ("root", "root")
        assert owners["a"] == ("nobody", "nogroup")
        assert owners["b"] == ("", "")
        assert owners["c"] == ("www-data", "www-data")
        assert owners["l"] == ("daemon", "daemon")
    finally:
        e2e.docker("rm", "-f", name)
