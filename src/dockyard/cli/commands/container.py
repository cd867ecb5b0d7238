"""Container verbs other than run/create: ps, start, stop, kill, restart,
rm, logs, exec, attach, inspect, top, stats, pause, unpause, rename,
update, wait, cp, diff, commit, export, container prune, system prune.

Output and exit codes as docker prints them: verbs over several
containers print each name as given and report each failure as it comes,
exiting 1 if any failed.
"""

from __future__ import annotations

import json
import os
import sys
import re
import time
from typing import Any, Callable

from dockyard.cli.commands.system import parse_filter_flags
from dockyard.cli.context import PROG, CommandFailed, Context, UsageError
from dockyard.cli.format import bytes_size, go_time, human_duration, human_size, render_rows, since
from dockyard.errors import DockyardError, NotFound


def _for_each(ctx: Context, names: list[str], action: Callable[[str], Any], *, echo: bool = True,
              summary: str | None = None, missing_ok: bool = False) -> int:
    """docker's loop over several containers: each name printed on success,
    each error reported; exit 1 if any failed (``docker start`` then also
    says which, in ``summary``'s words)."""
    from dockyard.cli.main import report_error

    failed: list[str] = []
    for name in names:
        try:
            result = action(name)
        except DockyardError as e:
            report_error(ctx, e)
            if not (missing_ok and isinstance(e, NotFound)):
                failed.append(name)
            continue
        if echo:
            ctx.write(f"{name if result is None else result}\n")
    if failed:
        if summary:
            ctx.warn(f"Error: {summary}: {', '.join(failed)}")
        raise CommandFailed(1)
    return 0


def _ignore(_answer: Any) -> None:
    """For :func:`_for_each`: the action's answer is not what gets printed."""
    return None


# -- ps ----------------------------------------------------------------------------------

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "RunningFor": "CREATED",
              "CreatedAt": "CREATED AT", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES",
              "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "State": "STATE", "LocalVolumes": "LOCAL VOLUMES"}
PS_DEFAULT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def _go_quote(text: str) -> str:
    """Go's strconv.Quote for the printable text docker quotes."""
    return json.dumps(text, ensure_ascii=False).replace("\\u0000", "\\x00")


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_image(summary: dict[str, Any], trunc: bool) -> str:
    image = summary.get("Image") or ""
    if not image:
        return "<no image>"
    if not trunc:
        return image
    image_id = (summary.get("ImageID") or "").split(":", 1)[-1]
    if image_id and image.split(":", 1)[-1].startswith(image_id[:12]) and image.startswith(("sha256:", image_id[:12])):
        return image_id[:12]
    from dockyard.cli.commands.image import familiar

    if "@" in image:
        return familiar(image.split("@", 1)[0])
    return familiar(image)


