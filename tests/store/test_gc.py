"""Leases and garbage collection through open_store: crash leftovers go,
referenced things stay, dry runs change nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from testlib import require_root
from dockyard.errors import NotFound
from dockyard.oci import ContainerConfig, Digest, ImageConfig, RootFS, chain_ids
from dockyard.store import (
    CONTENT,
    GC_ROOT_LABEL,
    LEASE_LABEL,
    SNAPSHOT,
    ImageRecord,
    LayerRecord,
    Store,
    open_store,
)
from dockyard.store.gc import collect
from dockyard.store.leases import current_owner, owner_alive


@pytest.fixture(params=["overlay", "native"])
def store(request, data_root):
    require_root()
    s = open_store(data_root / "store", snapshotter=request.param)
    try:
        yield s
    finally:
        s.close()


def make_image(store: Store, layers: list[dict[str, bytes]], tag: str | None = None) -> ImageRecord:
    """An image as a load would leave it: blobs, committed snapshots named
    by chain ID, layer records, the image record and a tag."""
    diff_ids = [Digest.from_bytes(repr(sorted(files.items())).encode()) for files in layers]
    chains = chain_ids(diff_ids)
    sn = store.snapshotter
    with store.leases.lease() as lease, store.gc_lock.shared():
        parent = None
        for files, diff_id, chain in zip(layers, diff_ids, chains):
            blob = store.ingest(b"compressed:" + diff_id.encoded.encode(), lease=lease.id)
            store.leases.add_resource(lease.id, SNAPSHOT, str(chain))
            if not any(i.name == str(chain) for i in sn.walk()):
                key = f"extract-{os.urandom(4).hex()} {chain}"
                sn.prepare(key, str(parent) if parent else None, labels={LEASE_LABEL: lease.id})
                for path, data in files.items():
                    (sn.fs_dir(key) / path).write_bytes(data)
                sn.commit(str(chain), key)
            store.metadata.put_layer(LayerRecord(chain, diff_id, parent, 10, blob.digest, "application/x", blob.size))
            parent = chain
        config = ImageConfig(architecture="amd64", os="linux", config=ContainerConfig(cmd=("sh",)),
                             rootfs=RootFS(diff_ids=tuple(diff_ids)))
        cfg = store.ingest(config.to_bytes(), lease=lease.id)
        with store.metadata.transaction():
            image = store.metadata.put_image(ImageRecord(cfg.digest, tuple(chains), 10 * len(chains)))
            if tag:
                store.metadata.set_ref(tag, cfg.digest)
    return image


def _names(store: Store) -> set[str]:
    return {i.name for i in store.snapshotter.walk()}


def _blobs(store: Store) -> set[str]:
    return {str(b.digest) for b in store.content.walk()}


def test_referenced_content_is_kept(store):
    image = make_image(store, [{"a": b"1"}, {"b": b"2"}], tag="docker.io/library/x:latest")
    before_blobs, before_snaps = _blobs(store), _names(store)
    assert len(before_blobs) == 3 and before_snaps == {str(c) for c in image.layers}
    report = store.collect()
    assert report.empty, report
    assert _blobs(store) == before_blobs and _names(store) == before_snaps
    assert store.metadata.get_image(image.id).layers == image.layers


def test_unreferenced_content_goes_and_dry_run_changes_nothing(store):
    kept = make_image(store, [{"a": b"1"}, {"b": b"2"}], tag="docker.io/library/kept:1")
    doomed = make_image(store, [{"a": b"1"}, {"c": b"3"}])  # shares the bottom layer
    stray = store.ingest(b"nobody wants me")
    store.snapshotter.prepare("orphan-active")
    store.snapshotter.commit("orphan-layer", "orphan-active")
    store.metadata.delete_image(doomed.id)

    dry = store.collect(dry_run=True)
    assert dry.dry_run
    assert set(dry.snapshots) == {str(doomed.layers[1]), "orphan-layer"}
    assert set(dry.layers) == {str(doomed.layers[1])}
    assert str(stray.digest) in dry.blobs and str(doomed.id) in dry.blobs
    assert dry.reclaimed_bytes > 0
    # nothing was touched
    assert "orphan-layer" in _names(store) and store.content.exists(stray.digest)
    assert store.metadata.has_layer(doomed.layers[1])

    real = store.collect()
    assert (set(real.snapshots), set(real.layers), set(real.blobs)) == (
        set(dry.snapshots), set(dry.layers), set(dry.blobs))
    assert _names(store) == {str(c) for c in kept.layers}
    assert not store.content.exists(stray.digest) and not store.content.exists(doomed.id)
    assert store.metadata.has_layer(kept.layers[0])  # shared layer stays
    assert store.content.exists(kept.id)
    assert store.collect().empty


def test_container_snapshot_keeps_its_image_layers(store):
    image = make_image(store, [{"a": b"1"}, {"b": b"2"}])
    store.snapshotter.prepare("container-1", str(image.layers[-1]))
    store.metadata.delete_image(image.id)
    report = store.collect()
    # the layer records and blobs go with the image; the snapshots the
    # container's rootfs stands on stay until the container is removed
    assert not report.snapshots
    assert _names(store) == {"container-1"} | {str(c) for c in image.layers}
    store.snapshotter.remove("container-1")
    report = store.collect()
    assert set(report.snapshots) == {str(c) for c in image.layers}
    assert _names(store) == set()


def test_leases_protect_until_they_end(store):
    with store.leases.lease() as lease:
        blob = store.ingest(b"in flight", lease=lease.id)
        store.snapshotter.prepare("extract-1", labels={LEASE_LABEL: lease.id})
        store.snapshotter.prepare("pending")
        store.snapshotter.commit("pending-layer", "pending")
        store.leases.add_resource(lease.id, SNAPSHOT, "pending-layer")
        store.leases.add_resource(lease.id, CONTENT, str(Digest.from_bytes(b"not yet written")))
        assert store.collect().empty
        assert store.content.exists(blob.digest)
    # lease over: all of it is garbage now
    report = store.collect()
    assert set(report.snapshots) == {"extract-1", "pending-layer"}
    assert str(blob.digest) in report.blobs
    assert _names(store) == set() and not store.content.exists(blob.digest)


def test_expired_lease_is_dead(store):
    lease = store.leases.create(expires_in=60)
    blob = store.ingest(b"slow pull", lease=lease.id)
    assert store.collect().empty
    report = collect(store, now=time.time() + 120)  # two minutes later
    assert report.leases == (lease.id,)
    assert str(blob.digest) in report.blobs
    with pytest.raises(NotFound):
        store.leases.get(lease.id)


def test_gc_root_label_keeps_snapshot_and_ancestors(store):
    store.snapshotter.prepare("a")
    store.snapshotter.commit("base", "a")
    store.snapshotter.prepare("b", "base")
    store.snapshotter.commit("pinned", "b", labels={GC_ROOT_LABEL: "yes"})
    store.snapshotter.prepare("c")
    store.snapshotter.commit("loose", "c")
    report = store.collect()
    assert report.snapshots == ("loose",)
    assert _names(store) == {"base", "pinned"}


def test_ingest_existing_blob_under_lease_is_leased(store):
    blob = store.ingest(b"already here")
    with store.leases.lease() as lease:
        again = store.ingest(b"already here", expected=blob.digest, lease=lease.id)
        assert again.digest == blob.digest
        assert [r.id for r in store.leases.resources(lease.id)] == [str(blob.digest)]
        assert store.collect().empty


def test_collect_waits_for_shared_holders(store):
    stray = store.ingest(b"garbage")
    done = threading.Event()
    with store.gc_lock.shared():
        t = threading.Thread(target=lambda: (store.collect(), done.set()))
        t.start()
        time.sleep(0.3)
        assert not done.is_set()  # blocked behind the shared holder
        assert store.content.exists(stray.digest)
    t.join(10)
    assert done.is_set() and not store.content.exists(stray.digest)


_CRASHING_LOAD = textwrap.dedent("""
    import os, sys
    from dockyard.oci import Digest
    from dockyard.store import open_store, LEASE_LABEL, SNAPSHOT, LayerRecord
    store = open_store(sys.argv[1], snapshotter=sys.argv[2])
    lease = store.leases.create()
    sn = store.snapshotter
    blob = store.ingest(b"layer blob", lease=lease.id)
    # layer 0 finished
    diff0 = Digest.from_bytes(b"diff0")
    sn.prepare("extract-0", labels={LEASE_LABEL: lease.id})
    (sn.fs_dir("extract-0") / "f").write_bytes(b"0")
    sn.commit(str(diff0), "extract-0")
    store.leases.add_resource(lease.id, SNAPSHOT, str(diff0))
    store.metadata.put_layer(LayerRecord(diff0, diff0, None, 1, blob.digest))
    # layer 1 half-extracted, a blob half-written
    sn.prepare("extract-1", str(diff0), labels={LEASE_LABEL: lease.id})
    (sn.fs_dir("extract-1") / "half").write_bytes(b"x" * 1000)
    w = store.content.open_writer(ref="half-blob")
    w.write(b"partial")
    print("ready", flush=True)
    os.kill(os.getpid(), 9)
