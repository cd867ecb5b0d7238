"""ImageService: the image operations the daemon calls, over a Store.

Everything here is a library call that returns plain data; the daemon
turns results into Engine API JSON and progress events into Docker's
progress stream.

Install protocol (load, import, commit, bootstrap), per
:mod:`dockyard.store`: the whole operation runs under a lease and the GC
lock held shared.  Blobs enter the content store through the lease hook;
each layer is unpacked once into an ``extract-*`` snapshot labelled with
the lease, committed under its chain ID, and recorded; the image and its
tags are written last, in one transaction.  If anything fails, the
snapshot being filled is removed on the spot (no partial layer); if the
process dies, its lease dies with it and the store's start-up collection
removes what only the lease held.  A half-loaded image is never visible.

Names: ``name`` arguments accept what Docker accepts - a reference
(``busybox``, ``busybox:1.36``, ``localhost:5000/app@sha256:...``), a
full image ID (``sha256:<hex>`` or ``<hex>``) or a unique ID prefix.
Unknown names raise :class:`~dockyard.errors.NotFound` ("No such image:").
"""

from __future__ import annotations

import calendar
import contextlib
import dataclasses
import fcntl
import os
import platform as host_platform
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Sequence

from ..errors import AlreadyExists, DockyardError, FailedPrecondition, InvalidArgument, NotFound
from ..oci import mediatype
from ..oci.digest import Digest
from ..oci.image import ContainerConfig, History, ImageConfig, Manifest, Platform, RootFS, canonical_bytes, \
    chain_id, chain_ids, format_time, parse_document
from ..oci.reference import Reference, parse_any_reference, parse_reference
from ..store import CONTENT, DIGEST, LEASE_LABEL, SNAPSHOT, TAG, ImageRecord, LayerRecord, RefRecord, Store
from ..store.overlay import OverlaySnapshotter
from . import archive, diff
from .apply import ApplyOptions, WhiteoutMode, apply_layer
from .compression import Compression
from .instructions import apply_changes
from .pipe import ChunkPipe, PipeBroken
from .progress import IMPORTING, LOADING_LAYER, WRITING_LAYER, ProgressEvent, ProgressFn, reporter, short
from .tarfmt import TarLimits
from .unpack import LayerUnpacker

ZERO_TIME = "0001-01-01T00:00:00Z"

_MEDIA_TYPE_FOR = {
    Compression.NONE: mediatype.OCI_LAYER,
    Compression.GZIP: mediatype.OCI_LAYER_GZIP,
    Compression.ZSTD: mediatype.OCI_LAYER_ZSTD,
}

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
         "riscv64": "riscv64", "mips64": "mips64le"}


def host_platform_spec() -> Platform:
    """The platform images are made and picked for on this host."""
    machine = host_platform.machine()
    variant = {"armv7l": "v7", "armv6l": "v6", "aarch64": "v8"}.get(machine)
    return Platform(architecture=_ARCH.get(machine, machine), os="linux",
                    variant=variant if machine.startswith("arm") else None)


@dataclass(frozen=True)
class ImageUser:
    """A container that uses an image (the container layer says which)."""

    container_id: str
    running: bool


#: given an image ID, the containers using it
InUse = Callable[[Digest], Iterable[ImageUser]]


@dataclass(frozen=True)
class LoadedImage:
    image_id: Digest
    tags: tuple[str, ...]  # familiar: "busybox:latest"


@dataclass(frozen=True)
class LoadResult:
    images: tuple[LoadedImage, ...]
    #: Docker's lines: "Loaded image: busybox:latest", "Loaded image ID: sha256:..."
    messages: tuple[str, ...]


def parse_time(text: str | None) -> float:
    """Seconds since the epoch of an RFC 3339 time (Go's format), 0 if unset."""
    if not text:
        return 0.0
    match = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)?", text)
    if not match:
        return 0.0
    year, month, day, hour, minute, sec = (int(match.group(i)) for i in range(1, 7))
    if year < 1970:
        return 0.0
    ts = calendar.timegm((year, month, day, hour, minute, sec, 0, 0, 0)) + float(match.group(7) or 0)
    zone = match.group(8)
    if zone and zone not in "Zz":
        sign = 1 if zone[0] == "+" else -1
        ts -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return ts


def _docker_container_config(config: ContainerConfig) -> dict:
    """The full shape of Docker's container.Config, as inspect shows it."""
    out: dict = {"Hostname": "", "Domainname": "", "User": config.user or "", "AttachStdin": False,
                 "AttachStdout": False, "AttachStderr": False}
    if config.exposed_ports:
        out["ExposedPorts"] = {port: {} for port in config.exposed_ports}
    out.update({"Tty": False, "OpenStdin": False, "StdinOnce": False,
                "Env": list(config.env) if config.env is not None else None,
                "Cmd": list(config.cmd) if config.cmd is not None else None})
    if config.healthcheck is not None:
        out["Healthcheck"] = config.healthcheck.to_json()
    if config.args_escaped:
        out["ArgsEscaped"] = True
    out.update({"Image": "", "Volumes": {v: {} for v in config.volumes} if config.volumes else None,
                "WorkingDir": config.working_dir or "",
                "Entrypoint": list(config.entrypoint) if config.entrypoint is not None else None,
                "OnBuild": list(config.on_build) if config.on_build is not None else None,
                "Labels": dict(config.labels) if config.labels is not None else None})
    if config.stop_signal:
        out["StopSignal"] = config.stop_signal
    if config.shell:
        out["Shell"] = list(config.shell)
    # Fields Docker wrote into the config and we do not model (Hostname,
    # Image, Attach*...) are shown as stored.
    out.update(config.extra)
    return out


