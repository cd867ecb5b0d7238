"""Interop with the real Docker engine: what Docker saves, Dockyard loads
(IDs, layers, whiteouts, env and cmd intact); what Dockyard saves, Docker
loads and runs.  One private dockerd serves the whole file."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from dockyard.image import ImageService
from dockyard.image.bootstrap import bootstrap_busybox
from dockyard.store import mounted

MUTATE = "rm /etc/group; rm -rf /tmp; echo new > /newfile; chmod 4755 /newfile; mkdir -p /etc/x; echo hi > /etc/x/y"


@pytest.fixture(scope="module")
def docker_save(dockerd, busybox_tar: Path, tmp_path_factory) -> dict:
    """Docker's own save of an imported busybox and of a commit on top of
    it that deletes a file and a directory and sets ENV and CMD."""
    dockerd.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "dy-base:latest")
    dockerd.docker("run", "--name", "dy-mutator", "--network", "none", "dy-base:latest", "sh", "-c", MUTATE)
    dockerd.docker("commit", "-c", "ENV FOO=bar", "-c", 'CMD ["cat", "/newfile"]', "dy-mutator", "dy-top:v1")
    dockerd.docker("rm", "dy-mutator")
    out = tmp_path_factory.mktemp("docker-save") / "save.tar"
    dockerd.docker("save", "-o", str(out), "dy-base:latest", "dy-top:v1")
    ids = {name: dockerd.docker("image", "inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
           for name in ("dy-base:latest", "dy-top:v1")}
    return {"path": out, "ids": ids}


def test_docker_save_loads(service: ImageService, store, docker_save: dict, data_root: Path):
    with open(docker_save["path"], "rb") as f:
        result = service.load(f)
    assert sorted(t for image in result.images for t in image.tags) == ["dy-base:latest", "dy-top:v1"]
    assert str(service.resolve("dy-base")) == docker_save["ids"]["dy-base:latest"]
    assert str(service.resolve("dy-top:v1")) == docker_save["ids"]["dy-top:v1"]
    config = service.get_config("dy-top:v1")
    assert "FOO=bar" in config.config.env
    assert config.config.cmd == ("cat", "/newfile")
    record = store.metadata.get_image(service.resolve("dy-top:v1"))
    assert len(record.layers) == 2
    upper = store.snapshotter.fs_dir(str(record.layers[1]))
    for deleted in ("etc/group", "tmp"):
        st = (upper / deleted).lstat()
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, deleted
    target = data_root / "rootfs"
    target.mkdir()
    mounts = store.snapshotter.view("check", str(record.layers[1]))
    try:
        with mounted(mounts, target) as root:
            assert not (root / "etc" / "group").exists() and not (root / "tmp").exists()
            assert (root / "newfile").read_text() == "new\n"
            assert stat.S_IMODE((root / "newfile").stat().st_mode) == 0o4755
            assert (root / "etc" / "x" / "y").read_text() == "hi\n"
            assert (root / "bin" / "busybox").exists() and (root / "etc" / "passwd").exists()
    finally:
        store.snapshotter.remove("check")
    # Docker's sizes: the layer's files and symlink targets
    docker_sizes = [h["Size"] for h in service.history("dy-top:v1")]
    assert docker_sizes[0] == len("new\n") + len("hi\n")


def test_dockyard_save_loads_into_docker(service: ImageService, store, dockerd, docker_save: dict,
                                         data_root: Path, tmp_path: Path):
    with open(docker_save["path"], "rb") as f:
        service.load(f)
    # A commit made by Dockyard on top of Docker's image, and a bootstrapped busybox.
    key = "dy-container"
    mounts = store.snapshotter.prepare(key, str(service.top_layer("dy-top:v1")))
    target = data_root / "rootfs"
    target.mkdir()
    with mounted(mounts, target) as root:
        (root / "newfile").unlink()
        (root / "made-by").write_text("dockyard\n")
        # overlay without redirect_dir: a directory rename is a copy (EXDEV)
        shutil.move(root / "etc" / "x", root / "etc" / "x2")
    committed = service.commit(key, base_image="dy-top:v1", config=service.get_config("dy-top:v1").config,
                               changes=['CMD ["cat", "/made-by"]', "ENV STAGE=2"], reference="dy-committed:1")
    store.snapshotter.remove(key)
    boot = bootstrap_busybox(service, reference="dy-busybox:latest")

    out = tmp_path / "dockyard-save.tar"
    with open(out, "wb") as f:
        service.save(["dy-committed:1", "dy-busybox:latest"], f)
    dockerd.docker("rmi", "-f", "dy-top:v1", "dy-base:latest", check=False)
    loaded = dockerd.docker("load", "-i", str(out)).stdout.decode()
    assert "Loaded image: dy-committed:1" in loaded and "Loaded image: dy-busybox:latest" in loaded
    inspect = json.loads(dockerd.docker("image", "inspect", "dy-committed:1", "dy-busybox:latest").stdout)
    assert inspect[0]["Id"] == str(committed) and inspect[1]["Id"] == str(boot.image_id)
    assert inspect[0]["RootFS"]["Layers"] == [str(d) for d in service.get_config("dy-committed:1").rootfs.diff_ids]
    assert "STAGE=2" in inspect[0]["Config"]["Env"] and "FOO=bar" in inspect[0]["Config"]["Env"]
    ran = dockerd.docker("run", "--rm", "--network", "none", "dy-committed:1").stdout.decode()
    assert ran == "dockyard\n"
    listing = dockerd.docker("run", "--rm", "--network", "none", "dy-committed:1", "sh", "-c",
                             "ls /newfile /etc/group 2>&1; cat /etc/x2/y; ls /etc/x 2>&1", check=False).stdout.decode()
    assert "/newfile: No such file" in listing and "/etc/group: No such file" in listing
    assert "hi\n" in listing and "/etc/x: No such file" in listing
    ran = dockerd.docker("run", "--rm", "--network", "none", "dy-busybox:latest", "sh", "-c",
                         "echo $PATH; id -un; ls -ld /tmp").stdout.decode().splitlines()
    assert ran[0].startswith("/usr/local/sbin") and ran[1] == "root" and ran[2].startswith("drwxrwxrwt")


def test_docker_loads_dockyard_save_of_docker_images_unchanged(service: ImageService, dockerd, docker_save: dict,
                                                               tmp_path: Path):
    """Docker -> Dockyard -> Docker keeps the image IDs."""
    with open(docker_save["path"], "rb") as f:
        service.load(f)
    out = tmp_path / "again.tar"
    with open(out, "wb") as f:
        service.save(["dy-top:v1"], f)
    dockerd.docker("rmi", "-f", "dy-top:v1", check=False)
    dockerd.docker("load", "-i", str(out))
    assert dockerd.docker("image", "inspect", "-f", "{{.Id}}", "dy-top:v1").stdout.decode().strip() == \
        docker_save["ids"]["dy-top:v1"]
    assert dockerd.docker("run", "--rm", "--network", "none", "dy-top:v1").stdout.decode() == "new\n"
