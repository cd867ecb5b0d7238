"""Fixtures for running real containers through the service.

``env`` gives each test a private data root (store, containers), runtime
state dir and cgroup parent, a busybox image loaded into the store, and
an asyncio loop to drive the service with.  Teardown removes every
container (killing what still runs), stops the supervisor zygote and any
supervisor left, unmounts everything under the data root and removes the
cgroup parent, pass or fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from testlib import need_tool, require_root, unmount_under

from container.cleanup import reap_supervisors

RUNTIMES = ["native"]
BOTH_RUNTIMES = ["native", "runc"]


class Env:
    def __init__(self, root: Path, test_id: str, runtime: str) -> None:
        from dockyard.store import open_store

        self.root = root
        self.test_id = test_id
        self.runtime = runtime
        self.events: list[tuple[str, str, str, dict]] = []
        from dockyard.image.bootstrap import bootstrap_busybox
        from dockyard.image.service import ImageService

        self.store = open_store(root / "data")
        self.images = ImageService(self.store)
        self.image_id = str(bootstrap_busybox(self.images).image_id)
        self.cgroup_parent = f"/dockyard-test-{test_id}"
        self.runtime_root = root / "run"
        #: where the service's supervisors (and their zygote) keep state
        self.supervisor_root = root / "supervisors"
        self.loop = asyncio.new_event_loop()
        self.service = self.new_service()

    def new_service(self):
        from dockyard.container.service import ContainerService

        service = ContainerService(data_root=self.root / "data", store=self.store, images=self.images,
                                   publish=self.publish,
                                   runtime_root=self.runtime_root, default_runtime=self.runtime,
                                   cgroup_parent=self.cgroup_parent, supervisor_root=self.supervisor_root)
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
        # The zygote, and any supervisor (with its container) that outlived
        # the removals above, e.g. after a failed test or a killed daemon.
        reap_supervisors(self.supervisor_root, self.root / "data" / "containers")
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
def env(request, tmp_path, test_id):
    """Modules that run under runc too say so with
    ``pytestmark = pytest.mark.parametrize("env", BOTH_RUNTIMES, indirect=True)``."""
    require_root()
    if request.param != "native":
        need_tool(request.param)
    e = Env(tmp_path, test_id, request.param)
    try:
        yield e
    finally:
        e.teardown()