class _Tee:
    """A reader that copies what it reads into a content writer."""

    def __init__(self, source: BinaryIO, writer) -> None:
        self._source = source
        self._writer = writer

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n if n and n > 0 else 1 << 20)
        if data:
            self._writer.write(data)
        return data


class _TeeFile:
    """A write-only file for the tar writers that writes into a content
    writer and a pipe."""

    def __init__(self, writer, pipe: ChunkPipe) -> None:
        self._writer = writer
        self._pipe = pipe

    def write(self, data) -> int:
        self._pipe.write(data)
        return self._writer.write(data)

    def flush(self) -> None:
        pass


class ImageService:
    """Image operations over one :class:`~dockyard.store.Store`."""

    def __init__(self, store: Store, platform: Platform | None = None, allow_devices: bool = True,
                 workers: int | None = None, limits: TarLimits | None = None) -> None:
        """``allow_devices``: device nodes in layers (off: such layers are
        refused); ``limits``: bounds for untrusted layer tars; ``workers``:
        threads unpacking layers side by side on overlay (default: one per
        CPU, at least 2; 1 unpacks strictly in order)."""
        self.store = store
        self.platform = platform or host_platform_spec()
        self.allow_devices = allow_devices
        self.limits = limits or TarLimits()
        self.workers = workers if workers is not None else max(2, os.cpu_count() or 2)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def close(self) -> None:
        """Stop the unpacking threads (the store stays open: it is the
        caller's)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # -- names ----------------------------------------------------------------

    def resolve(self, name: str) -> Digest:
        """The image ID ``name`` refers to (see the module docstring)."""
        image_id, _ = self._resolve(name)
        return image_id

    def _resolve(self, name: str) -> tuple[Digest, Reference | None]:
        """The image ID and, when ``name`` was a reference, the normalised
        reference that matched."""
        meta = self.store.metadata
        if not isinstance(name, str) or not name:
            raise InvalidArgument("image name must be a non-empty string")
        try:
            parsed = parse_any_reference(name)
        except InvalidArgument:
            parsed = None
        if isinstance(parsed, Digest):
            if meta.has_image(parsed):
                return parsed, None
            raise NotFound(f"No such image: {name}")
        if parsed is not None:
            ref = parsed if parsed.digest is not None else parsed.tagged_or_latest()
            if ref.digest is not None and ref.tag is not None:
                ref = Reference(ref.domain, ref.path, None, ref.digest)
            record = meta.get_ref(str(ref))
            if record is not None:
                return record.image_id, ref
            if ref.digest is not None:
                # name@digest where the digest is the image ID itself
                if meta.has_image(ref.digest):
                    return ref.digest, None
        if re.fullmatch(r"(sha256:)?[0-9a-f]{1,64}", name):
            found = meta.find_images(name)
            if len(found) == 1:
                return found[0], None
            if len(found) > 1:
                raise InvalidArgument(f"ambiguous image ID prefix {name!r}: {len(found)} images match")
        # Docker names what it looked for: a bare name with its implied tag.
        raise NotFound(f"No such image: {ref.familiar if parsed is not None else name}")

    def exists(self, name: str) -> bool:
        try:
            self.resolve(name)
        except NotFound:
            return False
        return True

    def get_config(self, name: str | Digest) -> ImageConfig:
        image_id = name if isinstance(name, Digest) else self.resolve(name)
        try:
            return ImageConfig.from_bytes(self.store.content.read_bytes(image_id))
        except NotFound:
            raise NotFound(f"image {image_id}: its config blob is missing from the content store") from None

    def tags_of(self, image_id: Digest) -> list[str]:
        return [parse_reference(r.ref).familiar for r in self.store.metadata.refs(image_id, TAG)]

    # -- layers ------------------------------------------------------------------

    @contextlib.contextmanager
    def _operation(self):
        """A lease plus the GC lock held shared, for one install.  If the
        install fails, what only its lease protected (blobs, layers
        unpacked before the failure) is collected at once, so a failed
        load leaves nothing behind."""
        store = self.store
        try:
            with store.leases.lease() as lease, store.gc_lock.shared():
                yield lease
        except BaseException:
            self._collect_soon()
            raise

    def _collect_soon(self) -> None:
        """Collect now if no other operation holds the GC lock, else in a
        background thread once they are done (so a failed request does not
        wait for a long load elsewhere; start-up GC covers a process exit)."""
        store = self.store

        def collect() -> None:
            with contextlib.suppress(DockyardError, OSError):
                store.collect()

        try:
            fd = os.open(store.gc_lock.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            idle = True
        except OSError:
            idle = False
        finally:
            os.close(fd)  # releases the probe lock
        if idle:
            collect()
        else:
            threading.Thread(target=collect, name="dockyard-image-gc", daemon=True).start()

    def _protect(self, lease) -> Callable[[Digest], None]:
        def hook(digest: Digest) -> None:
            self.store.leases.add_resource(lease.id, CONTENT, str(digest))

        return hook

    def _apply_options(self, whiteouts: WhiteoutMode) -> ApplyOptions:
        return ApplyOptions(whiteouts=whiteouts, allow_devices=self.allow_devices, limits=self.limits)

    @contextlib.contextmanager
    def _unpacker(self, lease, progress: ProgressFn):
        """Concurrent unpacking (overlay only: other snapshotters stack by
        copying, so their layers must be applied in order)."""
        if not isinstance(self.store.snapshotter, OverlaySnapshotter) or self.workers < 2:
            yield None
            return
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="dockyard-unpack")
        unpacker = LayerUnpacker(self.store, lease.id, self._apply_options(WhiteoutMode.OVERLAY), progress,
                                 self._pool)
        try:
            yield unpacker
        finally:
            unpacker.close()

    def _snapshot_exists(self, name: str) -> bool:
        try:
            info = self.store.snapshotter.stat(name)
        except NotFound:
            return False
        return info.kind.value == "committed"

    def _layer_target(self, key: str) -> tuple[Path, WhiteoutMode]:
        sn = self.store.snapshotter
        if isinstance(sn, OverlaySnapshotter):
            return sn.upper_dir(key), WhiteoutMode.OVERLAY
        # A copying snapshotter: the new snapshot holds the parent's whole
        # tree, so whiteouts are carried out.
        return sn.fs_dir(key), WhiteoutMode.DELETE

    def _unpack(self, lease, parent: Digest | None, chain: Digest, source_open: Callable[[], BinaryIO],
                expected_diff_id: Digest | None, label: str, progress: ProgressFn):
        """Unpack a layer into a new committed snapshot ``chain``; the
        extract snapshot is removed on any failure.  Returns what apply
        learned (None if another writer committed the chain first)."""
        sn = self.store.snapshotter
        key = f"extract-{secrets.token_hex(8)} {chain}"
        sn.prepare(key, str(parent) if parent is not None else None, labels={LEASE_LABEL: lease.id})
        try:
            target, mode = self._layer_target(key)
            options = self._apply_options(mode)

            def on_bytes(n: int) -> None:
                progress(ProgressEvent(LOADING_LAYER, label, n, None))

            with source_open() as source:
                applied = apply_layer(source, target, options, on_bytes)
            if expected_diff_id is not None and applied.diff_id != str(expected_diff_id):
                raise InvalidArgument(
                    f"layer {label}: its content has diff_id {applied.diff_id} but the image config says "
                    f"{expected_diff_id}")
            try:
                sn.commit(str(chain), key)
            except AlreadyExists:
                sn.remove(key)  # another load unpacked the same layer first
            return applied
        except BaseException:
            with contextlib.suppress(NotFound):
                sn.remove(key)
            raise

    def _ensure_layer(self, lease, parent: Digest | None, diff_id: Digest, blob: Digest, media_type: str | None,
                      progress: ProgressFn, unpacker: LayerUnpacker | None = None) -> LayerRecord:
        """The layer ``diff_id`` over ``parent``, unpacked from ``blob``
        unless the store has it already."""
        store = self.store
        chain = chain_id(parent, diff_id)
        store.leases.add_resource(lease.id, SNAPSHOT, str(chain))
        if store.metadata.has_layer(chain) and self._snapshot_exists(str(chain)):
            existing = store.metadata.get_layer(chain)
            if existing.digest is None:
                existing = store.metadata.put_layer(dataclasses.replace(
                    existing, digest=blob, media_type=media_type, compressed_size=store.content.info(blob).size))
            progress(ProgressEvent(LOADING_LAYER, short(diff_id), 1, 1))
            return existing
        applied = None
        if not self._snapshot_exists(str(chain)):
            if unpacker is not None and unpacker.has(blob):
                loose_key, applied = unpacker.take(blob)
                if applied.diff_id != str(diff_id):
                    with contextlib.suppress(NotFound):
                        store.snapshotter.remove(loose_key)
                    raise InvalidArgument(
                        f"layer {short(blob)}: its content has diff_id {applied.diff_id} but the image config "
                        f"says {diff_id}")
                unpacker.stack(loose_key, parent, chain)
            else:
                applied = self._unpack(lease, parent, chain, lambda: store.content.open(blob), diff_id,
                                       short(diff_id), progress)
        if applied is None:
            # Another writer committed the snapshot; measure from the blob.
            size = self._content_size(blob)
            compressed = store.content.info(blob).size
            compression = None
        else:
            size, compressed, compression = applied.content_size, applied.size, applied.compression
        if media_type is None or media_type not in mediatype.LAYERS:
            media_type = _MEDIA_TYPE_FOR.get(compression, mediatype.OCI_LAYER) if compression else mediatype.OCI_LAYER
        return store.metadata.put_layer(LayerRecord(
            chain_id=chain, diff_id=diff_id, parent=parent, size=size, digest=blob, media_type=media_type,
            compressed_size=compressed))

    def _content_size(self, blob: Digest) -> int:
        from . import tarfmt
        from .compression import LayerStream

        with self.store.content.open(blob) as f:
            reader = tarfmt.TarReader(LayerStream(f))
            total = 0
            for entry in reader.entries():
                if entry.is_regular:
                    total += entry.size
                elif entry.type == tarfmt.SYM:
                    total += len(entry.linkname)
                reader.skip_data()
            return total

    def _install(self, lease, config_digest: Digest, layers: Sequence[tuple[Digest, str | None]],
                 progress: ProgressFn, unpacker: LayerUnpacker | None = None) -> ImageRecord:
        """Unpack an image's layers; returns the (not yet stored) record."""
        config = ImageConfig.from_bytes(self.store.content.read_bytes(config_digest))
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(layers):
            raise InvalidArgument(
                f"image {config_digest}: the config lists {len(diff_ids)} layers but the manifest has {len(layers)}")
        if config.os and config.os != self.platform.os:
            raise InvalidArgument(f"image {config_digest} is for {config.os}, not {self.platform.os}")
        if unpacker is not None:
            # Start every missing layer at once; they stack in order below.
            for chain, (blob, _) in zip(chain_ids(diff_ids), layers):
                if not self._snapshot_exists(str(chain)):
                    unpacker.submit(blob)
        parent: Digest | None = None
        chains = []
        size = 0
        for diff_id, (blob, media_type) in zip(diff_ids, layers):
            record = self._ensure_layer(lease, parent, diff_id, blob, media_type, progress, unpacker)
            parent = record.chain_id
            chains.append(record.chain_id)
            size += record.size
        return ImageRecord(id=config_digest, layers=tuple(chains), size=size)

    def _store_image(self, record: ImageRecord, tags: Iterable[Reference]) -> list[str]:
        """Write the image row and its tags in one transaction; returns
        Docker's messages about tags taken from other images."""
        meta = self.store.metadata
        messages = []
        with meta.transaction():
            meta.put_image(record)
            for tag in tags:
                previous = meta.set_ref(str(tag), record.id, TAG)
                if previous is not None:
                    messages.append(f"The image {tag.familiar} already exists, renaming the old one with ID "
                                    f"{previous} to empty string")
        return messages

    # -- load / save -------------------------------------------------------------

    def load(self, source: BinaryIO, progress: ProgressFn | None = None) -> LoadResult:
        """Load a ``docker save`` archive (classic or OCI-layout form, maybe
        compressed) or a tar of an OCI layout."""
        report = reporter(progress)
        with self._operation() as lease, self._unpacker(lease, report) as unpacker:
            if unpacker is not None:
                report = unpacker.report
            sink = archive.BlobSink(self.store.content, self._protect(lease))
            contents = archive.read_archive(source, sink, report,
                                            unpacker.submit_if_layer if unpacker is not None else None)
            plans = archive.plans_from_contents(contents, self.platform)
            return self._install_plans(lease, plans, report, unpacker)

    def load_oci_layout(self, path: str | os.PathLike, name: str | None = None, ref_name: str | None = None,
                        progress: ProgressFn | None = None) -> LoadResult:
        """Load the images of an OCI layout directory.  ``ref_name`` picks
        the descriptors whose ``org.opencontainers.image.ref.name`` it is
        (as in ``oci:dir:ref``); ``name`` tags the image when exactly one
        is picked (like ``skopeo copy oci:dir:ref docker-daemon:name``)."""
        report = reporter(progress)
        with self._operation() as lease, self._unpacker(lease, report) as unpacker:
            if unpacker is not None:
                report = unpacker.report
            sink = archive.BlobSink(self.store.content, self._protect(lease))
            plans = archive.LayoutDir(path, sink).plans(self.platform, ref_name)
            if ref_name is not None and not plans:
                raise NotFound(f"{path}: no image with ref name {ref_name!r}")
            if name is not None:
                if len(plans) != 1:
                    raise InvalidArgument(f"{path} holds {len(plans)} images; a name can tag only one")
                ref = parse_reference(name)
                if ref.digest is not None:
                    raise InvalidArgument(f"cannot tag an image with a digest reference: {name}")
                plans = [dataclasses.replace(plans[0], tags=(ref.tagged_or_latest(),))]
            return self._install_plans(lease, plans, report, unpacker)

    def _install_plans(self, lease, plans: list[archive.ImagePlan], report: ProgressFn,
                       unpacker: LayerUnpacker | None = None) -> LoadResult:
        if not plans:
            raise InvalidArgument("archive holds no images")
        records = []
        for plan in plans:
            record = self._install(lease, plan.config, [(layer.digest, layer.media_type) for layer in plan.layers],
                                   report, unpacker)
            if plan.manifest is not None:
                record = dataclasses.replace(record, content=(plan.manifest,))
            records.append((record, plan))
        # Everything is unpacked: now the images become visible, at once.
        messages: list[str] = []
        loaded = []
        meta = self.store.metadata
        with meta.transaction():
            for record, plan in records:
                messages.extend(self._store_image(record, plan.tags))
                tags = tuple(tag.familiar for tag in plan.tags)
                loaded.append(LoadedImage(record.id, tags))
        for item in loaded:
            if item.tags:
                messages.extend(f"Loaded image: {tag}" for tag in item.tags)
            else:
                messages.append(f"Loaded image ID: {item.image_id}")
        return LoadResult(tuple(loaded), tuple(messages))

    def _save_images(self, names: Sequence[str]) -> list[archive.SaveImage]:
        """What ``docker save names...`` writes: a reference with a tag saves
        that tag; a bare repository name every tag of it; an ID no tag."""
        meta = self.store.metadata
        chosen: dict[Digest, list[Reference]] = {}
        order: list[Digest] = []
        for name in names:
            refs: list[Reference] = []
            image_ids: list[Digest] = []
            try:
                parsed = parse_any_reference(name)
            except InvalidArgument:
                parsed = None
            if isinstance(parsed, Reference) and parsed.tag is None and parsed.digest is None:
                repo_refs = [r for r in meta.refs(kind=TAG) if parse_reference(r.ref).name == parsed.name]
                for r in repo_refs:
                    image_ids.append(r.image_id)
                    refs.append(parse_reference(r.ref))
            if not image_ids:
                image_id, ref = self._resolve(name)
                image_ids.append(image_id)
                refs.append(ref if ref is not None and ref.tag is not None else None)
            for image_id, ref in zip(image_ids, refs):
                if image_id not in chosen:
                    chosen[image_id] = []
                    order.append(image_id)
                if ref is not None and ref not in chosen[image_id]:
                    chosen[image_id].append(ref)
        images = []
        for image_id in order:
            record = meta.get_image(image_id)
            layers = []
            for chain in record.layers:
                layer = meta.get_layer(chain)
                if layer.digest is None or not self.store.content.exists(layer.digest):
                    raise FailedPrecondition(
                        f"image {image_id}: the blob of layer {layer.diff_id} is not in the content store")
                media = layer.media_type or mediatype.OCI_LAYER
                media = mediatype.DOCKER_TO_OCI.get(media, media)
                layers.append(archive.SaveLayer(layer.digest, self.store.content.info(layer.digest).size, media))
            images.append(archive.SaveImage(image_id, self.store.content.read_bytes(image_id), tuple(layers),
                                            tuple(chosen[image_id]), self._original_manifest(record, layers)))
        return images

    def _original_manifest(self, record: ImageRecord, layers: list[archive.SaveLayer]) -> Manifest | None:
        """A manifest kept with the image that describes exactly its config
        and stored layer blobs, if there is one."""
        for digest in record.content:
            try:
                document = parse_document(self.store.content.read_bytes(digest))
            except (InvalidArgument, NotFound):
                continue
            if (isinstance(document, Manifest) and document.config.digest == record.id
                    and [d.digest for d in document.layers] == [layer.digest for layer in layers]):
                return document
        return None

    def save(self, names: Sequence[str], out: BinaryIO, progress: ProgressFn | None = None) -> None:
        """Write ``names`` as a ``docker save`` archive to ``out``."""
        if not names:
            raise InvalidArgument("save needs at least one image name")
        with self.store.gc_lock.shared():
            images = self._save_images(names)
            archive.write_save_archive(out, images, self.store.content, progress)

    def save_oci_layout(self, names: Sequence[str], path: str | os.PathLike,
                        progress: ProgressFn | None = None) -> None:
        """Write ``names`` into the OCI image layout directory ``path``."""
        if not names:
            raise InvalidArgument("save needs at least one image name")
        with self.store.gc_lock.shared():
            images = self._save_images(names)
            archive.write_oci_layout(path, images, self.store.content, progress)

    # -- import / commit -----------------------------------------------------------

    def _new_config(self, base: ImageConfig | None, config: ContainerConfig, diff_id: Digest, history: History,
                    author: str | None = None, extra: dict | None = None) -> ImageConfig:
        created = history.created
        if base is None:
            return ImageConfig(
                architecture=self.platform.architecture, os=self.platform.os, variant=self.platform.variant,
                config=config, rootfs=RootFS(diff_ids=(diff_id,)), history=(history,), created=created,
                author=author or None, extra=dict(extra or {}))
        keep = {k: v for k, v in base.extra.items()
                if k not in ("container", "container_config", "docker_version", "comment", "id", "parent")}
        keep.update(extra or {})
        return ImageConfig(
            architecture=base.architecture or self.platform.architecture, os=base.os or self.platform.os,
            variant=base.variant, os_version=base.os_version, os_features=base.os_features, config=config,
            rootfs=RootFS(diff_ids=base.rootfs.diff_ids + (diff_id,)), history=base.history + (history,),
            created=created, author=author or None, extra=keep)

    def _finish(self, lease, config: ImageConfig, layers: Sequence[Digest], size: int, parent: Digest | None,
                reference: str | None) -> Digest:
        config_bytes = canonical_bytes(config.to_json())
        info = self.store.content.ingest(config_bytes, before_publish=self._protect(lease))
        tags = []
        if reference:
            ref = parse_reference(reference)
            if ref.digest is not None:
                raise InvalidArgument(f"refusing to tag with a digest reference: {reference}")
            tags.append(ref.tagged_or_latest())
        record = ImageRecord(id=info.digest, layers=tuple(layers), size=size, parent=parent)
        self._store_image(record, tags)
        return info.digest

    def import_image(self, source: BinaryIO, *, changes: Sequence[str] = (), message: str | None = None,
                     reference: str | None = None, source_name: str = "-",
                     progress: ProgressFn | None = None) -> Digest:
        """``docker import``: a root filesystem tar (plain or compressed)
        as a one-layer image, with Dockerfile-style ``changes``.  The tar
        is stored as it came and unpacked in the same pass."""
        report = reporter(progress)
        config = apply_changes(ContainerConfig(), changes)  # validate before reading anything
        if reference:
            parse_reference(reference)
        store = self.store
        comment = message or f"Imported from {source_name}"
        with self._operation() as lease:
            # A base layer's chain ID is its diff_id, known only once read:
            # unpack under a provisional key, then commit under the chain.
            sn = store.snapshotter
            key = f"extract-{secrets.token_hex(8)} import"
            sn.prepare(key, None, labels={LEASE_LABEL: lease.id})
            try:
                target, mode = self._layer_target(key)
                options = self._apply_options(mode)
                with store.content.open_writer(ref="import") as writer:
                    applied = apply_layer(_Tee(source, writer), target, options,
                                          lambda n: report(ProgressEvent(IMPORTING, "", n, None)))
                    blob = writer.commit(before_publish=self._protect(lease))
            except BaseException:
                with contextlib.suppress(NotFound):
                    sn.remove(key)
                raise
            diff_id = Digest.parse(applied.diff_id)
            self._commit_extract(lease, key, diff_id)
            media = _MEDIA_TYPE_FOR.get(applied.compression, mediatype.OCI_LAYER)
            layer = store.metadata.put_layer(LayerRecord(
                chain_id=diff_id, diff_id=diff_id, parent=None, size=applied.content_size, digest=blob.digest,
                media_type=media, compressed_size=blob.size))
            history = History(created=format_time(), comment=comment)
            image_config = self._new_config(None, config, diff_id, history, extra={"comment": comment})
            return self._finish(lease, image_config, [layer.chain_id], layer.size, None, reference)

    def _commit_extract(self, lease, key: str, chain: Digest) -> None:
        sn = self.store.snapshotter
        self.store.leases.add_resource(lease.id, SNAPSHOT, str(chain))
        try:
            if self._snapshot_exists(str(chain)):
                sn.remove(key)  # the same layer is there already
                return
            try:
                sn.commit(str(chain), key)
            except AlreadyExists:
                sn.remove(key)
        except BaseException:
            with contextlib.suppress(NotFound):
                sn.remove(key)
            raise

    def _container_dirs(self, snapshot_key: str) -> tuple[Path, list[Path], bool]:
        """(own dir, lower dirs top first, is_overlay) of an active snapshot."""
        sn = self.store.snapshotter
        info = sn.stat(snapshot_key)
        if info.kind.value != "active":
            raise FailedPrecondition(f"snapshot {snapshot_key} is {info.kind.value}, not a container's active snapshot")
        if isinstance(sn, OverlaySnapshotter):
            return sn.upper_dir(snapshot_key), sn.lower_dirs(snapshot_key), True
        return sn.fs_dir(snapshot_key), sn.lower_dirs(snapshot_key), False

    def commit(self, snapshot_key: str, *, base_image: str | Digest | None = None,
               config: ContainerConfig | None = None, changes: Sequence[str] = (), author: str = "",
               comment: str = "", created_by: str = "", container_id: str = "", reference: str | None = None,
               progress: ProgressFn | None = None) -> Digest:
        """``docker commit``: the container's writable layer (active
        snapshot ``snapshot_key``) becomes a new layer over ``base_image``;
        the new config is ``config`` (the container's, or the base image's)
        with ``changes`` applied.  Pausing the container is the caller's."""
        report = reporter(progress)
        store = self.store
        base_id = None
        base = None
        if base_image is not None:
            base_id = base_image if isinstance(base_image, Digest) else self.resolve(base_image)
            base = self.get_config(base_id)
        container_config = config if config is not None else (base.config if base else ContainerConfig())
        new_config = apply_changes(container_config, changes)
        if reference:
            parse_reference(reference)
        own, lowers, overlay = self._container_dirs(snapshot_key)
        parent_name = store.snapshotter.stat(snapshot_key).parent
        parent_chain = Digest.parse(parent_name) if parent_name else None
        if base is not None:
            expected = chain_ids(base.rootfs.diff_ids)
            if expected and parent_chain != expected[-1]:
                raise FailedPrecondition(
                    f"snapshot {snapshot_key} is not based on image {base_id} (parent {parent_name})")
        # The runtime's mount points are the container's, not the image's.
        stubs = diff.mount_point_stubs(own, lowers)
        with self._operation() as lease:
            report(ProgressEvent(WRITING_LAYER, short(container_id) if container_id else ""))
            if overlay:
                def write(out: BinaryIO) -> diff.WrittenLayer:
                    return diff.write_layer(own, out, lowers, hashed=False, skip=stubs)
            elif lowers:
                def write(out: BinaryIO) -> diff.WrittenLayer:
                    return diff.write_dir_diff(lowers[0], own, out, hashed=False, skip=stubs)
            else:
                def write(out: BinaryIO) -> diff.WrittenLayer:
                    return diff.write_merged([own], out, hashed=False, skip=stubs)
            layer = self._commit_layer(lease, parent_chain, write)
            diff_id = layer.diff_id
            history = History(created=format_time(), created_by=created_by or None, author=author or None,
                              comment=comment or None)
            extra = {"container": container_id} if container_id else {}
            if comment:
                # Docker's commit message: the config's top-level comment
                # (inspect's Comment), besides the history entry's.
                extra["comment"] = comment
            image_config = self._new_config(base, new_config, diff_id, history, author or None, extra)
            base_record = store.metadata.get_image(base_id) if base_id is not None else None
            layers = list(base_record.layers if base_record else ()) + [layer.chain_id]
            size = (base_record.size if base_record else 0) + layer.size
            return self._finish(lease, image_config, layers, size, base_id, reference)

    def _commit_layer(self, lease, parent: Digest | None,
                      write: Callable[[BinaryIO], diff.WrittenLayer]) -> LayerRecord:
        """A new layer over ``parent`` from the tar ``write(out)`` produces,
        in one pass: a producer thread writes the tar into the content store
        and into a pipe, and this thread applies the pipe into a new
        snapshot as it comes (the way Docker commits: never re-reading what
        it wrote).  The blob is hashed once, by the content writer (its
        digest is the diff_id: the tar is stored uncompressed), and synced
        by the producer while the applier catches up.  The snapshot is
        prepared under the lease and removed on any failure."""
        store = self.store
        sn = store.snapshotter
        key = f"extract-{secrets.token_hex(8)} commit"
        sn.prepare(key, str(parent) if parent is not None else None, labels={LEASE_LABEL: lease.id})
        try:
            target, mode = self._layer_target(key)
            with store.content.open_writer(ref="commit") as writer:
                pipe = ChunkPipe()
                produced: list[diff.WrittenLayer] = []
                failed: list[BaseException] = []

                def produce() -> None:
                    try:
                        produced.append(write(_TeeFile(writer, pipe)))
                        pipe.close()
                        writer.sync()
                    except BaseException as exc:  # handed to the caller's thread
                        failed.append(exc)
                        pipe.fail(f"writing the layer: {exc}")

                producer = threading.Thread(target=produce, name="dockyard-commit", daemon=True)
                producer.start()
                try:
                    applied = apply_layer(pipe, target, self._apply_options(mode), hashed=False)
                except BaseException as exc:
                    pipe.abort(f"applying the layer: {exc}")
                    producer.join()
                    if failed and isinstance(exc, PipeBroken):
                        raise failed[0] from None  # the producer's error is the real one
                    raise
                producer.join()
                if failed:
                    raise failed[0]
                blob = writer.commit(before_publish=self._protect(lease))
        except BaseException:
            with contextlib.suppress(NotFound):
                sn.remove(key)
            raise
        diff_id = blob.digest
        chain = chain_id(parent, diff_id)
        self._commit_extract(lease, key, chain)
        return store.metadata.put_layer(LayerRecord(
            chain_id=chain, diff_id=diff_id, parent=parent, size=applied.content_size, digest=blob.digest,
            media_type=mediatype.OCI_LAYER, compressed_size=blob.size))

    def changes(self, snapshot_key: str) -> list[diff.Change]:
        """``docker diff`` of a container's active snapshot (without the
        runtime's mount points, as commit)."""
        own, lowers, overlay = self._container_dirs(snapshot_key)
        stubs = diff.mount_point_stubs(own, lowers)
        if overlay:
            return diff.changes(own, lowers, skip=stubs)
        if lowers:
            return diff.diff_dirs(lowers[0], own, skip=stubs)
        empty = own.parent / ".empty-for-diff"
        empty.mkdir(exist_ok=True)
        return diff.diff_dirs(empty, own, skip=stubs)

    def export(self, snapshot_key: str, out: BinaryIO) -> diff.WrittenLayer:
        """``docker export``: a container's whole filesystem as one tar."""
        own, lowers, overlay = self._container_dirs(snapshot_key)
        return diff.write_merged([own, *lowers] if overlay else [own], out, names=True)

    # -- tags and removal -------------------------------------------------------

    def tag(self, source: str, target: str) -> Reference:
        """Point the tag ``target`` at the image ``source`` names."""
        image_id = self.resolve(source)
        ref = parse_reference(target)
        if ref.digest is not None:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {target}")
        if ref.familiar_name == "sha256":
            # "sha256:<hex>" would read back as an image ID, not this tag
            raise InvalidArgument("refusing to create an ambiguous tag using digest algorithm as name")
        ref = ref.tagged_or_latest()
        self.store.metadata.set_ref(str(ref), image_id, TAG)
        return ref

    def untag(self, name: str) -> Digest:
        """Remove one tag; the image stays even if it was the last one."""
        ref = parse_reference(name)
        ref = ref if ref.digest is not None else ref.tagged_or_latest()
        return self.store.metadata.remove_ref(str(ref))

    def remove(self, name: str, *, force: bool = False, prune: bool = True,
               in_use: InUse | None = None) -> list[dict[str, str]]:
        """``docker rmi``, with Docker's rules and its response shape
        (``[{"Untagged": ...}, {"Deleted": ...}]``):

        * by reference: that reference is removed; the image goes too if it
          was its last reference and no container uses it;
        * by ID: refused if the image has several tags (unless ``force``),
          if a running container uses it (always), if a stopped one does
          (unless ``force``), or if child images depend on it;
        * layers, snapshots and blobs no other image shares are deleted;
          with ``prune``, untagged parents without other children go too.
        """
        meta = self.store.metadata
        image_id, ref = self._resolve(name)
        users = list(in_use(image_id)) if in_use else []
        records: list[dict[str, str]] = []
        shortid = image_id.short
        if ref is not None:
            # Untagging the last name of an image a container (even a stopped
            # one) uses would leave it dangling under that container: Docker
            # asks for force first.
            if not force and users and _single_repository(meta.refs(image_id)):
                raise FailedPrecondition(
                    f'conflict: unable to remove repository reference "{ref.familiar}" (must force) - container '
                    f"{users[0].container_id[:12]} is using its referenced image {shortid}")
            meta.remove_ref(str(ref))
            records.append({"Untagged": ref.familiar})
            remaining = meta.refs(image_id)
            if remaining and any(r.kind == TAG for r in remaining):
                return records
            for other in remaining:  # only digest references were left: they go too
                meta.remove_ref(other.ref)
                records.append({"Untagged": parse_reference(other.ref).familiar})
            if users or meta.children(image_id):
                return records  # untagged; the image stays for its users
        else:
            # Docker's order: the conflicts force cannot lift (child images,
            # a running container) before those it can (several
            # repositories, a stopped container).
            if meta.children(image_id):
                raise FailedPrecondition(
                    f"conflict: unable to delete {shortid} (cannot be forced) - image has dependent child images")
            running = [u for u in users if u.running]
            if running:
                raise FailedPrecondition(
                    f"conflict: unable to delete {shortid} (cannot be forced) - image is being used by running "
                    f"container {running[0].container_id[:12]}")
            if not force and not _single_repository(meta.refs(image_id)) and meta.refs(image_id):
                raise FailedPrecondition(
                    f"conflict: unable to delete {shortid} (must be forced) - image is referenced in multiple "
                    f"repositories")
            if users and not force:
                raise FailedPrecondition(
                    f"conflict: unable to delete {shortid} (must be forced) - image is being used by stopped "
                    f"container {users[0].container_id[:12]}")
            for r in meta.refs(image_id):
                meta.remove_ref(r.ref)
                records.append({"Untagged": parse_reference(r.ref).familiar})
        records.extend(self._delete_image(image_id, prune, in_use))
        return records

    def _delete_image(self, image_id: Digest, prune: bool, in_use: InUse | None) -> list[dict[str, str]]:
        store = self.store
        meta = store.metadata
        records: list[dict[str, str]] = []
        with store.gc_lock.exclusive():
            record = meta.get_image(image_id)
            meta.delete_image(image_id)
            records.append({"Deleted": str(image_id)})
            held_snapshots = store.leases.held(SNAPSHOT)
            held_content = store.leases.held(CONTENT)
            doomed_blobs = {image_id, *record.content}
            for chain in reversed(record.layers):
                if meta.layer_users(chain) or str(chain) in held_snapshots:
                    break
                if any(layer.parent == chain for layer in meta.layers()):
                    break
                try:
                    store.snapshotter.remove(str(chain))
                except NotFound:
                    pass
                except FailedPrecondition:
                    break  # a container's snapshot still sits on it; GC takes it later
                layer = meta.get_layer(chain)
                meta.delete_layer(chain)
                records.append({"Deleted": str(chain)})
                if layer.digest is not None:
                    doomed_blobs.add(layer.digest)
            still_needed = meta.referenced_blobs() | held_content
            for digest in doomed_blobs:
                if str(digest) not in still_needed:
                    with contextlib.suppress(NotFound):
                        store.content.delete(digest)
        if prune and record.parent is not None and meta.has_image(record.parent):
            parent = record.parent
            users = list(in_use(parent)) if in_use else []
            if not meta.refs(parent) and not meta.children(parent) and not users:
                records.extend(self._delete_image(parent, prune, in_use))
        return records

    # -- views ---------------------------------------------------------------

    def _graph_driver(self, record: ImageRecord) -> dict:
        sn = self.store.snapshotter
        if not record.layers:
            return {"Name": self.store.snapshotter_name, "Data": None}
        try:
            dirs = sn.chain_dirs(str(record.layers[-1]))
        except (NotFound, AttributeError):
            return {"Name": self.store.snapshotter_name, "Data": None}
        top = dirs[0]
        data = {"MergedDir": str(top.parent / "merged"), "UpperDir": str(top), "WorkDir": str(top.parent / "work")}
        if len(dirs) > 1:
            data["LowerDir"] = ":".join(str(d) for d in dirs[1:])
        name = "overlay2" if isinstance(sn, OverlaySnapshotter) else self.store.snapshotter_name
        return {"Data": dict(sorted(data.items())), "Name": name}

    def inspect(self, name: str) -> dict:
        """``GET /images/{name}/json`` in Docker's shape."""
        meta = self.store.metadata
        image_id = self.resolve(name)
        record = meta.get_image(image_id)
        config = self.get_config(image_id)
        refs = meta.refs(image_id)
        tag_times = [r.created for r in refs if r.kind == TAG]
        container_config = config.extra.get("container_config")
        out = {
            "Id": str(image_id),
            "RepoTags": [parse_reference(r.ref).familiar for r in refs if r.kind == TAG],
            "RepoDigests": [parse_reference(r.ref).familiar for r in refs if r.kind == DIGEST],
            "Parent": str(record.parent) if record.parent else "",
            "Comment": config.extra.get("comment", "") or "",
            "Created": config.created or ZERO_TIME,
            "Container": config.extra.get("container", "") or "",
            "ContainerConfig": (container_config if isinstance(container_config, dict)
                                else _docker_container_config(ContainerConfig())),
            "DockerVersion": config.extra.get("docker_version", "") or "",
            "Author": config.author or "",
            "Config": _docker_container_config(config.config),
            "Architecture": config.architecture,
            "Os": config.os,
            "Size": record.size,
            "VirtualSize": record.size,
            "GraphDriver": self._graph_driver(record),
            "RootFS": {"Type": config.rootfs.type, "Layers": [str(d) for d in config.rootfs.diff_ids]},
            "Metadata": {"LastTagTime": format_time(max(tag_times)) if tag_times else ZERO_TIME},
        }
        if config.variant:
            out["Variant"] = config.variant
        if config.os_version:
            out["OsVersion"] = config.os_version
        return out

    def history(self, name: str) -> list[dict]:
        """``GET /images/{name}/history``: newest first; entries get image
        IDs and tags along the local parent chain, "<missing>" beyond it."""
        meta = self.store.metadata
        image_id = self.resolve(name)
        record = meta.get_image(image_id)
        config = self.get_config(image_id)
        sizes = [meta.get_layer(chain).size for chain in record.layers]
        items: list[dict] = []
        layer_index = 0
        for entry in config.history:
            size = 0
            if not entry.empty_layer:
                if layer_index < len(sizes):
                    size = sizes[layer_index]
                layer_index += 1
            items.insert(0, {"Comment": entry.comment or "", "Created": int(parse_time(entry.created)),
                             "CreatedBy": entry.created_by or "", "Id": "<missing>", "Size": size, "Tags": None})
        current: Digest | None = image_id
        for item in items:
            if current is None:
                break
            item["Id"] = str(current)
            tags = self.tags_of(current)
            item["Tags"] = tags or None
            current = meta.get_image(current).parent if meta.has_image(current) else None
        return items

    def list_images(self, all_images: bool = True) -> list[dict]:
        """``GET /images/json`` entries (newest first)."""
        meta = self.store.metadata
        out = []
        for record in meta.images():
            if not all_images and not meta.refs(record.id) and meta.children(record.id):
                continue  # an intermediate image
            config = self.get_config(record.id)
            refs = meta.refs(record.id)
            out.append({
                "Containers": -1,
                "Created": int(parse_time(config.created)),
                "Id": str(record.id),
                "Labels": dict(config.config.labels) if config.config.labels is not None else None,
                "ParentId": str(record.parent) if record.parent else "",
                "RepoDigests": [parse_reference(r.ref).familiar for r in refs if r.kind == DIGEST],
                "RepoTags": [parse_reference(r.ref).familiar for r in refs if r.kind == TAG],
                "SharedSize": -1,
                "Size": record.size,
                "VirtualSize": record.size,
            })
        out.sort(key=lambda item: item["Created"], reverse=True)
        return out

    def top_layer(self, name: str) -> Digest | None:
        """The chain ID a container of this image prepares its snapshot on."""
        record = self.store.metadata.get_image(self.resolve(name))
        return record.layers[-1] if record.layers else None


def _single_repository(refs: Sequence[RefRecord]) -> bool:
    """Docker's "single reference": at most one tag, and every digest
    reference in that tag's repository. Removing such an image by ID takes
    its names with it; otherwise the names must be removed first (or forced)."""
    tags = [r for r in refs if r.kind == TAG]
    names = {parse_reference(r.ref).name for r in refs}
    if len(tags) > 1:
        return False
    return len(names) == 1


__all__ = ["ImageService", "ImageUser", "InUse", "LoadResult", "LoadedImage", "host_platform_spec", "parse_time"]