def container_row(summary: dict[str, Any], *, trunc: bool, now: float | None = None) -> dict[str, str]:
    names = [n.lstrip("/") for n in summary.get("Names") or []]
    if trunc:
        names = [n for n in names if "/" not in n][:1] or names[:1]
    command = summary.get("Command") or ""
    created = summary.get("Created", 0)
    # docker prints 0B when the sizes were not asked for
    size = human_size(summary.get("SizeRw") or 0)
    if summary.get("SizeRootFs"):
        size += f" (virtual {human_size(summary['SizeRootFs'])})"
    labels = summary.get("Labels") or {}
    mounts = [m.get("Name") or m.get("Source", "") for m in summary.get("Mounts") or []]
    networks = sorted(((summary.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    cid = summary.get("Id", "")
    return {
        "ID": cid[:12] if trunc else cid,
        "Image": _short_image(summary, trunc),
        "Command": _go_quote(_ellipsis(command, 20) if trunc else command),
        "CreatedAt": go_time(created),
        "RunningFor": since(created, now),
        "Status": summary.get("Status", ""),
        "State": summary.get("State", ""),
        "Ports": "",
        "Names": ",".join(names),
        "Size": size,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Mounts": ",".join(_ellipsis(m, 15) if trunc else m for m in mounts),
        "Networks": ",".join(networks),
        "LocalVolumes": str(sum(1 for m in summary.get("Mounts") or [] if m.get("Type") == "volume")),
        # docker's row has the image's platform when the daemon reports one
        # (API >= 1.46); at 1.45 it is nil.
        "Platform": summary.get("ImageManifestDescriptor", {}).get("platform") if isinstance(
            summary.get("ImageManifestDescriptor"), dict) else None,
    }


def _with_label_method(row: dict[str, str], summary: dict[str, Any]) -> Any:
    """The row with docker's ``{{.Label "key"}}`` method."""
    from dockyard.cli.template import StrictFields

    labels = summary.get("Labels") or {}
    strict = StrictFields(row)
    strict.methods = {"Label": lambda key: labels.get(key, "")}
    return strict


def ps(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS]", "List containers")
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template ('table', 'json' or a Go template)")
    p.add_argument("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)")
    p.add_argument("-l", "--latest", action="store_true", help="Show the latest created container (includes all "
                                                               "states)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    args = p.parse_args(argv)
    limit = 1 if args.latest else args.last
    fmt = args.format
    # docker asks for sizes when the template reads .Size, which {{json .}} does
    show_size = args.size or bool(fmt and (".Size" in fmt or re.search(r"\bjson\s+\.\s*}}", fmt)))
    containers = ctx.client.containers(all=args.all, limit=limit if limit > 0 else None, size=show_size,
                                       filters=parse_filter_flags(args.filter) or None)
    now = time.time()
    rows = [_with_label_method(container_row(c, trunc=not args.no_trunc, now=now), c) for c in containers]
    default = PS_DEFAULT + ("\t{{.Size}}" if args.size else "")
    ctx.write(render_rows(fmt, rows, default=default, headers=PS_HEADERS, quiet_field="ID", quiet=args.quiet))
    return 0


# -- start / stop / kill / restart / rm / pause / unpause / rename / wait ------------------

def start(ctx: Context, argv: list[str], name: str) -> int:
    from dockyard.cli.commands.run import attach_and_start

    p = ctx.parser(name, "[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers")
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)
    p.check_count(args.containers, at_least=1)
    if args.attach or args.interactive:
        if len(args.containers) > 1:
            raise UsageError("you cannot start and attach multiple containers at once", status=1)
        info = ctx.client.inspect_container(args.containers[0])
        config = info.get("Config") or {}
        tty = bool(config.get("Tty"))
        stdin = args.interactive and bool(config.get("OpenStdin"))
        auto_remove = bool((info.get("HostConfig") or {}).get("AutoRemove"))
        return attach_and_start(ctx, info["Id"], name=name, stdin=stdin, stdout=True, stderr=True, tty=tty,
                                detach_keys=args.detach_keys or None, sig_proxy=not tty,
                                wait_condition="removed" if auto_remove else "next-exit")
    # docker prints the name also when it was already running (304)
    return _for_each(ctx, args.containers, lambda c: _ignore(ctx.client.start_container(c)),
                     summary="failed to start containers")


def _stopping(ctx: Context, argv: list[str], name: str, description: str, verb: Callable[..., Any]) -> int:
    """stop and restart: the same flags, ``verb(ref, timeout=, signal=)``
    on each container."""
    p = ctx.parser(name, "[OPTIONS] CONTAINER [CONTAINER...]", description)
    p.add_argument("-s", "--signal", default=None, help="Signal to send to the container")
    p.add_argument("-t", "--time", "--timeout", dest="time", type=int, default=None,
                   help="Seconds to wait before killing the container")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)
    p.check_count(args.containers, at_least=1)
    return _for_each(ctx, args.containers, lambda c: _ignore(verb(c, timeout=args.time, signal=args.signal)))


def stop(ctx: Context, argv: list[str], name: str) -> int:
    return _stopping(ctx, argv, name, "Stop one or more running containers", ctx.client.stop_container)


def restart(ctx: Context, argv: list[str], name: str) -> int:
    return _stopping(ctx, argv, name, "Restart one or more containers", ctx.client.restart_container)


def kill(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers")
    p.add_argument("-s", "--signal", default=None, help="Signal to send to the container")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)
    p.check_count(args.containers, at_least=1)
    return _for_each(ctx, args.containers, lambda c: ctx.client.kill_container(c, args.signal))


def rm(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers")
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container (uses "
                                                              "SIGKILL)")
    p.add_argument("-l", "--link", action="store_true", help="Remove the specified link")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes associated with the "
                                                                "container")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)
    p.check_count(args.containers, at_least=1)
    names = [c.strip("/") for c in args.containers]
    if any(not c for c in names):
        raise UsageError("Container name cannot be empty", status=1)
    # docker rm -f: a container that is not there is reported, not a failure
    return _for_each(ctx, names, lambda c: ctx.client.remove_container(
        c, force=args.force, volumes=args.volumes, link=args.link), missing_ok=args.force)


def _freezing(ctx: Context, argv: list[str], name: str, description: str, verb: Callable[[str], Any]) -> int:
    """pause and unpause: no flags, ``verb(ref)`` on each container."""
    p = ctx.parser(name, "CONTAINER [CONTAINER...]", description)
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)
    p.check_count(args.containers, at_least=1)
    return _for_each(ctx, args.containers, verb)


def pause(ctx: Context, argv: list[str], name: str) -> int:
    return _freezing(ctx, argv, name, "Pause all processes within one or more containers", ctx.client.pause_container)


