"""Create-time handling of the Engine API's ``Config`` and ``HostConfig``.

Three steps, all pure:

* :func:`merge_image_config` fills a container's ``Config`` from its image
  exactly as Docker does (an ``Entrypoint`` given on create resets the
  image's ``Cmd``; image Env entries the caller did not override are kept).
* :func:`validate_config` / :func:`normalize_host_config` check every field
  up front with Docker's messages (:class:`InvalidArgument`) and fill in
  Docker's defaults, returning the warnings Docker would return
  (a field the host cannot honour is dropped with a warning, as Docker
  does).
* small parsers the spec generator and the service share: restart
  policies, security options, env lists, namespace modes.
"""

from __future__ import annotations

import copy
import os
import re
import stat as stat_mod
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument
from .defaults import ALL_CAPABILITIES, IPC_SYSCTLS, RLIMITS, UTS_SYSCTLS
from .hostinfo import HostInfo, format_cpu_list, parse_cpu_list
from .mounts import parse_host_mounts
from .signals import parse_signal

MIN_MEMORY = 6 * 1024 * 1024
MIN_CPU_SHARES, MAX_CPU_SHARES = 2, 262144
NANO = 1_000_000_000
#: Docker's healthcheck defaults (nanoseconds) and minimum.
HEALTH_INTERVAL = 30 * NANO
HEALTH_TIMEOUT = 30 * NANO
HEALTH_START_PERIOD = 0
HEALTH_START_INTERVAL = 5 * NANO
HEALTH_RETRIES = 3
HEALTH_MIN_DURATION = 1_000_000  # 1 ms

RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")
_HOSTNAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.\-_]*[a-zA-Z0-9])?$")

# Modes a namespace option may take (besides "container:<id>").
_IPC_MODES = {"", "private", "shareable", "host", "none"}
_PID_MODES = {"", "host"}
_UTS_MODES = {"", "host"}
_CGROUPNS_MODES = {"", "host", "private"}
#: Network names that exist before the network issue brings user networks.
BUILTIN_NETWORKS = {"bridge", "default", "none", "host"}


# --------------------------------------------------------------------------- env

def env_key(entry: str) -> str:
    return entry.split("=", 1)[0]


def replace_or_append_env(base: list[str], overrides: list[str]) -> list[str]:
    """Docker's rule: an override replaces the same key in place or is
    appended; an entry without ``=`` removes the key."""
    result = list(base)
    for entry in overrides:
        key = env_key(entry)
        index = next((i for i, e in enumerate(result) if env_key(e) == key), None)
        if "=" not in entry:
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(entry)
        else:
            result[index] = entry
    return result


def check_env(env: Any, what: str = "Env") -> list[str]:
    if env is None:
        return []
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise InvalidArgument(f"invalid {what}: expected a list of KEY=value strings")
    for entry in env:
        if not env_key(entry):
            raise InvalidArgument(f"invalid environment variable: {entry}")
    return list(env)


# --------------------------------------------------------------------------- merge

