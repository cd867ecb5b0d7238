"""The dockyard command against a real daemon: output, errors and exit
codes as docker's, host selection, start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from daemon.harness import Dockyardd, _daemon_env, run_cli, run_docker
from dockyard import __version__
from testlib import ok


def test_version(dockyardd: Dockyardd) -> None:
    out = ok(run_cli(dockyardd, "version"))
    assert out.startswith("Client: Dockyard\n Version:           " + __version__)
    assert "\nServer: Dockyard\n Engine:\n  Version:          " + __version__ in out
    assert "  API version:      1.45 (minimum version 1.24)" in out
    doc = json.loads(ok(run_cli(dockyardd, "version", "--format", "{{json .}}")))
    assert doc["Client"]["ApiVersion"] == "1.45" and doc["Server"]["Version"] == __version__
    assert ok(run_cli(dockyardd, "version", "-f", "{{.Server.APIVersion}}")) == "1.45\n"
    assert ok(run_cli(dockyardd, "--version")) == f"Dockyard version {__version__}\n"


def test_info(dockyardd: Dockyardd) -> None:
    out = ok(run_cli(dockyardd, "info"))
    assert f" Docker Root Dir: {dockyardd.data_root}\n" in out
    assert " Storage Driver: overlay2\n" in out and " Live Restore Enabled: true\n" in out
    assert ok(run_cli(dockyardd, "system", "info", "--format", "{{.Driver}}/{{.OSType}}")) == "overlay2/linux\n"


def test_events_since_until_and_filters(dockyardd: Dockyardd) -> None:
    client = dockyardd.client()
    ok(run_cli(dockyardd, "image", "bootstrap", "busybox"))
    client.tag_image("busybox", "evt", "one")
    client.remove_image("evt:one")
    until = f"{time.time() + 0.5:.6f}"
    out = ok(run_cli(dockyardd, "events", "--since", "5m", "--until", until))
    lines = out.splitlines()
    assert any(" daemon start " in line for line in lines)
    tag_line = next(line for line in lines if " image tag " in line and "name=evt:one" in line)
    # 2026-11-25T10:09:30.852483257Z image tag sha256:... (name=evt:one)
    stamp, kind, action, actor, attrs = tag_line.split(" ", 4)
    assert len(stamp.split(".")[1].rstrip("Z").split("+")[0].split("-")[0]) == 9
    assert (kind, action, attrs) == ("image", "tag", "(name=evt:one)") and actor.startswith("sha256:")
    # Same lines as the docker CLI prints for the same events.
    docker = ok(run_docker(dockyardd, "events", "--since", "5m", "--until", until, "--filter", "type=image"))
    ours = ok(run_cli(dockyardd, "events", "--since", "5m", "--until", until, "--filter", "type=image"))
    assert ours == docker and ours
    filtered = ok(run_cli(dockyardd, "events", "--since", "5m", "--until", until, "--filter", "event=untag",
                          "--format", "{{.Action}} {{.Actor.ID}}"))
    assert filtered.splitlines() and all(line.startswith("untag sha256:") for line in filtered.splitlines())
    as_json = ok(run_cli(dockyardd, "events", "--since", "5m", "--until", until, "--format", "json"))
    assert all(json.loads(line)["Type"] for line in as_json.splitlines())


@pytest.mark.parametrize("args, status, stderr", [
    (["frobnicate"], 1, "dockyard: unknown command: dockyard frobnicate\n\n"
                        "Run 'dockyard --help' for more information\n"),
    (["image", "frob"], 1, "dockyard: unknown command: dockyard image frob\n\nUsage:  dockyard image\n\n"
                           "Run 'dockyard image --help' for more information\n"),
    (["images", "--bogus"], 125, "unknown flag: --bogus\n\nUsage:  dockyard images [OPTIONS] [REPOSITORY[:TAG]]"
                                 "\n\nRun 'dockyard images --help' for more information\n"),
    (["--bogus", "images"], 125, "unknown flag: --bogus\n\nUsage:  dockyard [OPTIONS] COMMAND [ARG...]\n\n"
                                 "Run 'dockyard --help' for more information\n"),
    (["rmi", "no-such-image"], 1, "Error response from daemon: No such image: no-such-image:latest\n"),
    (["image", "inspect", "no-such-image"], 1, "Error response from daemon: No such image: no-such-image:latest\n"),
    (["rmi", "no-such-image:v1"], 1, "Error response from daemon: No such image: no-such-image:v1\n"),
    (["inspect", "no-such-thing"], 1, "Error: No such object: no-such-thing\n"),
    (["images", "--format", "{{.Nope"], 1, "template parsing error: template: unclosed action\n"),
    (["images", "--filter", "nope=1"], 1, "Error response from daemon: invalid filter 'nope'\n"),
])
def test_errors_and_exit_codes(dockyardd: Dockyardd, args: list[str], status: int, stderr: str) -> None:
    result = run_cli(dockyardd, *args)
    assert result.returncode == status, result.stderr
    assert result.stderr.decode() == stderr


def test_argument_count_errors(dockyardd: Dockyardd) -> None:
    result = run_cli(dockyardd, "tag", "only-one")
    assert result.returncode == 1
    assert result.stderr.decode() == ("dockyard: 'dockyard tag' requires 2 arguments\n\n"
                                      "Usage:  dockyard tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]\n\n"
                                      "Run 'dockyard tag --help' for more information\n")
    result = run_cli(dockyardd, "rmi")
    assert result.returncode == 1
    assert result.stderr.decode().startswith("dockyard: 'dockyard rmi' requires at least 1 argument\n")


def test_inspect_prints_found_objects_and_errors(dockyardd: Dockyardd) -> None:
    ok(run_cli(dockyardd, "image", "bootstrap", "busybox"))
    result = run_cli(dockyardd, "inspect", "--type", "image", "busybox", "missing-one")
    assert result.returncode == 1
    docs = json.loads(result.stdout)
    assert len(docs) == 1 and docs[0]["RepoTags"] == ["busybox:latest"]
    # one --type: the daemon's answer, as docker prints it
    assert result.stderr.decode() == "Error response from daemon: No such image: missing-one:latest\n"
    assert ok(run_cli(dockyardd, "inspect", "-f", "{{.Os}}", "busybox")) == "linux\n"


def test_host_selection(dockyardd: Dockyardd) -> None:
    nowhere = "unix:///nonexistent/dockyard.sock"
    # -H beats the environment; DOCKYARD_HOST beats DOCKER_HOST.
    assert ok(run_cli(dockyardd, "-H", dockyardd.host, "version", "-f", "{{.Server.Version}}",
                      env={"DOCKER_HOST": nowhere, "DOCKYARD_HOST": nowhere})) == f"{__version__}\n"
    assert ok(run_cli(dockyardd, "version", "-f", "{{.Server.Version}}",
                      env={"DOCKER_HOST": nowhere, "DOCKYARD_HOST": dockyardd.host})) == f"{__version__}\n"
    result = run_cli(dockyardd, "images", env={"DOCKYARD_HOST": nowhere})
    assert result.returncode == 1
    assert result.stderr.decode().startswith(
        "Cannot connect to the Dockyard daemon at unix:///nonexistent/dockyard.sock. Is the daemon running?")
    # version still prints the client part when the daemon is away.
    result = run_cli(dockyardd, "version", env={"DOCKYARD_HOST": nowhere})
    assert result.returncode == 1 and result.stdout.decode().startswith("Client: Dockyard")


def test_load_save_import_through_the_cli(dockyardd: Dockyardd, busybox_tar, tmp_path) -> None:
    ok(run_cli(dockyardd, "image", "bootstrap", "busybox"))
    archive = tmp_path / "bb.tar"
    ok(run_cli(dockyardd, "save", "-o", str(archive), "busybox"))
    assert archive.stat().st_size > 1_000_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    ok(run_cli(dockyardd, "rmi", "busybox"))
    assert ok(run_cli(dockyardd, "load", "-i", str(archive))) == "Loaded image: busybox:latest\n"
    out = ok(run_cli(dockyardd, "import", "-m", "cli import", "--change", "ENV X=1", str(busybox_tar), "cli/imp:1"))
    image_id = out.strip()
    assert image_id.startswith("sha256:")
    assert ok(run_cli(dockyardd, "images", "-q", "cli/imp")) == image_id[7:19] + "\n"
    history = ok(run_cli(dockyardd, "history", "--format", "{{.Comment}}|{{.Size}}", "cli/imp:1"))
    assert history.startswith("cli import|")
    result = run_cli(dockyardd, "load", "-i", str(tmp_path / "missing.tar"))
    assert result.returncode == 1 and "no such file" in result.stderr.decode().lower()


def test_export_save_to_stdout_and_commit_message(dockyardd: Dockyardd) -> None:
    import io
    import tarfile

    ok(run_cli(dockyardd, "image", "bootstrap", "busybox"))
    cid = ok(run_cli(dockyardd, "create", "busybox", "true")).strip()
    try:
        exported = run_cli(dockyardd, "export", cid)
        assert exported.returncode == 0, exported.stderr
        with tarfile.open(fileobj=io.BytesIO(exported.stdout)) as tar:
            assert "bin/busybox" in tar.getnames()
        saved = run_cli(dockyardd, "save", "busybox")
        assert saved.returncode == 0 and saved.stdout[257:262] == b"ustar"
        image_id = ok(run_cli(dockyardd, "commit", "-m", "a message", cid, "cli/committed:1")).strip()
        assert ok(run_cli(dockyardd, "inspect", "-f", "{{.Comment}}", image_id)) == "a message\n"
        history = ok(run_cli(dockyardd, "history", "--format", "{{.Comment}}", "cli/committed:1"))
        assert history.splitlines()[0] == "a message"
    finally:
        run_cli(dockyardd, "rm", "-f", cid)
        run_cli(dockyardd, "rmi", "cli/committed:1")


def test_image_prune_through_the_cli(dockyardd: Dockyardd) -> None:
    out = ok(run_cli(dockyardd, "image", "prune", "-f"))
    assert out.endswith("Total reclaimed space: 0B\n")
    out = ok(run_cli(dockyardd, "system", "prune", "-f"))
    assert "Total reclaimed space:" in out


def test_help_lists_commands(dockyardd: Dockyardd) -> None:
    out = ok(run_cli(dockyardd, "--help"))
    assert "Management Commands:\n  image" in out and "  images      List images" in out
    assert "  ls          List images" in ok(run_cli(dockyardd, "image"))
    assert "--digests" in ok(run_cli(dockyardd, "images", "--help"))


def test_cli_start_up_stays_light(tmp_path) -> None:
    """The client path never imports the daemon's or the progress bars'
    libraries: their import time would land on every command."""
    code = ("import sys, io\n"
            "from dockyard.cli.main import run\n"
            "from dockyard.cli.context import Context\n"
            "run(['version'], Context(out=io.StringIO(), err=io.StringIO()))\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'rich', 'asyncio', 'ssl'))\n"
            "print(','.join(heavy))\n")
    env = {**_daemon_env(), "DOCKYARD_HOST": "unix:///nonexistent.sock"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
