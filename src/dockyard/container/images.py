"""What the container service needs from images, over dockyard.image's
:class:`~dockyard.image.service.ImageService`: a name -> the image's ID,
config and top layer; parents (for the ``ancestor`` filter)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import NotFound


@dataclass(frozen=True)
class ResolvedImage:
    id: str                           # "sha256:<config digest>"
    config: dict[str, Any]            # the image config's "config" object (Docker field names)
    top_layer: str | None             # chain ID of the top layer (the snapshot parent)
    size: int = 0
    parent: str | None = None


class ImageBackend:
    """Resolution through an ImageService (names, IDs and ID prefixes as
    Docker takes them; ``No such image: x`` when unknown)."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def resolve(self, ref: str) -> ResolvedImage:
        try:
            image_id = self.service.resolve(ref)
        except NotFound:
            raise NotFound(f"No such image: {_familiar_tagged(ref)}") from None
        return self.get(str(image_id))

    def get(self, image_id: str) -> ResolvedImage:
        meta = self.service.store.metadata
        try:
            record = meta.get_image(image_id)
        except NotFound:
            raise NotFound(f"No such image: {image_id}") from None
        config = self.service.get_config(record.id)
        layers = [str(x) for x in record.layers]
        return ResolvedImage(id=str(record.id), config=config.config.to_json(),
                             top_layer=layers[-1] if layers else None, size=record.size,
                             parent=str(record.parent) if record.parent else None)


def _familiar_tagged(ref: str) -> str:
    """How Docker names a missing image: ``busybox`` -> ``busybox:latest``."""
    from ..errors import InvalidArgument
    from ..oci.reference import familiar, is_identifier, normalize
    if is_identifier(ref) or ref.startswith("sha256:"):
        return ref
    try:
        return familiar(normalize(ref))
    except InvalidArgument:
        return ref