def _as_list(value: Any, what: str) -> list[str] | None:
    """Cmd/Entrypoint may be null, a list, or (older clients) a string."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidArgument(f"invalid {what}: expected a list of strings")


def merge_image_config(config: dict[str, Any], image_config: dict[str, Any] | None) -> dict[str, Any]:
    """A container ``Config`` completed from the image's config (the OCI
    image config's ``config`` object, Docker's field names)."""
    merged = copy.deepcopy(config)
    image = image_config or {}
    merged["Cmd"] = _as_list(merged.get("Cmd"), "Cmd")
    merged["Entrypoint"] = _as_list(merged.get("Entrypoint"), "Entrypoint")
    merged["Env"] = check_env(merged.get("Env"))

    if not merged.get("User"):
        merged["User"] = image.get("User") or ""
    # Env: image entries whose key the caller did not set are kept, after
    # the caller's own.
    own_keys = {env_key(e) for e in merged["Env"]}
    merged["Env"] = merged["Env"] + [e for e in (image.get("Env") or []) if env_key(e) not in own_keys]
    labels = dict(image.get("Labels") or {})
    labels.update(merged.get("Labels") or {})
    merged["Labels"] = labels
    ports = dict(image.get("ExposedPorts") or {})
    ports.update(merged.get("ExposedPorts") or {})
    if ports:
        merged["ExposedPorts"] = ports
    volumes = dict(image.get("Volumes") or {})
    volumes.update(merged.get("Volumes") or {})
    merged["Volumes"] = volumes or None
    # An Entrypoint given on create resets the image's Cmd; with no
    # Entrypoint given, Cmd defaults to the image's and so does Entrypoint
    # (unless the caller cleared it explicitly with []).
    if not merged["Entrypoint"]:
        if not merged["Cmd"]:
            merged["Cmd"] = _as_list(image.get("Cmd"), "image Cmd")
        if merged["Entrypoint"] is None:
            merged["Entrypoint"] = _as_list(image.get("Entrypoint"), "image Entrypoint")
    if merged["Entrypoint"] == [""]:
        # `--entrypoint ""`: the image's entrypoint cleared (and, being
        # given, its Cmd not inherited); dockerd stores it as null
        merged["Entrypoint"] = None
    if not merged.get("WorkingDir"):
        merged["WorkingDir"] = image.get("WorkingDir") or ""
    if not merged.get("StopSignal") and image.get("StopSignal"):
        merged["StopSignal"] = image["StopSignal"]
    merged["Healthcheck"] = _merge_healthcheck(merged.get("Healthcheck"), image.get("Healthcheck"))
    if merged["Healthcheck"] is None:
        merged.pop("Healthcheck")
    if "OnBuild" not in merged:
        merged["OnBuild"] = image.get("OnBuild")
    if not merged.get("Shell") and image.get("Shell"):
        merged["Shell"] = image["Shell"]
    return merged


def _merge_healthcheck(own: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any] | None:
    if own is None:
        return copy.deepcopy(image) if image else None
    merged = dict(own)
    if image:
        if not merged.get("Test"):
            merged["Test"] = image.get("Test")
        for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
            if not merged.get(key) and image.get(key):
                merged[key] = image[key]
    return merged


# --------------------------------------------------------------------------- policies

@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"Name": self.name, "MaximumRetryCount": self.maximum_retry_count}

    @property
    def is_none(self) -> bool:
        return self.name in ("", "no")


def parse_restart_policy(value: Any) -> RestartPolicy:
    """HostConfig.RestartPolicy (``{"Name", "MaximumRetryCount"}``)."""
    if value is None:
        return RestartPolicy()
    if not isinstance(value, dict):
        raise InvalidArgument("invalid restart policy: expected an object with Name and MaximumRetryCount")
    name = value.get("Name") or "no"
    count = value.get("MaximumRetryCount") or 0
    if not isinstance(count, int):
        raise InvalidArgument("invalid restart policy: MaximumRetryCount must be an integer")
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of 'no', "
                              f"'always', 'on-failure', or 'unless-stopped'")
    if name == "on-failure":
        if count < 0:
            raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    elif count != 0:
        raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    return RestartPolicy(name, count)


@dataclass(frozen=True)
class SecurityOptions:
    """Parsed HostConfig.SecurityOpt."""

    #: "default", "unconfined", or a profile (Docker or OCI JSON text/path)
    seccomp: str = "default"
    no_new_privileges: bool = False
    apparmor: str | None = None
    label_disable: bool = False
    labels: tuple[str, ...] = ()
    unconfined_paths: bool = False   # systempaths=unconfined
    writable_cgroups: bool | None = None


def _parse_bool(text: str, opt: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise InvalidArgument(f"invalid --security-opt 2: {opt!r}")


def parse_security_opts(opts: Any) -> SecurityOptions:
    if not opts:
        return SecurityOptions()
    if not isinstance(opts, list) or not all(isinstance(o, str) for o in opts):
        raise InvalidArgument("invalid SecurityOpt: expected a list of strings")
    seccomp, nnp, apparmor = "default", False, None
    label_disable, labels, unconfined_paths, writable_cgroups = False, [], False, None
    for opt in opts:
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "disable":  # legacy "label:disable"
            label_disable = True
            continue
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if not sep:
            raise InvalidArgument(f"invalid --security-opt 1: {opt!r}")
        if key == "seccomp":
            if not value:
                raise InvalidArgument(f"invalid --security-opt 2: {opt!r}")
            seccomp = "unconfined" if value == "unconfined" else value
        elif key == "no-new-privileges":
            nnp = _parse_bool(value, opt)
        elif key == "apparmor":
            apparmor = value
        elif key == "label":
            if value == "disable":
                label_disable = True
            elif value.split(":", 1)[0] in ("user", "role", "type", "level", "filetype", "nested"):
                labels.append(value)
            else:
                raise InvalidArgument(f"invalid --security-opt 2: {opt!r}")
        elif key == "systempaths":
            if value != "unconfined":
                raise InvalidArgument(f"invalid --security-opt 2: {opt!r}")
            unconfined_paths = True
        elif key == "writable-cgroups":
            writable_cgroups = _parse_bool(value, opt)
        else:
            raise InvalidArgument(f"invalid --security-opt 2: {opt!r}")
    return SecurityOptions(seccomp, nnp, apparmor, label_disable, tuple(labels), unconfined_paths,
                           writable_cgroups)


def normalize_capability(name: str) -> str:
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in ALL_CAPABILITIES:
        raise InvalidArgument(f"unknown capability: \"{upper}\"")
    return upper


# --------------------------------------------------------------------------- modes

def container_ref(mode: str) -> str | None:
    """The container named by a ``container:<name|id>`` mode, else None."""
    if mode.startswith("container:"):
        return mode[len("container:"):]
    return None


def _check_mode(mode: Any, allowed: set[str], what: str, *, container_ok: bool) -> str:
    if mode is None:
        return ""
    if not isinstance(mode, str):
        raise InvalidArgument(f"invalid {what} mode: {mode}")
    if mode in allowed:
        return mode
    ref = container_ref(mode)
    if container_ok and ref:
        return mode
    raise InvalidArgument(f"invalid {what} mode: {mode}")


def network_mode(host_config: dict[str, Any]) -> str:
    mode = host_config.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


# --------------------------------------------------------------------------- validation

@dataclass
class Validated:
    """Normalised Config/HostConfig plus the warnings for the create reply."""

    config: dict[str, Any]
    host_config: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _int_field(hc: dict[str, Any], key: str, default: int = 0) -> int:
    value = hc.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"invalid {key}: expected an integer, got {value!r}")
    return value


def validate_healthcheck(health: dict[str, Any] | None) -> None:
    if not health:
        return
    test = health.get("Test")
    if test is not None and (not isinstance(test, list) or not all(isinstance(t, str) for t in test)):
        raise InvalidArgument("invalid Healthcheck: Test must be a list of strings")
    if test:
        kind = test[0]
        if kind not in ("NONE", "CMD", "CMD-SHELL", ""):
            raise InvalidArgument(f"invalid Healthcheck: unknown test type {kind!r}; "
                                  f"use NONE, CMD or CMD-SHELL")
        if kind in ("CMD", "CMD-SHELL") and len(test) < 2:
            raise InvalidArgument(f"invalid Healthcheck: {kind} needs a command")
    for key, label in (("Interval", "Interval"), ("Timeout", "Timeout"),
                       ("StartPeriod", "StartPeriod"), ("StartInterval", "StartInterval")):
        value = health.get(key) or 0
        if not isinstance(value, int):
            raise InvalidArgument(f"invalid Healthcheck: {key} must be an integer (nanoseconds)")
        if value != 0 and value < HEALTH_MIN_DURATION:
            raise InvalidArgument(f"{label} in Healthcheck cannot be less than 1ms")
    retries = health.get("Retries") or 0
    if not isinstance(retries, int) or retries < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")


def device_numbers(path: str, what: str) -> tuple[int, int]:
    """(major, minor) of a host block/char device, for blkio throttles."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidArgument(f"invalid device path {path!r} for {what}: {exc.strerror}") from None
    if not (stat_mod.S_ISBLK(st.st_mode) or stat_mod.S_ISCHR(st.st_mode)):
        raise InvalidArgument(f"invalid device path {path!r} for {what}: not a device")
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def _validate_cpuset(value: str, available: frozenset[int], what: str, label: str) -> None:
    try:
        requested = parse_cpu_list(value)
    except ValueError:
        # worded as dockerd, which passes its list parser's error on
        raise InvalidArgument(f"Invalid value {value} for {what}: invalid format: {value}") from None
    if not requested <= available:
        raise InvalidArgument(f"Requested {label} are not available - requested {value}, "
                              f"available: {format_cpu_list(available)}")


