"""Image endpoints, over ``dockyard.image.ImageService``.

The service is synchronous (it does file and database I/O), so every call
runs in the default executor; request bodies reach it through
:class:`~dockyard.daemon.streaming.BodyReader` and ``save`` output leaves
through :class:`~dockyard.daemon.streaming.ResponseWriter`, never held in
memory.  Events are published here, after the service succeeded, in
Docker's shape (``image tag``, ``untag``, ``delete``, ``import``, ``load``,
``save``, ``prune``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, Callable, Iterable

from aiohttp import web

from dockyard.daemon.app import RouteTable, api_version, engine_of, in_executor, json_response, query_bool
from dockyard.daemon.engine import Engine
from dockyard.daemon.filters import Filters
from dockyard.daemon.streaming import BodyReader, JSONMessageStream, Reporter, ResponseWriter, in_stream_executor, \
    run_streaming
from dockyard.errors import InvalidArgument, NotFound, Unavailable

LIST_FILTERS = ("before", "dangling", "label", "reference", "since", "until")
PRUNE_FILTERS = ("dangling", "label", "label!", "until")

log = logging.getLogger(__name__)

NO_REGISTRY = ("no registry configured yet: Dockyard cannot pull images (pulling {name}); "
               "get images with `docker load`, `docker import` or `dockyard image bootstrap busybox`")


def service(request: web.Request) -> Any:
    return engine_of(request).images


def progress_adapter(report: Reporter) -> Callable[[Any], None]:
    """dockyard.image ProgressEvent -> jsonmessage progress lines."""

    def on_progress(event: Any) -> None:
        total = event.total if event.total else None
        report.status(event.status, id=event.id or None, current=event.current, total=total)

    return on_progress


# -- naming helpers ------------------------------------------------------------

def _path_match_regex(pattern: str) -> re.Pattern[str]:
    """Go's path.Match as a regex: ``*`` and ``?`` never cross a ``/``."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise InvalidArgument(f"invalid reference filter {pattern!r}: syntax error in pattern")
            body = pattern[i + 1:end]
            if body.startswith("^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z")


def reference_matches(patterns: Iterable[str], familiar_refs: Iterable[str]) -> bool:
    """Docker's ``reference`` filter: the pattern matches the familiar
    reference ("busybox:latest") or its name ("busybox")."""
    regexes = [_path_match_regex(p) for p in patterns]
    for ref in familiar_refs:
        name = ref
        last = ref.rsplit("/", 1)[-1]
        if "@" in ref:
            name = ref.split("@", 1)[0]
        elif ":" in last:
            name = ref[: ref.rfind(":")]
        for rx in regexes:
            if rx.match(ref) or rx.match(name):
                return True
    return False


def _timestamp(value: str, what: str) -> float:
    from dockyard.daemon.routes.system import parse_timestamp

    duration = _go_duration(value)
    if duration is not None:
        return time.time() - duration
    return parse_timestamp(value, name=what) / 1e9


def _go_duration(text: str) -> float | None:
    m = re.fullmatch(r"((?:\d+(?:\.\d*)?(?:ns|us|µs|ms|s|m|h))+)", text.strip())
    if not m:
        return None
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", text))


# -- listing ---------------------------------------------------------------------

def list_images(engine: Engine, filters: Filters, all_images: bool, api: tuple[int, ...]) -> list[dict[str, Any]]:
    svc = engine.images
    images = svc.list_images(all_images=all_images)
    dangling = filters.bool_value("dangling")
    created_bounds: list[tuple[str, int]] = []
    for key in ("before", "since"):
        for ref in filters.get(key):
            created_bounds.append((key, _created_of(svc, ref)))
    until = [_timestamp(v, "until") for v in filters.get("until")]
    out = []
    for image in images:
        tags = image.get("RepoTags") or []
        if dangling is True and tags:
            continue
        if dangling is False and not tags:
            continue
        if "reference" in filters:
            # Docker lists only the names that matched (and skips an image
            # none of whose names did).
            patterns = filters.get("reference")
            tags = [t for t in tags if reference_matches(patterns, [t])]
            digests = [d for d in image.get("RepoDigests") or [] if reference_matches(patterns, [d])]
            if not tags and not digests:
                continue
            image = {**image, "RepoTags": tags, "RepoDigests": digests}
        if not filters.match_labels(image.get("Labels")):
            continue
        created = image.get("Created", 0)
        if any((key == "before" and created >= bound) or (key == "since" and created <= bound)
               for key, bound in created_bounds):
            continue
        if any(created > bound for bound in until):
            continue
        out.append(_versioned_summary(image, api))
    return out