def unpause(ctx: Context, argv: list[str], name: str) -> int:
    return _freezing(ctx, argv, name, "Unpause all processes within one or more containers",
                     ctx.client.unpause_container)


def rename(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "CONTAINER NEW_NAME", "Rename a container")
    p.add_argument("names", nargs="*")
    args = p.parse_args(argv)
    p.check_count(args.names, exactly=2)
    old, new = (n.strip() for n in args.names)
    if not old or not new:
        raise UsageError("Error: Neither old nor new names may be empty", status=1)
    try:
        ctx.client.rename_container(old, new)
    except DockyardError as e:
        from dockyard.cli.main import report_error

        report_error(ctx, e)
        ctx.warn(f"Error: failed to rename container named {old}")
        raise CommandFailed(1) from None
    return 0


def port(ctx: Context, argv: list[str], name: str) -> int:
    """``docker port``: the container's published ports, all or one.
    (Dockyard publishes none yet, so this prints nothing or says so, as
    docker does for a container without -p.)"""
    p = ctx.parser(name, "CONTAINER [PRIVATE_PORT[/PROTO]]", "List port mappings or a specific mapping for the "
                                                                "container")
    p.add_argument("args", nargs="*")
    args = p.parse_args(argv)
    p.check_count(args.args, at_least=1, at_most=2)
    container = args.args[0]
    ports = ((ctx.client.inspect_container(container).get("NetworkSettings") or {}).get("Ports") or {})
    if len(args.args) == 1:
        lines = [f"{private} -> {b.get('HostIp', '')}:{b.get('HostPort', '')}"
                 for private, bindings in sorted(ports.items()) for b in bindings or []]
        ctx.write("".join(line + "\n" for line in lines))
        return 0
    wanted = args.args[1]
    number, _, proto = wanted.partition("/")
    if not number.isdigit() or int(number) > 65535:
        ctx.warn(f'Error: invalid port ({number}): strconv.ParseUint: parsing "{number}": invalid syntax')
        raise CommandFailed(1)
    bindings = ports.get(f"{int(number)}/{proto or 'tcp'}") or []
    if not bindings:
        ctx.warn(f"Error: No public port '{wanted}' published for {container}")
        raise CommandFailed(1)
    ctx.write("".join(f"{b.get('HostIp', '')}:{b.get('HostPort', '')}\n" for b in bindings))
    return 0


def wait(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "CONTAINER [CONTAINER...]", "Block until one or more containers stop, then print their "
                                                     "exit codes")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)
    p.check_count(args.containers, at_least=1)
    client = ctx.client

    def one(ref: str) -> str:
        result = client.read_wait(client.wait_container(ref))
        error = result.get("Error")
        if isinstance(error, dict) and error.get("Message"):
            from dockyard.errors import Internal

            raise Internal(error["Message"])
        return str(result.get("StatusCode", 0))

    return _for_each(ctx, args.containers, one)


# -- update ----------------------------------------------------------------------------------

