"""Fixtures of the image tests: a store per test, a private dockerd per
session (for the interop tests), archive builders."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.image import ImageService
from dockyard.store import open_store

from testlib import is_ci, need_tool, require_root, unmount_under


@pytest.fixture
def store(data_root: Path):
    require_root()
    opened = open_store(data_root / "store")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def service(store) -> ImageService:
    return ImageService(store)


def layer_tar(files: dict[str, bytes | None]) -> bytes:
    """A layer tar from {path: content}; None makes a directory, and a
    value starting with b'->' a symlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.mtime = 1_600_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif data.startswith(b"->"):
                info.type = tarfile.SYMTYPE
                info.linkname = data[2:].decode()
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def classic_save_tar(images: list[tuple[list[bytes], dict, list[str]]], out: Path | None = None) -> bytes | Path:
    """A docker save archive in Docker's classic form from (layer tars,
    container config, tags) per image."""
    members: dict[str, bytes] = {}
    manifest = []
    for layers, config, tags in images:
        diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
        paths = []
        for layer, diff_id in zip(layers, diff_ids):
            path = f"{diff_id[7:]}/layer.tar"
            members[path] = layer
            members[f"{diff_id[7:]}/VERSION"] = b"1.0"
            paths.append(path)
        doc = {"architecture": "amd64", "os": "linux", "config": config, "created": "2024-01-01T00:00:00Z",
               "rootfs": {"type": "layers", "diff_ids": diff_ids},
               "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))]}
        data = json.dumps(doc).encode()
        config_name = hashlib.sha256(data).hexdigest() + ".json"
        members[config_name] = data
        manifest.append({"Config": config_name, "RepoTags": tags, "Layers": paths})
    members["manifest.json"] = json.dumps(manifest).encode()
    sink = open(out, "wb") if out else io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    if out:
        sink.close()
        return out
    return sink.getvalue()


class Dockerd:
    """A private Docker engine: its own data root, exec root and socket."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.socket = base / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.base / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
             "-H", f"unix://{self.socket}", "--pidfile", str(self.base / "dockerd.pid"), "--bridge", "none",
             "--iptables=false", "--ip6tables=false", "--containerd-namespace", f"dy{os.getpid()}",
             "--containerd-plugins-namespace", f"dyp{os.getpid()}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.3)
        tail = (self.base / "dockerd.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"dockerd did not start:\n{tail}")

    def docker(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", *args], env=self.env, capture_output=True, input=input, timeout=300)
        if check and proc.returncode:
            raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        unmount_under(self.base)


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory):
    require_root()
    need_tool("dockerd")
    need_tool("docker")
    base = tmp_path_factory.mktemp("dockerd")
    engine = Dockerd(base)
    try:
        engine.start()
    except RuntimeError as exc:
        if is_ci():
            pytest.fail(str(exc))
        pytest.skip(f"a private dockerd could not start here: {exc}")
    try:
        yield engine
    finally:
        engine.stop()
        shutil.rmtree(base, ignore_errors=True)
