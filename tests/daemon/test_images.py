"""Image endpoints on a real dockyardd, driven by the docker CLI, docker-py
and Dockyard's client: import, load/save round trips, tag/rmi rules,
history, inspect, filters, prune, and the errors in Docker's shape."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.client.errors import RemoteFailedPrecondition, RemoteInvalidArgument, RemoteNotFound, \
    RemoteUnavailable

from .harness import Dockyardd, run_cli, run_docker
from testlib import ok


def image_id_of(messages) -> str:
    """The final status of an import stream: the new image's ID."""
    return [m["status"] for m in messages if "status" in m][-1]


@pytest.fixture(scope="module")
def busybox_id(dockyardd: Dockyardd) -> str:
    """busybox:latest made from the host's busybox-static."""
    out = ok(run_cli(dockyardd, "image", "bootstrap", "busybox"))
    assert out == "Loaded image: busybox:latest\n"
    return dockyardd.client().inspect_image("busybox")["Id"]


def test_bootstrap_is_deterministic(dockyardd: Dockyardd, busybox_id: str) -> None:
    ok(run_cli(dockyardd, "image", "bootstrap", "busybox", "--tag", "bb2:latest"))
    assert dockyardd.client().inspect_image("bb2")["Id"] == busybox_id
    ok(run_docker(dockyardd, "rmi", "bb2"))


def test_docker_and_dockyard_print_the_same_tables(dockyardd: Dockyardd, busybox_id: str) -> None:
    # The bootstrap image is dated at the epoch: the CREATED columns agree.
    for args in (["images"], ["images", "--digests"], ["images", "--no-trunc"], ["images", "-q"],
                 ["history", "busybox"], ["history", "--no-trunc", "busybox"], ["image", "inspect", "busybox"],
                 ["images", "--format", "{{json .}}"], ["images", "--format", "table {{.ID}}\t{{.Repository}}"],
                 ["image", "inspect", "--format", "{{.Id}} {{json .Config.Cmd}} {{.Os}}", "busybox"]):
        docker = ok(run_docker(dockyardd, *args))
        ours = ok(run_cli(dockyardd, *args))
        assert ours == docker, args


def test_import_with_changes(dockyardd: Dockyardd, busybox_tar: Path) -> None:
    start = str(time.time())
    result = run_docker(dockyardd, "import", "-c", "ENV GREETING=hello", "-c", 'CMD ["sh", "-c", "echo"]',
                        "-c", "LABEL stage=test", "-c", "WORKDIR /tmp", "-m", "from the test", str(busybox_tar),
                        "imported:v1")
    image_id = ok(result).strip()
    assert image_id.startswith("sha256:")
    doc = dockyardd.client().inspect_image("imported:v1")
    assert doc["Id"] == image_id
    assert "GREETING=hello" in doc["Config"]["Env"]
    assert doc["Config"]["Cmd"] == ["sh", "-c", "echo"]
    assert doc["Config"]["Labels"] == {"stage": "test"}
    assert doc["Config"]["WorkingDir"] == "/tmp"
    assert doc["Comment"] == "from the test"
    assert doc["RepoTags"] == ["imported:v1"]
    assert "Container" not in doc and "ContainerConfig" not in doc and "VirtualSize" not in doc
    old = dockyardd.client().get_json("/v1.43/images/imported:v1/json".replace("/v1.43", ""), None)
    assert old["Id"] == image_id
    history = dockyardd.client().image_history("imported:v1")
    assert history[0]["Comment"] == "from the test" and history[0]["Id"] == image_id
    # dockerd's order of events: the new image is tagged, then imported
    events = ok(run_docker(dockyardd, "events", "--since", start, "--until", str(time.time() + 0.5), "--filter",
                           "image=" + image_id, "--format", "{{.Action}}"))
    assert events.split() == ["tag", "import"]
    # Importing from stdin, with Dockyard's CLI.
    out = ok(run_cli(dockyardd, "import", "-c", "USER nobody", "-", "stdin-import", input=busybox_tar.read_bytes()))
    assert out.strip().startswith("sha256:")
    assert dockyardd.client().inspect_image("stdin-import:latest")["Config"]["User"] == "nobody"


def test_old_api_versions_keep_old_fields(dockyardd: Dockyardd, busybox_id: str) -> None:
    from dockyard.client import Client

    old = Client(dockyardd.host, version="1.43")
    doc = old.inspect_image("busybox")
    assert "VirtualSize" in doc and "ContainerConfig" in doc
    assert all("VirtualSize" in image for image in old.images())
    assert all("VirtualSize" not in image for image in dockyardd.client().images())


