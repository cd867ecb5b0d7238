"""dockyardd configuration: flags, daemon.json, and the rules dockerd
applies to them (unknown keys, flag/file conflicts, bad values)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.daemon.config import DEFAULT_HOST, load_config
from dockyard.daemon.listeners import parse_host, plan_listeners
from dockyard.errors import InvalidArgument

from .harness import _daemon_env


def write(tmp_path: Path, doc: object, name: str = "daemon.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    empty = write(tmp_path, {})
    config, _ = load_config(["--config-file", str(empty)])
    assert config.hosts == (DEFAULT_HOST,)
    assert str(config.data_root) == "/var/lib/dockyard"
    assert str(config.exec_root) == "/run/dockyard"
    assert config.pid_path == Path("/run/dockyard/dockyardd.pid")
    assert config.live_restore is True
    assert config.log_driver == "json-file"
    assert config.default_runtime == "native"


def test_file_values_are_used(tmp_path: Path) -> None:
    path = write(tmp_path, {
        "hosts": ["unix:///tmp/a.sock", "tcp://127.0.0.1:2399"],
        "data-root": "/srv/dy",
        "debug": True,
        "log-level": "warn",
        "log-driver": "local",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "runtimes": {"fast": {"path": "/usr/bin/crun", "runtimeArgs": ["--debug"]}},
        "default-runtime": "fast",
        "live-restore": True,
        "labels": ["zone=a"],
        "storage-driver": "overlay2",
    })
    config, _ = load_config(["--config-file", str(path)])
    assert config.hosts == ("unix:///tmp/a.sock", "tcp://127.0.0.1:2399")
    assert config.data_root == Path("/srv/dy")
    assert config.debug and config.log_level == "warn"
    assert config.log_driver == "local" and dict(config.log_opts) == {"max-size": "10m", "max-file": "3"}
    assert config.runtimes["fast"].path == "/usr/bin/crun" and config.runtimes["fast"].args == ("--debug",)
    assert config.default_runtime == "fast"
    assert config.labels == ("zone=a",)


def test_unknown_keys_are_rejected_like_dockerd(tmp_path: Path) -> None:
    path = write(tmp_path, {"foo": 1, "debug": True, "bar": "x"})
    with pytest.raises(InvalidArgument) as err:
        load_config(["--config-file", str(path)])
    assert err.value.message == (f"unable to configure the Dockyard daemon with file {path}: "
                                 "the following directives don't match any configuration option: bar, foo")


def test_flags_conflicting_with_the_file_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, {"debug": True, "hosts": ["unix:///tmp/x.sock"]})
    with pytest.raises(InvalidArgument) as err:
        load_config(["--config-file", str(path), "-D", "-H", "unix:///tmp/y.sock"])
    assert err.value.message == (
        f"unable to configure the Dockyard daemon with file {path}: the following directives are specified "
        "both as a flag and in the configuration file: debug: (from flag: true, from file: true), "
        "hosts: (from flag: [unix:///tmp/y.sock], from file: [unix:///tmp/x.sock])")


@pytest.mark.parametrize("doc, fragment", [
    ({"debug": "yes"}, 'debug: expected a boolean, got "yes"'),
    ({"hosts": "unix:///x"}, "hosts: expected a list of strings"),
    ({"log-level": "loud"}, "log-level: unknown log level 'loud'"),
    ({"log-driver": "syslogx"}, "log-driver: unknown log driver 'syslogx'"),
    ({"data-root": "relative/dir"}, "data-root: 'relative/dir' is not an absolute path"),
    ({"log-opts": {"max-size": 10}}, "log-opts: expected an object of strings"),
    ({"runtimes": {"runc": {"path": "/x"}}}, "runtime name 'runc' is reserved"),
    ({"runtimes": {"x": {}}}, "runtime 'x' needs a \"path\""),
    ({"storage-driver": "vfs"}, "only the overlay2 storage driver"),
    ({"experimental": True}, "no experimental features"),
])
def test_bad_values_name_the_key(tmp_path: Path, doc: dict, fragment: str) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(InvalidArgument) as err:
        load_config(["--config-file", str(path)])
    assert fragment in err.value.message
    assert str(path) in err.value.message


def test_malformed_json_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, '{"debug": ')
    with pytest.raises(InvalidArgument) as err:
        load_config(["--config-file", str(path)])
    assert f"unable to configure the Dockyard daemon with file {path}:" in err.value.message


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="No such file"):
        load_config(["--config-file", str(tmp_path / "nope.json")])


def test_cross_field_checks(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="default runtime 'nope' is not a configured runtime"):
        load_config(["--config-file", str(write(tmp_path, {})), "--default-runtime", "nope"])
    with pytest.raises(InvalidArgument, match="TLS needs both --tlscert and --tlskey"):
        load_config(["--config-file", str(write(tmp_path, {})), "--tls"])
    with pytest.raises(InvalidArgument, match="--tlsverify needs --tlscacert"):
        load_config(["--config-file", str(write(tmp_path, {})), "--tlsverify", "--tlscert", "/c", "--tlskey", "/k"])


def test_live_restore_false_is_accepted_but_stays_on(tmp_path: Path) -> None:
    config, _ = load_config(["--config-file", str(write(tmp_path, {"live-restore": False}))])
    assert config.live_restore is True


@pytest.mark.parametrize("text, scheme, address, port", [
    ("unix:///run/x.sock", "unix", "/run/x.sock", 0),
    ("/run/y.sock", "unix", "/run/y.sock", 0),
    ("tcp://127.0.0.1:2399", "tcp", "127.0.0.1", 2399),
    ("tcp://127.0.0.1", "tcp", "127.0.0.1", 2375),
    ("tcp://[::1]:2400", "tcp", "::1", 2400),
    ("tcp://:2375", "tcp", "0.0.0.0", 2375),
])
def test_parse_host(text: str, scheme: str, address: str, port: int) -> None:
    listener = parse_host(text)
    assert (listener.scheme, listener.address, listener.port) == (scheme, address, port)


@pytest.mark.parametrize("text", ["fd://", "unix://relative.sock", "tcp://1.2.3.4:notaport", "ssh://host",
                                  "tcp://1.2.3.4:99999"])
def test_bad_hosts(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_host(text)


def test_unencrypted_tcp_only_on_loopback(tmp_path: Path) -> None:
    empty = str(write(tmp_path, {}))
    config, _ = load_config(["--config-file", empty, "-H", "tcp://127.0.0.1:2399", "-H", "tcp://localhost:2398"])
    assert [str(l) for l in plan_listeners(config)] == ["tcp://127.0.0.1:2399", "tcp://localhost:2398"]
    for host in ("tcp://0.0.0.0:2399", "tcp://10.1.2.3:2399", "tcp://[::]:2399"):
        config, _ = load_config(["--config-file", empty, "-H", host])
        with pytest.raises(InvalidArgument, match="without TLS"):
            plan_listeners(config)


def run_dockyardd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dockyard.daemon.main", *args], capture_output=True, text=True,
                          timeout=60, env=_daemon_env())


def test_validate_flag(tmp_path: Path) -> None:
    good = write(tmp_path, {"log-driver": "local"})
    result = run_dockyardd("--config-file", str(good), "--validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "configuration OK"
    bad = write(tmp_path, {"nope": True}, "bad.json")
    result = run_dockyardd("--config-file", str(bad), "--validate")
    assert result.returncode == 1
    assert "don't match any configuration option: nope" in result.stderr


def test_daemon_refuses_public_tcp_without_tls(tmp_path: Path) -> None:
    empty = write(tmp_path, {})
    result = run_dockyardd("--config-file", str(empty), "--data-root", str(tmp_path / "data"),
                           "-H", "tcp://0.0.0.0:23750")
    assert result.returncode == 1
    assert "refusing to serve tcp://0.0.0.0:23750 without TLS" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before touching anything
