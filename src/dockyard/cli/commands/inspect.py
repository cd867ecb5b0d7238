"""inspect: low-level JSON of any object, as docker prints it."""

from __future__ import annotations

import json
from typing import Any, Callable

from dockyard.cli.context import CommandFailed, Context
from dockyard.cli.format import render_object
from dockyard.client import Client
from dockyard.errors import NotFound

#: --type -> how to fetch one object of that type.  Container, network and
#: volume inspectors join as their routes land.
INSPECTORS: dict[str, Callable[[Client, str], Any]] = {
    "container": lambda c, name: c.inspect_container(name),
    "image": lambda c, name: c.inspect_image(name),
}

TYPE_ORDER = ("container", "image", "volume", "network")


def print_objects(ctx: Context, objects: list[Any], fmt: str | None) -> None:
    if fmt:
        for obj in objects:
            ctx.write(render_object(fmt, obj) + "\n")
        return
    # docker re-indents the daemon's JSON with four spaces, key order kept.
    ctx.write(json.dumps(objects, indent=4, ensure_ascii=False) + "\n")


def inspect_each(ctx: Context, names: list[str], fetch: Callable[[str], Any], fmt: str | None) -> int:
    """``docker container inspect`` / ``image inspect``: each object that
    ``fetch`` finds printed, then an error line for each that failed (and
    status 1 if any did)."""
    from dockyard.cli.main import report_error
    from dockyard.errors import DockyardError

    found, failed = [], []
    for name in names:
        try:
            found.append(fetch(name))
        except DockyardError as e:
            failed.append(e)
    print_objects(ctx, found, fmt)
    for error in failed:
        report_error(ctx, error)
    if failed:
        raise CommandFailed(1)
    return 0


def inspect(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on Dockyard objects")
    p.add_argument("-f", "--format", help="Format output using a custom template ('json' or a Go template)")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes if the type is container")
    p.add_argument("--type", help="Only inspect objects of the given type")
    p.add_argument("names", nargs="*", metavar="NAME|ID")
    args = p.parse_args(argv)
    p.check_count(args.names, at_least=1)
    if args.type and args.type not in TYPE_ORDER:
        from dockyard.cli.context import UsageError

        raise UsageError(f'"{args.type}" is not a valid value for --type', status=1)
    types = [args.type] if args.type else [t for t in TYPE_ORDER if t in INSPECTORS]
    from dockyard.cli.main import report_error

    found: list[Any] = []
    errors: list[str | NotFound] = []
    for obj_name in args.names:
        missing: NotFound | None = None
        for kind in types:
            fetch = INSPECTORS.get(kind)
            if fetch is None:
                continue
            if kind == "container" and args.size:
                fetch = lambda c, name: c.inspect_container(name, size=True)  # noqa: E731
            try:
                found.append(fetch(ctx.client, obj_name))
                break
            except NotFound as e:
                missing = e
                continue
        else:
            # docker passes the daemon's answer through when asked for one
            # type, and says "No such object" when it tried them all.
            errors.append(missing if args.type and missing is not None else f"No such object: {obj_name}")
    print_objects(ctx, found, args.format)
    for error in errors:
        if isinstance(error, str):
            ctx.warn(f"Error: {error}")
        else:
            report_error(ctx, error)
    if errors:
        raise CommandFailed(1)
    return 0
