"""Image archives: ``docker save`` tars and OCI image layouts.

Formats read (see the Docker and OCI image-layout specs):

* Docker's classic save format: ``manifest.json`` (a list of ``{"Config":
  path, "RepoTags": [...], "Layers": [paths]}``), the config as
  ``<hex>.json``, each layer as ``<v1 id>/layer.tar`` (a symlink when two
  images share it), plus the legacy ``repositories``, ``<id>/json`` and
  ``<id>/VERSION`` that Docker itself ignores when ``manifest.json`` is
  there.
* Docker 25+'s save format: the same ``manifest.json`` pointing into an OCI
  layout (``blobs/sha256/<hex>``, ``index.json``, ``oci-layout``).
* A plain OCI image layout (a directory or a tar of one): ``index.json``
  whose descriptors name manifests (or nested indexes) by digest; image
  names come from the ``io.containerd.image.name`` annotation, else from
  ``org.opencontainers.image.ref.name`` when that is a full reference.

Format written (:class:`ArchiveWriter`): Docker 25+'s, which Docker (old
and new), skopeo and umoci all read: blobs in ``blobs/sha256``, an OCI
manifest per image, ``index.json`` with one descriptor per tag
(``org.opencontainers.image.ref.name`` = the tag, as Docker writes it),
``manifest.json``, ``repositories`` and ``oci-layout``.  Every entry has
mtime 0 and fixed modes, so the same images always give the same bytes.

Reading an archive never writes a file from it to disk by its archive
path: members go into the content store (by digest) or, for small JSON
files, into memory, so a hostile archive path cannot point anywhere.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from ..errors import InvalidArgument, NotFound
from ..oci import mediatype
from ..oci.digest import Digest
from ..oci.image import Descriptor, Index, Manifest, Platform, canonical_bytes
from ..oci.reference import Reference, parse_reference
from . import tarfmt
from .compression import LayerStream
from .progress import LOADING_BLOB, ProgressEvent, ProgressFn, reporter, short

#: small documents read into memory; anything bigger is refused
MAX_DOCUMENT = 32 << 20

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"

_DOCUMENT_NAMES = frozenset({"manifest.json", "repositories", "index.json", "oci-layout"})


@dataclass(frozen=True)
class LayerRef:
    """A layer as an archive names it: its blob, and the media type when
    the archive says (Docker's classic format does not)."""

    digest: Digest
    media_type: str | None = None


@dataclass(frozen=True)
class ImagePlan:
    """One image found in an archive, before anything is installed."""

    config: Digest
    layers: tuple[LayerRef, ...]
    tags: tuple[Reference, ...] = ()
    manifest: Digest | None = None  # an OCI/Docker manifest kept with the image
    #: Docker's classic "Parent" hint (ignored by Docker for loads; kept
    #: for information)
    parent: Digest | None = None


class BlobSink:
    """Where archive blobs go: the content store, with a lease hook."""

    def __init__(self, content, before_publish: Callable[[Digest], None]) -> None:
        self.content = content
        self.before_publish = before_publish

    def has(self, digest: Digest) -> bool:
        """Protect ``digest`` (lease first, then look), then say whether
        the store holds it already."""
        self.before_publish(digest)
        return self.content.exists(digest)

    def writer(self, ref: str, expected: Digest | None):
        return self.content.open_writer(ref=ref, expected=expected)


def _clean(name: str) -> str:
    """An archive member name as a normalised relative path."""
    path = posixpath.normpath("/" + name).lstrip("/")
    return path if path != "." else ""


def _blob_path_digest(path: str) -> Digest | None:
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        try:
            return Digest(parts[1], parts[2])
        except InvalidArgument:
            return None
    return None


def _is_document(path: str) -> bool:
    base = posixpath.basename(path)
    return path in _DOCUMENT_NAMES or base in ("json", "VERSION") or (
        "/" not in path and base.endswith(".json"))


class ArchiveContents:
    """What pass 1 over a save tar found: small documents in memory,
    everything else ingested into the content store, links recorded."""

    def __init__(self, sink: BlobSink) -> None:
        self.sink = sink
        self.documents: dict[str, bytes] = {}
        self.blobs: dict[str, Digest] = {}
        self.links: dict[str, str] = {}

    def _follow(self, path: str) -> str:
        seen = 0
        while path in self.links:
            path = self.links[path]
            seen += 1
            if seen > 32:
                raise InvalidArgument(f"archive: too many levels of links at {path!r}")
        return path

    def document(self, path: str) -> bytes | None:
        """A small file's bytes (from memory, or from the store if it was
        ingested as a blob), or None when absent."""
        path = self._follow(_clean(path))
        if path in self.documents:
            return self.documents[path]
        if path in self.blobs:
            digest = self.blobs[path]
            if self.sink.content.info(digest).size > MAX_DOCUMENT:
                raise InvalidArgument(f"archive: {path} is too large for a JSON document")
            return self.sink.content.read_bytes(digest)
        return None

    def blob(self, path: str, what: str) -> Digest:
        """The digest of the member at ``path``, ingesting a document held
        in memory if need be."""
        clean = self._follow(_clean(path))
        if clean in self.blobs:
            return self.blobs[clean]
        if clean in self.documents:
            data = self.documents[clean]
            expected = _blob_path_digest(clean)
            with self.sink.writer(f"archive-{posixpath.basename(clean)}", expected) as writer:
                writer.write(data)
                info = writer.commit(len(data), expected, before_publish=self.sink.before_publish)
            self.blobs[clean] = info.digest
            return info.digest
        raise InvalidArgument(f"archive: {what} {path!r} is not in the archive")

    def blob_by_digest(self, digest: Digest, what: str) -> Digest:
        """For OCI layouts: the blob must be in the archive (or already in
        the store)."""
        path = f"blobs/{digest.algorithm}/{digest.encoded}"
        if _clean(path) in self.blobs or path in self.documents or path in self.links:
            return self.blob(path, what)
        if self.sink.has(digest):
            return digest
        raise InvalidArgument(f"archive: {what} {digest} is missing from the archive")


def read_archive(source: BinaryIO, sink: BlobSink, progress: ProgressFn | None = None,
                 on_blob: Callable[[Digest], None] | None = None) -> ArchiveContents:
    """Pass 1 over a save tar (optionally compressed): every member either
    held in memory (small JSON documents) or ingested into the store.
    ``on_blob(digest)`` hears of each stored member as soon as it is in
    the store (to start unpacking layers before the manifest is read)."""
    report = reporter(progress)
    stream = LayerStream(source)
    reader = tarfmt.TarReader(stream, tarfmt.TarLimits(max_entry_size=1 << 42, max_total_size=1 << 44))
    found = ArchiveContents(sink)
    for entry in reader.entries():
        path = _clean(entry.name.decode("utf-8", "surrogateescape"))
        if not path:
            reader.skip_data()
            continue
        if entry.type == tarfmt.SYM:
            target = entry.linkname.decode("utf-8", "surrogateescape")
            base = "" if target.startswith("/") else posixpath.dirname(path)
            found.links[path] = _clean(posixpath.join(base, target))
            continue
        if entry.type == tarfmt.LNK:
            found.links[path] = _clean(entry.linkname.decode("utf-8", "surrogateescape"))
            continue
        if not entry.is_regular:
            reader.skip_data()
            continue
        expected = _blob_path_digest(path)
        if _is_document(path) and expected is None:
            if entry.size > MAX_DOCUMENT:
                raise InvalidArgument(f"archive: {path} ({entry.size} bytes) is too large for a JSON document")
            chunks = []
            while chunk := reader.read_data(1 << 20):
                chunks.append(chunk)
            found.documents[path] = b"".join(chunks)
            continue
        if expected is not None and sink.has(expected):
            reader.skip_data()  # loaded before: the store's copy is verified
            found.blobs[path] = expected
            if on_blob is not None:
                on_blob(expected)
            continue
        label = short(expected) if expected else posixpath.dirname(path)[:12] or path[:12]
        report(ProgressEvent(LOADING_BLOB, label, 0, entry.size))
        with sink.writer(f"archive-{posixpath.basename(path)}", expected) as writer:
            reader.copy_data_to_fd(-1, _writer_write(writer))
            info = writer.commit(entry.size, expected, before_publish=sink.before_publish)
        report(ProgressEvent(LOADING_BLOB, label, entry.size, entry.size))
        found.blobs[path] = info.digest
        if on_blob is not None:
            on_blob(info.digest)
    stream.finish()
    return found


def _writer_write(writer):
    def write(_fd: int, view: memoryview) -> int:
        return writer.write(view)

    return write


# -- plans ---------------------------------------------------------------------


def _json(data: bytes, what: str):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"archive: {what} is not valid JSON: {exc}") from None


