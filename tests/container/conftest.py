"""Fixtures for running real containers through the service.

``env`` gives each test a private data root (store, containers), runtime
state dir and cgroup parent, a busybox image loaded into the store, and
an asyncio loop to drive the service with.  Teardown removes every
container (killing what still runs), unmounts everything under the data
root and removes the cgroup parent, pass or fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import require_root, unmount_under

RUNTIMES = ["native"]


def load_busybox(store, busybox_tar: Path, ref: str = "docker.io/library/busybox:latest",
                 config_extra: dict | None = None) -> str:
    """Put a one-layer busybox image into ``store`` (the image layer's load
    sequence, done by hand so these tests do not wait on dockyard.image)."""
    from dockyard.image.apply import apply_layer
    from dockyard.oci.digest import Digest
    from dockyard.store import ImageRecord, LayerRecord

    sn = store.snapshotter
    key = f"extract-test {os.getpid()} {time.time_ns()}"
    sn.prepare(key, None)
    with open(busybox_tar, "rb") as f:
        applied = apply_layer(f, sn.upper_dir(key))
    diff_id = Digest.parse(applied.diff_id)
    chain = diff_id
    try:
        sn.commit(str(chain), key)
    except Exception:  # already there from an earlier load
        sn.remove(key)
    store.metadata.put_layer(LayerRecord(chain_id=chain, diff_id=diff_id, parent=None,
                                         size=applied.content_size))
    container_config = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                        "Cmd": ["sh"]}
    container_config.update(config_extra or {})
    config = {"architecture": "amd64", "os": "linux", "config": container_config,
              "rootfs": {"type": "layers", "diff_ids": [str(diff_id)]},
              "created": "2024-01-01T00:00:00Z", "history": [{"created": "2024-01-01T00:00:00Z"}]}
    data = json.dumps(config, sort_keys=True).encode()
    info = store.ingest(data)
    store.metadata.put_image(ImageRecord(id=info.digest, layers=(chain,), size=applied.content_size))
    store.metadata.set_ref(ref, info.digest)
    return str(info.digest)


class Env:
    def __init__(self, root: Path, test_id: str, runtime: str, busybox_tar: Path) -> None:
        from dockyard.store import open_store

        self.root = root
        self.test_id = test_id
        self.runtime = runtime
        self.events: list[tuple[str, str, str, dict]] = []
        self.store = open_store(root / "data")
        self.image_id = load_busybox(self.store, busybox_tar)
        self.cgroup_parent = f"/dockyard-test-{test_id}"
        self.runtime_root = root / "run"
        self.loop = asyncio.new_event_loop()
        self.service = self.new_service()

    def new_service(self):
        from dockyard.container.service import ContainerService

        service = ContainerService(data_root=self.root / "data", store=self.store, publish=self.publish,
                                   runtime_root=self.runtime_root, default_runtime=self.runtime,
                                   cgroup_parent=self.cgroup_parent)
        self.run(service.open())
        return service

    def publish(self, type_, action, actor, attrs=None):
        self.events.append((type_, action, actor, dict(attrs or {})))

    def actions(self, cid: str) -> list[str]:
        return [a for t, a, actor, _ in self.events if actor == cid]

    def run(self, coro, timeout: float = 60):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def create(self, cmd=None, host_config=None, name=None, **config) -> str:
        config.setdefault("Image", "busybox")
        if cmd is not None:
            config["Cmd"] = cmd
        return self.run(self.service.create(config, host_config or {}, name=name))["Id"]

    def run_container(self, cmd, host_config=None, **config) -> tuple[str, int]:
        """create + start + wait: (id, exit code)."""
        cid = self.create(cmd, host_config, **config)
        self.run(self.service.start(cid))
        result = self.run(self.service.wait(cid))
        return cid, result["StatusCode"]

    def logs(self, cid: str, **kwargs) -> str:
        async def collect():
            out = []
            async for stream, data in self.service.logs(cid, **kwargs):
                out.append(data)
            return b"".join(out).decode()
        return self.run(collect())

    def inspect(self, cid: str) -> dict:
        return self.run(self.service.inspect(cid))

    def wait_for(self, predicate, timeout: float = 20, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            self.run(asyncio.sleep(0.05))
        raise AssertionError(f"timed out waiting for {what}")

    def teardown(self) -> None:
        service = self.service
        with contextlib.suppress(Exception):
            for c in list(service._records.values()):
                with contextlib.suppress(Exception):
                    self.run(service.remove(c.id, force=True), timeout=30)
        with contextlib.suppress(Exception):
            self.run(service.close())
        # Whatever survived (a failed test): kill by cgroup, then clean up.
        for controller in Path("/sys/fs/cgroup").iterdir():
            base = controller / self.cgroup_parent.strip("/")
            if base.is_dir():
                for procs in base.rglob("cgroup.procs"):
                    with contextlib.suppress(OSError):
                        for pid in procs.read_text().split():
                            os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.1)
        for controller in Path("/sys/fs/cgroup").iterdir():
            base = controller / self.cgroup_parent.strip("/")
            if base.is_dir():
                for d in sorted(base.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    if d.is_dir():
                        with contextlib.suppress(OSError):
                            d.rmdir()
                with contextlib.suppress(OSError):
                    base.rmdir()
        for rt in ("runc", "crun"):
            state = self.runtime_root / rt
            if state.is_dir():
                for entry in state.iterdir():
                    subprocess.run([rt, "--root", str(state), "delete", "--force", entry.name],
                                   capture_output=True, check=False)
        unmount_under(self.root)
        with contextlib.suppress(Exception):
            self.store.close()
        self.loop.close()


@pytest.fixture(params=RUNTIMES)
def env(request, tmp_path, test_id, busybox_tar):
    require_root()
    e = Env(tmp_path, test_id, request.param, busybox_tar)
    try:
        yield e
    finally:
        e.teardown()
