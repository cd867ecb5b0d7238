"""One daemon per data root, sockets, graceful shutdown, TLS on TCP."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from .rootconf import need_tool, require_root
from dockyard.client import Client, TLSConfig
from dockyard.client.errors import ConnectionFailed

from .harness import Dockyardd, _daemon_env, make_root, new_daemon, run_cli, run_docker


@pytest.fixture
def daemons():
    """Daemons started by the test, all cleaned up after it."""
    require_root()
    started: list[Dockyardd] = []
    try:
        yield started
    finally:
        for daemon in started:
            daemon.cleanup()


def test_second_daemon_on_same_data_root_is_refused(daemons: list[Dockyardd]) -> None:
    first = new_daemon()
    daemons.append(first)
    other_root = make_root()
    second = Dockyardd(other_root, ["-H", f"unix://{other_root / 'd.sock'}"])
    daemons.append(second)
    # Same data root as the first daemon, everything else its own.
    (other_root / "daemon.json").write_text("{}")
    second_args = ["--data-root", str(first.data_root), "--exec-root", str(second.exec_root),
                   "--pidfile", str(second.pidfile), "-H", f"unix://{second.sock}",
                   "--config-file", str(other_root / "daemon.json")]
    result = subprocess.run([sys.executable, "-m", "dockyard.daemon.main", *second_args], capture_output=True,
                            text=True, timeout=60, env=_daemon_env())
    assert result.returncode == 1
    assert f"another dockyardd (pid {first.proc.pid}) is using data root {first.data_root}" in result.stderr
    assert not second.sock.exists()
    # The first one is untouched.
    assert first.client().ping()["api-version"] == "1.45"


def test_live_socket_is_not_taken_over(daemons: list[Dockyardd]) -> None:
    first = new_daemon()
    daemons.append(first)
    second = new_daemon("-H", first.host, start=False)  # its own data root, the first one's socket
    daemons.append(second)
    second.start(wait=False)
    assert second.proc.wait(30) == 1
    assert "another daemon is accepting connections" in second.log()
    assert first.client().ping()


def test_stale_socket_is_replaced(daemons: list[Dockyardd]) -> None:
    daemon = new_daemon(start=False)
    daemons.append(daemon)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(daemon.sock))
    stale.close()  # the file stays, nobody listens: what a crash leaves
    daemon.start()
    assert daemon.client().ping()


def test_sigterm_shuts_down_cleanly(daemons: list[Dockyardd]) -> None:
    daemon = new_daemon()
    daemons.append(daemon)
    # A streaming request in flight (an events watcher) does not hold up the shutdown.
    watcher = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    watcher.settimeout(30)
    watcher.connect(str(daemon.sock))
    watcher.sendall(b"GET /events HTTP/1.1\r\nHost: docker\r\n\r\n")
    assert watcher.recv(4096).startswith(b"HTTP/1.1 200")
    assert daemon.stop(signal.SIGTERM, timeout=20) == 0
    while watcher.recv(4096):
        pass  # the daemon closed the stream
    watcher.close()
    assert not daemon.sock.exists()
    assert not daemon.pidfile.exists()
    assert "shutting down" in daemon.log()
    with pytest.raises(ConnectionFailed):
        Client(daemon.host).ping()
    # The lock is free again: a new daemon starts on the same root.
    daemon.start()
    assert daemon.client().ping()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client
    certificate, made with the openssl command."""
    need_tool("openssl")
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=dockyard test CA", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    # The docker CLI reads ca.pem/cert.pem/key.pem from DOCKER_CERT_PATH.
    shutil.copy(d / "client.pem", d / "cert.pem")
    shutil.copy(d / "client-key.pem", d / "key.pem")
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tls_verify_on_tcp(daemons: list[Dockyardd], pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    daemon = new_daemon("-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(pki / "ca.pem"),
                        "--tlscert", str(pki / "server.pem"), "--tlskey", str(pki / "server-key.pem"), start=False)
    daemons.append(daemon)
    daemon.args += ["-H", daemon.host]  # a unix socket too, for the harness's readiness check
    daemon.start()
    host = f"tcp://127.0.0.1:{port}"
    tls = TLSConfig(ca_cert=str(pki / "ca.pem"), cert=str(pki / "client.pem"), key=str(pki / "client-key.pem"))
    assert Client(host, tls=tls).version()["ApiVersion"] == "1.45"
    # Without a client certificate the handshake fails.
    with pytest.raises((ConnectionFailed, ssl.SSLError, OSError)):
        Client(host, tls=TLSConfig(ca_cert=str(pki / "ca.pem"))).version()
    # Plain HTTP on the TLS port gets nothing useful.
    with pytest.raises((ConnectionFailed, OSError)):
        Client(host).version()
    # The docker CLI with its TLS environment.
    result = subprocess.run([shutil.which("docker") or "docker", "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, timeout=60,
                            env={**daemon.env(), "DOCKER_HOST": host, "DOCKER_TLS_VERIFY": "1",
                                 "DOCKER_CERT_PATH": str(pki)})
    assert result.returncode == 0, result.stderr
    # Dockyard's CLI, with flags and with docker's environment variables.
    result = run_cli(daemon, "-H", host, "--tlsverify", "--tlscacert", str(pki / "ca.pem"), "--tlscert",
                     str(pki / "client.pem"), "--tlskey", str(pki / "client-key.pem"), "version", "-f",
                     "{{.Server.Version}}")
    assert result.returncode == 0, result.stderr
    result = run_cli(daemon, "version", "-f", "{{.Server.Version}}",
                     env={"DOCKYARD_HOST": host, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(pki)})
    assert result.returncode == 0, result.stderr
    result = run_cli(daemon, "-H", host, "--tlsverify", "--tlscacert", str(pki / "ca.pem"), "images")
    assert result.returncode == 1  # no client certificate: the daemon refuses the handshake
    docker = pytest.importorskip("docker")
    # requests lets these variables override a per-session CA bundle.
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    client = docker.DockerClient(base_url=f"https://127.0.0.1:{port}", tls=docker.tls.TLSConfig(
        client_cert=(str(pki / "client.pem"), str(pki / "client-key.pem")), verify=str(pki / "ca.pem")))
    try:
        assert client.ping()
    finally:
        client.close()


def test_plain_tcp_on_loopback_warns(daemons: list[Dockyardd]) -> None:
    port = free_port()
    daemon = new_daemon("-H", f"tcp://127.0.0.1:{port}", start=False)
    daemons.append(daemon)
    daemon.args += ["-H", daemon.host]
    daemon.start()
    assert Client(f"tcp://127.0.0.1:{port}").ping()["api-version"] == "1.45"
    assert "without TLS" in daemon.log()
    info = Client(f"tcp://127.0.0.1:{port}").info()
    assert any("without encryption" in w for w in info["Warnings"])


def test_config_file_hosts(daemons: list[Dockyardd]) -> None:
    root = make_root()
    config = {"hosts": [f"unix://{root / 'a.sock'}", f"unix://{root / 'b.sock'}"], "log-level": "debug"}
    (root / "daemon.json").write_text(json.dumps(config))
    daemon = Dockyardd(root, ["--config-file", str(root / "daemon.json")])
    daemons.append(daemon)
    daemon.start(wait=False)
    daemon.wait_ready(root / "a.sock")
    daemon.wait_ready(root / "b.sock")
    for name in ("a.sock", "b.sock"):
        assert Client(f"unix://{root / name}").ping()
    result = run_docker(daemon, "-H", f"unix://{root / 'b.sock'}", "version")
    assert result.returncode == 0, result.stderr


def test_socket_group_flag(daemons: list[Dockyardd]) -> None:
    import grp
    import os
    import stat

    group = next((g for g in ("adm", "daemon", "users") if _group_exists(g)), None)
    if group is None:
        pytest.skip("no well-known group on this host")
    daemon = new_daemon("-G", group)
    daemons.append(daemon)
    st = os.stat(daemon.sock)
    assert st.st_gid == grp.getgrnam(group).gr_gid
    assert stat.S_IMODE(st.st_mode) == 0o660
    # A group that does not exist falls back to root's.
    other = new_daemon("--group", "no-such-group-dockyard-test")
    daemons.append(other)
    assert os.stat(other.sock).st_gid == 0


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _start_fails(daemon: Dockyardd) -> str:
    """Start ``daemon`` expecting it to refuse; its log."""
    daemon.start(wait=False)
    assert daemon.proc.wait(30) == 1, daemon.log()
    assert not daemon.sock.exists()
    log = daemon.log()
    assert "Traceback" not in log, log
    return log


def test_unusable_data_root_stops_the_start(daemons: list[Dockyardd]) -> None:
    daemon = new_daemon(start=False)
    daemons.append(daemon)
    daemon.data_root.write_text("not a directory")
    log = _start_fails(daemon)
    assert str(daemon.data_root) in log


def test_unreadable_metadata_database_stops_the_start(daemons: list[Dockyardd]) -> None:
    daemon = new_daemon(start=False)
    daemons.append(daemon)
    daemon.data_root.mkdir()
    (daemon.data_root / "metadata.db").write_bytes(b"this is no SQLite database, " * 200)
    log = _start_fails(daemon)
    assert "metadata database" in log and str(daemon.data_root) in log


def test_schema_newer_than_the_daemon_stops_the_start(daemons: list[Dockyardd]) -> None:
    import sqlite3

    daemon = new_daemon()
    daemons.append(daemon)
    assert daemon.stop() == 0
    # A later dockyard migrated the container records further than this one knows.
    db = sqlite3.connect(daemon.data_root / "metadata.db")
    with db:
        db.execute("UPDATE schema_versions SET version = version + 100 WHERE component = 'container'")
    db.close()
    log = _start_fails(daemon)
    assert "newer than this dockyard supports" in log and "'container'" in log


def test_start_removes_dead_daemons_scratch_files_only(daemons: list[Dockyardd]) -> None:
    daemon = new_daemon(start=False)
    daemons.append(daemon)
    tmp = daemon.data_root / "tmp"
    tmp.mkdir(parents=True)
    ours = ["follow-0123456789ab-89abcdef.log", "upload-k2_x9a0q.tar"]
    theirs = ["notes.txt", "follow-x.log", "upload-1.tar"]
    for name in ours + theirs:
        (tmp / name).write_text("left over")
    (tmp / "upload-dir00000.tar").mkdir()  # a directory is never one of ours
    (daemon.data_root / ".engine-id.4242.tmp").write_text("half an id")
    daemon.start()
    remaining = sorted(p.name for p in tmp.iterdir())
    assert remaining == sorted(theirs + ["upload-dir00000.tar"])
    assert not (daemon.data_root / ".engine-id.4242.tmp").exists()
    assert daemon.client().ping()