def _tag_refs(values, what: str) -> tuple[Reference, ...]:
    if values is None:
        return ()
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidArgument(f"archive: {what} must be a list of strings")
    refs = []
    for value in values:
        ref = parse_reference(value)
        if ref.digest is not None or ref.tag is None:
            raise InvalidArgument(f"archive: {what} entry {value!r} is not a tagged reference")
        refs.append(ref)
    return tuple(refs)


def plans_from_docker_manifest(contents: ArchiveContents, data: bytes) -> list[ImagePlan]:
    """Images listed by Docker's ``manifest.json``."""
    doc = _json(data, "manifest.json")
    if not isinstance(doc, list):
        raise InvalidArgument("archive: manifest.json must be a list")
    plans = []
    for i, item in enumerate(doc):
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str) or not isinstance(
                item.get("Layers"), list):
            raise InvalidArgument(f"archive: manifest.json entry {i} needs Config and Layers")
        config = contents.blob(item["Config"], "config")
        layers = []
        for path in item["Layers"]:
            if not isinstance(path, str):
                raise InvalidArgument(f"archive: manifest.json entry {i}: layer paths must be strings")
            layers.append(LayerRef(contents.blob(path, "layer")))
        parent = item.get("Parent")
        plans.append(ImagePlan(
            config=config, layers=tuple(layers), tags=_tag_refs(item.get("RepoTags"), "RepoTags"),
            parent=Digest.parse(parent) if isinstance(parent, str) and parent else None))
    return plans