def _created_of(svc: Any, ref: str) -> int:
    """The image's creation time in the whole seconds the list shows: an
    image is neither before nor since itself."""
    from dockyard.image.service import parse_time

    return int(parse_time(svc.inspect(ref).get("Created")))


def _versioned_summary(image: dict[str, Any], api: tuple[int, ...]) -> dict[str, Any]:
    doc = dict(image)
    if api >= (1, 44):
        doc.pop("VirtualSize", None)
    doc.setdefault("RepoTags", [])
    doc.setdefault("RepoDigests", [])
    return doc


def image_count(engine: Engine) -> int:
    return len(engine.images.list_images(all_images=True))


def disk_usage(engine: Engine, api: tuple[int, ...]) -> tuple[list[dict[str, Any]], int]:
    """``/system/df`` Images entries (with SharedSize and Containers) and
    LayersSize (every layer once)."""
    svc = engine.images
    shared, layers_size = shared_sizes(engine)
    containers_per_image: dict[str, int] = {}
    for summary in engine.containers.disk_usage():
        image_id = summary.get("ImageID", "")
        containers_per_image[image_id] = containers_per_image.get(image_id, 0) + 1
    out = []
    for image in svc.list_images(all_images=True):
        doc = _versioned_summary(image, api)
        doc["SharedSize"] = shared.get(image["Id"], 0)
        doc["Containers"] = containers_per_image.get(image["Id"], 0)
        out.append(doc)
    return out, layers_size


def shared_sizes(engine: Engine) -> tuple[dict[str, int], int]:
    """Each image's SharedSize (the size of its layers that other images
    use too) and the size of all layers, each counted once."""
    meta = engine.images.store.metadata
    layer_sizes = {str(layer.chain_id): layer.size for layer in meta.layers()}
    layer_users: dict[str, int] = {}
    records = {str(r.id): r for r in meta.images()}
    for record in records.values():
        for chain in record.layers:
            layer_users[str(chain)] = layer_users.get(str(chain), 0) + 1
    shared = {image_id: sum(layer_sizes.get(str(c), 0) for c in record.layers if layer_users.get(str(c), 0) > 1)
              for image_id, record in records.items()}
    return shared, sum(layer_sizes.values())


