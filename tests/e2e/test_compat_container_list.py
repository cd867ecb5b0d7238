"""docker ps filters answered as dockerd answers them (read off a private
dockerd with the same docker CLI)."""

from __future__ import annotations

import docker
import pytest
from testlib import ok as _ok


def _error(result) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    return result.stderr.decode().strip()


def test_ps_filter_errors_and_is_task(e2e, test_id):
    name = f"psf-{test_id}"
    _ok(e2e.docker("create", "--name", name, "--network", "none", "busybox"))
    try:
        assert _error(e2e.docker("ps", "-a", "--filter", "exited=abc")) == \
            'Error response from daemon: strconv.Atoi: parsing "abc": invalid syntax'
        for key in ("since", "before"):
            assert _error(e2e.docker("ps", "-a", "--filter", f"{key}=nope-{test_id}")) == \
                f"Error response from daemon: no such container nope-{test_id}"
        # No swarm: no container is a task.
        assert _ok(e2e.docker("ps", "-aq", "--filter", "is-task=true")) == ""
        listed = _ok(e2e.docker("ps", "-a", "--filter", "is-task=false", "--filter", f"name={name}",
                                "--format", "{{.Names}}"))
        assert listed.split() == [name]
    finally:
        e2e.docker("rm", "-f", name)


def test_changes_and_prune_answers_as_dockerd(e2e, test_id):
    name = f"chg-{test_id}"
    _ok(e2e.docker("create", "--name", name, "--network", "none", "busybox"))
    client = e2e.docker_py()
    try:
        # a container with no changes: null, as dockerd answers
        assert client.api.diff(name) is None
        assert _ok(e2e.docker("diff", name)) == ""
        with pytest.raises(docker.errors.APIError) as bad:
            client.api.prune_containers(filters={"until": "abc"})
        assert bad.value.explanation == 'failed to parse value as time or duration: "abc"'
        result = e2e.docker("container", "prune", "-f", "--filter", "until=abc")
        assert _error(result) == 'Error response from daemon: failed to parse value as time or duration: "abc"'
    finally:
        client.close()
        e2e.docker("rm", "-f", name)


def test_size_rw_counts_files_not_directories(e2e, test_id):
    """dockerd's SizeRw: the sizes of the files a container wrote (its
    directories not counted); 5 bytes in three new directories is 5 B."""
    name = f"size-{test_id}"
    _ok(e2e.docker("run", "--name", name, "--network", "none", "busybox", "sh", "-c",
                   "mkdir -p /a/b/c && printf 12345 > /a/b/c/f && ln /a/b/c/f /a/hard"))
    try:
        assert _ok(e2e.docker("inspect", "--size", "-f", "{{.SizeRw}}", name)).strip() == "5"
        row = _ok(e2e.docker("ps", "-a", "-s", "--filter", f"name={name}", "--format", "{{.Size}}")).strip()
        assert row.startswith("5B (virtual "), row
    finally:
        e2e.docker("rm", "-f", name)


def test_ps_shows_the_image_id_once_the_name_moved(e2e, test_id):
    """dockerd lists Config.Image while it still names the container's
    image, else the image ID (the CLI shows it as 12 hex)."""
    tag = f"psimg-{test_id}"
    name = f"psi-{test_id}"
    other = f"psi2-{test_id}"
    _ok(e2e.docker("tag", "busybox", tag))
    _ok(e2e.docker("create", "--name", name, "--network", "none", tag, "true"))
    _ok(e2e.docker("create", "--name", other, "--network", "none", "busybox", "true"))
    client = e2e.docker_py()
    try:
        image_id = _ok(e2e.docker("image", "inspect", "-f", "{{.Id}}", "busybox")).strip()

        def shown() -> tuple[str, str]:
            column = _ok(e2e.docker("ps", "-a", "--filter", f"name={name}", "--format", "{{.Image}}")).strip()
            return column, client.api.containers(all=True, filters={"name": name})[0]["Image"]

        assert shown() == (tag, tag)
        _ok(e2e.docker("rmi", tag))  # untagged: busybox keeps the image
        assert shown() == (image_id.split(":")[1][:12], image_id)
        # retagged onto another image
        _ok(e2e.docker("commit", other, tag))
        assert shown() == (image_id.split(":")[1][:12], image_id)
        assert _ok(e2e.docker("ps", "-a", "--filter", f"name={other}", "--format", "{{.Image}}")).strip() == "busybox"
    finally:
        client.close()
        e2e.docker("rm", "-f", name, other)
        e2e.docker("rmi", tag)