def test_bad_changes_and_sources(dockyardd: Dockyardd, busybox_tar: Path) -> None:
    client = dockyardd.client()
    with pytest.raises(RemoteInvalidArgument):
        list(client.import_image(busybox_tar.open("rb"), repo="bad", changes=["FROBNICATE x"]))
    with pytest.raises(RemoteInvalidArgument) as err:
        client.request("POST", "/images/create", query={"fromSrc": "http://example.com/rootfs.tar"})
    assert "not supported" in err.value.message
    with pytest.raises(RemoteUnavailable) as err:
        client.request("POST", "/images/create", query={"fromImage": "alpine", "tag": "3"})
    assert err.value.message.startswith("no registry configured yet")
    result = run_docker(dockyardd, "pull", "alpine:3")
    assert result.returncode != 0
    assert b"Error response from daemon: no registry configured yet" in result.stderr
    # A tar that is not an image archive: an error, and nothing left behind.
    before = {i["Id"] for i in client.images(all=True)}
    with pytest.raises((RemoteInvalidArgument, Exception)) as err:
        for _ in client.load_image(io.BytesIO(b"this is not a tar file" * 100)):
            pass
    assert {i["Id"] for i in client.images(all=True)} == before
    result = run_docker(dockyardd, "load", input=b"garbage" * 1000)
    assert result.returncode != 0


def test_tag_and_remove_rules(dockyardd: Dockyardd, busybox_id: str) -> None:
    ok(run_docker(dockyardd, "tag", "busybox", "localhost:5000/team/tool:1.0"))
    ok(run_docker(dockyardd, "tag", busybox_id[7:19], "second:tag"))
    tags = dockyardd.client().inspect_image("busybox")["RepoTags"]
    assert {"busybox:latest", "localhost:5000/team/tool:1.0", "second:tag"} <= set(tags)
    # By ID while several repositories point at it: refused unless forced.
    result = run_docker(dockyardd, "rmi", busybox_id[7:19])
    assert result.returncode == 1
    assert (f"Error response from daemon: conflict: unable to delete {busybox_id[7:19]} (must be forced) - "
            "image is referenced in multiple repositories") in result.stderr.decode()
    with pytest.raises(RemoteFailedPrecondition):
        dockyardd.client().remove_image(busybox_id)
    assert ok(run_docker(dockyardd, "rmi", "second:tag")) == "Untagged: second:tag\n"
    assert ok(run_cli(dockyardd, "rmi", "localhost:5000/team/tool:1.0")) == "Untagged: localhost:5000/team/tool:1.0\n"
    result = run_docker(dockyardd, "rmi", "no-such-image")
    assert result.returncode == 1
    assert result.stderr.decode().strip() == "Error response from daemon: No such image: no-such-image:latest"
    result = run_docker(dockyardd, "tag", "busybox", "Bad:Name")
    assert result.returncode != 0
    result = run_cli(dockyardd, "tag", "nope", "x:y")
    assert result.returncode == 1
    assert result.stderr.decode().strip() == "Error response from daemon: No such image: nope:latest"
    with pytest.raises(RemoteNotFound):
        dockyardd.client().tag_image("nope", "x", "y")


def test_save_load_round_trip(dockyardd: Dockyardd, busybox_id: str, tmp_path: Path) -> None:
    ok(run_docker(dockyardd, "tag", "busybox", "roundtrip:one"))
    archive = tmp_path / "images.tar"
    ok(run_docker(dockyardd, "save", "-o", str(archive), "roundtrip:one", "busybox:latest"))
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert {t for m in manifest for t in m["RepoTags"]} == {"roundtrip:one", "busybox:latest"}
    # Dockyard's CLI writes the same archive to stdout.
    streamed = run_cli(dockyardd, "save", "roundtrip:one", "busybox:latest")
    assert streamed.returncode == 0 and streamed.stdout == archive.read_bytes()
    ok(run_docker(dockyardd, "rmi", "roundtrip:one"))
    out = ok(run_docker(dockyardd, "load", "-i", str(archive)))
    assert "Loaded image: roundtrip:one" in out and "Loaded image: busybox:latest" in out
    assert dockyardd.client().inspect_image("roundtrip:one")["Id"] == busybox_id
    # Dockyard's CLI, from stdin, quietly.
    ok(run_docker(dockyardd, "rmi", "roundtrip:one"))
    out = ok(run_cli(dockyardd, "load", "-q", input=archive.read_bytes()))
    assert "Loaded image: roundtrip:one" in out
    # Missing images are a 404 before any byte of archive.
    result = run_docker(dockyardd, "save", "-o", str(tmp_path / "x.tar"), "busybox", "nope:1")
    assert result.returncode == 1 and b"No such image: nope:1" in result.stderr
    assert not (tmp_path / "x.tar").exists()