def update(ctx: Context, argv: list[str], name: str) -> int:
    from dockyard.cli.commands.run import _nano_cpus, parse_restart, ram_in_bytes

    p = ctx.parser(name, "[OPTIONS] CONTAINER [CONTAINER...]", "Update configuration of one or more containers")
    a = p.add_argument
    a("--blkio-weight", type=int, default=None, help="Block IO (relative weight), between 10 and 1000")
    a("--cpu-period", type=int, default=None, help="Limit CPU CFS (Completely Fair Scheduler) period")
    a("--cpu-quota", type=int, default=None, help="Limit CPU CFS (Completely Fair Scheduler) quota")
    a("--cpu-rt-period", type=int, default=None, help="Limit the CPU real-time period in microseconds")
    a("--cpu-rt-runtime", type=int, default=None, help="Limit the CPU real-time runtime in microseconds")
    a("-c", "--cpu-shares", type=int, default=None, help="CPU shares (relative weight)")
    a("--cpus", default="", help="Number of CPUs")
    a("--cpuset-cpus", default=None, help="CPUs in which to allow execution (0-3, 0,1)")
    a("--cpuset-mems", default=None, help="MEMs in which to allow execution (0-3, 0,1)")
    a("-m", "--memory", default="", help="Memory limit")
    a("--memory-reservation", default="", help="Memory soft limit")
    a("--memory-swap", default="", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap")
    a("--pids-limit", type=int, default=None, help="Tune container pids limit (set -1 for unlimited)")
    a("--restart", default="", help="Restart policy to apply when a container exits")
    a("containers", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)
    p.check_count(args.containers, at_least=1)
    body: dict[str, Any] = {}
    for key, value in (("BlkioWeight", args.blkio_weight), ("CpuPeriod", args.cpu_period),
                       ("CpuQuota", args.cpu_quota), ("CpuRealtimePeriod", args.cpu_rt_period),
                       ("CpuRealtimeRuntime", args.cpu_rt_runtime), ("CpuShares", args.cpu_shares),
                       ("CpusetCpus", args.cpuset_cpus), ("CpusetMems", args.cpuset_mems),
                       ("PidsLimit", args.pids_limit)):
        if value is not None:
            body[key] = value
    if args.cpus:
        body["NanoCpus"] = _nano_cpus(args.cpus)
    if args.memory:
        body["Memory"] = ram_in_bytes(args.memory, "-m, --memory")
    if args.memory_reservation:
        body["MemoryReservation"] = ram_in_bytes(args.memory_reservation, "--memory-reservation")
    if args.memory_swap:
        body["MemorySwap"] = ram_in_bytes(args.memory_swap, "--memory-swap")
    if args.restart:
        body["RestartPolicy"] = parse_restart(args.restart)
    if not body:
        raise UsageError("you must provide one or more flags when using this command", status=1)

    def one(ref: str) -> None:
        result = ctx.client.update_container(ref, body)
        for warning in result.get("Warnings") or []:
            ctx.warn(warning)

    return _for_each(ctx, args.containers, one)


# -- logs ------------------------------------------------------------------------------------

def _copy_stream(response: Any, out: Any, err: Any) -> None:
    """A logs/attach body to our stdout/stderr: demultiplexed when the
    daemon says it is multiplexed, raw otherwise (a TTY's output)."""
    if "multiplexed" in (response.header("content-type") or ""):
        from dockyard.client.stdcopy import demux

        for stream, data in demux(response.read1):
            target = err if stream == 2 else out
            target.write(data)
            target.flush()
    else:
        for chunk in response.iter_chunks():
            out.write(chunk)
            out.flush()


def logs(ctx: Context, argv: list[str], name: str) -> int:
    from dockyard.cli.timestamps import get_timestamp

    p = ctx.parser(name, "[OPTIONS] CONTAINER", "Fetch the logs of a container")
    p.add_argument("--details", action="store_true", help="Show extra details provided to logs")
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("--since", default="", help="Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or "
                                               "relative (e.g. \"42m\" for 42 minutes)")
    p.add_argument("-n", "--tail", default="all", help="Number of lines to show from the end of the logs")
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--until", default="", help="Show logs before a timestamp or relative")
    p.add_argument("container", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)
    p.check_count(args.container, exactly=1)
    now = time.time()
    response = ctx.client.logs(args.container[0], follow=args.follow,
                               since=get_timestamp(args.since, now) if args.since else None,
                               until=get_timestamp(args.until, now) if args.until else None,
                               timestamps=args.timestamps, tail=args.tail, details=args.details)
    try:
        _copy_stream(response, sys.stdout.buffer, sys.stderr.buffer)
    finally:
        response.close()
    return 0


# -- exec / attach ---------------------------------------------------------------------------

def exec_(ctx: Context, argv: list[str], name: str) -> int:
    from dockyard.cli.commands.run import env_entry, read_kv_file, split_at_image
    from dockyard.cli.commands.streams import (RawTerminal, ResizeOnWinch, Session, stdin_is_tty,
                                               terminal_size)

    p = ctx.parser(name, "[OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running container")
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode: run command in the background")
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("--env-file", action="append", default=[], help="Read in a file of environment variables")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges to the command")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-u", "--user", default="", help="Username or UID (format: \"<name|uid>[:<group|gid>]\")")
    p.add_argument("-w", "--workdir", default="", help="Working directory inside the container")
    options, rest = split_at_image(p, argv)
    args = p.parse_args(options)
    if len(rest) < 2:
        raise UsageError(f"{PROG}: '{PROG} {name}' requires at least 2 arguments\n\n"
                         f"Usage:  {PROG} {name} [OPTIONS] CONTAINER COMMAND [ARG...]\n\n"
                         f"See '{PROG} {name} --help' for more information", status=1)
    container, command = rest[0], rest[1:]
    if args.interactive and args.tty and not args.detach and not stdin_is_tty():
        ctx.err.write("the input device is not a TTY\n")
        return 1
    env = [env_entry(e) for f in args.env_file for e in read_kv_file(f, "env")] + [env_entry(e) for e in args.env]
    config: dict[str, Any] = {
        "User": args.user, "Privileged": args.privileged, "Tty": args.tty,
        "AttachStdin": args.interactive and not args.detach, "AttachStdout": not args.detach,
        "AttachStderr": not args.detach, "Detach": args.detach, "DetachKeys": args.detach_keys,
        "Env": env, "WorkingDir": args.workdir, "Cmd": command,
    }
    size = terminal_size() if args.tty else None
    if size is not None:
        config["ConsoleSize"] = list(size)
    client = ctx.client
    exec_id = client.exec_create(container, config)
    if args.detach:
        client.exec_start(exec_id, detach=True, tty=args.tty)
        return 0
    sock = client.exec_start(exec_id, tty=args.tty, console_size=size)
    try:
        side = client.__class__(ctx.host, tls=ctx.tls, version=client.api_version)
        with RawTerminal(args.tty and args.interactive), \
                ResizeOnWinch(lambda h, w: side.exec_resize(exec_id, h, w), enabled=args.tty):
            Session(sock, stdin=args.interactive, tty=args.tty, detach_keys=args.detach_keys or None).run()
        side.close()
    finally:
        sock.close()
    code = client.exec_inspect(exec_id).get("ExitCode")
    return int(code) if code is not None else 0


