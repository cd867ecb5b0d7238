"""config.json -> validated, typed values.

Everything the runtime will act on is checked here, up front, before a
single namespace or cgroup exists, so a bad bundle fails with
``InvalidArgument`` naming the field (``config.json: process.args: must be
a non-empty array``) and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from ...errors import InvalidArgument, NotFound
from ...linux.capabilities import CAPABILITIES
from ...linux.mount import PROPAGATION_FLAGS
from ...linux.namespaces import NAMESPACE_FLAGS
from ...linux.process import RLIMITS, read_small

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

#: Annotation that asks for the built-in init (PID 1 reaps zombies and
#: forwards signals), what `docker run --init` maps to.
INIT_ANNOTATION = "org.dockyard.init"

#: sysctl prefixes that are namespaced (ipc and net namespaces), the only
#: ones a container may set.
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def _bad(field_name: str, problem: str) -> InvalidArgument:
    return InvalidArgument(f"config.json: {field_name}: {problem}")


class User(NamedTuple):
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()


class Capabilities(NamedTuple):
    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()


class Rlimit(NamedTuple):
    type: str
    soft: int
    hard: int


class Process(NamedTuple):
    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (height, width)
    user: User = User()
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    apparmor_profile: str = ""
    selinux_label: str = ""
    oom_score_adj: int | None = None


class Mount(NamedTuple):
    destination: str
    type: str = ""
    source: str = ""
    options: tuple[str, ...] = ()

    @property
    def is_bind(self) -> bool:
        return self.type == "bind" or "bind" in self.options or "rbind" in self.options


class Hook(NamedTuple):
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


class Namespace(NamedTuple):
    type: str
    path: str = ""


class IDMapping(NamedTuple):
    container_id: int
    host_id: int
    size: int


class Device(NamedTuple):
    path: str
    type: str
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0


class Config(NamedTuple):
    """A validated config.json.  ``raw`` keeps the document for the parts
    passed through as-is (linux.resources to the cgroup, seccomp to the
    compiler)."""

    raw: dict[str, Any]
    bundle: Path
    root_path: Path
    root_readonly: bool
    process: Process
    hostname: str
    domainname: str
    mounts: tuple[Mount, ...]
    hooks: dict[str, tuple[Hook, ...]]
    annotations: dict[str, str]
    namespaces: tuple[Namespace, ...]
    uid_mappings: tuple[IDMapping, ...]
    gid_mappings: tuple[IDMapping, ...]
    devices: tuple[Device, ...]
    cgroups_path: str
    resources: dict[str, Any]
    sysctl: dict[str, str]
    seccomp: dict[str, Any] | None
    rootfs_propagation: str
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    oci_version: str

    def namespace(self, ns_type: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None

    @property
    def wants_init(self) -> bool:
        return self.annotations.get(INIT_ANNOTATION, "").lower() in ("1", "true", "yes")


# --- helpers ----------------------------------------------------------------


def _obj(value: Any, name: str, required: bool = False) -> dict:
    if value is None:
        if required:
            raise _bad(name, "is required")
        return {}
    if not isinstance(value, dict):
        raise _bad(name, "must be an object")
    return value


def _list(value: Any, name: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(name, "must be an array")
    return value


def _typed(value: Any, name: str, kind: type, what: str, default: Any) -> Any:
    if value is None:
        return default
    if not isinstance(value, kind):
        raise _bad(name, f"must be {what}")
    return value


def _str(value: Any, name: str, default: str = "") -> str:
    return _typed(value, name, str, "a string", default)


def _strs(value: Any, name: str) -> tuple[str, ...]:
    items = _list(value, name)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _bad(f"{name}[{i}]", "must be a string")
    return tuple(items)


def _int(value: Any, name: str, default: int | None = None, lo: int | None = None,
         hi: int | None = None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, "must be an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _bad(name, f"{value} is out of range")
    return value


def _bool(value: Any, name: str) -> bool:
    return _typed(value, name, bool, "a boolean", False)


def _env(value: Any, name: str) -> tuple[str, ...]:
    env = _strs(value, name)
    for i, item in enumerate(env):
        if "=" not in item:
            raise _bad(f"{name}[{i}]", f"{item!r} is not KEY=value")
    return env


# --- sections ---------------------------------------------------------------


def parse_process(doc: Any, name: str = "process") -> Process:
    """Validate an OCI ``process`` object (also what ``exec`` takes)."""
    proc = _obj(doc, name, required=True)
    args = proc.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise _bad(f"{name}.args", "must be a non-empty array")
    if not args[0]:
        raise _bad(f"{name}.args[0]", "must not be empty")
    cwd = _str(proc.get("cwd"), f"{name}.cwd", "/")
    if not cwd.startswith("/"):
        raise _bad(f"{name}.cwd", f"{cwd!r} is not an absolute path")
    user_doc = _obj(proc.get("user"), f"{name}.user")
    umask = user_doc.get("umask")
    user = User(
        uid=_int(user_doc.get("uid"), f"{name}.user.uid", 0, 0, 2**32 - 2),
        gid=_int(user_doc.get("gid"), f"{name}.user.gid", 0, 0, 2**32 - 2),
        umask=_int(umask, f"{name}.user.umask", None, 0, 0o777),
        additional_gids=tuple(_int(g, f"{name}.user.additionalGids[{i}]", 0, 0, 2**32 - 2)
                              for i, g in enumerate(_list(user_doc.get("additionalGids"),
                                                          f"{name}.user.additionalGids"))),
    )
    caps = None
    if proc.get("capabilities") is not None:
        caps_doc = _obj(proc.get("capabilities"), f"{name}.capabilities")
        sets = {}
        for cap_set in CAP_SETS:
            names = _strs(caps_doc.get(cap_set), f"{name}.capabilities.{cap_set}")
            for cap in names:
                if cap not in CAPABILITIES:
                    raise _bad(f"{name}.capabilities.{cap_set}", f"unknown capability {cap!r}")
            sets[cap_set] = names
        caps = Capabilities(**sets)
    rlimits = []
    for i, rl in enumerate(_list(proc.get("rlimits"), f"{name}.rlimits")):
        where = f"{name}.rlimits[{i}]"
        rl = _obj(rl, where)
        kind = rl.get("type")
        if kind not in RLIMITS:
            raise _bad(f"{where}.type", f"unknown rlimit {kind!r}")
        soft = _int(rl.get("soft"), f"{where}.soft", None, 0, 2**64 - 1)
        hard = _int(rl.get("hard"), f"{where}.hard", None, 0, 2**64 - 1)
        if soft is None or hard is None:
            raise _bad(where, "soft and hard are required")
        if soft > hard:
            raise _bad(where, f"soft limit {soft} exceeds hard limit {hard}")
        rlimits.append(Rlimit(kind, soft, hard))
    console = None
    if proc.get("consoleSize") is not None:
        cs = _obj(proc.get("consoleSize"), f"{name}.consoleSize")
        console = (_int(cs.get("height"), f"{name}.consoleSize.height", 0, 0, 65535),
                   _int(cs.get("width"), f"{name}.consoleSize.width", 0, 0, 65535))
    return Process(
        args=tuple(args),
        env=_env(proc.get("env"), f"{name}.env"),
        cwd=cwd,
        terminal=_bool(proc.get("terminal"), f"{name}.terminal"),
        console_size=console,
        user=user,
        capabilities=caps,
        rlimits=tuple(rlimits),
        no_new_privileges=_bool(proc.get("noNewPrivileges"), f"{name}.noNewPrivileges"),
        apparmor_profile=_str(proc.get("apparmorProfile"), f"{name}.apparmorProfile"),
        selinux_label=_str(proc.get("selinuxLabel"), f"{name}.selinuxLabel"),
        oom_score_adj=_int(proc.get("oomScoreAdj"), f"{name}.oomScoreAdj", None, -1000, 1000),
    )


def _parse_mounts(doc: Any) -> tuple[Mount, ...]:
    mounts = []
    for i, m in enumerate(_list(doc, "mounts")):
        where = f"mounts[{i}]"
        m = _obj(m, where)
        dest = m.get("destination")
        if not isinstance(dest, str) or not dest.startswith("/"):
            raise _bad(f"{where}.destination", f"{dest!r} is not an absolute path")
        mount = Mount(dest, _str(m.get("type"), f"{where}.type"), _str(m.get("source"), f"{where}.source"),
                      _strs(m.get("options"), f"{where}.options"))
        if mount.is_bind:
            if not mount.source:
                raise _bad(f"{where}.source", "a bind mount needs a source")
        elif not mount.type:
            raise _bad(f"{where}.type", "is required for a non-bind mount")
        mounts.append(mount)
    return tuple(mounts)


def _parse_hooks(doc: Any) -> dict[str, tuple[Hook, ...]]:
    hooks_doc = _obj(doc, "hooks")
    hooks: dict[str, tuple[Hook, ...]] = {}
    for kind, entries in hooks_doc.items():
        if kind not in HOOK_KINDS:
            raise _bad("hooks", f"unknown hook kind {kind!r}")
        parsed = []
        for i, h in enumerate(_list(entries, f"hooks.{kind}")):
            where = f"hooks.{kind}[{i}]"
            h = _obj(h, where)
            path = h.get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                raise _bad(f"{where}.path", f"{path!r} is not an absolute path")
            parsed.append(Hook(path, _strs(h.get("args"), f"{where}.args"), _env(h.get("env"), f"{where}.env"),
                               _int(h.get("timeout"), f"{where}.timeout", None, 1)))
        hooks[kind] = tuple(parsed)
    return hooks


def _parse_mappings(doc: Any, name: str) -> tuple[IDMapping, ...]:
    out = []
    for i, m in enumerate(_list(doc, name)):
        m = _obj(m, f"{name}[{i}]")
        out.append(IDMapping(_int(m.get("containerID"), f"{name}[{i}].containerID", None, 0, 2**32 - 1),
                             _int(m.get("hostID"), f"{name}[{i}].hostID", None, 0, 2**32 - 1),
                             _int(m.get("size"), f"{name}[{i}].size", None, 1, 2**32)))
        if None in (out[-1].container_id, out[-1].host_id, out[-1].size):
            raise _bad(f"{name}[{i}]", "containerID, hostID and size are required")
    return tuple(out)


_DEVICE_TYPES = ("c", "u", "b", "p")


def _parse_devices(doc: Any) -> tuple[Device, ...]:
    out = []
    for i, d in enumerate(_list(doc, "linux.devices")):
        where = f"linux.devices[{i}]"
        d = _obj(d, where)
        path = d.get("path")
        if not isinstance(path, str) or not path.startswith("/dev/"):
            raise _bad(f"{where}.path", f"{path!r} must be an absolute path under /dev")
        kind = d.get("type")
        if kind not in _DEVICE_TYPES:
            raise _bad(f"{where}.type", f"unknown device type {kind!r}")
        major = _int(d.get("major"), f"{where}.major", 0, 0)
        minor = _int(d.get("minor"), f"{where}.minor", 0, 0)
        out.append(Device(path, kind, major, minor,
                          _int(d.get("fileMode"), f"{where}.fileMode", 0o666, 0, 0o7777),
                          _int(d.get("uid"), f"{where}.uid", 0, 0), _int(d.get("gid"), f"{where}.gid", 0, 0)))
    return tuple(out)


def _check_sysctl(sysctl: dict[str, str], ns_types: set[str]) -> None:
    for key, value in sysctl.items():
        if not isinstance(value, str):
            raise _bad(f"linux.sysctl.{key}", "must be a string")
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if "ipc" not in ns_types:
                raise _bad(f"linux.sysctl.{key}", "needs a new ipc namespace")
        elif key.startswith("net."):
            if "network" not in ns_types:
                raise _bad(f"linux.sysctl.{key}", "needs a new network namespace")
        elif key in ("kernel.hostname", "kernel.domainname"):
            if "uts" not in ns_types:
                raise _bad(f"linux.sysctl.{key}", "needs a new uts namespace")
        else:
            raise _bad(f"linux.sysctl.{key}", "is not namespaced; a container may not set it")


def parse_config(doc: Any, bundle: Path) -> Config:
    """Validate a config.json document.  ``bundle`` anchors ``root.path``."""
    if not isinstance(doc, dict):
        raise InvalidArgument("config.json: must be a JSON object")
    oci_version = doc.get("ociVersion")
    if not isinstance(oci_version, str) or not oci_version.startswith("1."):
        raise _bad("ociVersion", f"{oci_version!r} is not a supported version (1.x)")
    root = _obj(doc.get("root"), "root", required=True)
    root_path = root.get("path")
    if not isinstance(root_path, str) or not root_path:
        raise _bad("root.path", "is required")
    root_abs = Path(root_path) if root_path.startswith("/") else bundle / root_path
    if not root_abs.is_dir():
        raise _bad("root.path", f"{str(root_abs)!r} is not a directory")
    process = parse_process(doc.get("process"))
    linux = _obj(doc.get("linux"), "linux")

    namespaces = []
    seen = set()
    for i, ns in enumerate(_list(linux.get("namespaces"), "linux.namespaces")):
        ns = _obj(ns, f"linux.namespaces[{i}]")
        kind = ns.get("type")
        if kind not in NAMESPACE_FLAGS:
            raise _bad(f"linux.namespaces[{i}].type", f"unknown namespace {kind!r}")
        if kind in seen:
            raise _bad(f"linux.namespaces[{i}].type", f"namespace {kind!r} listed twice")
        seen.add(kind)
        path = _str(ns.get("path"), f"linux.namespaces[{i}].path")
        if path and not os.path.exists(path):
            raise _bad(f"linux.namespaces[{i}].path", f"{path!r} does not exist")
        namespaces.append(Namespace(kind, path))
    new_ns = {ns.type for ns in namespaces}

    uid_maps = _parse_mappings(linux.get("uidMappings"), "linux.uidMappings")
    gid_maps = _parse_mappings(linux.get("gidMappings"), "linux.gidMappings")
    user_ns = next((ns for ns in namespaces if ns.type == "user"), None)
    if (uid_maps or gid_maps) and (user_ns is None or user_ns.path):
        raise _bad("linux.uidMappings", "mappings need a new user namespace")
    if user_ns is not None and not user_ns.path and not (uid_maps and gid_maps):
        raise _bad("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings")

    hostname = _str(doc.get("hostname"), "hostname")
    domainname = _str(doc.get("domainname"), "domainname")
    uts = next((ns for ns in namespaces if ns.type == "uts"), None)
    if (hostname or domainname) and (uts is None or uts.path):
        raise _bad("hostname", "setting a hostname needs a new uts namespace")

    sysctl = _obj(linux.get("sysctl"), "linux.sysctl")
    _check_sysctl(sysctl, {ns.type for ns in namespaces if not ns.path})

    propagation = _str(linux.get("rootfsPropagation"), "linux.rootfsPropagation")
    if propagation and propagation not in PROPAGATION_FLAGS:
        raise _bad("linux.rootfsPropagation", f"unknown propagation {propagation!r}")
    cgroups_path = _str(linux.get("cgroupsPath"), "linux.cgroupsPath")
    resources = _obj(linux.get("resources"), "linux.resources")
    seccomp = linux.get("seccomp")
    if seccomp is not None and not isinstance(seccomp, dict):
        raise _bad("linux.seccomp", "must be an object")
    annotations = _obj(doc.get("annotations"), "annotations")
    for key, value in annotations.items():
        if not isinstance(value, str):
            raise _bad(f"annotations.{key}", "must be a string")
    mounts = _parse_mounts(doc.get("mounts"))
    if "mount" not in new_ns and mounts:
        raise _bad("mounts", "mounts need a mount namespace")
    return Config(
        raw=doc,
        bundle=bundle,
        root_path=root_abs,
        root_readonly=_bool(root.get("readonly"), "root.readonly"),
        process=process,
        hostname=hostname,
        domainname=domainname,
        mounts=mounts,
        hooks=_parse_hooks(doc.get("hooks")),
        annotations=dict(annotations),
        namespaces=tuple(namespaces),
        uid_mappings=uid_maps,
        gid_mappings=gid_maps,
        devices=_parse_devices(linux.get("devices")),
        cgroups_path=cgroups_path,
        resources=resources,
        sysctl=dict(sysctl),
        seccomp=seccomp,
        rootfs_propagation=propagation,
        masked_paths=_strs(linux.get("maskedPaths"), "linux.maskedPaths"),
        readonly_paths=_strs(linux.get("readonlyPaths"), "linux.readonlyPaths"),
        oci_version=oci_version,
    )


def load_bundle(bundle: Path) -> Config:
    """Read and validate ``bundle``/config.json."""
    bundle = Path(os.path.abspath(bundle))
    path = bundle / "config.json"
    try:
        doc = json.loads(read_small(path))
    except FileNotFoundError:
        raise NotFound(f"bundle {str(bundle)!r}: no config.json") from None
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
        raise InvalidArgument(f"config.json: not valid JSON: {exc}") from None
    except OSError as exc:
        raise InvalidArgument(f"config.json: cannot read {str(path)!r}: {exc.strerror}") from None
    return parse_config(doc, bundle)
