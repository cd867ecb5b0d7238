"""Image commands: images/ls, inspect, rm/rmi, tag, history, import, load,
save, prune, bootstrap."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from dockyard.cli.commands.system import parse_filter_flags
from dockyard.cli.context import CommandFailed, Context, UsageError
from dockyard.cli.format import ellipsis, go_time, human_size, render_rows, rfc3339, short_id, since
from dockyard.cli.progress import display
from dockyard.errors import DockyardError, NotFound

IMAGE_HEADERS = {
    "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
}
IMAGES_DEFAULT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


def split_reference(ref: str) -> tuple[str, str | None, str | None]:
    """``repo[:tag][@digest]`` -> (repo, tag, digest), the tag's colon being
    the one after the last slash (``localhost:5000/a:b``)."""
    name, _, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, _, tag = name.rpartition(":")
        return repo, tag, digest or None
    return name, None, digest or None


def familiar(repo: str) -> str:
    """docker.io/library/busybox -> busybox, as docker displays names."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if repo.startswith(prefix):
            rest = repo[len(prefix):]
            return rest
    return repo


def image_rows(images: list[dict[str, Any]], *, digests: bool, trunc: bool) -> list[dict[str, str]]:
    """One row per (repository, tag[, digest]) as docker images shows them."""
    rows = []
    for image in images:
        repo_tags: dict[str, list[str]] = {}
        for ref in image.get("RepoTags") or []:
            if ref == "<none>:<none>":
                continue
            repo, tag, _ = split_reference(ref)
            repo_tags.setdefault(familiar(repo), []).append(tag or "latest")
        repo_digests: dict[str, list[str]] = {}
        for ref in image.get("RepoDigests") or []:
            if ref == "<none>@<none>":
                continue
            repo, _, digest = split_reference(ref)
            if digest:
                repo_digests.setdefault(familiar(repo), []).append(digest)

        def row(repo: str, tag: str, digest: str) -> dict[str, str]:
            return _image_row(image, repo, tag, digest, trunc=trunc)

        for repo in sorted(repo_tags):
            found = repo_digests.pop(repo, [])
            if not digests:
                found = []  # digests are shown only with --digests
            for tag in repo_tags[repo]:
                if not found:
                    rows.append(row(repo, tag, "<none>"))
                else:
                    rows.extend(row(repo, tag, d) for d in found)
        for repo in sorted(repo_digests):
            if digests:
                rows.extend(row(repo, "<none>", d) for d in repo_digests[repo])
            else:
                rows.append(row(repo, "<none>", "<none>"))
        if not repo_tags and not repo_digests:
            rows.append(row("<none>", "<none>", "<none>"))
    return rows


def _count(value: Any) -> str:
    return "N/A" if value is None or value == -1 else str(value)


def _size(value: Any) -> str:
    return "N/A" if value is None or value == -1 else human_size(value)


def _image_row(image: dict[str, Any], repo: str, tag: str, digest: str, *, trunc: bool) -> dict[str, str]:
    image_id = image.get("Id", "")
    size = image.get("Size", 0)
    shared = image.get("SharedSize", -1)
    return {
        "Containers": _count(image.get("Containers", -1)),
        "CreatedAt": go_time(image.get("Created", 0)),
        "CreatedSince": since(image.get("Created", 0)),
        "Digest": digest,
        "ID": short_id(image_id) if trunc else image_id,
        "Repository": repo,
        "SharedSize": _size(shared),
        "Size": human_size(size),
        "Tag": tag,
        "UniqueSize": "N/A" if shared in (None, -1) else human_size(size - shared),
        "VirtualSize": human_size(image.get("VirtualSize", size), 4),
    }


def ls(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS] [REPOSITORY[:TAG]]", "List images")
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate images)")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template ('table', 'json' or a Go template)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("reference", nargs="*")
    args = p.parse_args(argv)
    p.check_count(args.reference, at_most=1)
    filters = parse_filter_flags(args.filter)
    if args.reference:
        filters.setdefault("reference", []).append(args.reference[0])
    images = ctx.client.images(all=args.all, filters=filters or None, digests=args.digests)
    rows = image_rows(images, digests=args.digests, trunc=not args.no_trunc)
    default = IMAGES_DIGESTS if args.digests else IMAGES_DEFAULT
    ctx.write(render_rows(args.format, rows, default=default, headers=IMAGE_HEADERS, quiet_field="ID",
                          quiet=args.quiet))
    return 0