def validate_resources(hc: dict[str, Any], host: HostInfo, warnings: list[str], *, update: bool = False) -> None:
    """Check and normalise the resource fields of a HostConfig (also the
    body of ``update``).  Mutates ``hc``; appends warnings."""
    memory = _int_field(hc, "Memory")
    swap = _int_field(hc, "MemorySwap")
    reservation = _int_field(hc, "MemoryReservation")
    if memory < 0:
        raise InvalidArgument("invalid Memory: must not be negative")
    if memory and memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0 and not update:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
    if swap < -1:
        raise InvalidArgument("invalid MemorySwap: use -1 for unlimited swap")
    if memory > 0 and swap != 0 and not host.swap_limit:
        warnings.append("Your kernel does not support swap limit capabilities or the cgroup is not "
                        "mounted. Memory limited without swap.")
        hc["MemorySwap"] = -1
    elif memory > 0 and swap == 0 and not update:
        # Docker's default: as much swap as memory (memory+swap = 2x).
        hc["MemorySwap"] = memory * 2 if host.swap_limit else -1
    swappiness = hc.get("MemorySwappiness")
    if swappiness == -1 and not update:
        # -1 is the CLI's "not set"; dockerd keeps it as null.
        hc["MemorySwappiness"] = swappiness = None
    if swappiness is not None and swappiness != -1:
        if not isinstance(swappiness, int) or not 0 <= swappiness <= 100:
            raise InvalidArgument(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    if reservation:
        if reservation < MIN_MEMORY:
            raise InvalidArgument("Minimum memory reservation allowed is 6MB")
        if memory > 0 and memory < reservation:
            raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
        if not host.memory_reservation:
            warnings.append("Your kernel does not support memory soft limit capabilities or the cgroup "
                            "is not mounted. Limitation discarded.")
            hc["MemoryReservation"] = 0
    if hc.get("KernelMemory"):
        warnings.append("Specifying a kernel memory limit is deprecated and will be removed in a future "
                        "release.")
    if hc.get("OomKillDisable"):
        if not host.oom_kill_disable:
            warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
            hc["OomKillDisable"] = False
        elif memory == 0:
            warnings.append("OOM killer is disabled for the container, but no memory limit is set, this "
                            "can result in the system running out of resources.")

    pids = hc.get("PidsLimit")
    if pids is not None:
        if not isinstance(pids, int):
            raise InvalidArgument("invalid PidsLimit: expected an integer")
        if pids <= 0:
            hc["PidsLimit"] = 0 if pids == 0 else -1
        elif not host.pids:
            warnings.append("Your kernel does not support PIDs limit capabilities or the cgroup is not "
                            "mounted. PIDs limit discarded.")
            hc["PidsLimit"] = 0

    nano = _int_field(hc, "NanoCpus")
    period = _int_field(hc, "CpuPeriod")
    quota = _int_field(hc, "CpuQuota")
    if nano > 0 and period > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if nano < 0 or nano > host.ncpu * NANO:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {host.ncpu}.00, as there are only "
                              f"{host.ncpu} CPUs available")
    if nano and nano < NANO // 100:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {host.ncpu}.00, as there are only "
                              f"{host.ncpu} CPUs available")
    if period != 0 and not 1000 <= period <= 1_000_000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s "
                              "(i.e. 1000000)")
    if quota > 0 and quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if (period or quota > 0 or nano) and not host.cpu_cfs:
        warnings.append("Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.")
        hc["CpuPeriod"] = hc["CpuQuota"] = hc["NanoCpus"] = 0
    shares = _int_field(hc, "CpuShares")
    if shares < 0:
        raise InvalidArgument("invalid CpuShares: must not be negative")
    if shares:
        if not host.cpu_shares:
            warnings.append("Your kernel does not support CPU shares or the cgroup is not mounted. "
                            "Shares discarded.")
            hc["CpuShares"] = 0
        else:
            hc["CpuShares"] = min(max(shares, MIN_CPU_SHARES), MAX_CPU_SHARES)
    for key, what, label, available in (("CpusetCpus", "cpuset cpus", "CPUs", host.cpus),
                                        ("CpusetMems", "cpuset mems", "memory nodes", host.mems)):
        value = hc.get(key) or ""
        if not isinstance(value, str):
            raise InvalidArgument(f"Invalid value {value} for {what}")
        if value:
            if not host.cpuset:
                warnings.append("Your kernel does not support cpuset or the cgroup is not mounted. "
                                "Cpuset discarded.")
                hc[key] = ""
                continue
            _validate_cpuset(value, available, what, label)

    weight = _int_field(hc, "BlkioWeight")
    # Discarded (with a warning) before the range is checked, as dockerd
    # does: on a kernel without the weight any value is only a warning.
    if weight and not host.blkio_weight:
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                        "Weight discarded.")
        hc["BlkioWeight"] = weight = 0
    if weight and not 10 <= weight <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    weight_devices = hc.get("BlkioWeightDevice") or []
    for entry in weight_devices:
        w = entry.get("Weight", 0)
        if not isinstance(w, int) or not 10 <= w <= 1000:
            raise InvalidArgument(f"invalid weight for device: {w}")
        device_numbers(entry.get("Path", ""), "BlkioWeightDevice")
    if weight_devices and not host.blkio_weight_device:
        warnings.append("Your kernel does not support Block I/O weight_device or the cgroup is not "
                        "mounted. Weight-device discarded.")
        hc["BlkioWeightDevice"] = []
    for key, label in (("BlkioDeviceReadBps", "BPS Block I/O read limit"),
                       ("BlkioDeviceWriteBps", "BPS Block I/O write limit"),
                       ("BlkioDeviceReadIOps", "IOPS Block I/O read limit"),
                       ("BlkioDeviceWriteIOps", "IOPS Block I/O write limit")):
        entries = hc.get(key) or []
        for entry in entries:
            rate = entry.get("Rate", 0)
            if not isinstance(rate, int) or rate < 0:
                raise InvalidArgument(f"invalid rate for device: {rate}")
            device_numbers(entry.get("Path", ""), key)
        if entries and not host.blkio_throttle:
            warnings.append(f"Your kernel does not support {label} or the cgroup is not mounted. "
                            f"Block I/O {label.split(' ', 1)[0]} limit discarded.")
            hc[key] = []


