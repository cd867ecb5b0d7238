"""A daemon-like process for the live-restore test: opens the store and the
container service on a data root, creates and starts the containers it is
told to, reports their IDs, then idles until it is killed (with -9).

Usage: python daemonlike.py '<json request>' <report path>
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path


async def main(request: dict, report: Path) -> None:
    from dockyard.container.service import ContainerService
    from dockyard.image.service import ImageService
    from dockyard.store import open_store

    store = open_store(request["data_root"])
    service = ContainerService(data_root=request["data_root"], store=store, images=ImageService(store),
                               runtime_root=Path(request["runtime_root"]), default_runtime=request["runtime"],
                               cgroup_parent=request["cgroup_parent"],
                               supervisor_root=request.get("supervisor_root"))
    await service.open()
    ids = {}
    for name, spec in request["containers"].items():
        created = await service.create({"Image": "busybox", "Cmd": spec["cmd"]}, spec.get("host_config", {}),
                                       name=name)
        await service.start(created["Id"])
        ids[name] = {"id": created["Id"], "pid": (await service.inspect(created["Id"]))["State"]["Pid"]}
    tmp = report.with_suffix(".tmp")
    tmp.write_text(json.dumps(ids))
    tmp.rename(report)
    while True:
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]), Path(sys.argv[2])))
