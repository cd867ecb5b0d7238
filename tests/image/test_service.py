"""ImageService against a real store: import, load/save, tags, removal,
commit, changes, export, bootstrap, and failure leaving nothing behind."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import FailedPrecondition, InvalidArgument, NotFound
from dockyard.image import ApplyOptions, ChangeKind, ImageService, ImageUser
from dockyard.image.bootstrap import bootstrap_busybox, write_busybox_rootfs
from dockyard.oci.digest import Digest
from dockyard.oci.image import format_time
from dockyard.store import mounted, open_store

from .conftest import classic_save_tar, layer_tar
from .malicious import CORPUS


def _target(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path


def _snapshots(store) -> list[str]:
    return sorted(info.name for info in store.snapshotter.walk())


def _assert_empty(store) -> None:
    """No image, tag, layer or snapshot; after GC, no blob either."""
    assert store.metadata.image_ids() == []
    assert store.metadata.refs() == []
    assert store.metadata.layers() == []
    assert _snapshots(store) == []
    store.collect()
    assert list(store.content.walk()) == []
    assert [p for p in (store.root / "content" / "ingest").iterdir() if p.name != ".lock"] == []


BASE = {"bin": None, "bin/tool": b"#!tool", "etc": None, "etc/passwd": b"root:x:0:0::/root:/bin/sh\n",
        "etc/motd": b"hello", "data": None, "data/a": b"a", "data/b": b"b"}
TOP = {"etc": None, "etc/.wh.motd": b"", "data": None, "data/.wh..wh..opq": b"", "data/c": b"c", "new": b"new"}


def test_import_with_changes(service: ImageService, store):
    tar = gzip.compress(layer_tar(BASE))
    image_id = service.import_image(io.BytesIO(tar), changes=['CMD ["/bin/tool", "x"]', "ENV A=1 B=two",
                                                               "WORKDIR /data", "EXPOSE 80", "LABEL k=v"],
                                    reference="imported:v1", message="from test")
    info = service.inspect("imported:v1")
    assert info["Id"] == str(image_id)
    assert info["RepoTags"] == ["imported:v1"]
    assert info["Config"]["Cmd"] == ["/bin/tool", "x"]
    assert info["Config"]["Env"] == ["A=1", "B=two"]
    assert info["Config"]["WorkingDir"] == "/data"
    assert info["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert info["Config"]["Labels"] == {"k": "v"}
    assert info["Comment"] == "from test"
    assert info["Size"] == sum(len(v) for v in BASE.values() if v)
    layer = store.metadata.get_layer(store.metadata.get_image(image_id).layers[0])
    # the blob is stored as it came (gzip), the diff_id is of the tar inside
    assert layer.digest == Digest.from_bytes(tar) and layer.diff_id != layer.digest
    assert layer.media_type.endswith("tar+gzip")
    upper = store.snapshotter.fs_dir(str(layer.chain_id))
    assert (upper / "etc" / "motd").read_bytes() == b"hello"
    history = service.history(str(image_id))
    assert [h["Comment"] for h in history] == ["from test"] and history[0]["Tags"] == ["imported:v1"]
    # by ID, short ID and full ref
    assert service.resolve(image_id.encoded[:12]) == image_id
    assert service.resolve("docker.io/library/imported:v1") == image_id


def test_import_bad_change_reads_nothing(service: ImageService, store):
    with pytest.raises(InvalidArgument, match="^run is not a valid change command$"):
        service.import_image(io.BytesIO(layer_tar(BASE)), changes=["RUN rm -rf /"])
    _assert_empty(store)


@pytest.mark.parametrize("case", [c for c in CORPUS if c.options == ApplyOptions()], ids=lambda c: c.name)
def test_malicious_import_leaves_no_partial_layer(service: ImageService, store, tmp_path: Path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(InvalidArgument):
        service.import_image(io.BytesIO(case.tar(str(outside))), reference="evil:latest")
    assert list(outside.iterdir()) == []
    _assert_empty(store)


def test_load_classic_archive_and_whiteouts(service: ImageService, store, data_root: Path):
    base, top = layer_tar(BASE), layer_tar(TOP)
    archive = classic_save_tar([([base], {"Cmd": ["sh"]}, ["base:1"]),
                                ([base, top], {"Cmd": ["cat", "/new"], "Env": ["X=1"]}, ["top:1", "top:latest"])])
    result = service.load(io.BytesIO(archive))
    assert result.messages == ("Loaded image: base:1", "Loaded image: top:1", "Loaded image: top:latest")
    top_id = service.resolve("top")
    assert service.get_config(top_id).config.env == ("X=1",)
    record = store.metadata.get_image(top_id)
    assert len(record.layers) == 2
    assert record.layers[0] == store.metadata.get_image(service.resolve("base:1")).layers[0]  # shared, once
    upper = store.snapshotter.fs_dir(str(record.layers[1]))
    motd = (upper / "etc" / "motd").lstat()
    assert stat.S_ISCHR(motd.st_mode) and motd.st_rdev == 0
    assert os.getxattr(upper / "data", "trusted.overlay.opaque") == b"y"
    # the merged view, as a container would see it
    view = "view-test"
    mounts = store.snapshotter.view(view, str(record.layers[1]))
    try:
        with mounted(mounts, _target(data_root / "rootfs")) as root:
            root = Path(root)
            assert not (root / "etc" / "motd").exists()
            assert sorted(os.listdir(root / "data")) == ["c"]
            assert (root / "new").read_bytes() == b"new"
            assert (root / "etc" / "passwd").exists()
    finally:
        store.snapshotter.remove(view)
    # loading again changes nothing and says the same
    again = service.load(io.BytesIO(archive))
    assert [i.image_id for i in again.images] == [i.image_id for i in result.images]
    assert len(store.metadata.layers()) == 2


def test_load_rejects_wrong_diff_id(service: ImageService, store):
    archive = classic_save_tar([([layer_tar(BASE)], {}, ["x:1"])])
    # swap the layer content for another tar of the same size
    bad = archive.replace(b"root:x:0:0::/root:/bin/sh\n", b"toor:x:0:0::/root:/bin/sh\n")
    with pytest.raises(InvalidArgument, match="diff_id"):
        service.load(io.BytesIO(bad))
    _assert_empty(store)


@pytest.mark.parametrize("case", [c for c in CORPUS if c.name in (
    "dotdot", "symlink-then-write-absolute", "hardlink-through-symlink", "huge-declared-size", "truncated")],
    ids=lambda c: c.name)
def test_malicious_layer_in_archive(service: ImageService, store, tmp_path: Path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = classic_save_tar([([layer_tar(BASE), case.tar(str(outside))], {}, ["evil:1"])])
    with pytest.raises(InvalidArgument):
        service.load(io.BytesIO(archive))
    assert list(outside.iterdir()) == []
    _assert_empty(store)


def test_save_load_round_trip(service: ImageService, store, data_root: Path):
    archive = classic_save_tar([([layer_tar(BASE)], {"Cmd": ["sh"]}, ["one:1"]),
                                ([layer_tar(BASE), layer_tar(TOP)], {"Cmd": ["x"]}, ["two:1", "two:2"])])
    loaded = service.load(io.BytesIO(archive))
    out = io.BytesIO()
    service.save(["one:1", "two"], out)
    data = out.getvalue()
    again = io.BytesIO()
    service.save(["one:1", "two"], again)
    assert again.getvalue() == data  # deterministic bytes
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
    assert {"index.json", "manifest.json", "oci-layout", "repositories"} <= set(names)
    assert sorted(t for m in manifest for t in m["RepoTags"]) == ["one:1", "two:1", "two:2"]
    assert sorted(d["annotations"]["io.containerd.image.name"] for d in index["manifests"]) == [
        "docker.io/library/one:1", "docker.io/library/two:1", "docker.io/library/two:2"]

    other = open_store(data_root / "other")
    try:
        result = ImageService(other).load(io.BytesIO(data))
        assert sorted(i.image_id for i in result.images) == sorted(i.image_id for i in loaded.images)
        assert sorted(t for i in result.images for t in i.tags) == ["one:1", "two:1", "two:2"]
        # and the OCI layout form, with only index.json to go by
        layout = data_root / "layout"
        service.save_oci_layout(["two:2"], layout)
        third = open_store(data_root / "third")
        try:
            res = ImageService(third).load_oci_layout(layout)
            assert res.images[0].image_id == service.resolve("two:2")
            assert res.images[0].tags == ("two:2",)
        finally:
            third.close()
    finally:
        other.close()


def test_load_tar_of_oci_layout(service: ImageService, data_root: Path):
    """A plain OCI layout packed as a tar (no manifest.json): names come
    from the index annotations."""
    service.load(io.BytesIO(classic_save_tar([([layer_tar(BASE), layer_tar(TOP)], {"Cmd": ["x"]}, ["lay:1"])])))
    layout = data_root / "layout"
    service.save_oci_layout(["lay:1"], layout)
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        tar.add(layout, arcname=".")
    other = open_store(data_root / "other")
    try:
        result = ImageService(other).load(io.BytesIO(packed.getvalue()))
        assert result.images[0].image_id == service.resolve("lay:1") and result.images[0].tags == ("lay:1",)
    finally:
        other.close()


def test_save_by_id_has_no_tags(service: ImageService):
    service.load(io.BytesIO(classic_save_tar([([layer_tar(BASE)], {}, ["a:1"])])))
    out = io.BytesIO()
    service.save([service.resolve("a:1").encoded[:12]], out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] is None


def test_tags_and_remove(service: ImageService, store):
    base, top = layer_tar(BASE), layer_tar(TOP)
    service.load(io.BytesIO(classic_save_tar([([base], {}, ["base:1"]), ([base, top], {}, ["top:1"])])))
    base_id, top_id = service.resolve("base:1"), service.resolve("top:1")
    service.tag("top:1", "registry.local:5000/team/top:v2")
    assert sorted(service.inspect(str(top_id))["RepoTags"]) == ["registry.local:5000/team/top:v2", "top:1"]
    with pytest.raises(InvalidArgument):
        service.tag("top:1", "x@sha256:" + "0" * 64)
    with pytest.raises(InvalidArgument, match="^refusing to create an ambiguous tag using digest algorithm as name$"):
        service.tag("top:1", "sha256:" + top_id.encoded)
    with pytest.raises(NotFound, match="No such image: nope"):
        service.remove("nope")

    # by ID with two tags: must be forced
    with pytest.raises(FailedPrecondition, match="referenced in multiple repositories"):
        service.remove(str(top_id))
    # by tag: only the tag goes
    assert service.remove("registry.local:5000/team/top:v2") == [{"Untagged": "registry.local:5000/team/top:v2"}]
    # a running container blocks removal by ID; a stopped one unless forced
    running = lambda image: [ImageUser("c" * 64, True)] if image == top_id else []  # noqa: E731
    stopped = lambda image: [ImageUser("d" * 64, False)] if image == top_id else []  # noqa: E731
    with pytest.raises(FailedPrecondition, match="running container cccccccccccc"):
        service.remove(str(top_id), force=True, in_use=running)
    with pytest.raises(FailedPrecondition, match="stopped container dddddddddddd"):
        service.remove(str(top_id), in_use=stopped)
    # by its last tag while a container uses it: refused unless forced (it
    # would leave the image dangling under the container); forced: untagged, kept
    with pytest.raises(FailedPrecondition) as refused:
        service.remove("top:1", in_use=stopped)
    assert str(refused.value) == (f'conflict: unable to remove repository reference "top:1" (must force) - container '
                                  f"dddddddddddd is using its referenced image {top_id.short}")
    assert service.remove("top:1", force=True, in_use=stopped) == [{"Untagged": "top:1"}]
    assert store.metadata.has_image(top_id)

    top_layers = store.metadata.get_image(top_id).layers
    blob_top = store.metadata.get_layer(top_layers[1]).digest
    records = service.remove(str(top_id), force=True, in_use=stopped)
    assert records == [{"Deleted": str(top_id)}, {"Deleted": str(top_layers[1])}]
    # the shared base layer stays for base:1; the top layer is gone everywhere
    assert _snapshots(store) == [str(top_layers[0])]
    assert not store.content.exists(blob_top) and not store.content.exists(top_id)
    assert store.content.exists(base_id)

    records = service.remove("base:1")
    assert records == [{"Untagged": "base:1"}, {"Deleted": str(base_id)}, {"Deleted": str(top_layers[0])}]
    _assert_empty(store)


def _container(store, service: ImageService, image: str, key: str):
    parent = service.top_layer(image)
    return store.snapshotter.prepare(key, str(parent))


def test_commit_changes_export(service: ImageService, store, data_root: Path):
    service.load(io.BytesIO(classic_save_tar([([layer_tar(BASE)], {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
                                                ["base:1"])])))
    key = "container-abc"
    mounts = _container(store, service, "base:1", key)
    with mounted(mounts, _target(data_root / "rootfs")) as root:
        root = Path(root)
        (root / "etc" / "motd").unlink()
        (root / "data" / "a").write_bytes(b"changed")
        (root / "added").mkdir()
        (root / "added" / "file").write_bytes(b"x" * 1000)
        os.symlink("/bin/tool", root / "added" / "link")
    found = {(c.path, c.kind) for c in service.changes(key)}
    assert found == {("/etc", ChangeKind.MODIFIED), ("/etc/motd", ChangeKind.DELETED),
                     ("/data", ChangeKind.MODIFIED), ("/data/a", ChangeKind.MODIFIED),
                     ("/added", ChangeKind.ADDED), ("/added/file", ChangeKind.ADDED),
                     ("/added/link", ChangeKind.ADDED)}

    exported = io.BytesIO()
    service.export(key, exported)
    with tarfile.open(fileobj=io.BytesIO(exported.getvalue())) as tar:
        names = set(tar.getnames())
        assert "etc/motd" not in names and "etc/passwd" in names and "added/file" in names
        assert tar.extractfile("data/a").read() == b"changed"
        assert not [n for n in names if ".wh." in n]

    base_id = service.resolve("base:1")
    new_id = service.commit(key, base_image="base:1", config=service.get_config(base_id).config,
                            changes=["ENV EXTRA=1", 'CMD ["cat", "/added/file"]'], author="tester",
                            comment="a commit", created_by="sh -c edit", container_id="f" * 64,
                            reference="committed:1")
    info = service.inspect("committed:1")
    assert info["Id"] == str(new_id) and info["Parent"] == str(base_id)
    assert info["Config"]["Env"] == ["PATH=/bin", "EXTRA=1"]
    assert info["Config"]["Cmd"] == ["cat", "/added/file"]
    assert info["Author"] == "tester" and info["Container"] == "f" * 64
    assert info["Comment"] == "a commit"  # docker commit -m: the config's comment
    assert len(info["RootFS"]["Layers"]) == 2
    history = service.history("committed:1")
    assert [h["CreatedBy"] for h in history] == ["sh -c edit", "layer 0"]
    assert history[0]["Comment"] == "a commit"
    assert history[0]["Id"] == str(new_id) and history[1]["Id"] == str(base_id)
    assert history[0]["Size"] == len(b"changed") + 1000 + len("/bin/tool")
    # the new image, run as a fresh container, shows the changes
    store.snapshotter.remove(key)
    mounts = _container(store, service, "committed:1", "container-2")
    with mounted(mounts, _target(data_root / "rootfs2")) as root:
        root = Path(root)
        assert not (root / "etc" / "motd").exists()
        assert (root / "data" / "a").read_bytes() == b"changed"
        assert os.readlink(root / "added" / "link") == "/bin/tool"
    store.snapshotter.remove("container-2")
    # the base cannot go while the child image exists, even forced, and that
    # conflict is reported before the soft one of its two names
    service.tag("base:1", "other:1")
    for force in (False, True):
        with pytest.raises(FailedPrecondition) as refused:
            service.remove(str(base_id), force=force)
        assert str(refused.value) == (f"conflict: unable to delete {base_id.short} (cannot be forced) - image has "
                                      "dependent child images")
    service.remove("other:1")
    records = service.remove("committed:1")
    assert {"Deleted": str(new_id)} in records
    assert {"Deleted": str(base_id)} not in records  # still tagged base:1


def _layer_names(store, service: ImageService, image: str) -> list[str]:
    """What the image's top layer holds (its own dir), relative paths."""
    top = Path(store.snapshotter.fs_dir(str(service.top_layer(image))))
    return sorted(str(p.relative_to(top)) for p in top.rglob("*"))