def attach(ctx: Context, argv: list[str], name: str) -> int:
    from dockyard.cli.commands.run import attach_and_start

    p = ctx.parser(name, "[OPTIONS] CONTAINER", "Attach local standard input, output, and error streams to a "
                                                "running container")
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--sig-proxy", default="true", nargs="?", const="true",
                   help="Proxy all received signals to the process (default true)")
    p.add_argument("container", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)
    p.check_count(args.container, exactly=1)
    info = ctx.client.inspect_container(args.container[0])
    state = info.get("State") or {}
    if not state.get("Running"):
        raise UsageError("You cannot attach to a stopped container, start it first", status=1)
    if state.get("Paused"):
        raise UsageError("You cannot attach to a paused container, unpause it first", status=1)
    if state.get("Restarting"):
        raise UsageError("You cannot attach to a restarting container, wait until it is running", status=1)
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = bool(config.get("OpenStdin")) and not args.no_stdin
    sig_proxy = str(args.sig_proxy).lower() in ("1", "t", "true")
    return attach_and_start(ctx, info["Id"], name=name, stdin=stdin, stdout=True, stderr=True, tty=tty,
                            detach_keys=args.detach_keys or None, sig_proxy=sig_proxy and not tty,
                            wait_condition="not-running", start=False)


# -- inspect / top / diff ----------------------------------------------------------------------

def inspect(ctx: Context, argv: list[str], name: str) -> int:
    from dockyard.cli.commands.inspect import inspect_each

    p = ctx.parser(name, "[OPTIONS] CONTAINER [CONTAINER...]", "Display detailed information on one or more "
                                                                "containers")
    p.add_argument("-f", "--format", help="Format output using a custom template ('json' or a Go template)")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)
    p.check_count(args.containers, at_least=1)
    return inspect_each(ctx, args.containers, lambda ref: ctx.client.inspect_container(ref, size=args.size),
                        args.format)


def top(ctx: Context, argv: list[str], name: str) -> int:
    from dockyard.cli.format import tabwrite

    p = ctx.parser(name, "CONTAINER [ps OPTIONS]", "Display the running processes of a container")
    p.add_argument("args", nargs="*")
    options = argv[:1]
    args = p.parse_args(options)
    p.check_count(args.args, at_least=1)
    procs = ctx.client.top(argv[0], " ".join(argv[1:]) or None)
    lines = ["\t".join(procs.get("Titles") or [])]
    lines += ["\t".join(row) for row in procs.get("Processes") or []]
    # docker's tabwriter: minwidth 20, padding 3; the last column unpadded
    ctx.write(tabwrite(lines, minwidth=20, padding=3) if lines else "")
    return 0


def diff(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "CONTAINER", "Inspect changes to files or directories on a container's filesystem")
    p.add_argument("container", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)
    p.check_count(args.container, exactly=1)
    kinds = {0: "C", 1: "A", 2: "D"}
    for change in ctx.client.changes(args.container[0]):
        ctx.write(f"{kinds.get(change.get('Kind'), '?')} {change.get('Path', '')}\n")
    return 0


# -- stats -----------------------------------------------------------------------------------

STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
STATS_DEFAULT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t"
                 "{{.BlockIO}}\t{{.PIDs}}")