def _name_from_annotations(annotations: dict[str, str]) -> Reference | None:
    for key in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME):
        value = annotations.get(key)
        if not value:
            continue
        # A bare tag ("latest") names no repository; only a full reference
        # can become an image name.
        if key == ANNOTATION_REF_NAME and "/" not in value and ":" not in value:
            continue
        try:
            ref = parse_reference(value)
        except InvalidArgument:
            continue
        if ref.digest is None:
            return ref.tagged_or_latest()
    return None


def plans_from_index(read_blob: Callable[[Digest, str], bytes], index_data: bytes,
                     platform: Platform, resolve_layer: Callable[[Digest], Digest],
                     ref_name: str | None = None) -> list[ImagePlan]:
    """Images of an OCI ``index.json``: each descriptor names a manifest,
    or an index from which the manifest for ``platform`` is picked.  With
    ``ref_name``, only descriptors carrying that ref name annotation."""
    index = Index.from_bytes(index_data)
    plans: dict[Digest, ImagePlan] = {}
    order: list[Digest] = []
    for descriptor in index.manifests:
        if ref_name is not None and descriptor.annotations.get(ANNOTATION_REF_NAME) != ref_name:
            continue
        name = _name_from_annotations(descriptor.annotations)
        manifest_desc = _pick_manifest(read_blob, descriptor, platform)
        if manifest_desc is None:
            continue
        key = manifest_desc.digest
        if key not in plans:
            manifest = Manifest.from_bytes(read_blob(manifest_desc.digest, "manifest"))
            if manifest.config.media_type not in mediatype.CONFIGS:
                continue  # an artifact, not an image
            read_blob(manifest.config.digest, "config")  # make sure it is there
            plans[key] = ImagePlan(
                config=manifest.config.digest,
                layers=tuple(LayerRef(resolve_layer(layer.digest), layer.media_type) for layer in manifest.layers),
                manifest=manifest_desc.digest)
            order.append(key)
        if name is not None:
            plan = plans[key]
            if name not in plan.tags:
                plans[key] = ImagePlan(plan.config, plan.layers, plan.tags + (name,), plan.manifest)
    return [plans[k] for k in order]