def test_commit_and_changes_leave_out_the_runtime_mount_points(service: ImageService, store, data_root: Path):
    """The empty files a runtime makes to bind-mount /etc/hostname, hosts and
    resolv.conf on are not the container's changes and not in its commit;
    /etc goes with them when nothing else changed there."""
    service.load(io.BytesIO(classic_save_tar([([layer_tar(BASE)], {"Cmd": ["sh"]}, ["base:1"])])))
    stubs = ("hostname", "hosts", "resolv.conf")

    def container(key: str, write) -> None:
        mounts = _container(store, service, "base:1", key)
        with mounted(mounts, _target(data_root / key)) as root:
            for name in stubs:
                (Path(root) / "etc" / name).touch()
            write(Path(root))

    container("only-stubs", lambda root: None)
    assert service.changes("only-stubs") == []
    service.commit("only-stubs", base_image="base:1", reference="stubs:1")
    assert _layer_names(store, service, "stubs:1") == []

    def user_writes(root: Path) -> None:
        (root / "etc" / "motd").write_text("mine")
        (root / "etc" / "hosts").write_text("10.0.0.1 db\n")  # written while stopped: a real change

    container("written", user_writes)
    assert {(c.path, c.kind) for c in service.changes("written")} == {
        ("/etc", ChangeKind.MODIFIED), ("/etc/motd", ChangeKind.MODIFIED), ("/etc/hosts", ChangeKind.ADDED)}
    service.commit("written", base_image="base:1", reference="written:1")
    assert _layer_names(store, service, "written:1") == ["etc", "etc/hosts", "etc/motd"]

    container("chmodded", lambda root: (root / "etc").chmod(0o700))
    assert [(c.path, c.kind) for c in service.changes("chmodded")] == [("/etc", ChangeKind.MODIFIED)]


