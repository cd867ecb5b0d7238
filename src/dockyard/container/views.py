"""Docker's JSON shapes made from container records: inspect, the list
summary (``docker ps``), the human status line, and list/prune filters."""

from __future__ import annotations

import copy
import re
import time
from typing import Any, Callable, Iterable, Mapping

from ..errors import InvalidArgument, NotFound
from ..units import human_duration
from .config import network_mode
from ..runtime.defaults import MASKED_PATHS, READONLY_PATHS
from .model import (CREATED, DEAD, EXITED, HEALTHY, NO_HEALTHCHECK, PAUSED, REMOVING, RESTARTING, RUNNING,
                    STARTING, STATUSES, UNHEALTHY, ZERO_TIME, Container, parse_time)
from .mounts import parse_host_mounts

#: Every HostConfig key Docker's inspect shows, with its default.
HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "bridge", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0],
    "CapAdd": None, "CapDrop": None, "CgroupnsMode": "host", "Dns": [], "DnsOptions": [],
    "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "",
    "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
    "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
    "ShmSize": 67108864, "Runtime": "native", "Isolation": "", "CpuShares": 0, "Memory": 0,
    "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
    "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [],
    "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [],
    "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0, "MemorySwap": 0,
    "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": None, "Ulimits": None,
    "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
}

CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
    "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None,
    "Labels": {},
}


def status_line(c: Container, now: float | None = None) -> str:
    now = time.time() if now is None else now
    s = c.state
    if s.status == PAUSED:
        return f"Up {human_duration(now - parse_time(s.started_at))} (Paused)"
    if s.status == RESTARTING:
        return f"Restarting ({s.exit_code}) {human_duration(now - parse_time(s.finished_at))} ago"
    if s.status == RUNNING:
        text = f"Up {human_duration(now - parse_time(s.started_at))}"
        if s.health is not None and s.health.status != NO_HEALTHCHECK:
            text += " (health: starting)" if s.health.status == STARTING else f" ({s.health.status})"
        return text
    if s.status == REMOVING:
        return "Removal In Progress"
    if s.status == DEAD:
        return "Dead"
    if s.status == CREATED or s.started_at == ZERO_TIME:
        return "Created"
    return f"Exited ({s.exit_code}) {human_duration(now - parse_time(s.finished_at))} ago"


def command_line(c: Container) -> str:
    path, args = c.path_and_args
    if not args:
        return path
    return path + " " + " ".join(f"'{a}'" if " " in a else a for a in args)


def network_entry() -> dict[str, Any]:
    # TODO(network issue): real endpoints; until then no addresses.
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "NetworkID": "",
            "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": None}


def _networks(c: Container) -> dict[str, Any]:
    mode = network_mode(c.host_config)
    if mode.startswith("container:"):
        return {}
    return {mode: network_entry()}


def network_settings(c: Container) -> dict[str, Any]:
    return {
        "Bridge": "", "SandboxID": "", "SandboxKey": "", "HairpinMode": False,
        "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
        "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0,
        "IPv6Gateway": "", "MacAddress": "", "Networks": _networks(c),
    }


def mounts_json(c: Container) -> list[dict[str, Any]]:
    try:
        points = parse_host_mounts(c.host_config)
    except InvalidArgument:
        return []
    return [p.to_inspect() for p in points if p.type != "tmpfs" or p.destination not in (c.host_config.get("Tmpfs") or {})]


def host_config_json(c: Container) -> dict[str, Any]:
    doc = copy.deepcopy(HOST_CONFIG_DEFAULTS)
    doc.update(copy.deepcopy(c.host_config))
    if not doc.get("Privileged"):
        # The CLI sends these as null: dockerd fills in the defaults then.
        if doc.get("MaskedPaths") is None:
            doc["MaskedPaths"] = list(MASKED_PATHS)
        if doc.get("ReadonlyPaths") is None:
            doc["ReadonlyPaths"] = list(READONLY_PATHS)
    return doc