def _pick_manifest(read_blob, descriptor: Descriptor, platform: Platform, depth: int = 0) -> Descriptor | None:
    if depth > 4:
        raise InvalidArgument("archive: indexes nested too deeply")
    if descriptor.media_type in mediatype.MANIFESTS:
        return descriptor
    if descriptor.media_type not in mediatype.INDEXES:
        return None
    nested = Index.from_bytes(read_blob(descriptor.digest, "index"))
    candidates = [d for d in nested.manifests if d.media_type in mediatype.MANIFESTS | mediatype.INDEXES]
    matching = [d for d in candidates if d.platform is not None and d.platform.os == platform.os
                and d.platform.architecture == platform.architecture
                and (not platform.variant or not d.platform.variant or d.platform.variant == platform.variant)]
    if not matching:
        matching = [d for d in candidates if d.platform is None]
    for candidate in matching:
        picked = _pick_manifest(read_blob, candidate, platform, depth + 1)
        if picked is not None:
            return picked
    return None


def plans_from_contents(contents: ArchiveContents, platform: Platform) -> list[ImagePlan]:
    """The images of a save tar: by ``manifest.json`` when present (as
    Docker does), else by ``index.json``."""
    manifest = contents.document("manifest.json")
    if manifest is not None:
        return plans_from_docker_manifest(contents, manifest)
    index = contents.document("index.json")
    if index is not None:
        def read_blob(digest: Digest, what: str) -> bytes:
            found = contents.blob_by_digest(digest, what)
            return contents.sink.content.read_bytes(found)

        return plans_from_index(read_blob, index, platform,
                                lambda digest: contents.blob_by_digest(digest, "layer"))
    if contents.document("repositories") is not None:
        raise InvalidArgument("archive: this is a pre-1.10 Docker save (no manifest.json); it is not supported")
    raise InvalidArgument("archive: no manifest.json or index.json; not a docker save or OCI layout archive")


