"""dockyardd configuration: command-line flags merged with daemon.json.

The rules are dockerd's:

- daemon.json holds the same settings as the flags, under the flags' long
  names (``hosts`` for ``-H``, ``log-opts`` for ``--log-opt``, ...).
- A key that names no setting is an error ("the following directives don't
  match any configuration option: foo"), and so is a setting given both as a
  flag and in the file ("... specified both as a flag and in the
  configuration file: debug: (from flag: true, from file: false)").
- Anything set in neither place takes its default.

:func:`load_config` returns a :class:`DaemonConfig`, a frozen value the rest of
the daemon reads; nothing re-reads the file afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from dockyard.errors import InvalidArgument

DEFAULT_HOST = "unix:///run/dockyard.sock"
DEFAULT_DATA_ROOT = Path("/var/lib/dockyard")
DEFAULT_EXEC_ROOT = Path("/run/dockyard")
DEFAULT_CONFIG_FILE = Path("/etc/dockyard/daemon.json")
DEFAULT_GROUP = "dockyard"
DEFAULT_LOG_DRIVER = "json-file"
#: The runtime a container gets when it names none (``native`` is Dockyard's
#: own OCI runtime; ``runc``/``crun`` are the external ones).
DEFAULT_RUNTIME = "native"
BUILTIN_RUNTIMES = ("native", "runc", "crun")

LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}

# TODO(issue 4): take the driver names from dockyard.logs once its registry
# lands, so the daemon and the log layer cannot disagree.
KNOWN_LOG_DRIVERS = ("json-file", "local", "none")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeSpec:
    """An entry of daemon.json ``runtimes`` (dockerd's shape)."""

    name: str
    path: str
    args: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"path": self.path}
        if self.args:
            doc["runtimeArgs"] = list(self.args)
        return doc


@dataclass(frozen=True)
class DaemonConfig:
    hosts: tuple[str, ...] = (DEFAULT_HOST,)
    data_root: Path = DEFAULT_DATA_ROOT
    exec_root: Path = DEFAULT_EXEC_ROOT
    pidfile: Path | None = None  # None: <exec_root>/dockyardd.pid
    config_file: Path | None = None
    debug: bool = False
    log_level: str = "info"
    log_driver: str = DEFAULT_LOG_DRIVER
    log_opts: Mapping[str, str] = field(default_factory=dict)
    default_runtime: str = DEFAULT_RUNTIME
    runtimes: Mapping[str, RuntimeSpec] = field(default_factory=dict)
    tls: bool = False
    tlsverify: bool = False
    tlscacert: Path | None = None
    tlscert: Path | None = None
    tlskey: Path | None = None
    group: str = DEFAULT_GROUP
    labels: tuple[str, ...] = ()

    #: Dockyard never kills containers when the daemon stops: live-restore is
    #: not a setting but a property, reported as such in /info.
    live_restore: bool = True

    @property
    def pid_path(self) -> Path:
        return self.pidfile if self.pidfile is not None else self.exec_root / "dockyardd.pid"

    @property
    def use_tls(self) -> bool:
        return self.tls or self.tlsverify

    @property
    def effective_log_level(self) -> int:
        return logging.DEBUG if self.debug else LOG_LEVELS[self.log_level]

    def all_runtimes(self) -> dict[str, RuntimeSpec]:
        """Built-in runtimes plus the ones from daemon.json/--add-runtime."""
        found = {name: RuntimeSpec(name, name) for name in BUILTIN_RUNTIMES}
        found.update(self.runtimes)
        return found


# --------------------------------------------------------------------------
# Value checkers: each takes the raw value (from JSON or a flag) and returns
# the typed one, raising InvalidArgument that names the key.

def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidArgument(f"{key}: expected a boolean, got {json.dumps(value)}")


