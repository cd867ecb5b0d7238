"""version, info, events, system df, system prune."""

from __future__ import annotations

import platform
import time
from typing import Any

from dockyard import __version__
from dockyard.cli.context import CommandFailed, Context
from dockyard.cli.format import bytes_size, human_size, parse_rfc3339, render_object, render_rows, since
from dockyard.cli.timestamps import get_timestamp
from dockyard.client.api import API_VERSION
from dockyard.errors import DockyardError


def _ansic(rfc: str) -> str:
    """RFC 3339 -> Go's time.ANSIC ("Mon Jan _2 15:04:05 2006"), as docker
    version prints Built."""
    try:
        stamp = parse_rfc3339(rfc)
    except ValueError:
        return rfc
    lt = time.localtime(stamp)
    return time.strftime("%a %b ", lt) + f"{lt.tm_mday:>2}" + time.strftime(" %H:%M:%S %Y", lt)


def _client_version(ctx: Context, negotiated: str | None) -> dict[str, Any]:
    return {
        "Platform": {"Name": "Dockyard"},
        "Version": __version__,
        "ApiVersion": negotiated or API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        "BuildTime": "",
        "Context": "default",
    }


def version(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS]", "Show the Dockyard version information")
    p.add_argument("-f", "--format", help="Format output using a custom template ('json' or a Go template)")
    args = p.parse_args(argv)

    server: dict[str, Any] | None = None
    error: DockyardError | None = None
    negotiated = None
    try:
        negotiated = ctx.client.api_version
        server = ctx.client.version()
    except DockyardError as e:
        error = e
    client = _client_version(ctx, negotiated)
    if args.format:
        ctx.write(render_object(args.format, {"Client": client, "Server": server}) + "\n")
    else:
        ctx.write(_version_text(client, server))
    if error is not None:
        from dockyard.cli.main import report_error

        report_error(ctx, error)
        raise CommandFailed(1)
    return 0


def _version_text(client: dict[str, Any], server: dict[str, Any] | None) -> str:
    api = client["ApiVersion"]
    if api != client["DefaultAPIVersion"]:
        api += f" (downgraded from {client['DefaultAPIVersion']})"
    lines = [
        f"Client: {client['Platform']['Name']}",
        f" Version:           {client['Version']}",
        f" API version:       {api}",
        f" Go version:        {client['GoVersion']}",
        f" Git commit:        {client['GitCommit']}",
        f" Built:             {client['BuildTime']}",
        f" OS/Arch:           {client['Os']}/{client['Arch']}",
        f" Context:           {client['Context']}",
    ]
    if server is not None:
        name = (server.get("Platform") or {}).get("Name", "")
        lines += ["", f"Server:{' ' + name if name else ''}"]
        for component in server.get("Components") or []:
            details = component.get("Details") or {}
            lines.append(f" {component['Name']}:")
            if component["Name"] == "Engine":
                lines += [
                    f"  Version:          {component['Version']}",
                    f"  API version:      {details.get('ApiVersion', '')} (minimum version "
                    f"{details.get('MinAPIVersion', '')})",
                    f"  Go version:       {details.get('GoVersion', '')}",
                    f"  Git commit:       {details.get('GitCommit', '')}",
                    f"  Built:            {_ansic(details.get('BuildTime', ''))}",
                    f"  OS/Arch:          {details.get('Os', '')}/{details.get('Arch', '')}",
                    f"  Experimental:     {details.get('Experimental', '')}",
                ]
            else:
                lines.append(f"  Version:          {component.get('Version', '')}")
                for key, value in sorted(details.items()):
                    lines.append(f"  {key + ':':<18}{value}")
    return "\n".join(lines) + "\n"