class LayoutDir:
    """An OCI image layout on disk, read with blobs verified as they are
    ingested."""

    def __init__(self, path: str | os.PathLike, sink: BlobSink) -> None:
        self.path = Path(path)
        self.sink = sink
        layout = self.path / "oci-layout"
        try:
            doc = _json(layout.read_bytes(), "oci-layout")
        except FileNotFoundError:
            raise InvalidArgument(f"{self.path} is not an OCI image layout (no oci-layout file)") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("imageLayoutVersion"), str):
            raise InvalidArgument(f"{self.path}/oci-layout: imageLayoutVersion is missing")

    def ingest(self, digest: Digest, what: str) -> Digest:
        if self.sink.has(digest):
            return digest
        blob = self.path / "blobs" / digest.algorithm / digest.encoded
        try:
            # A blob is a plain file inside the layout; never follow a link out.
            fd = os.open(blob, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise InvalidArgument(f"{self.path}: {what} blob {digest} is missing") from None
        except OSError as exc:
            raise InvalidArgument(f"{self.path}: {what} blob {digest}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise InvalidArgument(f"{self.path}: {what} blob {digest} is not a regular file")
            with self.sink.writer(f"layout-{digest.encoded[:12]}", digest) as writer:
                while chunk := f.read(1 << 20):
                    writer.write(chunk)
                writer.commit(None, digest, before_publish=self.sink.before_publish)
        return digest

    def read_blob(self, digest: Digest, what: str) -> bytes:
        self.ingest(digest, what)
        if self.sink.content.info(digest).size > MAX_DOCUMENT:
            raise InvalidArgument(f"{self.path}: {what} {digest} is too large")
        return self.sink.content.read_bytes(digest)

    def plans(self, platform: Platform, ref_name: str | None = None) -> list[ImagePlan]:
        try:
            index = (self.path / "index.json").read_bytes()
        except FileNotFoundError:
            raise InvalidArgument(f"{self.path} is not an OCI image layout (no index.json)") from None
        return plans_from_index(self.read_blob, index, platform, lambda d: self.ingest(d, "layer"), ref_name)


# -- writing -------------------------------------------------------------------


@dataclass(frozen=True)
class SaveLayer:
    digest: Digest  # the blob as stored
    size: int
    media_type: str  # OCI media type


@dataclass(frozen=True)
class SaveImage:
    image_id: Digest
    config: bytes
    layers: tuple[SaveLayer, ...]
    tags: tuple[Reference, ...] = ()
    #: the image's original manifest (from a pull or an OCI load), written
    #: as it was so its digest - the RepoDigest - survives the round trip
    manifest: Manifest | None = None


def oci_manifest(image: SaveImage) -> Manifest:
    """The manifest written for an image: its original one when known,
    else a deterministic OCI manifest."""
    if image.manifest is not None:
        return image.manifest
    return Manifest(
        config=Descriptor(mediatype.OCI_CONFIG, image.image_id, len(image.config)),
        layers=tuple(Descriptor(layer.media_type, layer.digest, layer.size) for layer in image.layers),
        media_type=mediatype.OCI_MANIFEST,
    )


def index_descriptors(images: Iterable[SaveImage]) -> list[Descriptor]:
    """One descriptor per tag (Docker's way), or one unnamed per untagged
    image."""
    out = []
    for image in images:
        manifest = oci_manifest(image)
        data = manifest.to_bytes()
        digest = Digest.from_bytes(data)
        media_type = manifest.media_type or mediatype.OCI_MANIFEST
        if not image.tags:
            out.append(Descriptor(media_type, digest, len(data)))
        for tag in image.tags:
            out.append(Descriptor(media_type, digest, len(data), annotations={
                ANNOTATION_IMAGE_NAME: str(tag), ANNOTATION_REF_NAME: tag.tag or "latest"}))
    return out


LAYOUT_BYTES = canonical_bytes({"imageLayoutVersion": "1.0.0"})


class ArchiveWriter:
    """Streams a save tar to ``out`` (a binary file object).  Blob bodies
    go by ``os.sendfile`` when ``out`` is a real file descriptor."""

    def __init__(self, out: BinaryIO, content, progress: ProgressFn | None = None) -> None:
        self.out = out
        self.content = content
        self.report = reporter(progress)
        self.written = 0
        self._dirs: set[str] = set()
        try:
            self._fd = out.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None

    def _emit(self, data: bytes) -> None:
        self.out.write(data)
        self.written += len(data)

    def _header(self, name: str, kind: bytes, size: int = 0, linkname: bytes = b"") -> None:
        mode = 0o755 if kind == tarfmt.DIR else 0o644
        entry = tarfmt.TarEntry(name=name.encode(), type=kind, mode=mode, uid=0, gid=0, size=size, mtime_ns=0,
                                linkname=linkname)
        self._emit(tarfmt.encode_header(entry))

    def directory(self, name: str) -> None:
        if name not in self._dirs:
            self._dirs.add(name)
            self._header(name.rstrip("/") + "/", tarfmt.DIR)

    def file(self, name: str, data: bytes) -> None:
        self._header(name, tarfmt.REG, len(data))
        self._emit(data)
        self._emit(tarfmt.padding(len(data)))

    def blob(self, digest: Digest, what: str = "blob") -> None:
        self.directory("blobs")
        self.directory(f"blobs/{digest.algorithm}")
        info = self.content.info(digest)
        self._header(f"blobs/{digest.algorithm}/{digest.encoded}", tarfmt.REG, info.size)
        self.report(ProgressEvent("Saving", short(digest), 0, info.size))
        with self.content.open(digest) as src:
            self._copy(src, info.size, digest)
        self._emit(tarfmt.padding(info.size))
        self.report(ProgressEvent("Saving", short(digest), info.size, info.size))

    def _copy(self, src: BinaryIO, size: int, digest: Digest) -> None:
        remaining = size
        if self._fd is not None:
            self.out.flush()
            offset = 0
            try:
                while remaining:
                    sent = os.sendfile(self._fd, src.fileno(), offset, min(remaining, 1 << 30))
                    if sent == 0:
                        break
                    offset += sent
                    remaining -= sent
                    self.written += sent
            except OSError:
                # Not a sendfile target after all (or it failed midway):
                # continue where it stopped with plain writes.
                src.seek(offset)
        while remaining:
            chunk = src.read(min(remaining, 1 << 20))
            if not chunk:
                raise NotFound(f"content {digest} shrank while being saved")
            self._emit(chunk)
            remaining -= len(chunk)

    def close(self) -> None:
        self._emit(tarfmt.end_of_archive())
        self.out.flush()


def write_save_archive(out: BinaryIO, images: list[SaveImage], content,
                       progress: ProgressFn | None = None) -> None:
    """Write ``images`` in Docker 25+'s save format (see module docstring)."""
    writer = ArchiveWriter(out, content, progress)
    written: set[Digest] = set()
    manifests = []
    for image in images:
        for layer in image.layers:
            if layer.digest not in written:
                writer.blob(layer.digest, "layer")
                written.add(layer.digest)
        if image.image_id not in written:
            writer.blob(image.image_id, "config")
            written.add(image.image_id)
        manifest_bytes = oci_manifest(image).to_bytes()
        manifest_digest = Digest.from_bytes(manifest_bytes)
        if manifest_digest not in written:
            writer.directory("blobs")
            writer.directory(f"blobs/{manifest_digest.algorithm}")
            writer.file(f"blobs/{manifest_digest.algorithm}/{manifest_digest.encoded}", manifest_bytes)
            written.add(manifest_digest)
        manifests.append({
            "Config": f"blobs/{image.image_id.algorithm}/{image.image_id.encoded}",
            "RepoTags": [tag.familiar for tag in image.tags] or None,
            "Layers": [f"blobs/{layer.digest.algorithm}/{layer.digest.encoded}" for layer in image.layers],
        })
    index = Index(manifests=tuple(index_descriptors(images)), media_type=mediatype.OCI_INDEX)
    writer.file("index.json", index.to_bytes())
    writer.file("manifest.json", json.dumps(manifests, separators=(",", ":")).encode())
    writer.file("oci-layout", LAYOUT_BYTES)
    repositories: dict[str, dict[str, str]] = {}
    for image in images:
        if not image.layers:
            continue
        for tag in image.tags:
            repositories.setdefault(tag.familiar_name, {})[tag.tag or "latest"] = image.layers[-1].digest.encoded
    if repositories:
        writer.file("repositories", json.dumps(repositories, separators=(",", ":"), sort_keys=True).encode())
    writer.close()


def write_oci_layout(path: str | os.PathLike, images: list[SaveImage], content,
                     progress: ProgressFn | None = None) -> None:
    """Write ``images`` into the OCI layout at ``path`` (created if
    missing; an existing layout keeps its other entries, and descriptors
    with a ref name being written are replaced)."""
    import shutil
    import tempfile

    report = reporter(progress)
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    layout = root / "oci-layout"
    if not layout.exists():
        _atomic_write(layout, LAYOUT_BYTES)

    def put(digest: Digest, data: bytes | None = None) -> None:
        directory = root / "blobs" / digest.algorithm
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / digest.encoded
        if target.exists():
            return
        if data is not None:
            _atomic_write(target, data)
            return
        report(ProgressEvent("Saving", short(digest)))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as dst, content.open(digest) as src:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            os.chmod(tmp, 0o644)
            os.rename(tmp, target)
        except BaseException:
            with _suppress_missing():
                os.unlink(tmp)
            raise

    for image in images:
        for layer in image.layers:
            put(layer.digest)
        put(image.image_id, image.config)
        manifest_bytes = oci_manifest(image).to_bytes()
        put(Digest.from_bytes(manifest_bytes), manifest_bytes)
    new = index_descriptors(images)
    existing: list[Descriptor] = []
    index_path = root / "index.json"
    if index_path.exists():
        existing = list(Index.from_bytes(index_path.read_bytes()).manifests)
    new_names = {d.annotations.get(ANNOTATION_REF_NAME) for d in new} - {None}
    new_digests = {d.digest for d in new}
    kept = [d for d in existing if d.annotations.get(ANNOTATION_REF_NAME) not in new_names
            and not (d.digest in new_digests and not d.annotations)]
    index = Index(manifests=tuple(kept + new), media_type=mediatype.OCI_INDEX)
    _atomic_write(index_path, index.to_bytes())


class _suppress_missing:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, FileNotFoundError)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


__all__ = [
    "ArchiveContents", "ArchiveWriter", "BlobSink", "ImagePlan", "LayerRef", "LayoutDir", "SaveImage",
    "SaveLayer", "index_descriptors", "oci_manifest", "plans_from_contents", "plans_from_index", "read_archive",
    "write_oci_layout", "write_save_archive", "ANNOTATION_IMAGE_NAME", "ANNOTATION_REF_NAME",
]
