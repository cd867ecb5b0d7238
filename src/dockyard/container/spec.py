"""Container Config + HostConfig -> OCI runtime ``config.json``.

:func:`build_spec` starts from Docker's defaults (``defaults.py``) and
applies each HostConfig concern as its own step: process, mounts,
namespaces, resources, security.  It reads nothing but the rootfs's
/etc/passwd and /etc/group (to resolve ``User``) and, for ``Devices`` and
``Privileged``, the host's device nodes.  Everything that needs the rest
of the world (the pid of a container whose namespaces to join, the default
seccomp profile, where /etc/hosts lives) comes in a :class:`SpecContext`.
"""

from __future__ import annotations

import os
import posixpath
import stat as stat_mod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import InvalidArgument
from ..runtime.defaults import MASKED_PATHS, READONLY_PATHS
from . import seccomp as seccomp_mod
from .config import (NANO, container_ref, device_numbers, network_mode, normalize_capability,
                     parse_device_cgroup_rule, parse_security_opts, replace_or_append_env)
from .defaults import (ALL_CAPABILITIES, DEFAULT_CAPABILITIES, DEFAULT_PATH, DEFAULT_SHM_SIZE, RLIMITS, SHM_MOUNT,
                       default_device_rules, default_mounts)
from .hostinfo import HostInfo
from .mounts import MountPoint, parse_host_mounts
from .users import ExecUser, resolve_user_in_rootfs

OCI_VERSION = "1.0.2"
#: Where the init binary (docker-init/tini) appears inside a container.
INIT_PATH = "/sbin/docker-init"


@dataclass(frozen=True)
class SpecContext:
    """Everything a spec depends on beyond the container's own config."""

    container_id: str
    rootfs: Path
    host: HostInfo = field(default_factory=HostInfo)
    #: host files bind-mounted over /etc/hostname, /etc/hosts, /etc/resolv.conf
    hostname_path: Path | None = None
    hosts_path: Path | None = None
    resolv_conf_path: Path | None = None
    cgroup_parent: str = "/dockyard"
    #: namespaces to join instead of creating: OCI type -> /proc/<pid>/ns/<x>
    namespace_paths: Mapping[str, str] = field(default_factory=dict)
    #: host directory bind-mounted at /dev/shm (shareable or joined IPC)
    shm_path: Path | None = None
    #: OCI seccomp object for the default profile, or None for no filter
    default_seccomp: Callable[[list[str]], dict[str, Any] | None] | None = None
    #: host path of the init binary for ``Init`` (bind-mounted at INIT_PATH)
    init_binary: str | None = None
    #: extra OCI annotations (e.g. the native runtime's init switch)
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: root.path as written in config.json when it differs from ``rootfs``
    #: (e.g. "rootfs", relative to the bundle); ``rootfs`` is where users are looked up
    rootfs_path_in_spec: str | None = None


# --------------------------------------------------------------------------- helpers

def capabilities_for(host_config: Mapping[str, Any], host: HostInfo | None = None) -> list[str]:
    """Docker's capability arithmetic: defaults, minus CapDrop, plus CapAdd;
    ``ALL`` in CapAdd means every capability but the dropped ones, ``ALL`` in
    CapDrop means only the added ones; Privileged means all.  "All" is what
    the host can grant (the daemon's bounding set), as Docker reads it."""
    everything = host.available_capabilities() if host is not None else list(ALL_CAPABILITIES)
    if host_config.get("Privileged"):
        return everything
    adds = [normalize_capability(c) for c in host_config.get("CapAdd") or []]
    drops = [normalize_capability(c) for c in host_config.get("CapDrop") or []]
    if "ALL" in adds:
        return [c for c in everything if c not in drops]
    if "ALL" in drops:
        return list(dict.fromkeys(adds))
    caps = [c for c in DEFAULT_CAPABILITIES if c not in drops]
    caps.extend(c for c in adds if c not in caps)
    return caps


def process_env(config: Mapping[str, Any], hostname: str, user: ExecUser | None) -> list[str]:
    """PATH and HOSTNAME (and TERM with a tty) overridden by the container's
    Env; HOME from passwd when nobody set it."""
    env = ["PATH=" + DEFAULT_PATH, "HOSTNAME=" + hostname]
    if config.get("Tty"):
        env.append("TERM=xterm")
    env = replace_or_append_env(env, list(config.get("Env") or []))
    if user is not None and not any(e.startswith("HOME=") for e in env):
        env.append("HOME=" + (user.home or "/"))
    return env