def info(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS]", "Display system-wide information")
    p.add_argument("-f", "--format", help="Format output using a custom template ('json' or a Go template)")
    args = p.parse_args(argv)
    server: dict[str, Any] | None = None
    error: DockyardError | None = None
    try:
        server = ctx.client.info()
    except DockyardError as e:
        error = e
    if args.format:
        if server is not None:
            ctx.write(render_object(args.format, server) + "\n")
    else:
        ctx.write(f"Client:\n Version:    {__version__}\n Context:    default\n Debug Mode: {str(ctx.debug).lower()}\n")
        if server is not None:
            ctx.write("\n" + _info_text(server))
            for warning in server.get("Warnings") or []:
                ctx.warn(warning)  # docker prints them on stderr
    if error is not None:
        from dockyard.cli.main import report_error

        report_error(ctx, error)
        raise CommandFailed(1)
    return 0


def _info_text(i: dict[str, Any]) -> str:
    out = ["Server:"]
    add = out.append
    add(f" Containers: {i.get('Containers', 0)}")
    add(f"  Running: {i.get('ContainersRunning', 0)}")
    add(f"  Paused: {i.get('ContainersPaused', 0)}")
    add(f"  Stopped: {i.get('ContainersStopped', 0)}")
    add(f" Images: {i.get('Images', 0)}")
    add(f" Server Version: {i.get('ServerVersion', '')}")
    add(f" Storage Driver: {i.get('Driver', '')}")
    for key, value in i.get("DriverStatus") or []:
        add(f"  {key}: {value}")
    add(f" Logging Driver: {i.get('LoggingDriver', '')}")
    add(f" Cgroup Driver: {i.get('CgroupDriver', '')}")
    add(f" Cgroup Version: {i.get('CgroupVersion', '')}")
    plugins = i.get("Plugins") or {}
    add(" Plugins:")
    for kind in ("Volume", "Network", "Log"):
        if plugins.get(kind):
            add(f"  {kind}: {' '.join(plugins[kind])}")
    add(f" Swarm: {(i.get('Swarm') or {}).get('LocalNodeState', 'inactive')}")
    add(f" Runtimes: {' '.join(sorted(i.get('Runtimes') or {}))}")
    add(f" Default Runtime: {i.get('DefaultRuntime', '')}")
    add(f" Init Binary: {i.get('InitBinary', '')}")
    add(f" containerd version: {(i.get('ContainerdCommit') or {}).get('ID', '')}")
    add(f" runc version: {(i.get('RuncCommit') or {}).get('ID', '')}")
    add(f" init version: {(i.get('InitCommit') or {}).get('ID', '')}")
    if i.get("SecurityOptions"):
        add(" Security Options:")
        for option in i["SecurityOptions"]:
            fields = dict(kv.split("=", 1) for kv in option.split(",") if "=" in kv)
            add(f"  {fields.get('name', option)}")
            for key, value in fields.items():
                if key != "name":
                    add(f"   {key.capitalize()}: {value}")
    add(f" Kernel Version: {i.get('KernelVersion', '')}")
    add(f" Operating System: {i.get('OperatingSystem', '')}")
    add(f" OSType: {i.get('OSType', '')}")
    add(f" Architecture: {i.get('Architecture', '')}")
    add(f" CPUs: {i.get('NCPU', 0)}")
    add(f" Total Memory: {bytes_size(i.get('MemTotal', 0))}")
    add(f" Name: {i.get('Name', '')}")
    add(f" ID: {i.get('ID', '')}")
    add(f" Docker Root Dir: {i.get('DockerRootDir', '')}")  # docker's label: scripts grep for it
    add(f" Debug Mode: {str(i.get('Debug', False)).lower()}")
    if i.get("Debug"):
        add(f"  File Descriptors: {i.get('NFd', 0)}")
        add(f"  Goroutines: {i.get('NGoroutines', 0)}")
        add(f"  System Time: {i.get('SystemTime', '')}")
        add(f"  EventsListeners: {i.get('NEventsListener', 0)}")
    if i.get("Labels"):
        add(" Labels:")
        out.extend(f"  {label}" for label in i["Labels"])
    add(f" Experimental: {str(i.get('ExperimentalBuild', False)).lower()}")
    registry = i.get("RegistryConfig") or {}
    if registry.get("InsecureRegistryCIDRs"):
        add(" Insecure Registries:")
        out.extend(f"  {cidr}" for cidr in registry["InsecureRegistryCIDRs"])
    add(f" Live Restore Enabled: {str(i.get('LiveRestoreEnabled', False)).lower()}")
    return "\n".join(out) + "\n\n"


