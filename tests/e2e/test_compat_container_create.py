"""docker create/run refusals answered as dockerd answers them (read off a
private dockerd with the same docker CLI): status codes the CLI acts on,
and the exact words scripts grep for."""

from __future__ import annotations

import pytest


def _refused(result) -> str:
    assert result.returncode in (1, 125), (result.returncode, result.stdout, result.stderr)
    return result.stderr.decode()


@pytest.mark.parametrize("flags,message", [
    (["--cap-add", "BOGUS"], 'Error response from daemon: invalid CapAdd: unknown capability: "CAP_BOGUS"'),
    (["--cpuset-cpus", "x"], "Error response from daemon: Invalid value x for cpuset cpus: invalid format: x"),
    (["--log-driver", "bogus"],
     'Error response from daemon: error looking up logging plugin bogus: plugin "bogus" not found'),
    (["--storage-opt", "size=1G"],
     "Error response from daemon: --storage-opt is supported only for overlay over xfs with 'pquota' mount option"),
])
def test_create_refusals_worded_as_dockerd(e2e, flags, message):
    stderr = _refused(e2e.docker("create", *flags, "busybox", "true"))
    assert stderr.strip() == message


@pytest.mark.parametrize("flags,message", [
    (["--pid", "container:nope-{id}"], "No such container: nope-{id}"),
    (["--ipc", "container:nope-{id}"], "No such container: nope-{id}"),
    (["--network", "container:nope-{id}"], "No such container: nope-{id}"),
    (["--network", "nosuch-{id}"], "network nosuch-{id} not found"),
])
def test_missing_reference_is_not_a_missing_image(e2e, test_id, flags, message):
    """A 404 from create makes the docker CLI pull the image ("Unable to find
    image ... locally"); dockerd answers these with a 400."""
    flags = [f.format(id=test_id) for f in flags]
    stderr = _refused(e2e.docker("run", *flags, "busybox", "true"))
    assert "Unable to find image" not in stderr and "registry" not in stderr, stderr
    assert f"docker: Error response from daemon: {message.format(id=test_id)}" in stderr


def test_blkio_weight_without_the_controller_is_a_warning(e2e, test_id):
    """dockerd discards an unsupported weight (with a warning) before it
    checks the range; where the kernel has the weight, 5 is out of range."""
    name = f"blkio-{test_id}"
    result = e2e.docker("create", "--name", name, "--blkio-weight", "5", "busybox", "true")
    try:
        with e2e.client() as client:
            supported = client.info().get("BlkioWeight")
        if supported:
            assert "Range of blkio weight is from 10 to 1000" in _refused(result)
        else:
            assert result.returncode == 0, result.stderr
            assert b"Weight discarded." in result.stderr
    finally:
        e2e.docker("rm", "-f", name)


@pytest.mark.parametrize("command,code,cause", [
    (["/nonexistent-cmd"], 127, 'exec: "/nonexistent-cmd": stat /nonexistent-cmd: no such file or directory'),
    (["nosuchcmd"], 127, 'exec: "nosuchcmd": executable file not found in $PATH'),
    (["/etc"], 126, 'exec: "/etc": permission denied'),
])
def test_run_of_a_command_that_cannot_start(e2e, command, code, cause):
    """The docker CLI picks 127/126 from the start error's words, as with
    dockerd; with --rm it prints nothing but that error (its wait for the
    removal gets no error of its own, as from dockerd)."""
    result = e2e.docker("run", "--rm", "--network", "none", "busybox", *command)
    assert result.returncode == code, result.stderr
    stderr = result.stderr.decode()
    assert cause in stderr
    assert "Error waiting for container" not in stderr, stderr


def test_run_with_entrypoint_cleared(e2e, test_id):
    """`docker run --entrypoint "" image cmd` (the CLI sends [""]) runs cmd;
    inspect shows the entrypoint null, Path the command."""
    name = f"noep-{test_id}"
    result = e2e.docker("run", "--name", name, "--network", "none", "--entrypoint", "", "busybox", "echo", "hi")
    try:
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"hi\n"
        shown = e2e.docker("inspect", "-f", "{{json .Config.Entrypoint}} {{json .Path}} {{json .Args}}", name)
        assert shown.stdout.decode().strip() == 'null "echo" ["hi"]'
        command = e2e.docker("ps", "-a", "--no-trunc", "--filter", f"name={name}", "--format", "{{.Command}}")
        assert command.stdout.decode().strip() == '"echo hi"'
    finally:
        e2e.docker("rm", "-f", name)


@pytest.mark.parametrize("user,groups", [([], "0 10"), (["-u", "nobody"], "65534"), (["-u", "1000:100"], "100")])
def test_supplementary_groups_lead_with_the_primary_one(e2e, user, groups):
    result = e2e.docker("run", "--rm", "--network", "none", *user, "busybox", "grep", "^Groups:", "/proc/self/status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split()[1:] == groups.split()


def test_two_networks_refused_as_dockerd(e2e):
    stderr = _refused(e2e.docker("run", "--rm", "--network", "none", "--network", "host", "busybox", "true"))
    assert "docker: Error response from daemon: Container cannot be connected to network endpoints: host, none" \
        in stderr


@pytest.mark.parametrize("body", [{}, {"HostConfig": {}}])
def test_create_without_config_worded_as_dockerd(e2e, body):
    from dockyard.client.errors import RemoteError

    with e2e.client() as client, pytest.raises(RemoteError) as refused:
        client.post_json("/containers/create", json_body=body)
    assert refused.value.status == 400
    assert refused.value.message == "Config cannot be empty in order to create a container"
