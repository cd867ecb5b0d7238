"""What the container service needs from images, as a small interface.

``ImageBackend`` is what resolving needs: a reference or ID prefix -> the
image's config and top layer.  :class:`StoreImageBackend` answers it from
a :class:`dockyard.store.Store`'s records directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import InvalidArgument, NotFound


@dataclass(frozen=True)
class ResolvedImage:
    id: str                           # "sha256:<config digest>"
    config: dict[str, Any]            # the image config's "config" object (Docker field names)
    top_layer: str | None             # chain ID of the top layer (the snapshot parent)
    size: int = 0
    ref: str = ""                     # the reference it was found by, normalised
    parent: str | None = None
    layers: tuple[str, ...] = field(default=())


class ImageBackend(Protocol):
    def resolve(self, ref: str) -> ResolvedImage:
        """The image a reference or ID (prefix) names; NotFound
        ``No such image: <ref>``."""
        ...

    def get(self, image_id: str) -> ResolvedImage:
        """By full ID; NotFound when it was removed."""
        ...


def _no_such_image(ref: str) -> NotFound:
    return NotFound(f"No such image: {ref}")


class StoreImageBackend:
    """Resolve images from a :class:`dockyard.store.Store`'s records."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def _load(self, image_id: Any, ref: str) -> ResolvedImage:
        from ..oci.image import ImageConfig

        record = self.store.metadata.get_image(image_id)
        doc = ImageConfig.from_bytes(self.store.content.read_bytes(record.id))
        layers = tuple(str(x) for x in record.layers)
        return ResolvedImage(id=str(record.id), config=doc.config.to_json(),
                             top_layer=layers[-1] if layers else None, size=record.size, ref=ref,
                             parent=str(record.parent) if record.parent else None, layers=layers)

    def get(self, image_id: str) -> ResolvedImage:
        try:
            return self._load(image_id, image_id)
        except (NotFound, InvalidArgument):
            raise _no_such_image(image_id) from None

    def resolve(self, ref: str) -> ResolvedImage:
        from ..oci import reference

        if not ref:
            raise InvalidArgument("image name is required")
        meta = self.store.metadata
        # A name first (as Docker does), then an ID or ID prefix.
        try:
            normalized = reference.normalize(ref)
        except InvalidArgument:
            normalized = None
        if normalized is not None:
            try:
                return self._load(meta.resolve_ref(normalized), normalized)
            except NotFound:
                pass
        hexpart = ref[len("sha256:"):] if ref.startswith("sha256:") else ref
        if hexpart and all(c in "0123456789abcdef" for c in hexpart):
            found = meta.find_images(hexpart)
            if len(found) == 1:
                return self._load(found[0], str(found[0]))
            if len(found) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        shown = reference.familiar(normalized) if normalized else ref
        raise _no_such_image(shown)