def _event_time(event: dict[str, Any]) -> str:
    nano = event.get("timeNano") or event.get("time", 0) * 1_000_000_000
    sec, frac = divmod(int(nano), 1_000_000_000)
    lt = time.localtime(sec)
    offset = time.strftime("%z", lt)
    offset = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + f".{frac:09d}" + offset


def format_event(event: dict[str, Any]) -> str:
    """docker events' line: time type action id (attr=value, ...)."""
    actor = event.get("Actor") or {}
    line = f"{_event_time(event)} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attributes = actor.get("Attributes") or {}
    if attributes:
        line += " (" + ", ".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + ")"
    return line + "\n"


def events(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS]", "Get real time events from the server")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template ('json' or a Go template)")
    p.add_argument("--since", help="Show all events created since timestamp")
    p.add_argument("--until", help="Stream events until this timestamp")
    args = p.parse_args(argv)
    filters = parse_filter_flags(args.filter)
    now = time.time()
    since_ts = get_timestamp(args.since, now) if args.since else None
    until_ts = get_timestamp(args.until, now) if args.until else None
    for event in ctx.client.events(since=since_ts, until=until_ts, filters=filters):
        if args.format:
            from dockyard.cli.template import EventMessage

            ctx.write(render_object(args.format, EventMessage(event)) + "\n")
        else:
            ctx.write(format_event(event))
        ctx.out.flush()
    return 0


def parse_filter_flags(values: list[str]) -> dict[str, list[str]]:
    """``--filter key=value`` flags as a filters mapping."""
    from dockyard.cli.context import UsageError

    filters: dict[str, list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError("bad format of filter (expected name=value)", status=1)
        filters.setdefault(key.strip().lower(), []).append(value)
    return filters


DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}
DF_DEFAULT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"


def _size4(size: float) -> str:
    """go-units HumanSize (4 significant digits), what docker system df prints."""
    return human_size(size, 4)


def _reclaimable(reclaim: int, total: int) -> str:
    text = _size4(reclaim)
    if total:
        text += f" ({reclaim * 100 // total}%)"
    return text