def test_list_filters(dockyardd: Dockyardd, busybox_id: str, busybox_tar: Path) -> None:
    client = dockyardd.client()
    labelled = image_id_of(client.import_image(
        busybox_tar.open("rb"), repo="filtered/app", tag="v2", changes=["LABEL tier=web owner=qa"]))
    assert labelled.startswith("sha256:")
    time.sleep(1.1)  # "since"/"before" compare creation times in seconds
    newer = image_id_of(client.import_image(busybox_tar.open("rb"), repo="filtered/newer"))

    def repo_tags(**filters) -> set[str]:
        return {t for image in client.images(filters=filters) for t in image["RepoTags"]}

    assert repo_tags(label=["tier=web"]) == {"filtered/app:v2"}
    assert repo_tags(label=["owner"]) == {"filtered/app:v2"}
    assert repo_tags(label=["tier=db"]) == set()
    assert repo_tags(reference=["filtered/*"]) == {"filtered/app:v2", "filtered/newer:latest"}
    assert repo_tags(reference=["filtered/app:v*"]) == {"filtered/app:v2"}
    assert repo_tags(reference=["*"]) >= {"busybox:latest"}  # '*' does not cross '/'
    assert "filtered/app:v2" not in repo_tags(reference=["*"])
    assert repo_tags(since=["filtered/app:v2"]) == {"filtered/newer:latest"}
    # shared-size=1 (API >= 1.42): the two imports share their one layer
    listed = {i["Id"]: i for i in client.get_json("/images/json", {"shared-size": "1"})}
    assert listed[labelled]["SharedSize"] == listed[labelled]["Size"] > 0
    assert all(i["SharedSize"] == -1 for i in client.get_json("/images/json", None))
    assert "filtered/newer:latest" not in repo_tags(before=["filtered/app:v2"])
    # an image is not before itself (creation times compare at the seconds listed)
    assert "filtered/app:v2" not in repo_tags(before=["filtered/app:v2"])
    assert "busybox:latest" in repo_tags(before=["filtered/app:v2"])
    # a reference filter lists only the names that matched, not the image's others
    ok(run_docker(dockyardd, "tag", "filtered/app:v2", "unfiltered:x"))
    assert repo_tags(reference=["filtered/app"]) == {"filtered/app:v2"}
    listed = ok(run_docker(dockyardd, "images", "--format", "{{.Repository}}:{{.Tag}}", "filtered/app"))
    assert listed == "filtered/app:v2\n"
    ok(run_docker(dockyardd, "rmi", "unfiltered:x"))
    ok(run_docker(dockyardd, "rmi", "filtered/newer"))
    # dangling: an image whose last tag was removed, kept because ... nothing: rmi deletes it.
    assert repo_tags(dangling=["true"]) == set()
    result = run_docker(dockyardd, "images", "--filter", "bogus=1")
    assert result.returncode != 0 and b"invalid filter 'bogus'" in result.stderr
    out = ok(run_docker(dockyardd, "images", "filtered/app"))
    assert "filtered/app" in out and "busybox" not in out
    assert newer.startswith("sha256:")


