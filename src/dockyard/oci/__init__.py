"""dockyard.oci: pure data for the OCI and Docker image formats.  No I/O.

Modules:

``digest``
    :class:`Digest` (``sha256``/``sha512``, validated), :class:`Digester`
    for streams.
``reference``
    :func:`parse_reference` (Docker's normalisation, no default tag),
    :func:`parse_docker_ref` (adds ``:latest``; digest wins over tag),
    :func:`normalize`, :func:`familiar`, :class:`Reference`.
``mediatype``
    Media type constants (OCI, Docker v2s2, manifest list, layer
    encodings) and :func:`~dockyard.oci.mediatype.layer_compression`.
``image``
    :class:`Descriptor`, :class:`Platform`, :class:`Manifest`,
    :class:`Index`, :class:`ImageConfig` (with :class:`ContainerConfig`,
    :class:`RootFS`, :class:`History`, :class:`HealthConfig`),
    :func:`chain_id`/:func:`chain_ids`, :func:`parse_document`.

Words: a layer's ``digest`` is the digest of its blob as stored or sent
(often compressed); its ``diff_id`` is the digest of the uncompressed tar;
its ``chain_id`` names the stack of it and every layer below.  An image's
ID is the digest of its config.
"""

from . import mediatype
from .digest import SHA256, SHA512, Digest, Digester, is_digest
from .image import (
    ContainerConfig,
    Descriptor,
    HealthConfig,
    History,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    RootFS,
    canonical_bytes,
    chain_id,
    chain_ids,
    format_time,
    parse_document,
)
from .reference import (
    DEFAULT_DOMAIN,
    DEFAULT_TAG,
    Reference,
    familiar,
    is_identifier,
    normalize,
    parse_any_reference,
    parse_docker_ref,
    parse_reference,
    validate_tag,
)

__all__ = [
    "mediatype",
    "SHA256", "SHA512", "Digest", "Digester", "is_digest",
    "ContainerConfig", "Descriptor", "HealthConfig", "History", "ImageConfig", "Index", "Manifest",
    "Platform", "RootFS", "canonical_bytes", "chain_id", "chain_ids", "format_time", "parse_document",
    "DEFAULT_DOMAIN", "DEFAULT_TAG", "Reference", "familiar", "is_identifier", "normalize",
    "parse_any_reference", "parse_docker_ref", "parse_reference", "validate_tag",
]
