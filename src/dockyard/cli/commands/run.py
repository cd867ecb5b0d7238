"""``run`` and ``create``: docker's flags -> the Engine API's create body,
then (for run) attach, start, relay and exit with the container's status.

Exit codes as docker's: 125 when the daemon (or a flag) fails the command,
126 when the command cannot be invoked, 127 when it is not found, else the
container's own status.  ``run`` is benchmarked end to end, so nothing
heavy is imported on its path (no asyncio, aiohttp or rich; the reference
parser only when an image is missing).
"""

from __future__ import annotations

import os
import re
from typing import Any

from dockyard.cli.context import PROG, ArgParser, CommandFailed, Context, UsageError
from dockyard.errors import DockyardError, NotFound

# -- values as docker's flags take them ----------------------------------------------

_RAM = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_RAM_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


#: The tail docker prints under an error in a flag's value ...
FLAG_ERROR_TAIL = f"\n\nUsage:  {PROG} run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun '{PROG} run --help' for more information"
#: ... and under one it finds in the flags' combination afterwards.
CHECK_ERROR_TAIL = f"\n\nRun '{PROG} run --help' for more information"


def flag_error(value: str, flag: str, reason: str) -> UsageError:
    return UsageError(f'invalid argument "{value}" for "{flag}" flag: {reason}{FLAG_ERROR_TAIL}')


def check_error(message: str) -> UsageError:
    """A run option docker's CLI refuses after parsing (exit 125)."""
    return UsageError(f"{PROG}: {message}{CHECK_ERROR_TAIL}", status=125)


def ram_in_bytes(value: str, flag: str) -> int:
    """go-units RAMInBytes: "512m", "1g", "1024" (binary units)."""
    if value.strip() == "-1":
        return -1
    m = _RAM.match(value.strip())
    if not m:
        raise flag_error(value, flag, f"invalid size: '{value}'")
    return int(float(m.group(1)) * _RAM_UNITS[(m.group(2) or "").lower()])