def process_args(config: Mapping[str, Any]) -> list[str]:
    return list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])


def _hostname(config: Mapping[str, Any], container_id: str) -> str:
    return config.get("Hostname") or container_id[:12]


def _device_entry(path: str, dest: str) -> dict[str, Any]:
    st = os.stat(path)
    if stat_mod.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat_mod.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise InvalidArgument(f"error gathering device information while adding custom device "
                              f"\"{path}\": not a device node")
    return {"path": dest, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat_mod.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


# Host device trees a privileged container does not get (they are per
# container or meaningless inside one).
_SKIP_DEVICE_DIRS = {"/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/.lxc", "/dev/.udev"}
_SKIP_DEVICES = {"/dev/console", "/dev/ptmx", "/dev/tty", "/dev/full", "/dev/null", "/dev/zero",
                 "/dev/random", "/dev/urandom"}


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every char/block device under /dev (for Privileged)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in _SKIP_DEVICE_DIRS]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path in _SKIP_DEVICES:
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat_mod.S_ISCHR(st.st_mode) or stat_mod.S_ISBLK(st.st_mode):
                found.append({"path": path, "type": "c" if stat_mod.S_ISCHR(st.st_mode) else "b",
                              "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                              "fileMode": stat_mod.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})
    return found


def user_devices(host_config: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """HostConfig.Devices -> (linux.devices, device cgroup rules)."""
    devices, rules = [], []
    for entry in host_config.get("Devices") or []:
        src = entry["PathOnHost"]
        dest = entry.get("PathInContainer") or src
        perms = entry.get("CgroupPermissions") or "rwm"
        try:
            if os.path.isdir(src):
                pairs = []
                for dirpath, _dirs, files in os.walk(src):
                    for name in files:
                        full = os.path.join(dirpath, name)
                        pairs.append((full, posixpath.join(dest, os.path.relpath(full, src))))
            else:
                pairs = [(src, dest)]
            for host_path, container_path in pairs:
                try:
                    dev = _device_entry(host_path, container_path)
                except InvalidArgument:
                    if len(pairs) > 1:
                        continue
                    raise
                devices.append(dev)
                rules.append({"allow": True, "type": dev["type"], "major": dev["major"],
                              "minor": dev["minor"], "access": perms})
        except OSError as exc:
            raise InvalidArgument(f"error gathering device information while adding custom device "
                                  f"\"{src}\": {exc.strerror.lower() if exc.strerror else exc}") from None
    return devices, rules


# --------------------------------------------------------------------------- steps

def _process(config: Mapping[str, Any], hc: Mapping[str, Any], ctx: SpecContext,
             caps: list[str], security) -> dict[str, Any]:
    user = resolve_user_in_rootfs(ctx.rootfs, config.get("User") or "", tuple(hc.get("GroupAdd") or ()))
    hostname = _hostname(config, ctx.container_id) if (hc.get("UTSMode") or "") != "host" else os.uname().nodename
    args = process_args(config)
    if hc.get("Init") and ctx.init_binary:
        args = [INIT_PATH, "--"] + args
    process: dict[str, Any] = {
        "terminal": bool(config.get("Tty")),
        "user": {"uid": user.uid, "gid": user.gid},
        "args": args,
        "env": process_env(config, hostname, user),
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": {"bounding": list(caps), "effective": list(caps), "permitted": list(caps)},
        "oomScoreAdj": int(hc.get("OomScoreAdj") or 0),
    }
    if user.additional_gids:
        process["user"]["additionalGids"] = list(user.additional_gids)
    if security.no_new_privileges:
        process["noNewPrivileges"] = True
    rlimits = []
    for ul in hc.get("Ulimits") or []:
        hard = ul.get("Hard", 0)
        soft = ul.get("Soft", 0)
        # -1 means unlimited (RLIM_INFINITY).
        rlimits.append({"type": RLIMITS[ul["Name"]],
                        "hard": (2**64 - 1) if hard == -1 else hard,
                        "soft": (2**64 - 1) if soft == -1 else soft})
    if rlimits:
        process["rlimits"] = rlimits
    if security.apparmor and ctx.host.apparmor and not hc.get("Privileged"):
        process["apparmorProfile"] = security.apparmor
    return process


def _depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


def _mounts(config: Mapping[str, Any], hc: Mapping[str, Any], ctx: SpecContext,
            user_mounts: list[MountPoint], security) -> list[dict[str, Any]]:
    privileged = bool(hc.get("Privileged"))
    user_dests = {m.destination for m in user_mounts}
    mounts: list[dict[str, Any]] = []
    for m in default_mounts():
        dest = m["destination"]
        if dest in user_dests:
            continue
        # A user mount over /dev replaces the /dev tree's defaults too.
        if any(dest.startswith(d + "/") for d in user_dests if d in ("/dev", "/sys", "/proc")):
            continue
        if dest in ("/sys", "/sys/fs/cgroup"):
            writable = privileged if dest == "/sys" else (
                security.writable_cgroups if security.writable_cgroups is not None else privileged)
            if writable:
                m["options"] = [o for o in m["options"] if o != "ro"]
        mounts.append(m)

    ipc = hc.get("IpcMode") or "private"
    if "/dev/shm" not in user_dests and ipc != "none":
        if ipc == "host":
            mounts.append({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                           "options": ["rbind", "rprivate"]})
        elif ctx.shm_path is not None:
            mounts.append({"destination": "/dev/shm", "type": "bind", "source": str(ctx.shm_path),
                           "options": ["rbind", "rprivate"]})
        else:
            shm = dict(SHM_MOUNT)
            size = int(hc.get("ShmSize") or DEFAULT_SHM_SIZE)
            shm["options"] = list(SHM_MOUNT["options"]) + [f"size={size}"]
            mounts.append(shm)

    for dest, path in (("/etc/resolv.conf", ctx.resolv_conf_path), ("/etc/hostname", ctx.hostname_path),
                       ("/etc/hosts", ctx.hosts_path)):
        if path is None or dest in user_dests:
            continue
        options = ["rbind", "rprivate"]
        if hc.get("ReadonlyRootfs"):
            options.append("ro")
        mounts.append({"destination": dest, "type": "bind", "source": str(path), "options": options})

    for point in user_mounts:
        mounts.append(point.to_oci())

    if hc.get("Init") and ctx.init_binary:
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": ctx.init_binary,
                       "options": ["bind", "ro", "rprivate"]})
    # Parents before children: a mount at /a/b must come after /a.
    mounts.sort(key=lambda m: _depth(m["destination"]))
    return mounts


def _namespaces(hc: Mapping[str, Any], ctx: SpecContext) -> list[dict[str, Any]]:
    namespaces: list[dict[str, Any]] = [{"type": "mount"}]

    def add(kind: str, mode: str) -> None:
        if mode == "host":
            return
        if container_ref(mode):
            path = ctx.namespace_paths.get(kind)
            if not path:
                raise InvalidArgument(f"no {kind} namespace path given for {mode}")
            namespaces.append({"type": kind, "path": path})
            return
        namespaces.append({"type": kind})

    net = network_mode(hc)
    add("network", net if net in ("host",) or container_ref(net) else "private")
    add("uts", hc.get("UTSMode") or "private")
    add("pid", hc.get("PidMode") or "private")
    ipc = hc.get("IpcMode") or "private"
    add("ipc", ipc if ipc == "host" or container_ref(ipc) else "private")
    if (hc.get("CgroupnsMode") or "host") == "private":
        namespaces.append({"type": "cgroup"})
    return namespaces


def _resources(hc: Mapping[str, Any], device_rules: list[dict[str, Any]]) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": device_rules}
    memory: dict[str, Any] = {}
    if hc.get("Memory"):
        memory["limit"] = int(hc["Memory"])
    if hc.get("MemoryReservation"):
        memory["reservation"] = int(hc["MemoryReservation"])
    if hc.get("MemorySwap"):
        memory["swap"] = int(hc["MemorySwap"])
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and swappiness >= 0:
        memory["swappiness"] = int(swappiness)
    if hc.get("OomKillDisable"):
        memory["disableOOMKiller"] = True
    if memory:
        res["memory"] = memory
    cpu: dict[str, Any] = {}
    if hc.get("CpuShares"):
        cpu["shares"] = int(hc["CpuShares"])
    if hc.get("NanoCpus"):
        period = 100_000
        cpu["period"] = period
        cpu["quota"] = int(hc["NanoCpus"]) * period // NANO
    else:
        if hc.get("CpuPeriod"):
            cpu["period"] = int(hc["CpuPeriod"])
        if hc.get("CpuQuota"):
            cpu["quota"] = int(hc["CpuQuota"])
    if hc.get("CpuRealtimePeriod"):
        cpu["realtimePeriod"] = int(hc["CpuRealtimePeriod"])
    if hc.get("CpuRealtimeRuntime"):
        cpu["realtimeRuntime"] = int(hc["CpuRealtimeRuntime"])
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    if cpu:
        res["cpu"] = cpu
    pids = hc.get("PidsLimit")
    if pids and pids > 0:
        res["pids"] = {"limit": int(pids)}
    blkio: dict[str, Any] = {}
    if hc.get("BlkioWeight"):
        blkio["weight"] = int(hc["BlkioWeight"])
    weight_devices = []
    for entry in hc.get("BlkioWeightDevice") or []:
        major, minor = device_numbers(entry["Path"], "BlkioWeightDevice")
        weight_devices.append({"major": major, "minor": minor, "weight": int(entry["Weight"])})
    if weight_devices:
        blkio["weightDevice"] = weight_devices
    for key, oci_key in (("BlkioDeviceReadBps", "throttleReadBpsDevice"),
                         ("BlkioDeviceWriteBps", "throttleWriteBpsDevice"),
                         ("BlkioDeviceReadIOps", "throttleReadIOPSDevice"),
                         ("BlkioDeviceWriteIOps", "throttleWriteIOPSDevice")):
        entries = []
        for entry in hc.get(key) or []:
            major, minor = device_numbers(entry["Path"], key)
            entries.append({"major": major, "minor": minor, "rate": int(entry["Rate"])})
        if entries:
            blkio[oci_key] = entries
    if blkio:
        res["blockIO"] = blkio
    return res


def cgroups_path(hc: Mapping[str, Any], default_parent: str, container_id: str) -> str:
    """OCI ``linux.cgroupsPath`` of a container: HostConfig.CgroupParent
    (or the daemon's) / id."""
    parent = hc.get("CgroupParent") or default_parent
    if not parent.startswith("/"):
        parent = "/" + parent
    return posixpath.join(parent, container_id)


def build_spec(config: Mapping[str, Any], host_config: Mapping[str, Any], ctx: SpecContext) -> dict[str, Any]:
    """The OCI runtime config for a container whose Config/HostConfig went
    through :func:`config.validate_config` / ``normalize_host_config``.

    Raises InvalidArgument for what can only be checked now (an unknown
    user in the image, a device that vanished)."""
    hc = host_config
    privileged = bool(hc.get("Privileged"))
    security = parse_security_opts(hc.get("SecurityOpt"))
    caps = capabilities_for(hc, ctx.host)
    user_mounts = parse_host_mounts(dict(hc))

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": _process(config, hc, ctx, caps, security),
        "root": {"path": ctx.rootfs_path_in_spec or str(ctx.rootfs), "readonly": bool(hc.get("ReadonlyRootfs"))},
        "mounts": _mounts(config, hc, ctx, user_mounts, security),
    }
    if (hc.get("UTSMode") or "") != "host":
        spec["hostname"] = _hostname(config, ctx.container_id)
        if config.get("Domainname"):
            spec["domainname"] = config["Domainname"]

    devices, extra_rules = user_devices(hc)
    if privileged:
        devices = host_devices() + devices
        device_rules = [{"allow": True, "access": "rwm"}]
    else:
        device_rules = default_device_rules() + extra_rules
        for rule in hc.get("DeviceCgroupRules") or []:
            device_rules.append(parse_device_cgroup_rule(rule))
    linux: dict[str, Any] = {
        "namespaces": _namespaces(hc, ctx),
        "cgroupsPath": cgroups_path(hc, ctx.cgroup_parent, ctx.container_id),
        "resources": _resources(hc, device_rules),
    }
    if devices:
        linux["devices"] = devices
    if not privileged and not security.unconfined_paths:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    if hc.get("Sysctls"):
        linux["sysctl"] = dict(hc["Sysctls"])
    propagations = {m.propagation for m in user_mounts if m.type == "bind"}
    if propagations & {"shared", "rshared"}:
        linux["rootfsPropagation"] = "shared"
    elif propagations & {"slave", "rslave"}:
        linux["rootfsPropagation"] = "rslave"
    if not privileged and security.seccomp != "unconfined":
        if security.seccomp == "default":
            profile = ctx.default_seccomp(caps) if ctx.default_seccomp else None
        else:
            profile = seccomp_mod.to_oci(seccomp_mod.load_profile(security.seccomp), caps)
        if profile:
            linux["seccomp"] = profile
    spec["linux"] = linux

    annotations = dict(ctx.annotations)
    if config.get("StopSignal"):
        annotations["org.opencontainers.image.stopSignal"] = str(config["StopSignal"])
    if annotations:
        spec["annotations"] = annotations
    return spec