def inspect(ctx: Context, argv: list[str], name: str) -> int:
    from dockyard.cli.commands.inspect import inspect_each

    p = ctx.parser(name, "[OPTIONS] IMAGE [IMAGE...]", "Display detailed information on one or more images")
    p.add_argument("-f", "--format", help="Format output using a custom template ('json' or a Go template)")
    p.add_argument("images", nargs="*", metavar="IMAGE")
    args = p.parse_args(argv)
    p.check_count(args.images, at_least=1)
    return inspect_each(ctx, args.images, ctx.client.inspect_image, args.format)


def rm(ctx: Context, argv: list[str], name: str) -> int:
    from dockyard.cli.main import report_error

    p = ctx.parser(name, "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    p.add_argument("images", nargs="*", metavar="IMAGE")
    args = p.parse_args(argv)
    p.check_count(args.images, at_least=1)
    failed = False
    for image in args.images:
        try:
            for item in ctx.client.remove_image(image, force=args.force, noprune=args.no_prune):
                if "Untagged" in item:
                    ctx.write(f"Untagged: {item['Untagged']}\n")
                if "Deleted" in item:
                    ctx.write(f"Deleted: {item['Deleted']}\n")
        except DockyardError as e:
            report_error(ctx, e)
            # docker: with -f a missing image is reported, not a failure
            failed = failed or not (args.force and isinstance(e, NotFound))
    if failed:
        raise CommandFailed(1)
    return 0


def tag(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
                   "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("images", nargs="*")
    args = p.parse_args(argv)
    p.check_count(args.images, exactly=2)
    source, target = args.images
    from dockyard.errors import InvalidArgument
    from dockyard.oci.reference import parse_reference

    try:  # docker checks the new name before asking the daemon
        parse_reference(target)
    except InvalidArgument as e:
        raise UsageError(f'Error parsing reference: "{target}" is not a valid repository/tag: {e}', status=1) from None
    repo, tag_name, digest = split_reference(target)
    if digest:
        raise UsageError("refusing to create a tag with a digest reference", status=1)
    ctx.client.tag_image(source, repo, tag_name)
    return 0


HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
HISTORY_DEFAULT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
#: -H=false: the creation time as a date, under CREATED AT
HISTORY_NON_HUMAN = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def history(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS] IMAGE", "Show the history of an image")
    p.add_argument("--format", help="Format output using a custom template ('table', 'json' or a Go template)")
    p.add_argument("-H", "--human", default="true", nargs="?", const="true",
                   help="Print sizes and dates in human readable format (default true)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("image", nargs="*")
    # docker spells it -H=false; argparse sees "-H=false" as -H with "=false".
    argv = [a.replace("-H=", "--human=") if a.startswith("-H=") else a for a in argv]
    args = p.parse_args(argv)
    p.check_count(args.image, exactly=1)
    human = str(args.human).lower() not in ("false", "0")
    rows = []
    for item in ctx.client.image_history(args.image[0]):
        created = item.get("Created", 0)
        created_by = item.get("CreatedBy", "").replace("\t", " ")
        image_id = item.get("Id", "")
        rows.append({
            "ID": image_id if image_id == "<missing>" or args.no_trunc else short_id(image_id),
            "CreatedSince": (since(created) if created > 0 else "N/A") if human else rfc3339(created),
            "CreatedAt": rfc3339(created),
            "CreatedBy": created_by if args.no_trunc else ellipsis(created_by, 45),
            "Size": human_size(item.get("Size", 0)) if human else str(item.get("Size", 0)),
            "Comment": item.get("Comment", ""),
        })
    ctx.write(render_rows(args.format, rows, default=HISTORY_DEFAULT if human else HISTORY_NON_HUMAN,
                          headers=HISTORY_HEADERS, quiet_field="ID",
                          quiet=args.quiet))
    return 0


def _stdin_is_tty() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (ValueError, OSError):
        return False


def import_(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                   "Import the contents from a tarball to create a filesystem image")
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", help="Set commit message for imported image")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("source", nargs="*")
    args = p.parse_args(argv)
    p.check_count(args.source, at_least=1)  # docker ignores a third argument
    source = args.source[0]
    repo, tag_name = None, None
    if len(args.source) == 2:
        from dockyard.errors import InvalidArgument
        from dockyard.oci.reference import parse_reference

        try:  # docker checks the name before sending anything
            parse_reference(args.source[1])
        except InvalidArgument as e:
            raise UsageError(str(e), status=1) from None
        repo, tag_name, digest = split_reference(args.source[1])
        if digest:
            raise UsageError("import does not take a digest reference", status=1)
    if "://" in source:
        # The daemon decides (and refuses) remote sources, as dockerd fetches them.
        response = ctx.client.request("POST", "/images/create", query=[
            ("fromSrc", source), ("repo", repo), ("tag", tag_name), ("message", args.message)]
            + [("changes", c) for c in args.change], stream=True)
        from dockyard.client.api import Client

        messages = Client._json_lines(response)
    elif source == "-":
        messages = ctx.client.import_image(sys.stdin.buffer, repo=repo, tag=tag_name, changes=args.change,
                                           message=args.message, platform=args.platform)
    else:
        try:
            handle = open(source, "rb")
        except OSError as e:
            raise UsageError(f"open {source}: {e.strerror.lower() if e.strerror else e}", status=1) from None
        with handle:
            messages = ctx.client.import_image(handle, repo=repo, tag=tag_name, changes=args.change,
                                               message=args.message, platform=args.platform)
            display(messages, ctx.out, tty=ctx.out_is_tty())
        return 0
    display(messages, ctx.out, tty=ctx.out_is_tty())
    return 0


def load(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS]", "Load an image from a tar archive or STDIN")
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    args = p.parse_args(argv)
    tty = ctx.out_is_tty()
    # As docker: progress only when someone watches it.
    quiet = args.quiet or not tty
    if args.input:
        try:
            handle = open(args.input, "rb")
        except OSError as e:
            raise UsageError(f"open {args.input}: {e.strerror.lower() if e.strerror else e}", status=1) from None
    else:
        if _stdin_is_tty():
            raise UsageError("requested load from stdin, but stdin is empty", status=1)
        handle = sys.stdin.buffer
    try:
        display(ctx.client.load_image(handle, quiet=quiet), ctx.out, tty=tty and not quiet)
    finally:
        if args.input:
            handle.close()
    return 0


def save(ctx: Context, argv: list[str], name: str) -> int:
    from dockyard.cli.progress import SaveProgress

    p = ctx.parser(name, "[OPTIONS] IMAGE [IMAGE...]",
                   "Save one or more images to a tar archive (streamed to STDOUT by default)")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("images", nargs="*", metavar="IMAGE")
    args = p.parse_args(argv)
    p.check_count(args.images, at_least=1)
    write_archive(ctx, lambda: ctx.client.save_images(args.images), args.output,
                  SaveProgress(ctx.err, enabled=bool(args.output) and _is_tty(ctx.err)))
    return 0


def write_archive(ctx: Context, request: Callable[[], Any], output: str | None, progress: Any) -> None:
    """save and export: the archive ``request()`` answers, streamed into the
    file ``output`` (atomically) or to stdout, never to a terminal."""
    if not output and ctx.out_is_tty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect", status=1)
    response = request()
    try:
        if output:
            _save_to_file(response, output, progress)
        else:
            out = ctx.out.buffer if hasattr(ctx.out, "buffer") else sys.stdout.buffer
            for chunk in response.iter_chunks(1 << 20):
                out.write(chunk)
                progress.advance(len(chunk))
            out.flush()
    finally:
        progress.stop()
        response.close()


def _is_tty(stream: Any) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return False


def _save_to_file(response: Any, path: str, progress: Any) -> None:
    """Write the archive next to ``path`` and rename it into place, so a
    failed save never leaves a truncated archive under the wanted name."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            for chunk in response.iter_chunks(1 << 20):
                out.write(chunk)
                progress.advance(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def print_prune_report(ctx: Context, report: dict[str, Any]) -> None:
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        ctx.write("Deleted Images:\n")
        for item in deleted:
            if "Untagged" in item:
                ctx.write(f"untagged: {item['Untagged']}\n")
            if "Deleted" in item:
                ctx.write(f"deleted: {item['Deleted']}\n")
        ctx.write("\n")
    ctx.write(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed', 0))}\n")


def prune(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS]", "Remove unused images")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'until=<timestamp>')")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    args = p.parse_args(argv)
    if not args.force:
        warning = ("WARNING! This will remove all images without at least one container associated to them."
                   if args.all else "WARNING! This will remove all dangling images.")
        ctx.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
        ctx.out.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    filters = parse_filter_flags(args.filter)
    filters["dangling"] = ["false" if args.all else "true"]
    print_prune_report(ctx, ctx.client.prune_images(filters))
    return 0


def bootstrap(ctx: Context, argv: list[str], name: str) -> int:
    p = ctx.parser(name, "[OPTIONS] NAME", "Create a base image from the host (busybox: from busybox-static)")
    p.add_argument("-t", "--tag", help="Name the image (default NAME:latest)")
    p.add_argument("base", nargs="*", metavar="NAME")
    args = p.parse_args(argv)
    p.check_count(args.base, exactly=1)
    messages = ctx.client.stream_json("POST", "/dockyard/images/bootstrap",
                                      query={"name": args.base[0], "tag": args.tag})
    display(messages, ctx.out, tty=ctx.out_is_tty())
    return 0
