"""Multi-container verbs and their errors, dockyard beside the real docker
CLI on the same dockyardd: the same stdout, stderr and exit status."""

from __future__ import annotations

import uuid

import pytest

from daemon.harness import Dockyardd, run_cli, run_docker
from testlib import ok


@pytest.fixture(scope="module")
def idle(dockyardd: Dockyardd) -> str:
    """A container that was created and never started."""
    ok(run_cli(dockyardd, "image", "bootstrap", "busybox"))
    name = f"idle-{uuid.uuid4().hex[:8]}"
    ok(run_docker(dockyardd, "create", "--name", name, "busybox", "true"))
    yield name
    run_docker(dockyardd, "rm", "-f", name)


def same(dockyardd: Dockyardd, *args: str) -> tuple[int, str, str]:
    theirs, ours = run_docker(dockyardd, *args), run_cli(dockyardd, *args)
    assert ours.returncode == theirs.returncode, (args, ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout, args
    # usage errors name the program: ours is dockyard
    assert ours.stderr.replace(b"dockyard", b"docker") == theirs.stderr, args
    return ours.returncode, ours.stdout.decode(), ours.stderr.decode()


def test_stop_of_a_container_not_running_prints_its_name(dockyardd: Dockyardd, idle: str) -> None:
    assert same(dockyardd, "stop", idle) == (0, f"{idle}\n", "")


def test_start_says_which_containers_failed(dockyardd: Dockyardd, idle: str) -> None:
    status, _, err = same(dockyardd, "start", "nope-1", "nope-2")
    assert status == 1
    assert err.endswith("Error: failed to start containers: nope-1, nope-2\n")


def test_rename_failure_names_the_container(dockyardd: Dockyardd, idle: str) -> None:
    status, _, err = same(dockyardd, "rename", "nope-1", "whatever")
    assert status == 1
    assert err == ("Error response from daemon: No such container: nope-1\n"
                   "Error: failed to rename container named nope-1\n")


@pytest.mark.parametrize("args", [["port", "{idle}"], ["port", "{idle}", "80"], ["port", "{idle}", "53/udp"],
                                  ["port", "{idle}", "abc"], ["port", "nope-1"], ["port"],
                                  ["container", "port", "{idle}", "a", "b"]])
def test_port_as_docker(dockyardd: Dockyardd, idle: str, args: list[str]) -> None:
    same(dockyardd, *(a.replace("{idle}", idle) for a in args))


@pytest.mark.parametrize("args", [
    ["tag", "busybox", "Bad:Name"], ["tag", "busybox", "x:@bad"], ["tag", "nope-1", "Bad:Name"],
    ["history", "-H=false", "busybox"], ["top", "{running}", "-o", "pid,args"],
])
def test_outputs_as_docker(dockyardd: Dockyardd, running: str, args: list[str]) -> None:
    same(dockyardd, *(a.replace("{running}", running) for a in args))


def test_top_table_as_docker(dockyardd: Dockyardd, running: str) -> None:
    # (the full table has times that may tick between the two commands)
    theirs, ours = (ok(run(dockyardd, "top", running)).splitlines() for run in (run_docker, run_cli))
    assert ours[0] == theirs[0] and len(ours) == len(theirs)
    assert all(line == line.rstrip() for line in ours)


@pytest.fixture(scope="module")
def running(dockyardd: Dockyardd, idle: str) -> str:
    name = f"busy-{uuid.uuid4().hex[:8]}"
    ok(run_docker(dockyardd, "run", "-d", "--name", name, "busybox", "sleep", "60"))
    yield name
    run_docker(dockyardd, "rm", "-f", name)


@pytest.mark.parametrize("args", [
    ["run"], ["create"], ["exec", "{idle}"],
    ["run", "--rm", "--memory", "abc", "busybox", "true"],
    ["run", "--rm", "--cpus", "abc", "busybox"],
    ["run", "--rm", "-p", "99999:80", "busybox", "true"],
    ["run", "--rm", "-p", "80:80/xyz", "busybox"],
    ["run", "--rm", "-e", "=", "busybox", "true"],
    ["run", "--rm", "--env-file", "/nonexistent/env", "busybox"],
    ["run", "--rm", "--restart", "always", "busybox"],
    ["run", "--health-retries", "-1", "busybox"],
    ["run", "--no-healthcheck", "--health-cmd", "x", "busybox"],
    ["run", "--rm", "-v", ":::", "busybox"], ["run", "--rm", "-v", "/tmp:/x:/y:/z", "busybox"],
    ["run", "--rm", "-v", ":/x", "busybox"],
])
def test_run_usage_errors_as_docker(dockyardd: Dockyardd, idle: str, args: list[str]) -> None:
    status, out, _ = same(dockyardd, *(a.replace("{idle}", idle) for a in args))
    assert status in (1, 125) and out == ""


@pytest.mark.parametrize("args", [
    ["run", "--stop-timeout", "x", "busybox"], ["stop", "-t", "x", "{idle}"], ["ps", "-n", "abc"],
    ["ps", "--filter"], ["logs", "--tail"],
])
def test_flag_value_errors_as_docker(dockyardd: Dockyardd, idle: str, args: list[str]) -> None:
    assert same(dockyardd, *(a.replace("{idle}", idle) for a in args))[0] == 125


@pytest.mark.parametrize("args", [["import", "/dev/null", "Bad:Name"], ["import"], ["import", "a", "b", "c"]])
def test_import_argument_errors_as_docker(dockyardd: Dockyardd, args: list[str]) -> None:
    assert same(dockyardd, *args)[0] == 1


@pytest.mark.parametrize("args", [
    ["tag", "x"], ["import"], ["rmi"], ["start"], ["rename", "a"], ["top"], ["logs"], ["wait"], ["save"],
    ["history"], ["commit"], ["kill"], ["diff"], ["export"], ["inspect"], ["pause"], ["stop"], ["rm"],
    ["load", "a"], ["ps", "a"], ["events", "a"], ["image", "prune", "a"], ["container", "prune", "a"],
])
def test_argument_count_errors_as_docker(dockyardd: Dockyardd, args: list[str]) -> None:
    assert same(dockyardd, *args)[0] == 1


@pytest.mark.parametrize("args", [["rm", "-f", "nope-1"], ["rmi", "-f", "nope-1"], ["rm", "nope-1"],
                                  ["rmi", "nope-1"], ["rm", "-f", "nope-1", "nope-2"]])
def test_forced_removal_of_missing_objects_as_docker(dockyardd: Dockyardd, args: list[str]) -> None:
    same(dockyardd, *args)