def config_json(c: Container) -> dict[str, Any]:
    doc = copy.deepcopy(CONFIG_DEFAULTS)
    doc.update(copy.deepcopy(c.config))
    doc["Image"] = c.image
    if not doc.get("Hostname"):
        doc["Hostname"] = c.short_id
    return doc


def inspect_json(c: Container, *, exec_ids: list[str] | None = None, graph_driver: dict[str, Any] | None = None,
                 size_rw: int | None = None, size_root_fs: int | None = None) -> dict[str, Any]:
    path, args = c.path_and_args
    doc: dict[str, Any] = {
        "Id": c.id,
        "Created": c.created,
        "Path": path,
        "Args": args,
        "State": c.state.to_json(),
        "Image": c.image_id,
        "ResolvConfPath": c.extra.get("resolv_conf_path", ""),
        "HostnamePath": c.extra.get("hostname_path", ""),
        "HostsPath": c.extra.get("hosts_path", ""),
        "LogPath": c.log_path,
        "Name": c.name,
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": exec_ids or None,
        "HostConfig": host_config_json(c),
        "GraphDriver": graph_driver or {"Name": "overlay2", "Data": None},
        "Mounts": mounts_json(c),
        "Config": config_json(c),
        "NetworkSettings": network_settings(c),
    }
    if size_rw is not None:
        doc["SizeRw"] = size_rw
    if size_root_fs is not None:
        doc["SizeRootFs"] = size_root_fs
    return doc


def summary_json(c: Container, *, size_rw: int | None = None, size_root_fs: int | None = None,
                 now: float | None = None, image: str | None = None) -> dict[str, Any]:
    """A ``GET /containers/json`` row; ``image``: what to show as Image
    when not the name it was created from (see ContainerService.list)."""
    doc: dict[str, Any] = {
        "Id": c.id,
        "Names": [c.name],
        "Image": c.image if image is None else image,
        "ImageID": c.image_id,
        "Command": command_line(c),
        "Created": int(parse_time(c.created)),
        "Ports": [],
        "Labels": c.labels,
        "State": c.state.status,
        "Status": status_line(c, now),
        "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": _networks(c)},
        "Mounts": mounts_json(c),
    }
    if size_rw is not None:
        doc["SizeRw"] = size_rw
    if size_root_fs is not None:
        doc["SizeRootFs"] = size_root_fs
    return doc


# --------------------------------------------------------------------------- filters

LIST_FILTERS = {"id", "name", "label", "status", "ancestor", "exited", "before", "since", "health",
                "volume", "network", "publish", "expose", "is-task", "isolation"}
PRUNE_FILTERS = {"until", "label", "label!"}
HEALTH_VALUES = {STARTING, HEALTHY, UNHEALTHY, NO_HEALTHCHECK}