async def get_images(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    filters = Filters.parse(request.query.get("filters"), allowed=LIST_FILTERS)
    # Old clients send ?filter=name (API < 1.28): a reference filter.
    if request.query.get("filter"):
        filters = Filters({**filters.values, "reference": frozenset({request.query["filter"]})})
    api = api_version(request)
    want_shared = api >= (1, 42) and query_bool(request, "shared-size")

    def listing() -> list[dict[str, Any]]:
        images = list_images(engine, filters, query_bool(request, "all"), api)
        if want_shared:  # computed only when asked for (API >= 1.42), as dockerd does
            shared, _ = shared_sizes(engine)
            for image in images:
                image["SharedSize"] = shared.get(image["Id"], 0)
        return images

    return json_response(await in_executor(listing))


async def inspect_image(request: web.Request) -> web.StreamResponse:
    doc = await in_executor(service(request).inspect, request.match_info["name"])
    api = api_version(request)
    if api >= (1, 44):
        doc.pop("VirtualSize", None)
    if api >= (1, 45):
        doc.pop("Container", None)
        doc.pop("ContainerConfig", None)
    return json_response(doc)


async def image_history(request: web.Request) -> web.StreamResponse:
    return json_response(await in_executor(service(request).history, request.match_info["name"]))


async def tag_image(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    name = request.match_info["name"]
    repo = request.query.get("repo", "")
    tag = request.query.get("tag", "")
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    target = f"{repo}:{tag}" if tag else repo

    def do_tag() -> tuple[str, str]:
        ref = svc.tag(name, target)
        return str(svc.resolve(name)), ref.familiar

    image_id, familiar = await in_executor(do_tag)
    engine_of(request).events.publish("image", "tag", image_id, {"name": familiar})
    return web.Response(status=201)


def image_users(engine: Engine, image_id: Any) -> list[Any]:
    """Containers using ``image_id`` as dockyard.image's ImageUser values."""
    return list(engine.containers.image_users(image_id))


async def delete_image(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    svc = service(request)
    name = request.match_info["name"]
    force = query_bool(request, "force")
    noprune = query_bool(request, "noprune")

    def remove() -> tuple[str, list[dict[str, str]]]:
        image_id = str(svc.resolve(name))
        records = svc.remove(name, force=force, prune=not noprune,
                             in_use=(lambda digest: image_users(engine, digest)))
        return image_id, records

    image_id, records = await in_executor(remove)
    publish_removal(engine, image_id, records)
    return json_response(records)


def publish_removal(engine: Engine, image_id: str, records: list[dict[str, str]]) -> None:
    for record in records:
        if "Untagged" in record:
            engine.events.publish("image", "untag", image_id, {"name": image_id})
        elif "Deleted" in record and record["Deleted"] == image_id:
            engine.events.publish("image", "delete", image_id, {"name": image_id})


# -- create (import / pull) --------------------------------------------------------

async def create_image(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    query = request.query
    from_image = query.get("fromImage")
    from_src = query.get("fromSrc")
    if from_image:
        name = from_image + (f":{query['tag']}" if query.get("tag") and "@" not in from_image else "")
        raise Unavailable(NO_REGISTRY.format(name=name))
    if not from_src:
        raise InvalidArgument("either fromImage or fromSrc is required")
    if from_src != "-":
        raise InvalidArgument(f"importing from {from_src!r} is not supported: Dockyard does not download; "
                              "fetch the file and import it from standard input (fromSrc=-)")
    svc = engine.images
    _check_platform(query.get("platform"), svc)
    repo = query.get("repo", "")
    tag = query.get("tag", "")
    reference = None
    if repo:
        reference = f"{repo}:{tag}" if tag else repo
    elif tag:
        raise InvalidArgument("a tag needs a repository name")
    changes = query.getall("changes", [])
    message = query.get("message") or None
    loop = asyncio.get_running_loop()
    body = BodyReader(request.content, loop)
    stream = JSONMessageStream(request)

    def work(report: Reporter) -> str:
        image_id = svc.import_image(body, changes=changes, message=message, reference=reference,
                                    source_name="-", progress=progress_adapter(report))
        return str(image_id)

    image_id = await run_streaming(stream, work)
    if reference:
        from dockyard.oci.reference import parse_reference

        # dockerd tags the new image before it announces the import
        engine.events.publish("image", "tag", image_id, {"name": parse_reference(reference).tagged_or_latest().familiar})
    engine.events.publish("image", "import", image_id, {"name": image_id})
    await stream.status(image_id)
    return await stream.finish()


def _check_platform(platform: str | None, svc: Any) -> None:
    if not platform:
        return
    parts = platform.split("/")
    host = svc.platform
    if parts[0] != host.os or (len(parts) > 1 and parts[1] != host.architecture):
        raise InvalidArgument(f"platform {platform!r} is not supported: this daemon makes "
                              f"{host.os}/{host.architecture} images")


# -- load / save -----------------------------------------------------------------

async def load_images(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    svc = engine.images
    quiet = query_bool(request, "quiet")
    body = BodyReader(request.content, asyncio.get_running_loop())
    stream = JSONMessageStream(request)

    def work(report: Reporter) -> Any:
        result = svc.load(body, progress=None if quiet else progress_adapter(report))
        for message in result.messages:
            report.stream(message + "\n")
        return result

    result = await run_streaming(stream, work)
    for loaded in result.images:
        engine.events.publish("image", "load", str(loaded.image_id), {"name": str(loaded.image_id)})
    return await stream.finish()


async def save_images(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    svc = engine.images
    if "name" in request.match_info:
        names = [request.match_info["name"]]
    else:
        names = [n for value in request.query.getall("names", []) for n in value.split(",") if n]
    if not names:
        raise InvalidArgument("no images to save: give at least one name (?names=...)")
    # Resolve first: a missing image is a 404, not a broken tar.
    image_ids = await in_executor(lambda: [str(svc.resolve(n)) for n in names])
    writer = ResponseWriter(request, asyncio.get_running_loop())

    def work() -> None:
        svc.save(names, writer)
        writer.flush()

    try:
        await in_stream_executor(work)
    except ConnectionError:
        # The client went away mid-archive: nobody is left to tell.
        log.info("save of %s: the client went away", ", ".join(names))
        if request.transport is not None:
            request.transport.close()
        return writer.response or web.Response(status=400)
    except Exception:
        if writer.response is None:
            raise
        # The archive is half sent: only cutting the connection tells the
        # client it is incomplete.
        if request.transport is not None:
            request.transport.close()
        raise
    for image_id in dict.fromkeys(image_ids):
        engine.events.publish("image", "save", image_id, {"name": image_id})
    return await writer.finish()


# -- prune -----------------------------------------------------------------------

def prune(engine: Engine, filters: Filters) -> dict[str, Any]:
    svc = engine.images
    meta = svc.store.metadata
    dangling = filters.bool_value("dangling")
    only_dangling = dangling is not False
    until = [_timestamp(v, "until") for v in filters.get("until")]
    in_use = engine.containers.image_ids_in_use()
    deleted: list[dict[str, str]] = []
    reclaimed = 0
    candidates = svc.list_images(all_images=True)
    for image in candidates:
        image_id = image["Id"]
        if image_id in in_use:
            continue
        if only_dangling and image.get("RepoTags"):
            continue
        if not filters.match_labels(image.get("Labels")):
            continue
        labels = image.get("Labels") or {}
        if any((k in labels and (not sep or labels[k] == v)) for k, sep, v in
               (item.partition("=") for item in filters.get("label!"))):
            continue
        if any(image.get("Created", 0) >= bound for bound in until):
            continue
        if not meta.has_image(image_id) or meta.children(image_id):
            continue
        sizes = {str(layer.chain_id): layer.size for layer in meta.layers()}
        try:
            records = svc.remove(image_id, force=True, prune=True,
                                 in_use=lambda digest: image_users(engine, digest))
        except NotFound:
            continue  # removed meanwhile (a parent pruned with its child)
        for record in records:
            deleted.append(record)
            if "Deleted" in record:
                reclaimed += sizes.get(record["Deleted"], 0)
        publish_removal(engine, image_id, records)
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}


async def prune_images(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    filters = Filters.parse(request.query.get("filters"), allowed=PRUNE_FILTERS)
    report = await in_executor(prune, engine, filters)
    engine.events.publish("image", "prune", "", {"reclaimed": str(report["SpaceReclaimed"])})
    return json_response(report)


# -- Dockyard's own: base images without a registry ------------------------------

async def bootstrap(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    svc = engine.images
    base = request.query.get("name", "busybox")
    tag = request.query.get("tag") or None
    stream = JSONMessageStream(request)
    from dockyard.image import bootstrap as bootstrap_mod

    def work(report: Reporter) -> tuple[str, str]:
        progress = progress_adapter(report)
        if base == "busybox":
            made = bootstrap_mod.bootstrap_busybox(svc, reference=tag or "busybox:latest", progress=progress)
            return str(made.image_id), made.reference
        if base == "debian":
            image_id = bootstrap_mod.bootstrap_debian(svc, reference=tag, progress=progress)
            return str(image_id), tag or "debian"
        raise InvalidArgument(f"cannot bootstrap {base!r}: known bases are busybox and debian")

    image_id, reference = await run_streaming(stream, work)
    from dockyard.oci.reference import parse_reference

    familiar = parse_reference(reference).tagged_or_latest().familiar
    engine.events.publish("image", "tag", image_id, {"name": familiar})
    engine.events.publish("image", "import", image_id, {"name": image_id})
    await stream.stream(f"Loaded image: {familiar}\n")
    return await stream.finish()


# The registry side of the API (push, search, distribution inspect, login)
# and build: not there yet.  A clear 503 in pull's words rather than a 404
# "page not found" that reads like a client bug.
NO_REGISTRY_FOR = "no registry configured yet: Dockyard cannot {what}"


async def push_image(request: web.Request) -> web.StreamResponse:
    raise Unavailable(NO_REGISTRY_FOR.format(
        what=f"push images (pushing {request.match_info['name']}); move images with `docker save` and "
             "`docker load`"))


async def search_images(request: web.Request) -> web.StreamResponse:
    raise Unavailable(NO_REGISTRY_FOR.format(what=f"search registries (searching {request.query.get('term', '')})"))


async def distribution_inspect(request: web.Request) -> web.StreamResponse:
    raise Unavailable(NO_REGISTRY_FOR.format(what=f"query registries (inspecting {request.match_info['name']})"))


async def registry_login(request: web.Request) -> web.StreamResponse:
    await request.read()  # a small JSON document
    raise Unavailable(NO_REGISTRY_FOR.format(what="log in to registries"))


async def build_image(request: web.Request) -> web.StreamResponse:
    # The client sends its whole build context before it reads an answer:
    # take it (and drop it) so the refusal reaches the client instead of a
    # broken pipe.
    async for _ in request.content.iter_chunked(1 << 16):
        pass
    raise Unavailable("building images is not supported yet: make images with `docker commit` or `docker import`")


def register(routes: RouteTable, engine: Engine) -> None:
    # Static paths before the {name} patterns they would also match.
    routes.get("/images/json", get_images)
    routes.get("/images/search", search_images)
    routes.post("/auth", registry_login)
    routes.post("/build", build_image)
    routes.get("/images/get", save_images)
    routes.post("/images/create", create_image)
    routes.post("/images/load", load_images)
    routes.post("/images/prune", prune_images)
    routes.post("/dockyard/images/bootstrap", bootstrap)
    routes.get("/images/{name:.+}/json", inspect_image)
    routes.get("/images/{name:.+}/history", image_history)
    routes.get("/images/{name:.+}/get", save_images)
    routes.post("/images/{name:.+}/tag", tag_image)
    routes.post("/images/{name:.+}/push", push_image)
    routes.get("/distribution/{name:.+}/json", distribution_inspect)
    routes.delete("/images/{name:.+}", delete_image)