def stats_row(doc: dict[str, Any], *, ref: str, trunc: bool) -> dict[str, str]:
    """docker stats' numbers, computed as the docker CLI computes them."""
    cpu = doc.get("cpu_stats") or {}
    pre = doc.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get(
        "total_usage", 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    cpu_percent = cpu_delta / system_delta * online * 100.0 if system_delta > 0 and cpu_delta > 0 else 0.0
    memory = doc.get("memory_stats") or {}
    usage = memory.get("usage") or 0
    mstats = memory.get("stats") or {}
    if "total_inactive_file" in mstats and mstats["total_inactive_file"] < usage:
        usage -= mstats["total_inactive_file"]
    elif "inactive_file" in mstats and mstats["inactive_file"] < usage:
        usage -= mstats["inactive_file"]
    limit = memory.get("limit") or 0
    mem_percent = usage / limit * 100.0 if limit else 0.0
    rx = tx = 0
    for net in (doc.get("networks") or {}).values():
        rx += net.get("rx_bytes", 0)
        tx += net.get("tx_bytes", 0)
    read = write = 0
    for entry in (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = (entry.get("op") or "").lower()
        if op == "read":
            read += entry.get("value", 0)
        elif op == "write":
            write += entry.get("value", 0)
    cid = doc.get("id") or ""
    return {
        "Container": ref,
        "ID": cid[:12] if trunc else cid,
        "Name": (doc.get("name") or "").lstrip("/") or "--",
        "CPUPerc": f"{cpu_percent:.2f}%",
        "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}",
        "MemPerc": f"{mem_percent:.2f}%",
        "NetIO": f"{human_size(rx)} / {human_size(tx)}",
        "BlockIO": f"{human_size(read)} / {human_size(write)}",
        "PIDs": str((doc.get("pids_stats") or {}).get("current", 0)),
    }


def stats(ctx: Context, argv: list[str], name: str) -> int:
    import threading

    p = ctx.parser(name, "[OPTIONS] [CONTAINER...]", "Display a live stream of container(s) resource usage "
                                                     "statistics")
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("--format", help="Format output using a custom template ('table', 'json' or a Go template)")
    p.add_argument("--no-stream", action="store_true", help="Disable streaming stats and only pull the first "
                                                            "result")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)
    refs = list(args.containers)
    if not refs:
        refs = [c["Id"] for c in ctx.client.containers(all=args.all)]
    trunc = not args.no_trunc
    if args.no_stream:
        from dockyard.cli.main import report_error

        rows: list[dict[str, str] | None] = [None] * len(refs)
        errors: list[DockyardError | None] = [None] * len(refs)

        def sample(i: int, ref: str) -> None:
            client = ctx.client.__class__(ctx.host, tls=ctx.tls)
            try:
                for doc in client.stats(ref, stream=False):
                    rows[i] = stats_row(doc, ref=ref, trunc=trunc)
            except DockyardError as e:
                errors[i] = e
            finally:
                client.close()

        # One sample takes the daemon a second (it needs two CPU readings):
        # all containers at once.
        threads = [threading.Thread(target=sample, args=(i, ref), daemon=True) for i, ref in enumerate(refs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ctx.write(render_rows(args.format, [r for r in rows if r is not None], default=STATS_DEFAULT,
                              headers=STATS_HEADERS))
        for error in errors:
            if error is not None:
                report_error(ctx, error)
        if any(errors):
            raise CommandFailed(1)
        return 0
    latest: dict[str, dict[str, str]] = {}
    lock = threading.Lock()

    def follow(ref: str) -> None:
        client = ctx.client.__class__(ctx.host, tls=ctx.tls)
        try:
            for doc in client.stats(ref, stream=True):
                with lock:
                    latest[ref] = stats_row(doc, ref=ref, trunc=trunc)
        except DockyardError:
            pass
        finally:
            client.close()

    for ref in refs:
        threading.Thread(target=follow, args=(ref,), daemon=True).start()
    tty = ctx.out_is_tty()
    try:
        while True:
            time.sleep(1.0)
            with lock:
                rows = [latest[r] for r in refs if r in latest]
            text = render_rows(args.format, rows, default=STATS_DEFAULT, headers=STATS_HEADERS)
            ctx.write(("\033[2J\033[H" if tty else "") + text)
            ctx.out.flush()
    except KeyboardInterrupt:
        return 0


# -- cp ----------------------------------------------------------------------------------------

def _split_cp_arg(arg: str) -> tuple[str | None, str]:
    """``container:path`` -> (container, path); a local path -> (None, path).
    As docker: a leading / or . means local even with a colon in it."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    container, _, path = arg.partition(":")
    return container, path


def cp(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tdockyard cp [OPTIONS] SRC_PATH|- "
                         "CONTAINER:DEST_PATH", "Copy files/folders between a container and the local filesystem")
    p.add_argument("-a", "--archive", action="store_true", help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true", help="Always follow symbol link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output during copy")
    p.add_argument("paths", nargs="*")
    args = p.parse_args(argv)
    p.check_count(args.paths, exactly=2)
    src_container, src = _split_cp_arg(args.paths[0])
    dst_container, dst = _split_cp_arg(args.paths[1])
    if src_container and dst_container:
        raise UsageError("copying between containers is not supported", status=1)
    if not src_container and not dst_container:
        raise UsageError("must specify at least one container source", status=1)
    if src_container:
        if not src:
            raise UsageError("Error response from daemon: Path cannot be empty", status=1)
        copied = _copy_from(ctx, src_container, src, dst, follow=args.follow_link, archive=args.archive)
        where = dst
    else:
        if not dst:
            raise UsageError("Error response from daemon: Path cannot be empty", status=1)
        copied = _copy_to(ctx, src, dst_container, dst, follow=args.follow_link, archive=args.archive)
        where = args.paths[1]
    if copied is not None and not args.quiet and dst != "-":
        ctx.err.write(f"Successfully copied {human_size(copied)} to {where}\n")
    return 0


def _copy_from(ctx: Context, container: str, src: str, dst: str, *, follow: bool, archive: bool) -> int | None:
    import tarfile

    client = ctx.client
    if follow:
        stat = client.stat_path(container, src)
        target = stat.get("linkTarget")
        if target and stat.get("mode", 0) & (1 << 27):
            src = target
    response, stat = client.get_archive(container, src)
    try:
        if dst == "-":
            out = sys.stdout.buffer
            for chunk in response.iter_chunks(1 << 20):
                out.write(chunk)
            out.flush()
            return None
        src_is_dir = bool(stat.get("mode", 0) & (1 << 31))
        src_base = stat.get("name") or os.path.basename(src.rstrip("/")) or "/"
        # Where entries land, and what replaces their first component
        # (None: kept; "": dropped, i.e. the directory's contents).
        new_top: str | None
        if os.path.isdir(dst):
            root = dst
            new_top = "" if src_is_dir and src.endswith("/.") else None
        else:
            if dst.endswith("/"):
                raise UsageError(f"destination directory \"{dst}\" does not exist", status=1)
            if os.path.exists(dst) and src_is_dir:
                raise UsageError(f"cannot copy a directory to a file: {dst}", status=1)
            root = os.path.dirname(os.path.abspath(dst))
            if not os.path.isdir(root):
                raise UsageError(f"no such directory \"{root}\"", status=1)
            new_top = os.path.basename(dst)
        reader = _ResponseFile(response)
        copied = 0
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                name = member.name
                first, _, rest = name.partition("/")
                if new_top is not None and first in (src_base, "."):
                    name = "/".join(part for part in (new_top, rest) if part)
                if not name or name == ".":
                    continue
                member.name = name
                _check_member(root, member)
                if not archive:
                    member.uid = member.gid = os.getuid()
                    member.uname = member.gname = ""
                tar.extract(member, root, set_attrs=True, numeric_owner=True)
                copied += member.size
        return copied
    finally:
        response.close()


def _check_member(root: str, member: Any) -> None:
    """A tar entry must land inside ``root`` (no absolute names, no ..,
    no writing through a symlink out of it)."""
    name = member.name
    if name.startswith("/") or ".." in name.split("/"):
        raise UsageError(f"refusing to extract {name!r}: outside the destination", status=1)
    real_root = os.path.realpath(root)
    parent = os.path.realpath(os.path.join(root, os.path.dirname(name)))
    if parent != real_root and not parent.startswith(real_root + os.sep):
        raise UsageError(f"refusing to extract {name!r}: it goes through a link out of the destination", status=1)
    if member.islnk():
        target = os.path.realpath(os.path.join(root, member.linkname))
        if not target.startswith(real_root + os.sep):
            raise UsageError(f"refusing to extract hard link {name!r}: outside the destination", status=1)


class _ResponseFile:
    """A file-like reader over a streamed response (for tarfile's stream mode)."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.buffer = b""

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self.buffer + self.response.read()
        while len(self.buffer) < n:
            data = self.response.read1(max(n - len(self.buffer), 1 << 16))
            if not data:
                break
            self.buffer += data
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out


def _copy_to(ctx: Context, src: str, container: str, dst: str, *, follow: bool, archive: bool) -> int | None:
    import tarfile
    import threading

    client = ctx.client
    if src == "-":
        client.put_archive(container, dst, sys.stdin.buffer, copy_uid_gid=archive)
        return None
    if not os.path.lexists(src):
        raise UsageError(f"stat {src}: no such file or directory", status=1)
    if follow:
        src = os.path.realpath(src)
    src_is_dir = os.path.isdir(src) and not os.path.islink(src)
    try:
        stat = client.stat_path(container, dst)
        dst_exists = True
    except NotFound:
        stat, dst_exists = {}, False
    dst_is_dir = bool(stat.get("mode", 0) & (1 << 31))
    if dst_exists and dst_is_dir:
        target_dir, arcname = dst, os.path.basename(os.path.normpath(src))
        if src.endswith("/."):
            arcname = "."
    elif dst_exists:
        if src_is_dir:
            raise UsageError(f"cannot copy directory to a file: {dst}", status=1)
        target_dir, arcname = os.path.dirname(dst.rstrip("/")) or "/", os.path.basename(dst)
    else:
        if dst.endswith("/"):
            raise UsageError(f"destination directory \"{container}:{dst}\" does not exist", status=1)
        target_dir, arcname = os.path.dirname(dst.rstrip("/")) or "/", os.path.basename(dst.rstrip("/"))
    read_fd, write_fd = os.pipe()
    total = {"bytes": 0, "error": None}

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as pipe, tarfile.open(fileobj=pipe, mode="w|",
                                                                format=tarfile.PAX_FORMAT) as tar:
                def owner(info: Any) -> Any:
                    total["bytes"] += info.size
                    if not archive:
                        info.uid = info.gid = 0
                        info.uname = info.gname = ""
                    return info

                tar.add(src, arcname=arcname, filter=owner)
        except BrokenPipeError:
            pass
        except OSError as e:
            total["error"] = e

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    with os.fdopen(read_fd, "rb") as body:
        client.put_archive(container, target_dir, body, copy_uid_gid=archive)
    producer.join()
    if total["error"] is not None:
        raise UsageError(f"copying {src}: {total['error']}", status=1)
    return int(total["bytes"])


# -- commit / export -------------------------------------------------------------------------

def commit(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Create a new image from a container's "
                                                                    "changes")
    p.add_argument("-a", "--author", default="", help="Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")")
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the "
                                                                        "created image")
    p.add_argument("-m", "--message", default="", help="Commit message")
    p.add_argument("-p", "--pause", default="true", nargs="?", const="true",
                   help="Pause container during commit (default true)")
    p.add_argument("args", nargs="*")
    args = p.parse_args(argv)
    p.check_count(args.args, at_least=1, at_most=2)
    repo = tag = None
    if len(args.args) == 2:
        from dockyard.cli.commands.image import split_reference

        repo, tag, digest = split_reference(args.args[1])
        if digest:
            raise UsageError("refusing to create a tag with a digest reference", status=1)
    pause = str(args.pause).lower() not in ("0", "f", "false")
    result = ctx.client.commit(args.args[0], repo=repo, tag=tag, comment=args.message or None,
                               author=args.author or None, changes=args.change, pause=pause)
    ctx.write(result["Id"] + "\n")
    return 0


def export(ctx: Context, argv: list[str], name: str) -> int:
    from dockyard.cli.commands.image import write_archive
    from dockyard.cli.progress import SaveProgress

    p = ctx.parser(name, "[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("container", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)
    p.check_count(args.container, exactly=1)
    write_archive(ctx, lambda: ctx.client.export_container(args.container[0]), args.output,
                  SaveProgress(ctx.err, enabled=False))
    return 0


# -- prune -----------------------------------------------------------------------------------

def _confirm(ctx: Context, warning: str) -> bool:
    ctx.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    ctx.out.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def prune(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS]", "Remove all stopped containers")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. \"until=<timestamp>\")")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    args = p.parse_args(argv)
    if not args.force and not _confirm(ctx, "WARNING! This will remove all stopped containers."):
        return 0
    report = ctx.client.prune_containers(parse_filter_flags(args.filter) or None)
    _print_container_prune(ctx, report)
    ctx.write(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed', 0))}\n")
    return 0


def _print_container_prune(ctx: Context, report: dict[str, Any]) -> None:
    deleted = report.get("ContainersDeleted") or []
    if deleted:
        ctx.write("Deleted Containers:\n" + "".join(f"{cid}\n" for cid in deleted) + "\n")


def system_prune(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS]", "Remove unused data")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'label=<key>=<value>')")
    p.add_argument("--volumes", action="store_true", help="Prune anonymous volumes")
    args = p.parse_args(argv)
    images = "all images without at least one container associated to them" if args.all else "all dangling images"
    if not args.force and not _confirm(ctx, f"WARNING! This will remove:\n  - all stopped containers\n"
                                            f"  - {images}\n"):
        return 0
    filters = parse_filter_flags(args.filter)
    container_filters = {k: v for k, v in filters.items() if k in ("until", "label", "label!")}
    report = ctx.client.prune_containers(container_filters or None)
    _print_container_prune(ctx, report)
    reclaimed = report.get("SpaceReclaimed", 0)
    image_filters = dict(filters)
    if args.all:
        image_filters["dangling"] = ["false"]
    image_report = ctx.client.prune_images(image_filters)
    deleted = image_report.get("ImagesDeleted") or []
    if deleted:
        ctx.write("Deleted Images:\n")
        for item in deleted:
            if "Untagged" in item:
                ctx.write(f"untagged: {item['Untagged']}\n")
            if "Deleted" in item:
                ctx.write(f"deleted: {item['Deleted']}\n")
        ctx.write("\n")
    reclaimed += image_report.get("SpaceReclaimed", 0)
    ctx.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0


__all__ = ["container_row", "stats_row", "human_duration"]