def unique_rootfs_tar() -> bytes:
    """A small rootfs tar whose layer no other image shares."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        payload = os.urandom(50_000)
        info = tarfile.TarInfo("data/random.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def test_prune_dangling(dockyardd: Dockyardd) -> None:
    client = dockyardd.client()
    image_id = image_id_of(client.import_image(
        io.BytesIO(unique_rootfs_tar()), changes=["LABEL prune=me"]))  # no repo: dangling from birth
    assert any(i["Id"] == image_id for i in client.images(filters={"dangling": True}))
    report = client.prune_images({"dangling": True})
    assert {"Deleted": image_id} in report["ImagesDeleted"]
    assert report["SpaceReclaimed"] > 0
    assert not any(i["Id"] == image_id for i in client.images(all=True))
    assert client.prune_images({"dangling": True}) == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    out = ok(run_docker(dockyardd, "image", "prune", "-f"))
    assert "Total reclaimed space: 0B" in out


def test_docker_py_images(dockyardd: Dockyardd, busybox_id: str, tmp_path: Path) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=dockyardd.host, version="auto")
    try:
        start = int(time.time()) - 1
        image = client.images.get("busybox")
        assert image.id == busybox_id
        assert image.tag("pyclient", "one") is True
        assert "pyclient:one" in client.images.get("busybox").tags
        data = b"".join(image.save(named=True))
        client.images.remove("pyclient:one")
        client.images.remove("busybox:latest")
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get("busybox")
        loaded = client.images.load(data)
        assert [i.id for i in loaded] == [busybox_id]
        assert any("busybox:latest" in i.tags for i in client.images.list())
        assert client.images.list(name="busybox")[0].id == busybox_id
        history = client.api.history("busybox")
        assert history[0]["Id"] == busybox_id
        events = list(client.events(since=start, until=int(time.time()) + 1, filters={"type": "image"},
                                    decode=True))
        actions = [e["Action"] for e in events]
        assert "tag" in actions and "untag" in actions and "load" in actions and "save" in actions
        with pytest.raises(docker.errors.APIError) as err:
            client.images.pull("alpine", tag="3")
        assert err.value.status_code == 503
    finally:
        client.close()


def test_df_and_info_count_images(dockyardd: Dockyardd, busybox_id: str) -> None:
    client = dockyardd.client()
    df = client.df()
    ids = {i["Id"] for i in client.images(all=True)}
    assert {i["Id"] for i in df["Images"]} == ids
    assert df["LayersSize"] > 0
    assert all(i["Containers"] == 0 and i["SharedSize"] >= 0 for i in df["Images"])
    assert client.info()["Images"] == len(ids)
    out = ok(run_docker(dockyardd, "system", "df"))
    assert out.splitlines()[1].split()[:2] == ["Images", str(len(ids))]
    assert ok(run_cli(dockyardd, "system", "df")) == out


def test_slow_save_clients_do_not_starve_the_daemon(dockyardd: Dockyardd, busybox_id: str) -> None:
    """Saves to clients that stop reading block their threads; ordinary
    requests must still be answered."""
    import socket as socket_mod

    stalled = []
    try:
        for _ in range(10):
            s = socket_mod.socket(socket_mod.AF_UNIX, socket_mod.SOCK_STREAM)
            s.setsockopt(socket_mod.SOL_SOCKET, socket_mod.SO_RCVBUF, 4096)
            s.connect(str(dockyardd.sock))
            s.sendall(b"GET /images/busybox/get HTTP/1.1\r\nHost: docker\r\n\r\n")
            stalled.append(s)
        time.sleep(0.5)
        started = time.monotonic()
        assert dockyardd.client().info()["Images"] >= 1
        assert dockyardd.client().images()
        assert time.monotonic() - started < 5
    finally:
        for s in stalled:
            s.close()


def test_client_gone_mid_upload_leaves_nothing(dockyardd: Dockyardd, busybox_id: str, tmp_path: Path) -> None:
    import socket as socket_mod

    archive = tmp_path / "bb.tar"
    ok(run_docker(dockyardd, "save", "-o", str(archive), "busybox"))
    before = {i["Id"] for i in dockyardd.client().images(all=True)}
    for path in ("/images/load", "/images/create?fromSrc=-&repo=half"):
        s = socket_mod.socket(socket_mod.AF_UNIX, socket_mod.SOCK_STREAM)
        s.connect(str(dockyardd.sock))
        head = f"POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: {archive.stat().st_size}\r\n\r\n"
        s.sendall(head.encode() + archive.read_bytes()[: archive.stat().st_size // 2])
        time.sleep(0.3)
        s.close()
    time.sleep(0.5)
    assert {i["Id"] for i in dockyardd.client().images(all=True)} == before
    log = dockyardd.log()
    assert "the client went away" in log
    assert "Traceback" not in log and "Error handling request" not in log


def test_registry_and_build_verbs_answer_clearly(dockyardd: Dockyardd, busybox_id: str, tmp_path: Path) -> None:
    """push, search, login and build are not there yet: the docker CLI shows
    a clear 503 message instead of "page not found"."""
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    cases = [
        (["push", "busybox"], b"no registry configured yet: Dockyard cannot push images (pushing docker.io/library/busybox"),
        (["search", "busybox"], b"no registry configured yet: Dockyard cannot search registries"),
        (["login", "-u", "me", "--password-stdin", "localhost:5999"],
         b"no registry configured yet: Dockyard cannot log in to registries"),
        (["build", "-q", str(tmp_path)], b"building images is not supported yet"),
    ]
    for args, message in cases:
        result = run_docker(dockyardd, *args, input=b"secret\n")
        assert result.returncode != 0, args
        assert b"page not found" not in result.stderr and message in result.stderr, (args, result.stderr)
    with pytest.raises(RemoteUnavailable, match="cannot query registries"):
        dockyardd.client().request("GET", "/distribution/busybox/json")