def validate_ulimits(ulimits: Any) -> None:
    if not ulimits:
        return
    if not isinstance(ulimits, list):
        raise InvalidArgument("invalid Ulimits: expected a list of {Name, Soft, Hard}")
    seen = set()
    for ul in ulimits:
        name = (ul or {}).get("Name")
        if name not in RLIMITS:
            raise InvalidArgument(f"invalid ulimit type: {name}")
        if name in seen:
            raise InvalidArgument(f"duplicate ulimit: {name}")
        seen.add(name)
        soft, hard = ul.get("Soft", 0), ul.get("Hard", 0)
        if not isinstance(soft, int) or not isinstance(hard, int):
            raise InvalidArgument(f"invalid ulimit {name}: Soft and Hard must be integers")
        if soft > hard and hard != -1:
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")


def validate_sysctls(sysctls: Any, hc: dict[str, Any]) -> None:
    if not sysctls:
        return
    if not isinstance(sysctls, dict):
        raise InvalidArgument("invalid Sysctls: expected an object of name -> value")
    net = network_mode(hc)
    for key, value in sysctls.items():
        if not isinstance(value, str):
            raise InvalidArgument(f"invalid value for sysctl {key!r}: expected a string")
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if (hc.get("IpcMode") or "") == "host":
                raise InvalidArgument(f"sysctl {key!r} not allowed with host ipc namespace")
            continue
        if key.startswith("net."):
            if net == "host":
                raise InvalidArgument(f"sysctl {key!r} not allowed in host network namespace")
            continue
        if key in UTS_SYSCTLS:
            if (hc.get("UTSMode") or "") == "host":
                raise InvalidArgument(f"sysctl {key!r} not allowed in host UTS namespace")
            continue
        raise InvalidArgument(f"sysctl {key!r} is not in a separate kernel namespace")