def df(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS]", "Show Dockyard disk usage")
    p.add_argument("--format", help="Format output using a custom template ('json' or a Go template)")
    p.add_argument("-v", "--verbose", action="store_true", help="Show detailed information on space usage")
    args = p.parse_args(argv)
    usage = ctx.client.df()
    images = usage.get("Images") or []
    containers = usage.get("Containers") or []
    volumes = usage.get("Volumes") or []
    cache = usage.get("BuildCache") or []

    layers_size = usage.get("LayersSize", 0)
    active_images = [im for im in images if im.get("Containers", 0) > 0]
    used = sum(im.get("Size", 0) - max(im.get("SharedSize", 0), 0) for im in active_images)
    image_reclaim = max(layers_size - used, 0)
    container_size = sum(c.get("SizeRw", 0) for c in containers)
    running = [c for c in containers if c.get("State") == "running"]
    container_reclaim = sum(c.get("SizeRw", 0) for c in containers if c.get("State") != "running")
    volume_size = sum((v.get("UsageData") or {}).get("Size", 0) for v in volumes)
    volume_active = [v for v in volumes if (v.get("UsageData") or {}).get("RefCount", 0) > 0]
    volume_reclaim = sum((v.get("UsageData") or {}).get("Size", 0) for v in volumes
                         if (v.get("UsageData") or {}).get("RefCount", 0) == 0)
    cache_size = sum(c.get("Size", 0) for c in cache)
    rows = [
        {"Type": "Images", "TotalCount": str(len(images)), "Active": str(len(active_images)),
         "Size": _size4(layers_size), "Reclaimable": _reclaimable(image_reclaim, layers_size)},
        {"Type": "Containers", "TotalCount": str(len(containers)), "Active": str(len(running)),
         "Size": _size4(container_size), "Reclaimable": _reclaimable(container_reclaim, container_size)},
        {"Type": "Local Volumes", "TotalCount": str(len(volumes)), "Active": str(len(volume_active)),
         "Size": _size4(volume_size), "Reclaimable": _reclaimable(volume_reclaim, volume_size)},
        {"Type": "Build Cache", "TotalCount": str(len(cache)), "Active": "0",
         "Size": _size4(cache_size), "Reclaimable": _size4(cache_size)},
    ]
    if not args.verbose or args.format:
        ctx.write(render_rows(args.format, rows, default=DF_DEFAULT, headers=DF_HEADERS))
        return 0
    ctx.write("Images space usage:\n\n")
    image_rows = []
    for im in images:
        # As docker: one row per image, named by its first tag.
        repo, tag = "<none>", "<none>"
        tags = [t for t in im.get("RepoTags") or [] if t != "<none>:<none>"]
        if tags:
            repo, _, tag = tags[0].rpartition(":")
        image_rows.append({
            "Repository": repo, "Tag": tag, "ID": im["Id"].split(":", 1)[-1][:12],
            "CreatedSince": since(im.get("Created", 0)), "Size": human_size(im.get("Size", 0)),
            "SharedSize": _size4(max(im.get("SharedSize", 0), 0)),
            "UniqueSize": _size4(im.get("Size", 0) - max(im.get("SharedSize", 0), 0)),
            "Containers": str(im.get("Containers", 0)),
        })
    ctx.write(render_rows(None, image_rows,
                          default="table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t"
                                  "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
                          headers={"ID": "IMAGE ID", "CreatedSince": "CREATED", "SharedSize": "SHARED SIZE",
                                   "UniqueSize": "UNIQUE SIZE"}))
    ctx.write("\nContainers space usage:\n\n")
    from dockyard.cli.commands.container import container_row

    # docker's ps row, truncated as ps truncates it (command, ID, image)
    rows = [container_row(c, trunc=True) for c in containers]
    ctx.write(render_rows(None, [
        {"ID": row["ID"], "Image": row["Image"], "Command": row["Command"], "LocalVolumes": row["LocalVolumes"],
         "Size": human_size(c.get("SizeRw", 0)), "CreatedSince": since(c.get("Created", 0)),
         "Status": row["Status"], "Names": row["Names"]} for row, c in zip(rows, containers)],
        default="table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.CreatedSince}}\t"
                "{{.Status}}\t{{.Names}}",
        headers={"ID": "CONTAINER ID", "LocalVolumes": "LOCAL VOLUMES", "CreatedSince": "CREATED"}))
    ctx.write("\nLocal Volumes space usage:\n\n")
    ctx.write(render_rows(None, [], default="table {{.Name}}\t{{.Links}}\t{{.Size}}",
                          headers={"Name": "VOLUME NAME"}))
    ctx.write(f"\nBuild cache usage: {_size4(cache_size)}\n\n")
    ctx.write(render_rows(None, [], default="table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t"
                                              "{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
                          headers={"ID": "CACHE ID", "CacheType": "CACHE TYPE", "CreatedSince": "CREATED",
                                   "LastUsedSince": "LAST USED", "UsageCount": "USAGE"}))
    return 0


def prune(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS]", "Remove unused data")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'label=<key>=<value>')")
    args = p.parse_args(argv)
    # TODO(issue 4): containers, networks, volumes and build cache join here
    # when their services land; today only images can be pruned.
    what = "all images without at least one container associated to them" if args.all else "all dangling images"
    if not args.force:
        ctx.write(f"WARNING! This will remove:\n  - {what}\n\nAre you sure you want to continue? [y/N] ")
        ctx.out.flush()
        import sys

        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    from dockyard.cli.commands.image import print_prune_report

    filters = parse_filter_flags(args.filter)
    if args.all:
        filters["dangling"] = ["false"]
    report = ctx.client.prune_images(filters)
    print_prune_report(ctx, report)
    return 0
