"""A real dockyardd: API versions, error shapes, system endpoints, and the
same answers through the docker CLI and docker-py."""

from __future__ import annotations

import grp
import json
import os
import platform
import socket
import stat
import time

import pytest

from dockyard import __version__
from dockyard.client import Client
from dockyard.client.errors import RemoteInvalidArgument, RemoteNotFound

from .harness import Dockyardd, run_docker


def raw_request(daemon: Dockyardd, method: str, path: str, headers: str = "") -> tuple[int, dict, bytes]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(daemon.sock))
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n{headers}\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, hdrs, body


def test_ping_headers(dockyardd: Dockyardd) -> None:
    for method in ("GET", "HEAD"):
        status, headers, body = raw_request(dockyardd, method, "/_ping")
        assert status == 200
        assert headers["api-version"] == "1.45"
        assert headers["ostype"] == "linux"
        assert headers["docker-experimental"] == "false"
        assert headers["cache-control"] == "no-cache, no-store, must-revalidate"
        assert headers["pragma"] == "no-cache"
        assert "builder-version" not in headers  # no builder yet: not advertised
        assert body == (b"OK" if method == "GET" else b"")
    status, _, body = raw_request(dockyardd, "GET", "/v1.30/_ping")
    assert (status, body) == (200, b"OK")


@pytest.mark.parametrize("path, status, message", [
    ("/v1.46/version", 400, "client version 1.46 is too new. Maximum supported API version is 1.45"),
    ("/v1.99/info", 400, "client version 1.99 is too new. Maximum supported API version is 1.45"),
    ("/v1.23/version", 400, "client version 1.23 is too old. Minimum supported API version is 1.24, "
                            "please upgrade your client to a newer version"),
    ("/v1.0/_ping", 400, "client version 1.0 is too old. Minimum supported API version is 1.24, "
                         "please upgrade your client to a newer version"),
    ("/no/such/endpoint", 404, "page not found"),
    ("/v1.45/no/such/endpoint", 404, "page not found"),
    ("/vX/version", 404, "page not found"),
])
def test_version_and_routing_errors(dockyardd: Dockyardd, path: str, status: int, message: str) -> None:
    got, headers, body = raw_request(dockyardd, "GET", path)
    assert got == status
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"message": message}


@pytest.mark.parametrize("method, path", [("DELETE", "/version"), ("PUT", "/v1.45/info"), ("GET", "/containers/prune")])
def test_wrong_method_is_not_found(dockyardd: Dockyardd, method: str, path: str) -> None:
    """dockerd's router has no 405: a path it knows, asked with another
    method, is a page it does not have."""
    got, headers, body = raw_request(dockyardd, method, path)
    assert (got, json.loads(body)) == (404, {"message": "page not found"})


@pytest.mark.parametrize("version", ["1.24", "1.41", "1.45"])
def test_supported_versions_answer(dockyardd: Dockyardd, version: str) -> None:
    status, _, body = raw_request(dockyardd, "GET", f"/v{version}/version")
    assert status == 200
    assert json.loads(body)["ApiVersion"] == "1.45"


def test_client_maps_error_classes(dockyardd: Dockyardd) -> None:
    with pytest.raises(RemoteInvalidArgument) as err:
        Client(dockyardd.host, version="1.99").version()
    assert err.value.status == 400
    with pytest.raises(RemoteNotFound):
        dockyardd.client().get_json("/nothing/here")
    status, _, body = raw_request(dockyardd, "GET", "/events?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D")
    assert status == 400 and json.loads(body) == {"message": "invalid filter 'nope'"}