def duration_ns(value: str, flag: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms") in nanoseconds."""
    text = value.strip()
    if text == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            raise flag_error(value, flag, f'time: invalid duration "{value}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise flag_error(value, flag, 'time: invalid duration ""')
    return int(total)


def env_entry(item: str, flag: str | None = "-e, --env") -> str:
    """``K=V`` as is; a bare ``K`` takes our environment's value, as docker
    does (and is sent bare when we have none).  ``flag`` names the option
    in the error, None for a line of an --env-file."""
    if "=" in item:
        if item.startswith("="):
            if flag is None:
                raise check_error(f"invalid environment variable: {item}")
            raise flag_error(item, flag, f"invalid environment variable: {item}")
        return item
    value = os.environ.get(item)
    return f"{item}={value}" if value is not None else item


def read_kv_file(path: str, what: str) -> list[str]:
    """An --env-file / --label-file: one entry a line, # comments."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise check_error(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if what == "env":
            out.append(env_entry(line, None))
        else:
            out.append(line)
    return out


def parse_restart(value: str) -> dict[str, Any]:
    """--restart as docker's CLI reads it: only the form is checked here,
    the policy's name and whether it takes a count are the daemon's to
    judge (its messages are docker's)."""
    if not value:
        return {"Name": "", "MaximumRetryCount": 0}
    name, colon, count = value.partition(":")
    if colon and not name:
        raise UsageError("invalid restart policy format: no policy provided before colon", status=125)
    retries = 0
    if count:
        try:
            retries = int(count)
        except ValueError:
            raise UsageError("invalid restart policy format: maximum retry count must be an integer",
                             status=125) from None
    return {"Name": name, "MaximumRetryCount": retries}


def parse_ulimit(value: str) -> dict[str, Any]:
    name, sep, limits = value.partition("=")
    if not sep or not name:
        raise flag_error(value, "--ulimit", f"invalid ulimit argument: {value}")
    soft, _, hard = limits.partition(":")
    try:
        soft_n = int(soft)
        hard_n = int(hard) if hard else soft_n
    except ValueError:
        raise flag_error(value, "--ulimit", f"invalid ulimit argument: {value}") from None
    if soft_n > hard_n:
        raise flag_error(value, "--ulimit", f"ulimit soft limit must be less than or equal to hard limit: "
                                            f"{soft_n} > {hard_n}")
    return {"Name": name, "Soft": soft_n, "Hard": hard_n}


def _port_range(text: str, what: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high) if sep else int(low)
    except ValueError:
        first = last = -1
    if not (0 < first <= last <= 65535):
        raise check_error(f"invalid {what}: {text}")
    return first, last


def parse_publish(spec: str) -> list[tuple[str, dict[str, str]]]:
    """``-p [ip:][hostPort:]containerPort[/proto]`` (ranges allowed), as
    docker's nat.ParsePortSpec reads it: ``("80/tcp", {"HostIp",
    "HostPort"})`` pairs.  Whether ports can be published is the daemon's
    to say."""
    rest, proto = spec, "tcp"
    head, slash, tail = spec.rpartition("/")
    if slash:
        rest, proto = head, tail.lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise check_error(f"invalid proto: {proto}")
    ip = ""
    if rest.startswith("["):  # [IPv6]:hostPort:containerPort
        ip, _, rest = rest[1:].partition("]")
        rest = rest[1:] if rest.startswith(":") else rest
        host, _, container = rest.rpartition(":")
    else:
        parts = rest.split(":")
        if len(parts) > 3:
            raise check_error(f"invalid port format: {spec}")
        container = parts[-1]
        host = parts[-2] if len(parts) >= 2 else ""
        ip = parts[0] if len(parts) == 3 else ""
    c_first, c_last = _port_range(container, "containerPort")
    if not host:
        return [(f"{p}/{proto}", {"HostIp": ip, "HostPort": ""}) for p in range(c_first, c_last + 1)]
    h_first, h_last = _port_range(host, "hostPort")
    if c_first == c_last:
        return [(f"{c_first}/{proto}", {"HostIp": ip, "HostPort": host})]
    if h_last - h_first != c_last - c_first:
        raise check_error(f"invalid ranges specified for container and host Ports: {container} and {host}")
    return [(f"{c}/{proto}", {"HostIp": ip, "HostPort": str(h_first + i)})
            for i, c in enumerate(range(c_first, c_last + 1))]


def parse_device(value: str) -> dict[str, str]:
    parts = value.split(":")
    src = parts[0]
    dst = src
    perms = "rwm"
    if len(parts) == 2:
        if parts[1] and all(c in "rwm" for c in parts[1]):
            perms = parts[1]
        else:
            dst = parts[1]
    elif len(parts) == 3:
        dst, perms = parts[1], parts[2]
    elif len(parts) > 3:
        raise flag_error(value, "--device", f"invalid device specification: {value}")
    return {"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}


def parse_mount(value: str) -> dict[str, Any]:
    """docker's --mount CSV: type=bind,source=/a,target=/b,readonly,..."""
    mount: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    volume: dict[str, Any] = {}
    for field in _csv(value):
        key, sep, val = field.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro"):
            mount["ReadOnly"] = not sep or val.lower() in ("1", "true")
        elif not sep:
            raise flag_error(value, "--mount", f"invalid field '{field}' must be a key=value pair")
        elif key == "type":
            mount["Type"] = val
        elif key in ("source", "src"):
            mount["Source"] = val
        elif key in ("target", "destination", "dst"):
            mount["Target"] = val
        elif key == "consistency":
            mount["Consistency"] = val
        elif key == "bind-propagation":
            bind["Propagation"] = val
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = val.lower() in ("1", "true")
        elif key == "bind-create-src":
            bind["CreateMountpoint"] = val.lower() in ("1", "true")
        elif key == "tmpfs-size":
            tmpfs["SizeBytes"] = ram_in_bytes(val, "--mount")
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(val, 8)
            except ValueError:
                raise flag_error(value, "--mount", f"invalid value for {key}: {val}") from None
        elif key == "volume-nocopy":
            volume["NoCopy"] = not val or val.lower() in ("1", "true")
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = val
        elif key == "volume-label":
            k, _, v = val.partition("=")
            volume.setdefault("Labels", {})[k] = v
        elif key == "volume-subpath":
            volume["Subpath"] = val
        else:
            raise flag_error(value, "--mount", f"unexpected key '{key}' in '{field}'")
    if "Target" not in mount:
        raise flag_error(value, "--mount", "target is required")
    if bind:
        mount["BindOptions"] = bind
    if tmpfs:
        mount["TmpfsOptions"] = tmpfs
    if volume:
        mount["VolumeOptions"] = volume
    return mount


def _csv(text: str) -> list[str]:
    import csv

    return next(csv.reader([text]), [])


def parse_volume(value: str) -> tuple[str | None, str]:
    """-v: (bind spec for HostConfig.Binds, or None and an anonymous
    volume's container path)."""
    if not value:
        raise check_error("invalid empty volume spec")
    parts = value.split(":")
    if len(parts) == 1:
        return None, parts[0]
    # docker's CLI reads source, target and mode section by section
    for i, part in enumerate(parts):
        if not part:
            raise check_error(f"invalid spec: {value}: empty section between colons")
        if i == 2 and len(parts) > 3:
            raise check_error(f"invalid spec: {value}: too many colons")
    return value, parts[1]


# -- the flags ---------------------------------------------------------------------------

def _parser(ctx: Context, name: str, description: str) -> ArgParser:
    # -h is --hostname here, as in docker: "resolve" leaves help --help only.
    p = ArgParser(name, usage_line="[OPTIONS] IMAGE [COMMAND] [ARG...]", description=description,
                  conflict_handler="resolve")
    a = p.add_argument
    many = {"action": "append", "default": []}
    a("-a", "--attach", **many, help="Attach to STDIN, STDOUT or STDERR")
    a("--add-host", **many, help="Add a custom host-to-IP mapping (host:ip)")
    a("--annotation", **many, help="Add an annotation to the container (passed through to the OCI runtime)")
    a("--blkio-weight", type=int, default=0, help="Block IO (relative weight), between 10 and 1000, or 0 to disable")
    a("--cap-add", **many, help="Add Linux capabilities")
    a("--cap-drop", **many, help="Drop Linux capabilities")
    a("--cgroup-parent", default="", help="Optional parent cgroup for the container")
    a("--cgroupns", default="", help="Cgroup namespace to use (host|private)")
    a("--cidfile", default="", help="Write the container ID to the file")
    a("--cpu-period", type=int, default=0, help="Limit CPU CFS (Completely Fair Scheduler) period")
    a("--cpu-quota", type=int, default=0, help="Limit CPU CFS (Completely Fair Scheduler) quota")
    a("--cpu-rt-period", type=int, default=0, help="Limit CPU real-time period in microseconds")
    a("--cpu-rt-runtime", type=int, default=0, help="Limit CPU real-time runtime in microseconds")
    a("-c", "--cpu-shares", type=int, default=0, help="CPU shares (relative weight)")
    a("--cpus", default="", help="Number of CPUs")
    a("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)")
    a("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)")
    if name.endswith("run"):
        a("-d", "--detach", action="store_true", help="Run container in background and print container ID")
        a("--detach-keys", default="", help="Override the key sequence for detaching a container")
        a("--sig-proxy", default="true", nargs="?", const="true",
          help="Proxy received signals to the process (default true)")
    a("--device", **many, help="Add a host device to the container")
    a("--device-cgroup-rule", **many, help="Add a rule to the cgroup allowed devices list")
    a("--dns", **many, help="Set custom DNS servers")
    a("--dns-option", **many, help="Set DNS options")
    a("--dns-search", **many, help="Set custom DNS search domains")
    a("--domainname", default="", help="Container NIS domain name")
    a("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image")
    a("-e", "--env", **many, help="Set environment variables")
    a("--env-file", **many, help="Read in a file of environment variables")
    a("--expose", **many, help="Expose a port or a range of ports")
    a("--group-add", **many, help="Add additional groups to join")
    a("--health-cmd", default="", help="Command to run to check health")
    a("--health-interval", default="", help="Time between running the check (ms|s|m|h) (default 0s)")
    a("--health-retries", type=int, default=0, help="Consecutive failures needed to report unhealthy")
    a("--health-start-interval", default="", help="Time between running the check during the start period")
    a("--health-start-period", default="", help="Start period for the container to initialize before "
                                                "starting health-retries countdown (ms|s|m|h) (default 0s)")
    a("--health-timeout", default="", help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
    a("-h", "--hostname", default="", help="Container host name")
    a("--init", action="store_true", help="Run an init inside the container that forwards signals and reaps "
                                          "processes")
    a("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    a("--ipc", default="", help="IPC mode to use")
    a("--isolation", default="", help="Container isolation technology")
    a("-l", "--label", **many, help="Set meta data on a container")
    a("--label-file", **many, help="Read in a line delimited file of labels")
    a("--link", **many, help="Add link to another container")
    a("--log-driver", default="", help="Logging driver for the container")
    a("--log-opt", **many, help="Log driver options")
    a("--mac-address", default="", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    a("-m", "--memory", default="", help="Memory limit")
    a("--memory-reservation", default="", help="Memory soft limit")
    a("--memory-swap", default="", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("--memory-swappiness", type=int, default=-1, help="Tune container memory swappiness (0 to 100)")
    a("--mount", **many, help="Attach a filesystem mount to the container")
    a("--name", default="", help="Assign a name to the container")
    a("--network", "--net", default="", help="Connect a container to a network")
    a("--network-alias", **many, help="Add network-scoped alias for the container")
    a("--no-healthcheck", action="store_true", help="Disable any container-specified HEALTHCHECK")
    a("--oom-kill-disable", action="store_true", help="Disable OOM Killer")
    a("--oom-score-adj", type=int, default=0, help="Tune host's OOM preferences (-1000 to 1000)")
    a("--pid", default="", help="PID namespace to use")
    a("--pids-limit", type=int, default=None, help="Tune container pids limit (set -1 for unlimited)")
    a("--platform", default="", help="Set platform if server is multi-platform capable")
    a("--privileged", action="store_true", help="Give extended privileges to this container")
    a("-p", "--publish", **many, help="Publish a container's port(s) to the host")
    a("-P", "--publish-all", action="store_true", help="Publish all exposed ports to random ports")
    a("--pull", default="missing", help='Pull image before running ("always", "missing", "never")')
    a("-q", "--quiet", action="store_true", help="Suppress the pull output")
    a("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    a("--restart", default="", help="Restart policy to apply when a container exits")
    a("--rm", action="store_true", help="Automatically remove the container and its associated anonymous "
                                        "volumes when it exits")
    a("--runtime", default="", help="Runtime to use for this container")
    a("--security-opt", **many, help="Security Options")
    a("--shm-size", default="", help="Size of /dev/shm")
    a("--stop-signal", default="", help="Signal to stop the container")
    a("--stop-timeout", type=int, default=None, help="Timeout (in seconds) to stop a container")
    a("--storage-opt", **many, help="Storage driver options for the container")
    a("--sysctl", **many, help="Sysctl options")
    a("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    a("--tmpfs", **many, help="Mount a tmpfs directory")
    a("--ulimit", **many, help="Ulimit options")
    a("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])")
    a("--userns", default="", help="User namespace to use")
    a("--uts", default="", help="UTS namespace to use")
    a("-v", "--volume", **many, help="Bind mount a volume")
    a("--volume-driver", default="", help="Optional volume driver for the container")
    a("--volumes-from", **many, help="Mount volumes from the specified container(s)")
    a("-w", "--workdir", default="", help="Working directory inside the container")
    return p


def split_at_image(p: ArgParser, argv: list[str]) -> tuple[list[str], list[str]]:
    """Options before the image are ours; everything from the image on is
    the image and the container's command (docker stops parsing there)."""
    actions = p._option_string_actions  # noqa: SLF001 - argparse keeps the table there
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return argv[:i], argv[i + 1:]
        if not arg.startswith("-") or arg == "-":
            return argv[:i], argv[i:]
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            action = actions.get(name)
            if action is not None and action.nargs != 0 and "=" not in arg and action.nargs != "?":
                i += 1  # its value
        else:
            # -it, -dit, -p8080:80, -e K=V: walk the combined short flags.
            for pos in range(1, len(arg)):
                action = actions.get("-" + arg[pos])
                if action is None:
                    break
                if action.nargs != 0 and action.nargs != "?":
                    if pos == len(arg) - 1:
                        i += 1  # the value is the next word
                    break
        i += 1
    return argv, []


def _bool_flag(value: str, flag: str) -> bool:
    low = str(value).lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise flag_error(value, flag, f'strconv.ParseBool: parsing "{value}": invalid syntax')


def build_create_body(args: Any, image: str, command: list[str], *, detach: bool) -> dict[str, Any]:
    """docker's flags as the create body (Config + HostConfig + NetworkingConfig)."""
    attach = [s.lower() for s in args.attach]
    for stream in attach:
        if stream not in ("stdin", "stdout", "stderr"):
            raise UsageError(f"invalid argument \"{stream}\" for \"-a, --attach\" flag: valid streams are "
                             "STDIN, STDOUT and STDERR", status=125)
    if detach and attach:
        raise UsageError("conflicting options: cannot specify both --attach and --detach", status=1)
    if detach:
        attach_stdin = attach_stdout = attach_stderr = False
    elif attach:
        attach_stdin, attach_stdout, attach_stderr = ("stdin" in attach, "stdout" in attach, "stderr" in attach)
    else:
        attach_stdin, attach_stdout, attach_stderr = args.interactive, True, True
    env = [env_entry(e) for f in args.env_file for e in read_kv_file(f, "env")] + [env_entry(e) for e in args.env]
    labels: dict[str, str] = {}
    for item in [x for f in args.label_file for x in read_kv_file(f, "label")] + args.label:
        key, _, value = item.partition("=")
        labels[key] = value
    config: dict[str, Any] = {
        "Hostname": args.hostname,
        "Domainname": args.domainname,
        "User": args.user,
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "Tty": args.tty,
        "OpenStdin": args.interactive,
        "StdinOnce": bool(args.interactive and attach_stdin),
        "Env": env,
        "Cmd": command or None,
        "Image": image,
        "Volumes": {},
        "WorkingDir": args.workdir,
        "Entrypoint": None,
        "Labels": labels,
    }
    if args.entrypoint is not None:
        # --entrypoint "" resets the image's entrypoint.
        config["Entrypoint"] = [args.entrypoint] if args.entrypoint else [""]
    port_bindings: dict[str, list[dict[str, str]]] = {}
    for spec in args.publish:
        for port, binding in parse_publish(spec):
            port_bindings.setdefault(port, []).append(binding)
    if args.expose or port_bindings:
        ports: dict[str, dict] = {port: {} for port in port_bindings}
        for spec in args.expose:
            port, _, proto = spec.partition("/")
            ports[f"{port}/{proto or 'tcp'}"] = {}
        config["ExposedPorts"] = ports
    if args.stop_signal:
        config["StopSignal"] = args.stop_signal
    if args.stop_timeout is not None:
        config["StopTimeout"] = args.stop_timeout
    health = _healthcheck(args)
    if health is not None:
        config["Healthcheck"] = health
    if args.mac_address:
        config["MacAddress"] = args.mac_address

    binds = []
    for spec in args.volume:
        bind, target = parse_volume(spec)
        if bind is None:
            config["Volumes"][target] = {}
        else:
            binds.append(bind)
    tmpfs = {}
    for spec in args.tmpfs:
        path, _, options = spec.partition(":")
        tmpfs[path] = options
    host_config: dict[str, Any] = {
        "Binds": binds or None,
        "ContainerIDFile": args.cidfile,
        "LogConfig": {"Type": args.log_driver, "Config": _kv(args.log_opt, "--log-opt")},
        "NetworkMode": args.network or "default",
        "PortBindings": port_bindings,
        "RestartPolicy": parse_restart(args.restart) if args.restart else {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": args.rm,
        "VolumeDriver": args.volume_driver,
        "VolumesFrom": args.volumes_from or None,
        "CapAdd": args.cap_add or None,
        "CapDrop": args.cap_drop or None,
        "CgroupnsMode": args.cgroupns,
        "Dns": args.dns,
        "DnsOptions": args.dns_option,
        "DnsSearch": args.dns_search,
        "ExtraHosts": args.add_host or None,
        "GroupAdd": args.group_add or None,
        "IpcMode": args.ipc,
        "Cgroup": "",
        "Links": args.link or None,
        "OomScoreAdj": args.oom_score_adj,
        "PidMode": args.pid,
        "Privileged": args.privileged,
        "PublishAllPorts": bool(args.publish_all),
        "ReadonlyRootfs": args.read_only,
        "SecurityOpt": _security_opts(args.security_opt) or None,
        "StorageOpt": _kv(args.storage_opt, "--storage-opt") or None,
        "Tmpfs": tmpfs or None,
        "UTSMode": args.uts,
        "UsernsMode": args.userns,
        "ShmSize": ram_in_bytes(args.shm_size, "--shm-size") if args.shm_size else 0,
        "Sysctls": _kv(args.sysctl, "--sysctl") or None,
        "Runtime": args.runtime,
        "Isolation": args.isolation,
        "CpuShares": args.cpu_shares,
        "Memory": ram_in_bytes(args.memory, "-m, --memory") if args.memory else 0,
        "NanoCpus": _nano_cpus(args.cpus),
        "CgroupParent": args.cgroup_parent,
        "BlkioWeight": args.blkio_weight,
        "CpuPeriod": args.cpu_period,
        "CpuQuota": args.cpu_quota,
        "CpuRealtimePeriod": args.cpu_rt_period,
        "CpuRealtimeRuntime": args.cpu_rt_runtime,
        "CpusetCpus": args.cpuset_cpus,
        "CpusetMems": args.cpuset_mems,
        "Devices": [parse_device(d) for d in args.device],
        "DeviceCgroupRules": args.device_cgroup_rule or None,
        "MemoryReservation": ram_in_bytes(args.memory_reservation, "--memory-reservation")
        if args.memory_reservation else 0,
        "MemorySwap": ram_in_bytes(args.memory_swap, "--memory-swap") if args.memory_swap else 0,
        "MemorySwappiness": args.memory_swappiness if args.memory_swappiness != -1 else None,
        "OomKillDisable": args.oom_kill_disable,
        "PidsLimit": args.pids_limit,
        "Ulimits": [parse_ulimit(u) for u in args.ulimit] or None,
        "Mounts": [parse_mount(m) for m in args.mount] or None,
        "Init": True if args.init else None,
    }
    if args.annotation:
        host_config["Annotations"] = _kv(args.annotation, "--annotation")
    if args.tty:
        size = _console_size()
        if size is not None:
            host_config["ConsoleSize"] = list(size)
    if args.rm and args.restart and args.restart not in ("no",):
        raise check_error("conflicting options: cannot specify both --restart and --rm")
    config["HostConfig"] = host_config
    config["NetworkingConfig"] = {"EndpointsConfig": {}}
    return config


def _console_size() -> tuple[int, int] | None:
    from dockyard.cli.commands.streams import terminal_size

    return terminal_size()


def _nano_cpus(value: str) -> int:
    if not value:
        return 0
    try:
        cpus = float(value)
    except ValueError:
        raise flag_error(value, "--cpus", f"failed to parse {value} as a rational number") from None
    return int(round(cpus * 1e9))


def _kv(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise flag_error(item, flag, f"invalid key/value pair format: {item}")
        out[key] = value
    return out


def _security_opts(items: list[str]) -> list[str]:
    """docker sends a seccomp profile's contents, not its file name."""
    out = []
    for item in items:
        key, sep, value = item.partition("=") if "=" in item else item.partition(":")
        if key == "seccomp" and sep and value not in ("unconfined", "builtin"):
            try:
                with open(value, encoding="utf-8") as f:
                    item = "seccomp=" + f.read()
            except OSError as e:
                raise UsageError(f"opening seccomp profile ({value}) failed: open {value}: "
                                 f"{(e.strerror or str(e)).lower()}", status=125) from None
        out.append(item)
    return out


def _healthcheck(args: Any) -> dict[str, Any] | None:
    timing = any((args.health_interval, args.health_timeout, args.health_start_period,
                  args.health_start_interval, args.health_retries))
    if args.no_healthcheck:
        if args.health_cmd or timing:
            raise check_error("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not args.health_cmd and not timing:
        return None
    check: dict[str, Any] = {}
    if args.health_cmd:
        check["Test"] = ["CMD-SHELL", args.health_cmd]
    for flag, key in (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                      ("health_start_period", "StartPeriod"), ("health_start_interval", "StartInterval")):
        value = getattr(args, flag)
        if value:
            ns = duration_ns(value, "--" + flag.replace("_", "-"))
            if ns < 0:
                raise check_error(f"--{flag.replace('_', '-')} cannot be negative")
            check[key] = ns
    if args.health_retries:
        if args.health_retries < 0:
            raise check_error("--health-retries cannot be negative")
        check["Retries"] = args.health_retries
    return check


# -- create with docker's "Unable to find image" behaviour --------------------------------

def _familiar_tagged(image: str) -> str:
    from dockyard.oci.reference import parse_reference

    try:
        return parse_reference(image).tagged_or_latest().familiar
    except DockyardError:
        return image


def _pull(ctx: Context, image: str, quiet: bool) -> None:
    from dockyard.cli.progress import display

    ref = _familiar_tagged(image)
    name, _, tag = ref.rpartition(":") if "@" not in ref else (ref, "", "")
    messages = ctx.client.stream_json("POST", "/images/create", query={"fromImage": name or ref,
                                                                       "tag": tag or None})
    display(messages, ctx.err if quiet else ctx.out, tty=False)


def create_container(ctx: Context, body: dict[str, Any], *, name: str | None, platform: str | None,
                     pull: str, quiet: bool) -> dict[str, Any]:
    """Create; pull first / on a missing image as ``--pull`` says."""
    image = body["Image"]
    if pull not in ("missing", "always", "never"):
        raise UsageError(f'invalid pull option: \'{pull}\': must be one of "always", "missing" or "never"',
                         status=125)
    if pull == "always":
        _pull(ctx, image, quiet)
    try:
        return ctx.client.create_container(body, name=name, platform=platform)
    except NotFound:
        if pull == "never" or not _image_missing(ctx, image):
            raise
    ctx.err.write(f"Unable to find image '{_familiar_tagged(image)}' locally\n")
    ctx.err.flush()
    _pull(ctx, image, quiet)
    return ctx.client.create_container(body, name=name, platform=platform)


def _image_missing(ctx: Context, image: str) -> bool:
    try:
        ctx.client.inspect_image(image)
    except NotFound:
        return True
    return False


def _print_warnings(ctx: Context, created: dict[str, Any]) -> None:
    for warning in created.get("Warnings") or []:
        ctx.err.write(f"WARNING: {warning}\n")


def daemon_failure(ctx: Context, error: Exception, name: str) -> CommandFailed:
    """docker's report of a run/create that the daemon failed: 125."""
    from dockyard.cli.main import report_error

    ctx.err.write(f"{PROG}: ")
    report_error(ctx, error)
    ctx.err.write(f"\nRun '{PROG} {name} --help' for more information\n")
    return CommandFailed(125)


def _parse(ctx: Context, name: str, description: str, argv: list[str]) -> tuple[Any, str, list[str]]:
    p = _parser(ctx, name, description)
    options, rest = split_at_image(p, argv)
    args = p.parse_args(options)
    if not rest:
        raise UsageError(f"{PROG}: '{PROG} {name}' requires at least 1 argument\n\n"
                         f"Usage:  {PROG} {name} [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"
                         f"See '{PROG} {name} --help' for more information", status=1)
    return args, rest[0], rest[1:]


def _write_cidfile(path: str, cid: str) -> None:
    if not path:
        return
    if os.path.exists(path):
        raise UsageError(f"container ID file found, make sure the other container isn't running or delete "
                         f"{path}", status=125)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(cid)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


# -- commands ------------------------------------------------------------------------------

def create(ctx: Context, argv: list[str], name: str) -> int:
    args, image, command = _parse(ctx, name, "Create a new container", argv)
    body = build_create_body(args, image, command, detach=True)
    # create keeps the attach flags docker would set for a later start -a.
    body["AttachStdin"] = args.interactive
    body["AttachStdout"] = body["AttachStderr"] = not args.attach or "stdout" in args.attach
    try:
        created = create_container(ctx, body, name=args.name or None, platform=args.platform or None,
                                   pull=args.pull, quiet=args.quiet)
    except DockyardError as e:
        # Unlike run (125), docker's create reports a daemon error plainly
        # and exits 1.
        from dockyard.cli.main import report_error

        report_error(ctx, e)
        raise CommandFailed(1) from None
    _print_warnings(ctx, created)
    _write_cidfile(args.cidfile, created["Id"])
    ctx.write(created["Id"] + "\n")
    return 0


def run(ctx: Context, argv: list[str], name: str) -> int:
    args, image, command = _parse(ctx, name, "Create and run a new container from an image", argv)
    sig_proxy = _bool_flag(args.sig_proxy, "--sig-proxy")
    body = build_create_body(args, image, command, detach=args.detach)
    from dockyard.cli.commands.streams import stdin_is_tty

    if body["AttachStdin"] and args.tty and not stdin_is_tty():
        ctx.err.write("the input device is not a TTY\n")
        return 1
    client = ctx.client
    try:
        created = create_container(ctx, body, name=args.name or None, platform=args.platform or None,
                                   pull=args.pull, quiet=args.quiet)
    except DockyardError as e:
        raise daemon_failure(ctx, e, name) from None
    _print_warnings(ctx, created)
    cid = created["Id"]
    _write_cidfile(args.cidfile, cid)
    if args.detach:
        # With --rm a failed start removes the container: its exit code
        # comes with the wait for that removal.
        waiter = client.wait_container(cid, "removed") if args.rm else None
        try:
            client.start_container(cid)
        except DockyardError as e:
            raise _start_failure(ctx, e, name, cid, waiter) from None
        if waiter is not None:
            waiter.close()
        ctx.write(cid + "\n")
        return 0
    attached = body["AttachStdin"] or body["AttachStdout"] or body["AttachStderr"]
    return attach_and_start(ctx, cid, name=name, stdin=body["AttachStdin"], stdout=body["AttachStdout"],
                            stderr=body["AttachStderr"], tty=args.tty, detach_keys=args.detach_keys or None,
                            sig_proxy=sig_proxy and not args.tty, wait_condition="removed" if args.rm
                            else "next-exit", attach=attached)


#: Exit codes a container records when its command could not be run:
#: not found, not executable (docker's 127 and 126).
_CANNOT_RUN = (126, 127)


def _start_failure(ctx: Context, error: DockyardError, name: str, cid: str, waiter: Any = None) -> CommandFailed:
    """docker's exit codes for a container that could not start: 127 when
    the command is not found, 126 when it cannot be invoked, else 125.
    The daemon answers both as a bad parameter (400, as dockerd); which of
    the two it was is the exit code the container recorded.  ``waiter``:
    the wait for the removal of a --rm container (the daemon removes it
    and answers the wait with that code), else the container is asked."""
    failure = daemon_failure(ctx, error, name)
    try:
        if waiter is not None:
            code = int(ctx.client.read_wait(waiter).get("StatusCode", 0))
        else:
            code = int(((ctx.client.inspect_container(cid).get("State") or {}).get("ExitCode")) or 0)
    except (DockyardError, OSError, ValueError, TypeError):
        return failure
    return CommandFailed(code) if code in _CANNOT_RUN else failure


def attach_and_start(ctx: Context, cid: str, *, name: str, stdin: bool, stdout: bool, stderr: bool, tty: bool,
                     detach_keys: str | None, sig_proxy: bool, wait_condition: str, attach: bool = True,
                     start: bool = True) -> int:
    """Attach (before start, so no output is missed), register the wait,
    start, relay until the stream ends; the container's status."""
    from dockyard.cli.commands.streams import RawTerminal, ResizeOnWinch, Session, SignalProxy

    client = ctx.client
    sock = None
    if attach:
        try:
            sock = client.attach_container(cid, stdin=stdin, stdout=stdout, stderr=stderr,
                                           detach_keys=detach_keys)
        except DockyardError as e:
            raise daemon_failure(ctx, e, name) from None
    try:
        waiter = client.wait_container(cid, wait_condition)
        if start:
            try:
                client.start_container(cid)
            except DockyardError as e:
                if wait_condition == "removed":
                    raise _start_failure(ctx, e, name, cid, waiter) from None
                waiter.close()
                raise _start_failure(ctx, e, name, cid) from None
        detached = False
        if sock is not None:
            side = ctx.client.__class__(ctx.host, tls=ctx.tls, version=client.api_version)
            with RawTerminal(tty and stdin), \
                    ResizeOnWinch(lambda h, w: side.resize_container(cid, h, w), enabled=tty), \
                    SignalProxy(lambda sig: side.kill_container(cid, sig), enabled=sig_proxy):
                detached = Session(sock, stdin=stdin, tty=tty, detach_keys=detach_keys).run()
            side.close()
        if detached:
            waiter.close()
            return 0
        try:
            result = client.read_wait(waiter)
        except DockyardError as e:
            raise daemon_failure(ctx, e, name) from None
    finally:
        if sock is not None:
            sock.close()
    error = (result.get("Error") or {}).get("Message") if isinstance(result.get("Error"), dict) else None
    status = int(result.get("StatusCode", 0))
    if error and status in (-1, 0):
        ctx.err.write(f"{PROG}: Error response from daemon: {error}\n")
        return 125
    return status


__all__ = ["attach_and_start", "build_create_body", "create", "run", "split_at_image"]