def normalize_host_config(hc: dict[str, Any] | None, host: HostInfo, *,
                          default_log_driver: str = "json-file",
                          default_runtime: str = "native",
                          known_runtimes: tuple[str, ...] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Validated copy of a HostConfig with Docker's defaults filled in."""
    hc = copy.deepcopy(hc or {})
    if not isinstance(hc, dict):
        raise InvalidArgument("invalid HostConfig: expected an object")
    warnings: list[str] = []
    validate_resources(hc, host, warnings)
    parse_host_mounts(hc)

    if hc.get("StorageOpt"):
        # No per-container size quota (overlay over xfs with pquota in
        # dockerd); refused in dockerd's words rather than ignored.
        raise InvalidArgument("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
    for key in ("CapAdd", "CapDrop"):
        caps = hc.get(key) or []
        if not isinstance(caps, list):
            raise InvalidArgument(f"invalid {key}: expected a list of capability names")
        try:
            hc[key] = [normalize_capability(c) for c in caps] or None
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid {key}: {exc.message}") from None  # dockerd's prefix
    security = parse_security_opts(hc.get("SecurityOpt"))
    if security.apparmor and not host.apparmor and security.apparmor != "unconfined":
        warnings.append(f"AppArmor is not enabled on this host: security option apparmor={security.apparmor} "
                        f"is not applied")
    if security.labels:
        warnings.append("SELinux is not enabled on this host: label security options are not applied")
    validate_ulimits(hc.get("Ulimits"))

    policy = parse_restart_policy(hc.get("RestartPolicy"))
    hc["RestartPolicy"] = policy.to_json()
    if hc.get("AutoRemove") and not policy.is_none:
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")

    # Stored as asked, with "" read as "default" (dockerd's word, which
    # inspect and ps show); network_mode() says what "default" means.
    hc["NetworkMode"] = hc.get("NetworkMode") or "default"
    net = network_mode(hc)
    if net not in BUILTIN_NETWORKS and not container_ref(net):
        # 400, not 404: the docker CLI takes a 404 from create for a
        # missing image and would try to pull it.
        raise InvalidArgument(f"network {net} not found")
    if container_ref(net) == "":
        raise InvalidArgument("invalid container format container:<name|id>")
    hc["IpcMode"] = _check_mode(hc.get("IpcMode"), _IPC_MODES, "IPC", container_ok=True) or "private"
    hc["PidMode"] = _check_mode(hc.get("PidMode"), _PID_MODES, "PID", container_ok=True)
    hc["UTSMode"] = _check_mode(hc.get("UTSMode"), _UTS_MODES, "UTS", container_ok=False)
    hc["CgroupnsMode"] = _check_mode(hc.get("CgroupnsMode"), _CGROUPNS_MODES, "cgroup namespace",
                                     container_ok=False) or ("private" if host.private_cgroupns else "host")
    userns = hc.get("UsernsMode") or ""
    if userns not in ("", "host"):
        # TODO(userns remap): a private user namespace needs a configured
        # remap range and shifted layer ownership; refuse until then.
        raise InvalidArgument(f"invalid USER mode: {userns}: user namespaces are not configured on this daemon")
    hc["UsernsMode"] = userns
    validate_sysctls(hc.get("Sysctls"), hc)

    oom = _int_field(hc, "OomScoreAdj")
    if not -1000 <= oom <= 1000:
        raise InvalidArgument(f"Invalid value {oom}, range for oom score adj is [-1000, 1000]")
    shm = _int_field(hc, "ShmSize")
    if shm < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    if shm == 0:
        hc["ShmSize"] = 64 * 1024 * 1024

    log_config = hc.get("LogConfig") or {}
    if not isinstance(log_config, dict):
        raise InvalidArgument("invalid LogConfig: expected an object with Type and Config")
    hc["LogConfig"] = {"Type": log_config.get("Type") or default_log_driver,
                       "Config": dict(log_config.get("Config") or {})}
    runtime = hc.get("Runtime") or default_runtime
    if known_runtimes is not None and runtime not in known_runtimes:
        raise InvalidArgument(f"unknown or invalid runtime name: {runtime}")
    hc["Runtime"] = runtime

    for entry in hc.get("Devices") or []:
        if not isinstance(entry, dict) or not entry.get("PathOnHost"):
            raise InvalidArgument("invalid Devices entry: PathOnHost is required")
        perms = entry.get("CgroupPermissions") or "rwm"
        if not perms or any(p not in "rwm" for p in perms):
            raise InvalidArgument(f"invalid device mode: {perms}")
        dest = entry.get("PathInContainer") or entry["PathOnHost"]
        if not dest.startswith("/"):
            raise InvalidArgument(f"invalid device path in container: {dest}")
        if not os.path.exists(entry["PathOnHost"]):
            raise InvalidArgument(f"error gathering device information while adding custom device "
                                  f"\"{entry['PathOnHost']}\": no such file or directory")
    if hc.get("VolumesFrom"):
        raise InvalidArgument("VolumesFrom is not supported yet: volumes are not available")
    if hc.get("VolumeDriver"):
        raise InvalidArgument("VolumeDriver is not supported yet: volumes are not available")
    for request in hc.get("DeviceRequests") or []:
        driver = (request or {}).get("Driver") or ""
        caps = (request or {}).get("Capabilities") or []
        raise InvalidArgument(f"could not select device driver \"{driver}\" with capabilities: {caps}")
    bindings = hc.get("PortBindings") or {}
    if not isinstance(bindings, dict):
        raise InvalidArgument("invalid PortBindings: expected an object of port -> bindings")
    if any(bindings.values()) or hc.get("PublishAllPorts"):
        if net == "host":
            warnings.append("Published ports are discarded when using host network mode")
        elif not container_ref(net):
            # Refused rather than ignored: a client must not believe its
            # ports are reachable.  TODO(network issue): publish through NAT.
            raise InvalidArgument("port publishing needs bridge networking, which this Dockyard does not have "
                                  "yet (ExposedPorts is fine; --network host shares the host's ports)")
    if hc.get("Links"):
        warnings.append("legacy links are not supported: Links are ignored")
    rules = hc.get("DeviceCgroupRules") or []
    if not isinstance(rules, list):
        raise InvalidArgument("invalid DeviceCgroupRules: expected a list of strings")
    for rule in rules:
        parse_device_cgroup_rule(str(rule))
    for key in ("Dns", "DnsSearch", "DnsOptions", "ExtraHosts", "GroupAdd"):
        value = hc.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise InvalidArgument(f"invalid {key}: expected a list of strings")
    for entry in hc.get("ExtraHosts") or []:
        name, sep, ip = entry.partition(":")
        if not sep or not name or not ip:
            raise InvalidArgument(f"invalid argument \"{entry}\" for \"--add-host\" flag: bad format "
                                  f"for add-host: \"{entry}\"")
    return hc, warnings


def validate_config(config: dict[str, Any] | None, hc: dict[str, Any]) -> dict[str, Any]:
    """Check the (already merged) container Config against its HostConfig."""
    config = copy.deepcopy(config or {})
    if not isinstance(config, dict):
        raise InvalidArgument("invalid Config: expected an object")
    if not (config.get("Entrypoint") or config.get("Cmd")):
        raise InvalidArgument("No command specified")
    workdir = config.get("WorkingDir") or ""
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    hostname = config.get("Hostname") or ""
    net = network_mode(hc)
    if hostname:
        if container_ref(net):
            raise InvalidArgument("conflicting options: hostname and the network mode")
        if (hc.get("UTSMode") or "") == "host":
            raise InvalidArgument("conflicting options: hostname and the UTS mode")
        if len(hostname) > 255 or not _HOSTNAME.match(hostname):
            raise InvalidArgument(f"invalid hostname format: {hostname}")
    if container_ref(net):
        if hc.get("Dns") or hc.get("DnsSearch") or hc.get("DnsOptions"):
            raise InvalidArgument("conflicting options: dns and the network mode")
        if hc.get("ExtraHosts"):
            raise InvalidArgument("conflicting options: custom host-to-IP mapping and the network mode")
        if hc.get("PortBindings") or hc.get("PublishAllPorts"):
            raise InvalidArgument("conflicting options: port publishing and the container type network mode")
        if config.get("MacAddress"):
            raise InvalidArgument("conflicting options: mac-address and the network mode")
    if config.get("StopSignal"):
        parse_signal(config["StopSignal"])
    timeout = config.get("StopTimeout")
    if timeout is not None and not isinstance(timeout, int):
        raise InvalidArgument("invalid StopTimeout: expected an integer number of seconds")
    validate_healthcheck(config.get("Healthcheck"))
    labels = config.get("Labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise InvalidArgument("invalid Labels: expected an object of string values")
    config["Labels"] = labels
    for flag in ("Tty", "OpenStdin", "StdinOnce", "AttachStdin", "AttachStdout", "AttachStderr"):
        config[flag] = bool(config.get(flag))
    return config


def health_settings(health: dict[str, Any] | None) -> dict[str, Any] | None:
    """The healthcheck to run with Docker's defaults filled in, or None when
    there is none (absent, empty, or ``NONE``)."""
    if not health:
        return None
    test = health.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    return {
        "Test": list(test),
        "Interval": health.get("Interval") or HEALTH_INTERVAL,
        "Timeout": health.get("Timeout") or HEALTH_TIMEOUT,
        "StartPeriod": health.get("StartPeriod") or HEALTH_START_PERIOD,
        "StartInterval": health.get("StartInterval") or HEALTH_START_INTERVAL,
        "Retries": health.get("Retries") or HEALTH_RETRIES,
    }


def parse_device_cgroup_rule(rule: str) -> dict[str, Any]:
    """``c 1:3 rwm`` / ``b *:* m`` -> an OCI device cgroup rule."""
    parts = rule.split()
    if len(parts) != 3 or parts[0] not in ("a", "b", "c") or ":" not in parts[1] \
            or not parts[2] or any(p not in "rwm" for p in parts[2]):
        raise InvalidArgument(f"invalid device cgroup format '{rule}'")
    major_s, minor_s = parts[1].split(":", 1)
    out: dict[str, Any] = {"allow": True, "type": parts[0], "access": parts[2]}
    for key, text in (("major", major_s), ("minor", minor_s)):
        if text == "*":
            continue
        if not text.isdigit():
            raise InvalidArgument(f"invalid device cgroup format '{rule}'")
        out[key] = int(text)
    return out