def _str(key: str, value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise InvalidArgument(f"{key}: expected a non-empty string, got {json.dumps(value)}")


def _path(key: str, value: Any) -> Path:
    text = _str(key, value)
    if not os.path.isabs(text):
        raise InvalidArgument(f"{key}: {text!r} is not an absolute path")
    return Path(text)


def _str_list(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InvalidArgument(f"{key}: expected a list of strings, got {json.dumps(value)}")


def _str_map(key: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return dict(value)
    raise InvalidArgument(f"{key}: expected an object of strings, got {json.dumps(value)}")


def _log_level(key: str, value: Any) -> str:
    text = _str(key, value).lower()
    if text not in LOG_LEVELS:
        raise InvalidArgument(f"{key}: unknown log level {value!r} (one of {', '.join(LOG_LEVELS)})")
    return text


def _log_driver(key: str, value: Any) -> str:
    text = _str(key, value)
    if text not in KNOWN_LOG_DRIVERS:
        raise InvalidArgument(f"{key}: unknown log driver {text!r} (one of {', '.join(KNOWN_LOG_DRIVERS)})")
    return text


def _runtimes(key: str, value: Any) -> dict[str, RuntimeSpec]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{key}: expected an object of runtimes, got {json.dumps(value)}")
    found = {}
    for name, spec in value.items():
        if name in BUILTIN_RUNTIMES:
            raise InvalidArgument(f"runtime name '{name}' is reserved")
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) or not spec["path"]:
            raise InvalidArgument(f"{key}: runtime {name!r} needs a \"path\"")
        unknown = set(spec) - {"path", "runtimeArgs"}
        if unknown:
            raise InvalidArgument(f"{key}: runtime {name!r}: unknown keys {', '.join(sorted(unknown))}")
        args = _str_list(f"{key}.{name}.runtimeArgs", spec.get("runtimeArgs", []))
        found[name] = RuntimeSpec(name, spec["path"], args)
    return found


def _storage_driver(key: str, value: Any) -> str:
    text = _str(key, value)
    if text != "overlay2":
        raise InvalidArgument(f"{key}: dockyard supports only the overlay2 storage driver, not {text!r}")
    return text


def _experimental(key: str, value: Any) -> bool:
    if _bool(key, value):
        raise InvalidArgument(f"{key}: dockyard has no experimental features")
    return False


#: daemon.json key -> (DaemonConfig field or None to accept and ignore, checker).
CONFIG_KEYS: dict[str, tuple[str | None, Callable[[str, Any], Any]]] = {
    "hosts": ("hosts", _str_list),
    "data-root": ("data_root", _path),
    "exec-root": ("exec_root", _path),
    "pidfile": ("pidfile", _path),
    "debug": ("debug", _bool),
    "log-level": ("log_level", _log_level),
    "log-driver": ("log_driver", _log_driver),
    "log-opts": ("log_opts", _str_map),
    "default-runtime": ("default_runtime", _str),
    "runtimes": ("runtimes", _runtimes),
    "live-restore": ("live_restore", _bool),
    "tls": ("tls", _bool),
    "tlsverify": ("tlsverify", _bool),
    "tlscacert": ("tlscacert", _path),
    "tlscert": ("tlscert", _path),
    "tlskey": ("tlskey", _path),
    "group": ("group", _str),
    "labels": ("labels", _str_list),
    # Accepted for compatibility with daemon.json files written for dockerd,
    # as long as they ask for what Dockyard does anyway.
    "storage-driver": (None, _storage_driver),
    "experimental": (None, _experimental),
}


def parser() -> argparse.ArgumentParser:
    """dockerd's flags that apply to Dockyard.  Every default is None so that
    :func:`load_config` can tell "given" from "not given"."""
    p = argparse.ArgumentParser(prog="dockyardd", description="Dockyard daemon: serves the Docker Engine API.")
    p.add_argument("-H", "--host", dest="hosts", action="append", metavar="HOST",
                   help=f"daemon socket(s) to listen on (default {DEFAULT_HOST}); repeatable")
    p.add_argument("--data-root", help=f"root of persistent state (default {DEFAULT_DATA_ROOT})")
    p.add_argument("--exec-root", help=f"root of runtime state (default {DEFAULT_EXEC_ROOT})")
    p.add_argument("-p", "--pidfile", help="path of the daemon's pid file (default <exec-root>/dockyardd.pid)")
    p.add_argument("--config-file", help=f"daemon configuration file (default {DEFAULT_CONFIG_FILE})")
    p.add_argument("-D", "--debug", action="store_const", const=True, help="debug logging")
    p.add_argument("-l", "--log-level", help="debug, info, warn, error or fatal (default info)")
    p.add_argument("--log-driver", help=f"default log driver for containers (default {DEFAULT_LOG_DRIVER})")
    p.add_argument("--log-opt", dest="log_opts", action="append", metavar="KEY=VALUE",
                   help="default log driver option; repeatable")
    p.add_argument("--default-runtime", help=f"default OCI runtime (default {DEFAULT_RUNTIME})")
    p.add_argument("--add-runtime", dest="runtimes", action="append", metavar="NAME=PATH",
                   help="register an OCI runtime; repeatable")
    p.add_argument("--live-restore", action="store_const", const=True,
                   help="accepted for dockerd compatibility: live-restore is always on")
    p.add_argument("--tls", action="store_const", const=True, help="serve TCP hosts with TLS")
    p.add_argument("--tlsverify", action="store_const", const=True,
                   help="serve TCP hosts with TLS and require client certificates signed by --tlscacert")
    p.add_argument("--tlscacert", help="CA certificate that client certificates must chain to")
    p.add_argument("--tlscert", help="server certificate")
    p.add_argument("--tlskey", help="server private key")
    p.add_argument("-G", "--group", help=f"group owning the unix sockets (default {DEFAULT_GROUP} if it exists)")
    p.add_argument("--label", dest="labels", action="append", metavar="KEY=VALUE", help="daemon label; repeatable")
    p.add_argument("--validate", action="store_true", help="check the configuration and exit")
    return p


def _flag_values(ns: argparse.Namespace) -> dict[str, Any]:
    """Flags given on the command line, under their daemon.json key."""
    given: dict[str, Any] = {}
    simple = {
        "hosts": "hosts", "data-root": "data_root", "exec-root": "exec_root", "pidfile": "pidfile",
        "debug": "debug", "log-level": "log_level", "log-driver": "log_driver",
        "default-runtime": "default_runtime", "live-restore": "live_restore", "tls": "tls",
        "tlsverify": "tlsverify", "tlscacert": "tlscacert", "tlscert": "tlscert", "tlskey": "tlskey",
        "group": "group", "labels": "labels",
    }
    for key, attr in simple.items():
        value = getattr(ns, attr)
        if value is not None:
            given[key] = value
    if ns.log_opts is not None:
        given["log-opts"] = dict(_split_pair("--log-opt", item) for item in ns.log_opts)
    if ns.runtimes is not None:
        given["runtimes"] = {name: {"path": path} for name, path in
                             (_split_pair("--add-runtime", item) for item in ns.runtimes)}
    return given


def _split_pair(flag: str, item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise InvalidArgument(f"{flag}: expected KEY=VALUE, got {item!r}")
    return key, value


def _go_repr(value: Any) -> str:
    """How dockerd prints a value in its conflict message (Go's %v)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_go_repr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_repr(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise InvalidArgument(f"unable to configure the Dockyard daemon with file {path}: {e.strerror}") from e
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"unable to configure the Dockyard daemon with file {path}: {e}") from e
    if not isinstance(doc, dict):
        raise InvalidArgument(f"unable to configure the Dockyard daemon with file {path}: "
                              "the top level must be a JSON object")
    return doc


def load_config(argv: Sequence[str] | None = None) -> tuple[DaemonConfig, argparse.Namespace]:
    """Parse ``argv`` and the configuration file into a DaemonConfig.

    Raises InvalidArgument with dockerd's wording for unknown keys, conflicts
    between flags and file, and bad values.
    """
    ns = parser().parse_args(argv)
    flags = _flag_values(ns)

    explicit_file = ns.config_file is not None
    config_file = Path(ns.config_file) if explicit_file else DEFAULT_CONFIG_FILE
    from_file: dict[str, Any] = {}
    if explicit_file or config_file.exists():
        from_file = read_config_file(config_file)

        def fail(reason: str) -> InvalidArgument:
            return InvalidArgument(f"unable to configure the Dockyard daemon with file {config_file}: {reason}")

        unknown = sorted(k for k in from_file if k not in CONFIG_KEYS)
        if unknown:
            raise fail("the following directives don't match any configuration option: " + ", ".join(unknown))
        conflicts = sorted(k for k in CONFIG_KEYS if k in flags and k in from_file)
        if conflicts:
            raise fail("the following directives are specified both as a flag and in the configuration file: "
                       + ", ".join(f"{k}: (from flag: {_go_repr(flags[k])}, from file: {_go_repr(from_file[k])})"
                                   for k in conflicts))
        try:
            # Checked here, not below, so the message names the file.
            for key, value in from_file.items():
                CONFIG_KEYS[key][1](key, value)
        except InvalidArgument as e:
            raise fail(e.message) from e

    values: dict[str, Any] = {}
    for key, raw in {**from_file, **flags}.items():
        attr, check = CONFIG_KEYS[key]
        if key in ("data-root", "exec-root", "pidfile", "tlscacert", "tlscert", "tlskey") and key in flags:
            raw = os.path.abspath(raw)  # flags may be relative to the cwd, as dockerd allows
        typed = check(key, raw)
        if attr is not None:
            values[attr] = typed
    if explicit_file or from_file:
        values["config_file"] = config_file

    if values.get("live_restore") is False:
        log.warning("live-restore is always enabled in Dockyard; \"live-restore\": false is ignored")
        values["live_restore"] = True
    config = DaemonConfig(**values)
    validate(config)
    return config, ns


def validate(config: DaemonConfig) -> None:
    """Cross-field checks that no single value can make."""
    if config.default_runtime not in config.all_runtimes():
        raise InvalidArgument(f"default runtime {config.default_runtime!r} is not a configured runtime "
                              f"(configured: {', '.join(sorted(config.all_runtimes()))})")
    if config.use_tls:
        if config.tlscert is None or config.tlskey is None:
            raise InvalidArgument("TLS needs both --tlscert and --tlskey")
        if config.tlsverify and config.tlscacert is None:
            raise InvalidArgument("--tlsverify needs --tlscacert to verify client certificates")
    if not config.hosts:
        raise InvalidArgument("no hosts to listen on")
    for label in config.labels:
        if "=" not in label:
            raise InvalidArgument(f"bad daemon label {label!r}: expected KEY=VALUE")