""")


def test_crash_during_load_is_cleaned_at_start(data_root, request):
    require_root()
    for driver in ("overlay", "native"):
        root = data_root / f"store-{driver}"
        with open_store(root, snapshotter=driver) as before:
            kept = make_image(before, [{"k": b"1"}], tag="docker.io/library/kept:1")
        proc = subprocess.run([sys.executable, "-c", _CRASHING_LOAD, str(root), driver],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        assert "ready" in proc.stdout
        # the leftovers are really there before the restart
        assert len(os.listdir(root / "content" / "ingest")) == 2  # .lock + the half blob
        with open_store(root, snapshotter=driver, cleanup=False) as raw:
            assert len(raw.leases.list()) == 1
            assert not owner_alive(raw.leases.list()[0].owner)
            assert len(list(raw.snapshotter.walk())) == 3
        # restart: consistent, the half image invisible, nothing referenced lost
        with open_store(root, snapshotter=driver) as after:
            assert after.leases.list() == []
            assert {i.name for i in after.snapshotter.walk()} == {str(c) for c in kept.layers}
            assert [str(layer.chain_id) for layer in after.metadata.layers()] == [str(c) for c in kept.layers]
            assert _blobs(after) == {str(kept.id)} | {
                str(after.metadata.get_layer(c).digest) for c in kept.layers}
            assert os.listdir(root / "content" / "ingest") == [".lock"]
            assert after.metadata.image_ids() == [kept.id]
            assert after.content.check().ok


def test_owner_tracking():
    assert owner_alive(current_owner())
    assert owner_alive(None)
    proc = subprocess.run([sys.executable, "-c", "from dockyard.store.leases import current_owner as c; print(c())"],
                          capture_output=True, text=True, check=True)
    assert not owner_alive(proc.stdout.strip())
    boot, pid, start = current_owner().split("/")
    assert not owner_alive(f"another-boot/{pid}/{start}")


def test_open_store_layout_and_bad_driver(data_root):
    from dockyard.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="unknown snapshotter"):
        open_store(data_root / "s", snapshotter="zfs")
    with open_store(data_root / "s", snapshotter="native") as store:
        blob = store.ingest(b"x")
        assert store.content.path(blob.digest) == data_root / "s" / "content" / "blobs" / "sha256" / blob.digest.encoded
        assert (data_root / "s" / "metadata.db").exists()
        assert store.snapshotter.root == data_root / "s" / "snapshots" / "native"
        # other layers add their own tables to the same database
        store.db.migrate("containers-test", ["CREATE TABLE c (id TEXT PRIMARY KEY)"])
        assert store.db.versions()["containers-test"] == 1


def test_discard_renames_at_once_and_deletes_in_the_background(data_root):
    root = data_root / "s"
    with open_store(root, snapshotter="native") as store:
        tree = root / "containers" / "abc"
        (tree / "rootfs" / "etc").mkdir(parents=True)
        for i in range(100):
            (tree / "rootfs" / "etc" / f"f{i}").write_bytes(b"x")
        store.discard(tree)
        assert not tree.exists()  # gone for readers when discard returns
        store.discard(tree)  # a missing path is fine
    # close() waited for the deletion
    assert os.listdir(root / "trash") == []
    # trash a crash left behind is emptied by the next open
    (root / "trash" / "leftover" / "d").mkdir(parents=True)
    with open_store(root, snapshotter="native") as store:
        pass
    assert os.listdir(root / "trash") == []
