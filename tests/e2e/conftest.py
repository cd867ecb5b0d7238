"""End-to-end fixtures: a real dockyardd per test module (its own data
root, exec root and socket, see tests/daemon/harness.py) with busybox
loaded through ``image bootstrap``, driven by three clients: Dockyard's CLI,
the real docker CLI and docker-py.

Teardown, pass or fail: every container is removed (killed if running),
the daemon stopped, the supervisor zygote it started and any supervisor
left (with its container) stopped, and whatever is mounted under the
daemon's root unmounted.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess

import pytest

from daemon.harness import Dockyardd, new_daemon, run_cli, run_docker
from daemon.rootconf import need_tool, require_root

__all__ = ["E2E", "new_e2e_daemon", "run_cli", "run_docker"]


class E2E:
    """A daemon and the ways to talk to it."""

    def __init__(self, daemon: Dockyardd) -> None:
        self.daemon = daemon

    @property
    def host(self) -> str:
        return self.daemon.host

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return run_cli(self.daemon, *args, input=input, timeout=timeout)

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return run_docker(self.daemon, *args, input=input, timeout=timeout)

    def client(self):
        return self.daemon.client()

    def docker_py(self):
        import docker

        return docker.DockerClient(base_url=self.host, timeout=60)

    def bootstrap(self) -> None:
        with self.client() as client:
            for message in client.stream_json("POST", "/dockyard/images/bootstrap", query={"name": "busybox"}):
                if message.get("error"):
                    raise RuntimeError(message["error"])

    def remove_all(self) -> None:
        with contextlib.suppress(Exception), self.client() as client:
            for c in client.containers(all=True):
                with contextlib.suppress(Exception):
                    client.remove_container(c["Id"], force=True)

    def cleanup(self) -> None:
        try:
            self.remove_all()
        finally:
            # stops the daemon, then its zygote and any supervisor left
            self.daemon.cleanup()


def new_e2e_daemon() -> E2E:
    require_root()
    env = E2E(new_daemon())
    try:
        env.bootstrap()
    except BaseException:
        env.cleanup()
        raise
    return env


@pytest.fixture(scope="module")
def e2e():
    env = new_e2e_daemon()
    try:
        yield env
    finally:
        env.cleanup()


@pytest.fixture(scope="session")
def docker_cli() -> str:
    return shutil.which("docker") or need_tool("docker")
