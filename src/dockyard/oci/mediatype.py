"""Media types: OCI image spec, Docker Image Manifest V2 Schema 2 and the
Docker manifest list, plus the layer encodings both use.

Layer media types say how a layer blob is compressed.  ``foreign`` /
``nondistributable`` layers must not be pushed to other registries; we can
still store and unpack them.
"""

from __future__ import annotations

# --- OCI image spec ------------------------------------------------------
OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
# Deprecated by the spec but still seen in the wild.
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

# --- Docker ------------------------------------------------------------
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"  # uncompressed, rarely used
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"
# Schema 1 is only recognised, to refuse it with a clear message.
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# --- groups --------------------------------------------------------------
MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})

#: Layer compression, by what a decompressor must do.
UNCOMPRESSED, GZIP, ZSTD = "uncompressed", "gzip", "zstd"

#: layer media type -> compression
LAYER_COMPRESSION: dict[str, str] = {
    OCI_LAYER: UNCOMPRESSED,
    OCI_LAYER_GZIP: GZIP,
    OCI_LAYER_ZSTD: ZSTD,
    OCI_LAYER_NONDISTRIBUTABLE: UNCOMPRESSED,
    OCI_LAYER_NONDISTRIBUTABLE_GZIP: GZIP,
    OCI_LAYER_NONDISTRIBUTABLE_ZSTD: ZSTD,
    DOCKER_LAYER: UNCOMPRESSED,
    DOCKER_LAYER_GZIP: GZIP,
    DOCKER_LAYER_ZSTD: ZSTD,
    DOCKER_LAYER_FOREIGN: GZIP,
}
LAYERS = frozenset(LAYER_COMPRESSION)

#: layers that must not be pushed to a registry other than their source
NON_DISTRIBUTABLE = frozenset({
    OCI_LAYER_NONDISTRIBUTABLE,
    OCI_LAYER_NONDISTRIBUTABLE_GZIP,
    OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
    DOCKER_LAYER_FOREIGN,
})

#: the Docker media type that matches an OCI one (for writing v2s2
#: manifests) and back
OCI_TO_DOCKER: dict[str, str] = {
    OCI_MANIFEST: DOCKER_MANIFEST,
    OCI_INDEX: DOCKER_MANIFEST_LIST,
    OCI_CONFIG: DOCKER_CONFIG,
    OCI_LAYER: DOCKER_LAYER,
    OCI_LAYER_GZIP: DOCKER_LAYER_GZIP,
    OCI_LAYER_ZSTD: DOCKER_LAYER_ZSTD,
    OCI_LAYER_NONDISTRIBUTABLE_GZIP: DOCKER_LAYER_FOREIGN,
}
DOCKER_TO_OCI: dict[str, str] = {v: k for k, v in OCI_TO_DOCKER.items()}

#: compression -> the OCI layer media type for it
OCI_LAYER_FOR: dict[str, str] = {UNCOMPRESSED: OCI_LAYER, GZIP: OCI_LAYER_GZIP, ZSTD: OCI_LAYER_ZSTD}
#: compression -> the Docker layer media type for it
DOCKER_LAYER_FOR: dict[str, str] = {UNCOMPRESSED: DOCKER_LAYER, GZIP: DOCKER_LAYER_GZIP, ZSTD: DOCKER_LAYER_ZSTD}


def is_manifest(media_type: str) -> bool:
    return media_type in MANIFESTS


def is_index(media_type: str) -> bool:
    return media_type in INDEXES


def is_layer(media_type: str) -> bool:
    return media_type in LAYER_COMPRESSION


def layer_compression(media_type: str) -> str | None:
    """``"gzip"``, ``"zstd"``, ``"uncompressed"``, or None for a type that
    is not a known layer."""
    return LAYER_COMPRESSION.get(media_type)
