"""Start a real dockyardd for tests: its own data root, exec root, socket
and pid file under a short temporary directory (unix socket paths are
limited to 107 bytes, pytest's tmp_path can be longer), stopped and cleaned
up afterwards whatever happened."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from container.cleanup import reap_supervisors

from .rootconf import require_root, unmount_under

DOCKYARDD = [sys.executable, "-m", "dockyard.daemon.main"]
START_TIMEOUT = 20.0


@dataclass
class Dockyardd:
    root: Path
    args: list[str]
    proc: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.root / "dockyardd.log"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def sock(self) -> Path:
        return self.root / "d.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def pidfile(self) -> Path:
        return self.root / "dockyardd.pid"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DOCKYARD_HOST", None)
        env["DOCKER_HOST"] = self.host
        env["DOCKER_CONFIG"] = str(self.root / "docker-config")  # no user config leaks in
        env.update(extra)
        return env

    def client(self, **kw):
        from dockyard.client import Client

        return Client(self.host, **kw)

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def base_args(self) -> list[str]:
        return ["--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                "--pidfile", str(self.pidfile)]

    def start(self, *, wait: bool = True) -> "Dockyardd":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(DOCKYARDD + self.base_args() + self.args, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, env=_daemon_env())
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, ping_sock: Path | None = None) -> None:
        target = ping_sock or self.sock
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"dockyardd exited with {self.proc.returncode}:\n{self.log()}")
            if target.exists() and ping(target):
                return
            time.sleep(0.05)
        raise RuntimeError(f"dockyardd did not answer /_ping within {START_TIMEOUT}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            try:
                # Supervisors outlive the daemon by design (live-restore):
                # stop the zygote it started and any supervisor (with its
                # container) still running, before the root goes — the
                # zygote is found by its lock file there, the containers by
                # their supervisors' state files.
                reap_supervisors(self.exec_root / "supervisors", self.data_root / "containers")
            finally:
                unmount_under(self.root)
                shutil.rmtree(self.root, ignore_errors=True)


def _daemon_env() -> dict[str, str]:
    env = dict(os.environ)
    # The source tree, even when the package is not installed (CI clones).
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def ping(sock: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(str(sock))
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data.startswith(b"HTTP/1.1 200") and data.endswith(b"OK")
    except OSError:
        return False
    finally:
        s.close()


def make_root(prefix: str = "dy") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def new_daemon(*args: str, config: dict | None = None, start: bool = True) -> Dockyardd:
    """A daemon on a fresh root; with ``config``, a daemon.json is written
    and passed.  The caller must call ``cleanup()`` (use a fixture)."""
    root = make_root()
    extra = list(args)
    if "--config-file" not in extra:
        # Always a file of the test's own: the host's /etc/dockyard/daemon.json
        # must not leak in (its keys could even conflict with our flags).
        path = root / "daemon.json"
        path.write_text(json.dumps(config or {}))
        extra += ["--config-file", str(path)]
    if "-H" not in extra and "--host" not in extra and not (config and "hosts" in config):
        extra += ["-H", f"unix://{root / 'd.sock'}"]
    daemon = Dockyardd(root, extra)
    if start:
        try:
            daemon.start()
        except BaseException:
            daemon.cleanup()
            raise
    return daemon


@pytest.fixture(scope="module")
def dockyardd() -> Iterator[Dockyardd]:
    """A real dockyardd per test module (a conftest names it to use it)."""
    require_root()
    daemon = new_daemon()
    try:
        yield daemon
    finally:
        daemon.cleanup()


def run_cli(daemon: Dockyardd, *args: str, input: bytes | None = None, env: dict | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``dockyard`` (the project's CLI) against ``daemon``."""
    return subprocess.run([sys.executable, "-m", "dockyard.cli.main", *args], input=input, capture_output=True,
                          env={**daemon.env(), **_daemon_env(), **(env or {})}, timeout=timeout)


def run_docker(daemon: Dockyardd, *args: str, input: bytes | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the real docker CLI against ``daemon``."""
    docker = shutil.which("docker") or "/usr/local/bin/docker"
    return subprocess.run([docker, *args], input=input, capture_output=True, env=daemon.env(), timeout=timeout)
