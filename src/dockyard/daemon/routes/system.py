"""System endpoints: /_ping, /version, /info, /events, /system/df."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from datetime import datetime

from aiohttp import web

from dockyard import __version__
from dockyard.daemon import sysinfo
from dockyard.daemon.app import (
    API_VERSION,
    MIN_API_VERSION,
    RouteTable,
    api_version,
    engine_of,
    json_response,
)
from dockyard.daemon.engine import Engine
from dockyard.daemon.events import EVENT_FILTERS
from dockyard.daemon.filters import Filters
from dockyard.errors import InvalidArgument

PING_HEADERS = {
    "Api-Version": API_VERSION,
    "Docker-Experimental": "false",
    "Ostype": "linux",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    # No Builder-Version: Dockyard has no builder yet, and a client that saw
    # one would try to use it.
}


async def ping(request: web.Request) -> web.StreamResponse:
    if request.method == "HEAD":
        return web.Response(status=200, headers={**PING_HEADERS, "Content-Type": "text/plain; charset=utf-8",
                                                 "Content-Length": "0"})
    return web.Response(status=200, text="OK", headers=PING_HEADERS)


def _runtime_components(engine: Engine) -> list[dict]:
    components = []
    for name in ("runc", "crun"):
        found = sysinfo.external_runtime_version(name)
        if found is not None:
            components.append(found.to_json())
    return components


async def version(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    loop = asyncio.get_running_loop()
    # Asking runc/crun their version is a subprocess: once, off the loop.
    runtimes = await loop.run_in_executor(None, _runtime_components, engine)
    component = sysinfo.engine_component()
    component["Details"]["ApiVersion"] = API_VERSION
    component["Details"]["MinAPIVersion"] = MIN_API_VERSION
    native = {"Name": "dockyard-runtime", "Version": __version__, "Details": {"GitCommit": sysinfo.source_commit()}}
    return json_response({
        "Platform": {"Name": "Dockyard"},
        "Components": [component, native, *runtimes],
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": sysinfo.source_commit(),
        "GoVersion": sysinfo.python_version(),
        "Os": "linux",
        "Arch": sysinfo.go_arch(),
        "KernelVersion": sysinfo.kernel_version(),
        "BuildTime": sysinfo.build_time(),
    })


def _image_count(engine: Engine) -> int:
    from dockyard.daemon.routes.images import image_count

    return image_count(engine)


def _info(engine: Engine, subscribers: int) -> dict:
    config = engine.config
    counts = engine.containers.counts()
    v2 = sysinfo.cgroup_version() == "2"
    warnings = []
    if not sysinfo.cgroup_has("memory", "memory.memsw.limit_in_bytes") and not v2:
        warnings.append("WARNING: No swap limit support")
    for listener in config.hosts:
        if listener.startswith("tcp://") and not config.use_tls:
            warnings.append(f"WARNING: API is accessible on {listener} without encryption.")
    runtimes = {name: spec.to_json() for name, spec in sorted(config.all_runtimes().items())
                if name not in ("runc", "crun") or shutil.which(spec.path)}
    return {
        "ID": engine.engine_id,
        "Containers": counts.total,
        "ContainersRunning": counts.running,
        "ContainersPaused": counts.paused,
        "ContainersStopped": counts.stopped,
        "Images": _image_count(engine),
        "Driver": "overlay2",
        "DriverStatus": [
            ["Backing Filesystem", sysinfo.backing_filesystem(config.data_root)],
            ["Supports d_type", "true"],
            # The snapshotter mounts with metacopy=off whatever the host's default.
            ["Using metacopy", "false"],
            ["Native Overlay Diff", "true"],
            ["userxattr", "false"],
        ],
        "Plugins": {
            "Volume": [],  # no volume driver yet: named volumes are refused
            "Network": ["host", "null"],
            "Authorization": None,
            "Log": ["json-file", "local", "none"],
        },
        "MemoryLimit": sysinfo.cgroup_has("memory", "memory.limit_in_bytes"),
        "SwapLimit": sysinfo.cgroup_has("memory", "memory.memsw.limit_in_bytes") or v2,
        "CpuCfsPeriod": sysinfo.cgroup_has("cpu", "cpu.cfs_period_us"),
        "CpuCfsQuota": sysinfo.cgroup_has("cpu", "cpu.cfs_quota_us"),
        "CPUShares": sysinfo.cgroup_has("cpu", "cpu.shares"),
        "CPUSet": sysinfo.cgroup_has("cpuset", "cpuset.cpus"),
        # pids.max exists only below a v1 hierarchy's root: the root's own
        # cgroup.procs shows the controller is mounted.
        "PidsLimit": sysinfo.cgroup_has("pids", "cgroup.procs"),
        "IPv4Forwarding": sysinfo.read_flag("/proc/sys/net/ipv4/ip_forward"),
        "BridgeNfIptables": sysinfo.read_flag("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        "BridgeNfIp6tables": sysinfo.read_flag("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
        "Debug": config.debug,
        "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": not v2,
        # Docker counts goroutines; the closest truthful number is threads.
        "NGoroutines": threading.active_count(),
        "SystemTime": sysinfo.rfc3339_nano(),
        "LoggingDriver": config.log_driver,
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": sysinfo.cgroup_version(),
        "NEventsListener": subscribers,
        "KernelVersion": sysinfo.kernel_version(),
        "OperatingSystem": sysinfo.operating_system(),
        "OSVersion": sysinfo.os_version(),
        "OSType": "linux",
        "Architecture": os.uname().machine,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            # empty lists, not null, as dockerd answers (clients iterate them)
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {},
            "Mirrors": [],
        },
        "NCPU": sysinfo.ncpu(),
        "MemTotal": sysinfo.mem_total(),
        "GenericResources": None,
        "DockerRootDir": str(config.data_root),
        "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
        "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
        "Name": sysinfo.hostname(),
        "Labels": list(config.labels),
        "ExperimentalBuild": False,
        "ServerVersion": __version__,
        "Runtimes": runtimes,
        "DefaultRuntime": config.default_runtime,
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "CDISpecDirs": [],
        "Warnings": warnings or None,
    }


async def info(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    loop = asyncio.get_running_loop()
    doc = await loop.run_in_executor(None, _info, engine, engine.events.subscriber_count)
    return json_response(doc)


def parse_timestamp(value: str, *, name: str) -> int:
    """A ``since``/``until`` value as Unix nanoseconds.  Docker sends
    ``seconds[.nanoseconds]``; RFC 3339 is accepted too."""
    text = value.strip()
    try:
        if "." in text:
            sec, frac = text.split(".", 1)
            return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])
        return int(text) * 1_000_000_000
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid {name} value {value!r}: expected a Unix timestamp or RFC 3339 time") from None
    return int(stamp.timestamp() * 1_000_000_000)


async def events(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    query = request.query
    filters = Filters.parse(query.get("filters"), allowed=EVENT_FILTERS)
    since = parse_timestamp(query["since"], name="since") if query.get("since") else None
    until = parse_timestamp(query["until"], name="until") if query.get("until") else None
    if since is not None and until is not None and since > until:
        raise InvalidArgument(f"`since` time ({query['since']}) cannot be after `until` time ({query['until']})")

    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    await response.prepare(request)
    try:
        async for event in engine.events.subscribe(filters, since_ns=since, until_ns=until):
            await response.write(json.dumps(event.to_json(), ensure_ascii=False).encode() + b"\n")
    except (ConnectionResetError, asyncio.CancelledError):
        return response
    await response.write_eof()
    return response


async def system_df(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    types = set(request.query.getall("type", []))
    loop = asyncio.get_running_loop()
    doc: dict = {}
    if not types or "image" in types:
        from dockyard.daemon.routes.images import disk_usage

        images, layers_size = await loop.run_in_executor(None, disk_usage, engine, api_version(request))
        doc["LayersSize"] = layers_size
        doc["Images"] = images
    if not types or "container" in types:
        doc["Containers"] = await loop.run_in_executor(None, engine.containers.disk_usage)
    if not types or "volume" in types:
        doc["Volumes"] = []  # TODO(issue 4): volumes come with the volume service
    if not types or "build-cache" in types:
        doc["BuildCache"] = []
    return json_response(doc)


# The prunes of kinds of object Dockyard does not make yet (user-defined
# networks, named volumes, build cache): nothing to delete, in Docker's
# answer shape.  `docker system prune` calls every one of them and stops at
# the first error, so a missing route would fail the whole command.
NETWORK_PRUNE_FILTERS = ("label", "label!", "until")
VOLUME_PRUNE_FILTERS = ("label", "label!", "all")
BUILD_PRUNE_FILTERS = ("until", "id", "parent", "type", "description", "inuse", "shared", "private")


async def prune_networks(request: web.Request) -> web.StreamResponse:
    Filters.parse(request.query.get("filters"), allowed=NETWORK_PRUNE_FILTERS)
    return json_response({"NetworksDeleted": None})


async def prune_volumes(request: web.Request) -> web.StreamResponse:
    Filters.parse(request.query.get("filters"), allowed=VOLUME_PRUNE_FILTERS)
    return json_response({"VolumesDeleted": None, "SpaceReclaimed": 0})


async def prune_build_cache(request: web.Request) -> web.StreamResponse:
    Filters.parse(request.query.get("filters"), allowed=BUILD_PRUNE_FILTERS)
    return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})


def register(routes: RouteTable, engine: Engine) -> None:
    routes.get("/_ping", ping)
    routes.head("/_ping", ping)
    routes.get("/version", version)
    routes.get("/info", info)
    routes.get("/events", events)
    routes.get("/system/df", system_df)
    routes.post("/networks/prune", prune_networks)
    routes.post("/volumes/prune", prune_volumes)
    routes.post("/build/prune", prune_build_cache)
