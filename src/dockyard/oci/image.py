"""OCI image types: descriptors, manifests, indexes and image configs.

These are plain values (frozen dataclasses) with ``from_json``/``to_json``
(dicts) and ``from_bytes``/``to_bytes`` (the serialised document).  The same
classes read OCI documents and Docker's (Image Manifest V2 Schema 2, the
manifest list, the container image config): the shapes coincide, only the
media types differ.

Round-tripping: a document's digest is the digest of its *bytes*, so a
document read with ``from_bytes`` keeps those bytes and ``to_bytes``
returns them unchanged as long as the value was not modified.  A modified
copy (``dataclasses.replace``) loses them (the field is ``init=False``) and
is serialised afresh.  Keys we do not model are kept in ``extra`` and
written back, so nothing a newer producer added is lost.

Chain IDs (image spec, config.md "Layer ChainID")::

    chain_id(L0)      = diff_id(L0)
    chain_id(L0..Ln)  = sha256(chain_id(L0..Ln-1) + " " + diff_id(Ln))

See :func:`chain_id` and :func:`chain_ids`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping

from ..errors import InvalidArgument
from . import mediatype
from .digest import Digest


# --- helpers --------------------------------------------------------------

def _obj(doc: Any, what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what}: expected a JSON object, got {type(doc).__name__}")
    return dict(doc)


def _str(doc: dict, key: str, what: str, default: str | None = None) -> str | None:
    value = doc.pop(key, default)
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"{what}: {key} must be a string")
    return value


def _int(doc: dict, key: str, what: str, default: int | None = None) -> int | None:
    value = doc.pop(key, default)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise InvalidArgument(f"{what}: {key} must be an integer")
    return value


def _strs(doc: dict, key: str, what: str) -> tuple[str, ...] | None:
    """A JSON list of strings; None when absent or null."""
    value = doc.pop(key, None)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{what}: {key} must be a list of strings")
    return tuple(value)


def _str_map(doc: dict, key: str, what: str) -> dict[str, str] | None:
    value = doc.pop(key, None)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"{what}: {key} must be an object of strings")
    return dict(value)


def _set(doc: dict, key: str, what: str) -> tuple[str, ...] | None:
    """Go's ``map[string]struct{}`` (ExposedPorts, Volumes) as a tuple."""
    value = doc.pop(key, None)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what}: {key} must be an object")
    return tuple(value)


def _parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what}: invalid JSON: {exc}") from None


def canonical_bytes(doc: Mapping[str, Any]) -> bytes:
    """Compact JSON in insertion order, as Go's encoder writes it (no spaces,
    non-ASCII kept as UTF-8, ``<>&`` escaped like Go's HTML-safe encoder)."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def format_time(ts: float | None = None) -> str:
    """RFC 3339 in UTC with nanoseconds, as Docker writes ``created``."""
    if ts is None:
        ts = time.time()
    ns = int(round(ts * 1e9))
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{frac:09d}Z" if frac else f"{base}Z"


class _Document:
    """Mixin for top-level documents that remember their original bytes."""

    raw: bytes | None
    #: what the document is called in error messages
    _what = "document"

    @classmethod
    def from_json(cls, doc: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def from_bytes(cls, data: bytes) -> Any:
        """The document parsed from ``data``, which it keeps as its bytes."""
        value = cls.from_json(_parse_json(data, cls._what))
        value._keep_raw(data)
        return value

    def to_json(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The serialised document: the original bytes when this value was
        read with ``from_bytes`` and not modified since."""
        if self.raw is not None:
            return self.raw
        return canonical_bytes(self.to_json())

    @property
    def digest(self) -> Digest:
        return Digest.from_bytes(self.to_bytes())

    def _keep_raw(self, data: bytes) -> None:
        object.__setattr__(self, "raw", bytes(data))


# --- platform and descriptor --------------------------------------------