def test_version_document(dockyardd: Dockyardd) -> None:
    doc = dockyardd.client().version()
    assert doc["Version"] == __version__
    assert doc["ApiVersion"] == "1.45" and doc["MinAPIVersion"] == "1.24"
    assert doc["Os"] == "linux"
    assert doc["KernelVersion"] == platform.release()
    assert doc["Arch"] == {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    assert doc["GoVersion"] == f"python{platform.python_version()}"
    engine = doc["Components"][0]
    assert engine["Name"] == "Engine" and engine["Version"] == __version__
    assert engine["Details"]["ApiVersion"] == "1.45"


def _v2_controllers() -> list[str]:
    try:
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            return f.read().split()
    except OSError:
        return []


def test_info_reports_the_host(dockyardd: Dockyardd) -> None:
    info = dockyardd.client().info()
    assert info["NCPU"] == len(os.sched_getaffinity(0))
    with open("/proc/meminfo") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal:")).split()[1])
    assert info["MemTotal"] == mem_kb * 1024
    assert info["KernelVersion"] == platform.release()
    assert info["DockerRootDir"] == str(dockyardd.data_root)
    assert info["Name"] == socket.gethostname()
    with open("/etc/os-release") as f:
        pretty = next(line for line in f if line.startswith("PRETTY_NAME=")).split("=", 1)[1].strip().strip('"')
    assert info["OperatingSystem"] == pretty
    assert info["Driver"] == "overlay2" and info["CgroupDriver"] == "cgroupfs"
    assert info["CgroupVersion"] in ("1", "2")
    # a v1 pids hierarchy has no pids.max at its root, only in its children
    if os.path.isdir("/sys/fs/cgroup/pids") or "pids" in _v2_controllers():
        assert info["PidsLimit"] is True
    assert info["OSType"] == "linux" and info["Architecture"] == platform.machine()
    assert info["LiveRestoreEnabled"] is True
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    registry = info["RegistryConfig"]
    assert registry["Mirrors"] == [] and registry["AllowNondistributableArtifactsCIDRs"] == []
    assert "name=seccomp,profile=builtin" in info["SecurityOptions"]
    assert info["DefaultRuntime"] in info["Runtimes"]
    assert info["ServerVersion"] == __version__
    assert info["Containers"] == info["ContainersRunning"] + info["ContainersPaused"] + info["ContainersStopped"]
    # The engine ID is stable across requests (it is stored in the data root).
    assert dockyardd.client().info()["ID"] == info["ID"]
    assert (dockyardd.data_root / "engine-id").read_text().strip() == info["ID"]


def test_system_df_shape(dockyardd: Dockyardd) -> None:
    df = dockyardd.client().df()
    assert set(df) == {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
    only_images = dockyardd.client().get_json("/system/df", {"type": "image"})
    assert set(only_images) == {"LayersSize", "Images"}


def test_socket_permissions(dockyardd: Dockyardd) -> None:
    st = os.stat(dockyardd.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_uid == 0
    try:
        expected_gid = grp.getgrnam("dockyard").gr_gid
    except KeyError:
        expected_gid = 0
    assert st.st_gid == expected_gid


def test_pidfile_names_the_daemon(dockyardd: Dockyardd) -> None:
    assert dockyardd.proc is not None
    assert dockyardd.pidfile.read_text().strip() == str(dockyardd.proc.pid)


def test_docker_cli_version_and_info(dockyardd: Dockyardd) -> None:
    result = run_docker(dockyardd, "version", "--format", "{{json .Server}}")
    assert result.returncode == 0, result.stderr
    server = json.loads(result.stdout)
    assert server["Version"] == __version__ and server["ApiVersion"] == "1.45"
    result = run_docker(dockyardd, "version")
    assert result.returncode == 0, result.stderr
    assert "Server: Dockyard" in result.stdout.decode()
    result = run_docker(dockyardd, "info", "--format", "{{.ServerVersion}} {{.Driver}} {{.LiveRestoreEnabled}}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == f"{__version__} overlay2 true"
    result = run_docker(dockyardd, "info")
    assert result.returncode == 0, result.stderr
    assert f"Docker Root Dir: {dockyardd.data_root}" in result.stdout.decode()


def test_docker_cli_events_since_until(dockyardd: Dockyardd) -> None:
    # The daemon's own start event is in the buffer.  (The docker CLI sends
    # durations truncated to whole seconds, so "until" is a time just ahead.)
    until = f"{time.time() + 1:.3f}"
    result = run_docker(dockyardd, "events", "--since", "10m", "--until", until, "--format", "{{json .}}")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert any(e["Type"] == "daemon" and e["Action"] == "start" for e in events), events
    result = run_docker(dockyardd, "events", "--since", "10m", "--until", until, "--filter", "type=image")
    assert result.returncode == 0 and not any("daemon start" in line for line in result.stdout.decode().splitlines())


def test_docker_py(dockyardd: Dockyardd) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=dockyardd.host, version="auto")
    try:
        assert client.ping() is True
        assert client.version()["ApiVersion"] == "1.45"
        assert client.info()["DockerRootDir"] == str(dockyardd.data_root)
        events = list(client.events(since=int(time.time()) - 600, until=int(time.time()) + 1, decode=True))
        assert any(e["Type"] == "daemon" and e["Action"] == "start" for e in events)
        with pytest.raises(docker.errors.APIError) as err:
            client.api._result(client.api._get(client.api._url("/nothing")), json=True)
        assert err.value.status_code == 404
    finally:
        client.close()


def test_docker_system_prune_runs_every_prune(dockyardd: Dockyardd) -> None:
    """docker system prune calls the container, network, (volume,) image and
    build-cache prunes and stops at the first failure: each must answer."""
    for args in (["system", "prune", "-f"], ["system", "prune", "-f", "--volumes"], ["network", "prune", "-f"],
                 ["volume", "prune", "-f"], ["builder", "prune", "-f"]):
        result = run_docker(dockyardd, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout.decode().endswith("Total reclaimed space: 0B\n") or args == ["network", "prune", "-f"]
    result = run_docker(dockyardd, "network", "prune", "-f", "--filter", "bogus=1")
    assert result.returncode == 1 and b"invalid filter 'bogus'" in result.stderr
