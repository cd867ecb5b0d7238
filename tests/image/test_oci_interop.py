"""OCI layouts against skopeo and umoci: what Dockyard writes they read
with matching digests, and what they write Dockyard loads."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from testlib import need_tool
from dockyard.image import ImageService
from dockyard.image.archive import oci_manifest
from dockyard.image.bootstrap import bootstrap_busybox
from dockyard.oci.digest import Digest
from dockyard.store import mounted, open_store


def run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed: {proc.stderr}")
    return proc.stdout


@pytest.fixture
def images(service: ImageService, store, data_root: Path):
    """busybox:latest and child:1, a commit that deletes and adds files."""
    bootstrap_busybox(service)
    key = "c-interop"
    mounts = store.snapshotter.prepare(key, str(service.top_layer("busybox")))
    target = data_root / "rootfs"
    target.mkdir()
    with mounted(mounts, target) as root:
        (root / "etc" / "group").unlink()
        (root / "hello").write_text("from dockyard\n")
    service.commit(key, base_image="busybox", changes=['CMD ["cat", "/hello"]'], reference="child:1")
    store.snapshotter.remove(key)
    return service


def _manifest_digest(service: ImageService, name: str) -> Digest:
    images = service._save_images([name])
    return Digest.from_bytes(oci_manifest(images[0]).to_bytes())


def test_skopeo_reads_dockyard_layout(images: ImageService, store, data_root: Path):
    skopeo = need_tool("skopeo")
    layout = data_root / "layout"
    images.save_oci_layout(["busybox", "child:1"], layout)
    raw = run(skopeo, "inspect", "--raw", f"oci:{layout}:1")
    assert Digest.from_bytes(raw.encode()) == _manifest_digest(images, "child:1")
    info = json.loads(run(skopeo, "inspect", f"oci:{layout}:1"))
    record = store.metadata.get_image(images.resolve("child:1"))
    blobs = [str(store.metadata.get_layer(c).digest) for c in record.layers]
    assert info["Layers"] == blobs
    config = json.loads(run(skopeo, "inspect", "--config", f"oci:{layout}:1"))
    assert config["config"]["Cmd"] == ["cat", "/hello"]
    # a copy to a plain directory holds byte-identical blobs
    out = data_root / "copied"
    run(skopeo, "copy", f"oci:{layout}:1", f"dir:{out}")
    for digest in blobs + [str(images.resolve("child:1"))]:
        data = (out / digest.partition(":")[2]).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest


def test_skopeo_reads_dockyard_save_tar(images: ImageService, data_root: Path):
    skopeo = need_tool("skopeo")
    tar = data_root / "save.tar"
    with open(tar, "wb") as f:
        images.save(["child:1"], f)
    info = json.loads(run(skopeo, "inspect", f"docker-archive:{tar}"))
    assert info["Layers"][-1] == str(images.get_config("child:1").rootfs.diff_ids[-1])
    # and skopeo's own OCI layout of it (skopeo gzips the layers and
    # re-serialises the config, so the ID differs) loads back with the same
    # layers and config
    out = data_root / "from-skopeo"
    run(skopeo, "copy", f"docker-archive:{tar}", f"oci:{out}:child")
    other = open_store(data_root / "other")
    try:
        service = ImageService(other)
        result = service.load_oci_layout(out, ref_name="child", name="child:again")
        loaded = service.get_config(result.images[0].image_id)
        assert loaded.rootfs.diff_ids == images.get_config("child:1").rootfs.diff_ids
        assert loaded.config.cmd == ("cat", "/hello")
        assert result.images[0].tags == ("child:again",)
    finally:
        other.close()


def test_umoci_unpacks_and_repacks(images: ImageService, data_root: Path):
    umoci = need_tool("umoci")
    layout = data_root / "layout"
    images.save_oci_layout(["child:1"], layout)
    bundle = data_root / "bundle"
    run(umoci, "unpack", "--image", f"{layout}:1", str(bundle))
    rootfs = bundle / "rootfs"
    assert (rootfs / "hello").read_text() == "from dockyard\n"
    assert not (rootfs / "etc" / "group").exists()  # the whiteout was honoured
    assert (rootfs / "etc" / "passwd").exists() and os.path.samefile(rootfs / "bin" / "sh", rootfs / "bin" / "busybox")
    # umoci's own layer (gzip) on top, loaded back by Dockyard
    (rootfs / "hello").unlink()
    (rootfs / "umoci-was-here").write_text("yes\n")
    run(umoci, "repack", "--image", f"{layout}:repacked", str(bundle))
    other = open_store(data_root / "other")
    try:
        service = ImageService(other)
        result = service.load_oci_layout(layout, ref_name="repacked", name="repacked:1")
        record = other.metadata.get_image(result.images[0].image_id)
        top = other.metadata.get_layer(record.layers[-1])
        assert top.media_type.endswith("gzip") and top.digest != top.diff_id
        upper = other.snapshotter.fs_dir(str(record.layers[-1]))
        assert (upper / "umoci-was-here").read_text() == "yes\n"
        assert os.stat(upper / "hello", follow_symlinks=False).st_rdev == 0  # a whiteout, overlay form
        assert len(record.layers) == 3
        # saved again, the image keeps umoci's manifest (and so its digest)
        index = json.loads((layout / "index.json").read_text())
        original = [d["digest"] for d in index["manifests"]
                    if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == "repacked"]
        again = data_root / "again"
        service.save_oci_layout(["repacked:1"], again)
        saved = json.loads((again / "index.json").read_text())["manifests"]
        assert [d["digest"] for d in saved] == original
    finally:
        other.close()