@dataclass(frozen=True)
class Platform:
    architecture: str
    os: str
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    variant: str | None = None
    features: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> Platform:
        what = "platform"
        d = _obj(doc, what)
        return cls(
            architecture=_str(d, "architecture", what, "") or "",
            os=_str(d, "os", what, "") or "",
            os_version=_str(d, "os.version", what),
            os_features=_strs(d, "os.features", what) or (),
            variant=_str(d, "variant", what),
            features=_strs(d, "features", what) or (),
            extra=d,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        if self.features:
            out["features"] = list(self.features)
        out.update(self.extra)
        return out

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """What a manifest or index says about a blob it points at."""

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    artifact_type: str | None = None
    data: str | None = None  # base64 of the blob, embedded
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> Descriptor:
        what = "descriptor"
        d = _obj(doc, what)
        media_type = _str(d, "mediaType", what)
        digest = _str(d, "digest", what)
        size = _int(d, "size", what)
        if not media_type or digest is None or size is None:
            raise InvalidArgument(f"{what}: mediaType, digest and size are required")
        if size < 0:
            raise InvalidArgument(f"{what}: negative size {size} for {digest}")
        platform = d.pop("platform", None)
        return cls(
            media_type=media_type,
            digest=Digest.parse(digest),
            size=size,
            urls=_strs(d, "urls", what) or (),
            annotations=_str_map(d, "annotations", what) or {},
            platform=Platform.from_json(platform) if platform is not None else None,
            artifact_type=_str(d, "artifactType", what),
            data=_str(d, "data", what),
            extra=d,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.data is not None:
            out["data"] = self.data
        out.update(self.extra)
        return out


# --- manifest and index -----------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class _Listing(_Document):
    """What an image manifest and an index share: schemaVersion 2, a media
    type from a known set, an artifact type, a subject and annotations,
    around their own list(s) of descriptors."""

    media_type: str | None = None
    schema_version: int = 2
    annotations: dict[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    raw: bytes | None = field(default=None, init=False, repr=False, compare=False)

    #: the mediaType values this kind of document may declare
    _media_types: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, *, what: str, media_types: frozenset[str], **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._what, cls._media_types = what, media_types

    @classmethod
    def _common_fields(cls, doc: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """``doc`` as a dict without the shared fields, and those fields as
        constructor arguments."""
        what = cls._what
        d = _obj(doc, what)
        schema = _int(d, "schemaVersion", what)
        if schema != 2:
            raise InvalidArgument(f"{what}: unsupported schemaVersion {schema}")
        media_type = _str(d, "mediaType", what)
        if media_type is not None and media_type not in cls._media_types:
            raise InvalidArgument(f"{what}: unexpected mediaType {media_type}")
        subject = d.pop("subject", None)
        return d, {"media_type": media_type, "schema_version": schema,
                   "annotations": _str_map(d, "annotations", what) or {},
                   "subject": Descriptor.from_json(subject) if subject is not None else None,
                   "artifact_type": _str(d, "artifactType", what)}

    @classmethod
    def _descriptors(cls, d: dict[str, Any], key: str) -> tuple[Descriptor, ...]:
        """The list ``key`` (absent: empty) of descriptors, popped from ``d``."""
        items = d.pop(key, None)
        if items is None:
            return ()
        if not isinstance(items, list):
            raise InvalidArgument(f"{cls._what}: {key} must be a list")
        return tuple(Descriptor.from_json(item) for item in items)

    def _to_json(self, lists: dict[str, Any]) -> dict[str, Any]:
        """The document with its own ``lists`` in the place the specs show them."""
        out: dict[str, Any] = {"schemaVersion": self.schema_version}
        if self.media_type:
            out["mediaType"] = self.media_type
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out.update(lists)
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Manifest(_Listing, what="manifest", media_types=mediatype.MANIFESTS):
    """An image manifest: OCI (``application/vnd.oci.image.manifest.v1+json``)
    or Docker V2 Schema 2 (``...distribution.manifest.v2+json``)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str | None = field(default=mediatype.OCI_MANIFEST, kw_only=True)

    @classmethod
    def from_json(cls, doc: Any) -> Manifest:
        d, common = cls._common_fields(doc)
        config = d.pop("config", None)
        if config is None:
            raise InvalidArgument(f"{cls._what}: config is required")
        return cls(config=Descriptor.from_json(config), layers=cls._descriptors(d, "layers"), extra=d, **common)

    def to_json(self) -> dict[str, Any]:
        return self._to_json({"config": self.config.to_json(), "layers": [layer.to_json() for layer in self.layers]})

    def descriptor(self, **kw: Any) -> Descriptor:
        """A descriptor of this manifest (for an index or a layout)."""
        data = self.to_bytes()
        return Descriptor(self.media_type or mediatype.OCI_MANIFEST, Digest.from_bytes(data), len(data), **kw)


@dataclass(frozen=True)
class Index(_Listing, what="index", media_types=mediatype.INDEXES):
    """An OCI image index or a Docker manifest list."""

    manifests: tuple[Descriptor, ...]
    media_type: str | None = field(default=mediatype.OCI_INDEX, kw_only=True)

    @classmethod
    def from_json(cls, doc: Any) -> Index:
        d, common = cls._common_fields(doc)
        return cls(manifests=cls._descriptors(d, "manifests"), extra=d, **common)

    def to_json(self) -> dict[str, Any]:
        return self._to_json({"manifests": [m.to_json() for m in self.manifests]})


# --- image config -------------------------------------------------------------

@dataclass(frozen=True)
class HealthConfig:
    """Docker's ``Healthcheck``.  Durations are nanoseconds, as in the JSON.
    ``test`` is e.g. ``("CMD-SHELL", "curl -f http://localhost/")`` or
    ``("NONE",)``."""

    test: tuple[str, ...] | None = None
    interval: int | None = None
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    _KEYS = (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
             ("start_interval", "StartInterval"), ("retries", "Retries"))

    @classmethod
    def from_json(cls, doc: Any) -> HealthConfig:
        what = "Healthcheck"
        d = _obj(doc, what)
        values = {attr: _int(d, key, what) or None for attr, key in cls._KEYS}
        return cls(test=_strs(d, "Test", what), extra=d, **values)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.test is not None:
            out["Test"] = list(self.test)
        for attr, key in self._KEYS:
            value = getattr(self, attr)
            if value:
                out[key] = value
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class ContainerConfig:
    """The ``config`` object of an image config: defaults for containers
    run from the image.  ``None`` means "not set", which differs from an
    empty list for ``cmd`` and ``entrypoint`` (``CMD []`` clears a parent's)."""

    user: str | None = None
    exposed_ports: tuple[str, ...] | None = None  # "80/tcp"
    env: tuple[str, ...] | None = None  # "KEY=value"
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] | None = None
    working_dir: str | None = None
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    args_escaped: bool | None = None
    healthcheck: HealthConfig | None = None
    on_build: tuple[str, ...] | None = None
    shell: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> ContainerConfig:
        what = "image config: config"
        d = _obj(doc, what)
        health = d.pop("Healthcheck", None)
        args_escaped = d.pop("ArgsEscaped", None)
        if args_escaped is not None and not isinstance(args_escaped, bool):
            raise InvalidArgument(f"{what}: ArgsEscaped must be a boolean")
        # Empty and absent are the same for omitempty fields; keep one form
        # so that a value survives serialise-and-parse unchanged.
        return cls(
            user=_str(d, "User", what) or None,
            exposed_ports=_set(d, "ExposedPorts", what) or None,
            env=_strs(d, "Env", what),
            entrypoint=_strs(d, "Entrypoint", what),
            cmd=_strs(d, "Cmd", what),
            volumes=_set(d, "Volumes", what) or None,
            working_dir=_str(d, "WorkingDir", what) or None,
            labels=_str_map(d, "Labels", what) or None,
            stop_signal=_str(d, "StopSignal", what) or None,
            args_escaped=args_escaped or None,
            healthcheck=HealthConfig.from_json(health) if health is not None else None,
            on_build=_strs(d, "OnBuild", what) or None,
            shell=_strs(d, "Shell", what) or None,
            extra=d,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.env is not None:
            out["Env"] = list(self.env)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = {path: {} for path in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.args_escaped:
            out["ArgsEscaped"] = True
        if self.healthcheck is not None:
            out["Healthcheck"] = self.healthcheck.to_json()
        if self.on_build:
            out["OnBuild"] = list(self.on_build)
        if self.shell:
            out["Shell"] = list(self.shell)
        out.update(self.extra)
        return out

    def env_dict(self) -> dict[str, str]:
        """``env`` as a mapping (later entries win, as in a process env)."""
        result: dict[str, str] = {}
        for item in self.env or ():
            key, _, value = item.partition("=")
            result[key] = value
        return result


@dataclass(frozen=True)
class RootFS:
    type: str = "layers"
    diff_ids: tuple[Digest, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> RootFS:
        what = "image config: rootfs"
        d = _obj(doc, what)
        kind = _str(d, "type", what, "") or ""
        if kind != "layers":
            raise InvalidArgument(f"{what}: type must be \"layers\", got {kind!r}")
        diff_ids = _strs(d, "diff_ids", what) or ()
        return cls(kind, tuple(Digest.parse(x) for x in diff_ids), d)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "diff_ids": [str(x) for x in self.diff_ids]}
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class History:
    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> History:
        what = "image config: history"
        d = _obj(doc, what)
        empty = d.pop("empty_layer", False)
        if not isinstance(empty, bool):
            raise InvalidArgument(f"{what}: empty_layer must be a boolean")
        return cls(
            created=_str(d, "created", what) or None,
            created_by=_str(d, "created_by", what) or None,
            author=_str(d, "author", what) or None,
            comment=_str(d, "comment", what) or None,
            empty_layer=empty,
            extra=d,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("created", "created_by", "author", "comment"):
            value = getattr(self, key)
            if value:
                out[key] = value
        if self.empty_layer:
            out["empty_layer"] = True
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class ImageConfig(_Document):
    """An image config (``application/vnd.oci.image.config.v1+json`` or
    Docker's ``application/vnd.docker.container.image.v1+json``).  Its
    digest is the image ID."""

    _what = "image config"

    architecture: str = ""
    os: str = ""
    config: ContainerConfig = field(default_factory=ContainerConfig)
    rootfs: RootFS = field(default_factory=RootFS)
    history: tuple[History, ...] = ()
    created: str | None = None
    author: str | None = None
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    raw: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> ImageConfig:
        what = "image config"
        d = _obj(doc, what)
        config = d.pop("config", None)
        rootfs = d.pop("rootfs", None)
        if rootfs is None:
            raise InvalidArgument(f"{what}: rootfs is required")
        history = d.pop("history", None) or []
        if not isinstance(history, list):
            raise InvalidArgument(f"{what}: history must be a list")
        return cls(
            architecture=_str(d, "architecture", what, "") or "",
            os=_str(d, "os", what, "") or "",
            config=ContainerConfig.from_json(config) if config is not None else ContainerConfig(),
            rootfs=RootFS.from_json(rootfs),
            history=tuple(History.from_json(h) for h in history),
            created=_str(d, "created", what),
            author=_str(d, "author", what),
            variant=_str(d, "variant", what),
            os_version=_str(d, "os.version", what),
            os_features=_strs(d, "os.features", what) or (),
            extra=d,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture}
        if self.author:
            out["author"] = self.author
        out["config"] = self.config.to_json()
        if self.created:
            out["created"] = self.created
        if self.history:
            out["history"] = [h.to_json() for h in self.history]
        out["os"] = self.os
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        out["rootfs"] = self.rootfs.to_json()
        if self.variant:
            out["variant"] = self.variant
        out.update(self.extra)
        return out

    @property
    def diff_ids(self) -> tuple[Digest, ...]:
        return self.rootfs.diff_ids

    @property
    def chain_ids(self) -> list[Digest]:
        return chain_ids(self.rootfs.diff_ids)

    @property
    def platform(self) -> Platform:
        return Platform(self.architecture, self.os, self.os_version, self.os_features, self.variant)


# --- chain IDs ----------------------------------------------------------------

def chain_id(parent: Digest | None, diff_id: Digest) -> Digest:
    """The chain ID of a layer ``diff_id`` applied on the chain ``parent``."""
    if parent is None:
        return diff_id
    return Digest.from_bytes(f"{parent} {diff_id}".encode())


def chain_ids(diff_ids: Iterable[Digest | str]) -> list[Digest]:
    """Chain IDs of each prefix of ``diff_ids`` (bottom layer first)."""
    result: list[Digest] = []
    parent: Digest | None = None
    for diff_id in diff_ids:
        parent = chain_id(parent, Digest.parse(diff_id))
        result.append(parent)
    return result


def parse_document(data: bytes, media_type: str | None = None) -> Manifest | Index:
    """Parse a manifest or index; with no media type, decide by the
    document's own ``mediaType`` or by which of ``manifests``/``layers``
    it has."""
    doc = _parse_json(data, "manifest")
    if not isinstance(doc, dict):
        raise InvalidArgument("manifest: expected a JSON object")
    kind = media_type or doc.get("mediaType")
    if kind in (mediatype.DOCKER_MANIFEST_V1, mediatype.DOCKER_MANIFEST_V1_SIGNED) or doc.get("schemaVersion") == 1:
        raise InvalidArgument("unsupported manifest format: Docker Image Manifest Version 2, Schema 1 is deprecated")
    if kind in mediatype.INDEXES or (kind is None and "manifests" in doc):
        return Index.from_bytes(data)
    if kind in mediatype.MANIFESTS or (kind is None and "config" in doc):
        return Manifest.from_bytes(data)
    raise InvalidArgument(f"unsupported manifest media type {kind!r}")