def test_mount_point_stubs_in_plain_directories(tmp_path: Path):
    """The same rule for snapshotters without overlay (a full copy of the
    image's tree beside the container's)."""
    from dockyard.image import diff

    image, own = tmp_path / "image", tmp_path / "own"
    for tree in (image, own):
        (tree / "etc").mkdir(parents=True)
        (tree / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
        os.utime(tree / "etc" / "passwd", (1, 1))
    os.utime(image / "etc", (1, 1))
    (own / "etc" / "hosts").touch()
    (own / "etc" / "resolv.conf").write_text("nameserver 10.0.0.1\n")
    skip = diff.mount_point_stubs(own, [image])
    assert skip == {b"etc/hosts"}
    assert [(c.path, c.kind) for c in diff.diff_dirs(image, own, skip=skip)] == [
        ("/etc", ChangeKind.MODIFIED), ("/etc/resolv.conf", ChangeKind.ADDED)]
    (own / "etc" / "resolv.conf").unlink()
    assert diff.diff_dirs(image, own, skip=diff.mount_point_stubs(own, [image])) == []


def test_commit_prune_removes_untagged_parent(service: ImageService, store, data_root: Path):
    service.load(io.BytesIO(classic_save_tar([([layer_tar(BASE)], {}, ["base:1"])])))
    key = "c1"
    mounts = _container(store, service, "base:1", key)
    with mounted(mounts, _target(data_root / "rootfs")) as root:
        (Path(root) / "x").write_text("x")
    child = service.commit(key, base_image="base:1", reference="child:1")
    store.snapshotter.remove(key)
    service.untag("base:1")
    records = service.remove("child:1")
    assert records[0] == {"Untagged": "child:1"} and {"Deleted": str(child)} in records
    _assert_empty(store)


def test_commit_stores_the_blob_it_unpacked(service: ImageService, store, data_root: Path):
    """One pass: the stored blob is the tar of the upper dir, its digest is
    the diff_id, and the new snapshot holds what the blob says."""
    service.load(io.BytesIO(classic_save_tar([([layer_tar(BASE)], {}, ["base:1"])])))
    key = "c-one-pass"
    _container(store, service, "base:1", key)
    upper = store.snapshotter.upper_dir(key)
    big = os.urandom(3 << 20)  # several pipe chunks
    (upper / "big").write_bytes(big)
    (upper / "many").mkdir()
    for i in range(50):
        (upper / "many" / f"f{i}").write_bytes(str(i).encode() * 100)
    child = service.commit(key, base_image="base:1", reference="child:1")
    store.snapshotter.remove(key)
    record = store.metadata.get_image(child)
    layer = store.metadata.get_layer(record.layers[-1])
    assert layer.digest == layer.diff_id
    assert str(layer.diff_id) == "sha256:" + hashlib.sha256(store.content.read_bytes(layer.digest)).hexdigest()
    with tarfile.open(fileobj=store.content.open(layer.digest)) as tar:
        assert tar.extractfile("big").read() == big
        assert tar.extractfile("many/f7").read() == b"7" * 100
    layer_dir = store.snapshotter.fs_dir(str(layer.chain_id))
    assert (layer_dir / "big").read_bytes() == big
    assert sorted(os.listdir(layer_dir / "many")) == sorted(f"f{i}" for i in range(50))
    assert layer.size == len(big) + sum(len(str(i)) * 100 for i in range(50))


def test_commit_failing_while_writing_leaves_nothing(service: ImageService, store, data_root: Path):
    service.load(io.BytesIO(classic_save_tar([([layer_tar(BASE)], {}, ["base:1"])])))
    before_layers = store.metadata.layers()
    key = "c-bad-upper"
    _container(store, service, "base:1", key)
    upper = store.snapshotter.upper_dir(key)
    (upper / "a-big").write_bytes(os.urandom(2 << 20))
    (upper / "z-metacopy").write_bytes(b"")
    # a metacopy-only file cannot be written into a layer: the producer fails
    # after the applier has already unpacked the first file
    os.setxattr(upper / "z-metacopy", "trusted.overlay.metacopy", b"")
    with pytest.raises(FailedPrecondition, match="metacopy"):
        service.commit(key, base_image="base:1", reference="child:1")
    store.snapshotter.remove(key)
    assert _snapshots(store) == [str(c) for c in store.metadata.get_image(service.resolve("base:1")).layers]
    assert store.metadata.layers() == before_layers
    assert not service.exists("child:1")
    assert [p for p in (store.root / "content" / "ingest").iterdir() if p.name != ".lock"] == []


def test_commit_failing_while_applying_leaves_nothing(store, data_root: Path):
    service = ImageService(store, allow_devices=False)
    try:
        service.load(io.BytesIO(classic_save_tar([([layer_tar(BASE)], {}, ["base:1"])])))
        key = "c-device"
        _container(store, service, "base:1", key)
        upper = store.snapshotter.upper_dir(key)
        (upper / "a-big").write_bytes(os.urandom(40 << 20))  # more than the pipe holds
        os.mknod(upper / "b-null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        (upper / "c-after").write_bytes(os.urandom(1 << 20))
        with pytest.raises(InvalidArgument, match="device nodes are not allowed"):
            service.commit(key, base_image="base:1", reference="child:1")
        store.snapshotter.remove(key)
        assert len(_snapshots(store)) == 1
        assert not service.exists("child:1")
        store.collect()
        assert len(list(store.content.walk())) == 2  # the base's layer and config
        assert [p for p in (store.root / "content" / "ingest").iterdir() if p.name != ".lock"] == []
    finally:
        service.close()


def test_bootstrap_busybox_is_deterministic(service: ImageService, store, data_root: Path, tmp_path: Path):
    first = bootstrap_busybox(service)
    info = service.inspect("busybox")
    assert info["Config"]["Cmd"] == ["sh"] and info["RepoTags"] == ["busybox:latest"]
    # Created when the busybox binary was, to the second.
    assert info["Created"] == format_time(os.stat("/bin/busybox").st_mtime_ns // 1_000_000_000)
    assert service.history("busybox")[0]["Created"] == os.stat("/bin/busybox").st_mtime_ns // 1_000_000_000
    other = open_store(data_root / "other")
    try:
        assert bootstrap_busybox(ImageService(other)).image_id == first.image_id
    finally:
        other.close()
    a, b = io.BytesIO(), io.BytesIO()
    write_busybox_rootfs(a)
    write_busybox_rootfs(b)
    assert a.getvalue() == b.getvalue()
    layer = store.snapshotter.fs_dir(str(service.top_layer("busybox")))
    assert os.path.samefile(layer / "bin" / "sh", layer / "bin" / "busybox")
    assert stat.S_IMODE((layer / "tmp").stat().st_mode) == 0o1777
    assert "nobody:x:65534" in (layer / "etc" / "passwd").read_text()


def test_progress_events(service: ImageService):
    events = []
    service.load(io.BytesIO(classic_save_tar([([layer_tar({"big": os.urandom(6 << 20)})], {}, ["p:1"])])),
                 progress=events.append)
    statuses = {e.status for e in events}
    assert {"Loading blob", "Loading layer"} <= statuses
    layer_events = [e for e in events if e.status == "Loading layer"]
    assert layer_events[-1].current >= 6 << 20


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DOCKYARD_TEST_DEBOOTSTRAP"),
                    reason="debootstrap downloads ~40 MB from a Debian mirror; set DOCKYARD_TEST_DEBOOTSTRAP=1")
def test_bootstrap_debian(service: ImageService, store, data_root: Path):
    from testlib import need_tool
    from dockyard.image.bootstrap import bootstrap_debian

    need_tool("debootstrap")
    image_id = bootstrap_debian(service, "bookworm")
    assert service.inspect("debian:bookworm")["Id"] == str(image_id)
    layer = store.snapshotter.fs_dir(str(service.top_layer("debian:bookworm")))
    assert (layer / "etc" / "debian_version").read_text().startswith("12")
    assert (layer / "bin" / "bash").exists() or (layer / "usr" / "bin" / "bash").exists()


def test_service_limits_and_device_policy(store, data_root: Path):
    from dockyard.image import TarLimits

    strict = ImageService(store, allow_devices=False, limits=TarLimits(max_total_size=1 << 20))
    big = classic_save_tar([([layer_tar({"big": os.urandom(2 << 20)})], {}, ["big:1"])])
    with pytest.raises(InvalidArgument, match="limit"):
        strict.load(io.BytesIO(big))
    _assert_empty(store)
    device = tarfile.TarInfo("dev/mem")
    device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 1
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(device)
    with pytest.raises(InvalidArgument, match="device nodes are not allowed"):
        strict.load(io.BytesIO(classic_save_tar([([buf.getvalue()], {}, ["dev:1"])])))
    _assert_empty(store)
    strict.close()


@pytest.mark.parametrize("workers", [1, 2], ids=["in-order", "concurrent"])
def test_layer_root_metadata_survives_stacking(store, workers: int):
    """A layer's own root (mode, opaque marker) is kept whether it was
    unpacked in place or loose and then stacked."""
    root_entry = tarfile.TarInfo("./")
    root_entry.type, root_entry.mode, root_entry.mtime = tarfile.DIRTYPE, 0o711, 1_234_567_890
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(root_entry)
        opaque = tarfile.TarInfo("./.wh..wh..opq")
        tar.addfile(opaque)
        data = b"top"
        item = tarfile.TarInfo("./only")
        item.size = len(data)
        tar.addfile(item, io.BytesIO(data))
    service = ImageService(store, workers=workers)
    service.load(io.BytesIO(classic_save_tar([([layer_tar(BASE), buf.getvalue()], {}, ["rooted:1"])])))
    top = store.snapshotter.fs_dir(str(service.top_layer("rooted:1")))
    st = top.stat()
    assert stat.S_IMODE(st.st_mode) == 0o711 and st.st_mtime == 1_234_567_890
    assert os.getxattr(top, "trusted.overlay.opaque") == b"y"
    assert (top / "only").read_bytes() == b"top"
    service.close()


def test_concurrent_and_in_order_unpacking_agree(data_root: Path):
    """Byte for byte and stat for stat, both unpack paths make the same layers."""
    archive = classic_save_tar([([layer_tar(BASE), layer_tar(TOP), layer_tar({"etc": None, "etc/new": b"n"})],
                                 {}, ["agree:1"])])

    def layer_trees(workers: int) -> list[dict]:
        store = open_store(data_root / f"store-{workers}")
        try:
            service = ImageService(store, workers=workers)
            service.load(io.BytesIO(archive))
            trees = []
            for chain in store.metadata.get_image(service.resolve("agree:1")).layers:
                top = store.snapshotter.fs_dir(str(chain))
                found = {}
                for dirpath, dirnames, filenames in os.walk(top):
                    for name in [""] + dirnames + filenames:
                        path = Path(dirpath) / name
                        st = path.lstat()
                        rel = str(path.relative_to(top))
                        # these tars have no "./" entry: the root's time is just when it was made
                        found[rel] = (
                            st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns if rel != "." else None, st.st_rdev,
                            sorted(os.listxattr(path, follow_symlinks=False)),
                            path.read_bytes() if stat.S_ISREG(st.st_mode) else None)
                trees.append(found)
            service.close()
            return trees
        finally:
            store.close()

    assert layer_trees(1) == layer_trees(2)


def test_native_snapshotter(data_root: Path):
    """The same operations over the copying snapshotter: whiteouts are
    carried out, commit diffs two trees."""
    store = open_store(data_root / "native", snapshotter="native")
    try:
        service = ImageService(store)
        service.load(io.BytesIO(classic_save_tar([([layer_tar(BASE), layer_tar(TOP)], {"Cmd": ["sh"]},
                                                   ["nat:1"])])))
        top = store.snapshotter.fs_dir(str(service.top_layer("nat:1")))
        assert not (top / "etc" / "motd").exists() and (top / "etc" / "passwd").exists()
        assert sorted(os.listdir(top / "data")) == ["c"] and (top / "new").read_bytes() == b"new"
        key = "native-container"
        store.snapshotter.prepare(key, str(service.top_layer("nat:1")))
        rootfs = store.snapshotter.fs_dir(key)
        (rootfs / "new").unlink()
        (rootfs / "added").write_text("a")
        assert {(c.path, c.kind) for c in service.changes(key)} == {
            ("/new", ChangeKind.DELETED), ("/added", ChangeKind.ADDED)}
        exported = io.BytesIO()
        service.export(key, exported)
        with tarfile.open(fileobj=io.BytesIO(exported.getvalue())) as tar:
            names = set(tar.getnames())
        assert "added" in names and "new" not in names and "etc/passwd" in names
        committed_id = service.commit(key, base_image="nat:1", reference="nat:2")
        store.snapshotter.remove(key)
        top2 = service.top_layer("nat:2")
        committed = store.snapshotter.fs_dir(str(top2))
        assert (committed / "added").read_text() == "a" and not (committed / "new").exists()
        assert service.remove("nat:2") == [{"Untagged": "nat:2"}, {"Deleted": str(committed_id)},
                                           {"Deleted": str(top2)}]
        assert service.exists("nat:1")
        service.close()
    finally:
        store.close()


def test_compressed_archive_and_concurrent_loads(store):
    """docker load takes gzip'd archives; two loads of one archive at once
    both succeed and leave one copy of everything."""
    import threading

    archive = gzip.compress(classic_save_tar([([layer_tar(BASE), layer_tar(TOP)], {}, ["same:1"]),
                                              ([layer_tar(BASE)], {}, ["same:base"])]))
    results, errors = [], []

    def load() -> None:
        try:
            results.append(ImageService(store).load(io.BytesIO(archive)))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({tuple(i.image_id for i in r.images) for r in results}) == 1
    assert len(store.metadata.image_ids()) == 2 and len(store.metadata.layers()) == 2
    snapshots = _snapshots(store)
    assert len(snapshots) == 2 and not [s for s in snapshots if s.startswith("extract-")]
    store.collect()
    assert len(list(store.content.walk())) == 4  # two layer blobs, two configs
