"""Images, references and layers in the metadata DB."""

from __future__ import annotations

import pytest

from dockyard.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from dockyard.oci import Digest, chain_ids
from dockyard.store.db import Database
from dockyard.store.metadata import DIGEST, TAG, ImageRecord, LayerRecord, MetadataStore


@pytest.fixture
def meta(tmp_path):
    db = Database(tmp_path / "metadata.db")
    try:
        yield MetadataStore(db)
    finally:
        db.close()


def _layers(meta: MetadataStore, names: list[bytes]) -> list[Digest]:
    diff_ids = [Digest.from_bytes(n) for n in names]
    chains = chain_ids(diff_ids)
    parent = None
    for diff_id, chain in zip(diff_ids, chains):
        meta.put_layer(LayerRecord(chain, diff_id, parent, 100))
        parent = chain
    return chains


def test_layers(meta):
    chains = _layers(meta, [b"a", b"b"])
    rec = meta.get_layer(chains[1])
    assert rec.parent == chains[0] and rec.diff_id == Digest.from_bytes(b"b") and rec.digest is None
    # idempotent; fills in the compressed blob once known
    blob = Digest.from_bytes(b"gz")
    rec2 = meta.put_layer(LayerRecord(chains[1], rec.diff_id, chains[0], 100, blob, "application/x", 42))
    assert rec2.digest == blob and rec2.compressed_size == 42
    assert meta.layer_by_digest(blob).chain_id == chains[1]
    with pytest.raises(AlreadyExists):
        meta.put_layer(LayerRecord(chains[1], Digest.from_bytes(b"zz"), chains[0], 1))
    with pytest.raises(FailedPrecondition, match="parent layer"):
        meta.put_layer(LayerRecord(Digest.from_bytes(b"orphan"), Digest.from_bytes(b"o"),
                                   Digest.from_bytes(b"nope"), 1))
    with pytest.raises(FailedPrecondition, match="child layers"):
        meta.delete_layer(chains[0])
    meta.delete_layer(chains[1])
    meta.delete_layer(chains[0])
    with pytest.raises(NotFound):
        meta.get_layer(chains[0])


def test_images_and_refs(meta):
    chains = _layers(meta, [b"a", b"b"])
    image_id = Digest.from_bytes(b"config")
    manifest = Digest.from_bytes(b"manifest")
    rec = meta.put_image(ImageRecord(image_id, tuple(chains), 200, content=(manifest,)))
    assert rec.layers == tuple(chains) and rec.content == (manifest,) and rec.created > 0
    assert meta.put_image(ImageRecord(image_id, tuple(chains), 200)).created == rec.created
    with pytest.raises(AlreadyExists):
        meta.put_image(ImageRecord(image_id, (chains[0],)))
    assert meta.layer_users(chains[0]) == [image_id]
    with pytest.raises(FailedPrecondition, match="used by an image"):
        meta.delete_layer(chains[1])

    assert meta.set_ref("docker.io/library/busybox:latest", image_id) is None
    meta.set_ref(f"docker.io/library/busybox@{manifest}", image_id, DIGEST)
    assert meta.resolve_ref("docker.io/library/busybox:latest") == image_id
    assert [r.ref for r in meta.refs(image_id, TAG)] == ["docker.io/library/busybox:latest"]
    assert [r.kind for r in meta.refs(image_id)] == [TAG, DIGEST]  # sorted by ref
    with pytest.raises(NotFound):
        meta.set_ref("docker.io/library/x:1", Digest.from_bytes(b"no such image"))
    with pytest.raises(InvalidArgument):
        meta.set_ref("docker.io/library/x:1", image_id, "branch")

    # moving a tag reports the image it left
    other = Digest.from_bytes(b"config2")
    meta.put_image(ImageRecord(other, (chains[0],), 100, parent=image_id))
    assert meta.set_ref("docker.io/library/busybox:latest", other) == image_id
    assert meta.set_ref("docker.io/library/busybox:latest", other) is None
    assert meta.children(image_id) == [other]

    assert meta.find_images(image_id.encoded[:12]) == [image_id]
    assert meta.find_images("sha256:" + image_id.encoded[:5]) == [image_id]
    assert meta.find_images("zz") == []

    meta.touch_image(image_id, when=1234.0)
    assert meta.get_image(image_id).last_used == 1234.0
    with pytest.raises(NotFound):
        meta.touch_image(Digest.from_bytes(b"nope"))

    assert meta.delete_image(image_id) == [f"docker.io/library/busybox@{manifest}"]
    assert meta.get_image(other).parent is None
    with pytest.raises(NotFound):
        meta.get_image(image_id)
    with pytest.raises(NotFound):
        meta.delete_image(image_id)
    assert meta.remove_ref("docker.io/library/busybox:latest") == other
    with pytest.raises(NotFound):
        meta.resolve_ref("docker.io/library/busybox:latest")


def test_referenced_sets(meta):
    chains = _layers(meta, [b"a", b"b"])
    blob = Digest.from_bytes(b"gz")
    meta.put_layer(LayerRecord(chains[0], Digest.from_bytes(b"a"), None, 100, blob, "x"))
    image_id = Digest.from_bytes(b"config")
    manifest = Digest.from_bytes(b"manifest")
    meta.put_image(ImageRecord(image_id, (chains[0],), content=(manifest,)))
    assert meta.referenced_layers() == {str(chains[0])}
    assert meta.referenced_blobs() == {str(image_id), str(blob), str(manifest)}
    assert meta.layer_blobs([str(chains[0]), str(chains[1])]) == {str(blob)}