def normalize_filters(filters: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """Accept the API's two encodings, ``{"k": ["v"]}`` and the legacy
    ``{"k": {"v": true}}``."""
    result: dict[str, list[str]] = {}
    for key, value in (filters or {}).items():
        if isinstance(value, dict):
            result[key] = [k for k, v in value.items() if v]
        elif isinstance(value, (list, tuple)):
            result[key] = [str(v) for v in value]
        elif isinstance(value, str):
            result[key] = [value]
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
    return result


def match_labels(labels: Mapping[str, str], wanted: Iterable[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels:
            return False
        if sep and labels[key] != value:
            return False
    return True


def _regex_any(patterns: list[str], values: Iterable[str]) -> bool:
    values = list(values)
    for pattern in patterns:
        try:
            rx = re.compile(pattern)
        except re.error:
            raise InvalidArgument(f"invalid filter value {pattern!r}: not a regular expression") from None
        if any(rx.search(v) for v in values):
            return True
    return False


def parse_until(value: str, now: float | None = None) -> float:
    """Docker's timestamp filter values: RFC 3339, unix seconds (with
    fraction), or a Go duration relative to now ("10m", "1h30m")."""
    now = time.time() if now is None else now
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if parts and "".join(n + u for n, u in parts) == text:
        return now - sum(float(n) * units[u] for n, u in parts)
    try:
        return parse_time(text if ("Z" in text or "+" in text[10:] or "-" in text[10:]) or "T" not in text
                          else text + "Z")
    except InvalidArgument:
        # dockerd's words (its timestamp parser's error, Go-quoted value)
        raise InvalidArgument(f'failed to parse value as time or duration: "{value}"') from None


def _created(resolve: Callable[[str], Container], ref: str) -> float:
    try:
        return parse_time(resolve(ref).created)
    except NotFound:
        # the container view's words in dockerd, not the API's "No such container: x"
        raise NotFound(f"no such container {ref}") from None


class ListFilter:
    """Docker's ``docker ps`` filters over container records.

    ``resolve`` maps a name/ID to a container (for before/since);
    ``image_matches(container, ref)`` answers the ancestor filter."""

    def __init__(self, filters: Mapping[str, Any] | None, *,
                 resolve: Callable[[str], Container],
                 image_matches: Callable[[Container, str], bool]) -> None:
        self.filters = normalize_filters(filters)
        for key in self.filters:
            if key not in LIST_FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
        for status in self.filters.get("status", []):
            if status not in STATUSES:
                raise InvalidArgument(f"invalid filter 'status={status}'")
        for health in self.filters.get("health", []):
            if health not in HEALTH_VALUES:
                raise InvalidArgument(f"Unrecognised filter value for health: {health}")
        self.exited: set[int] = set()
        for code in self.filters.get("exited", []):
            try:
                self.exited.add(int(code))
            except ValueError:
                # dockerd passes Go's parse error through as it is
                raise InvalidArgument(f'strconv.Atoi: parsing "{code}": invalid syntax') from None
        # before/since name a container; only those created earlier/later
        # (by creation time) are listed.
        self.before = min((_created(resolve, r) for r in self.filters.get("before", [])), default=None)
        self.since = max((_created(resolve, r) for r in self.filters.get("since", [])), default=None)
        # No swarm here: no container is a task.
        self.tasks_only = "true" in self.filters.get("is-task", [])
        self.image_matches = image_matches

    @property
    def wants_all(self) -> bool:
        """A status filter lists stopped containers without ``all``."""
        return "status" in self.filters

    def matches(self, c: Container) -> bool:
        f = self.filters
        if self.tasks_only:
            return False
        created = parse_time(c.created)
        if self.before is not None and created >= self.before:
            return False
        if self.since is not None and created <= self.since:
            return False
        if "id" in f and not _regex_any(f["id"], [c.id]):
            return False
        if "name" in f and not _regex_any(f["name"], [c.name, c.bare_name]):
            return False
        if "label" in f and not match_labels(c.labels, f["label"]):
            return False
        if "status" in f and c.state.status not in f["status"]:
            return False
        if self.exited and (c.state.status not in (EXITED, DEAD, CREATED) or c.state.exit_code not in self.exited
                            or c.state.started_at == ZERO_TIME):
            return False
        if "health" in f:
            health = c.state.health.status if c.state.health else NO_HEALTHCHECK
            if health not in f["health"]:
                return False
        if "ancestor" in f and not any(self.image_matches(c, ref) for ref in f["ancestor"]):
            return False
        if "network" in f and network_mode(c.host_config) not in f["network"]:
            return False
        if "volume" in f:
            dests = {m["Destination"] for m in mounts_json(c)} | {m["Source"] for m in mounts_json(c)}
            if not dests & set(f["volume"]):
                return False
        if "publish" in f or "expose" in f:
            # TODO(network issue): published ports; nothing is published yet.
            exposed = set((c.config.get("ExposedPorts") or {}).keys())
            if "expose" in f and not any(p in exposed or p + "/tcp" in exposed for p in f["expose"]):
                return False
            if "publish" in f:
                return False
        return True
