"""HostConfig ``Binds``, ``Mounts`` and ``Tmpfs`` -> mount points.

Parsing is pure and validates with Docker's messages; the only host effect
(``-v`` creates a missing host directory, as Docker does) is left to the
caller, which sees :attr:`MountPoint.create_source`.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import InvalidArgument

_RW_MODES = {"rw", "ro"}
_PROPAGATION = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}
_LABEL_MODES = {"z", "Z"}
_CONSISTENCY = {"consistent", "cached", "delegated"}
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
DEFAULT_PROPAGATION = "rprivate"


@dataclass(frozen=True)
class MountPoint:
    """One mount a container asked for (what inspect's ``Mounts`` lists)."""

    type: str                      # "bind" | "tmpfs" | "volume"
    destination: str
    source: str = ""
    rw: bool = True
    mode: str = ""                 # the mode text of a -v spec, as Docker shows it
    propagation: str = ""
    recursive: bool = True
    data: tuple[str, ...] = ()     # tmpfs options (size=, mode=, flags)
    create_source: bool = False    # -v creates a missing host dir; --mount does not
    name: str = ""                 # named volume

    def to_inspect(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"Type": self.type}
        if self.name:
            doc["Name"] = self.name
        doc.update({"Source": self.source, "Destination": self.destination, "Mode": self.mode,
                    "RW": self.rw, "Propagation": self.propagation})
        return doc

    def to_oci(self) -> dict[str, Any]:
        if self.type == "tmpfs":
            options = list(self.data)
            if not self.rw and "ro" not in options:
                options.append("ro")
            return {"destination": self.destination, "type": "tmpfs", "source": "tmpfs", "options": options}
        options = ["rbind" if self.recursive else "bind"]
        if not self.rw:
            options.append("ro")
        if self.propagation:
            options.append(self.propagation)
        return {"destination": self.destination, "type": "bind", "source": self.source, "options": options}


def _invalid_spec(raw: str) -> InvalidArgument:
    return InvalidArgument(f"invalid volume specification: '{raw}'")


def _check_mode(mode: str, raw: str, *, volume: bool) -> tuple[bool, str]:
    """Validate a ``-v`` mode list; return (rw, propagation)."""
    rw_seen = prop_seen = label_seen = cons_seen = 0
    rw, propagation = True, ""
    for item in mode.split(","):
        if item in _RW_MODES:
            rw_seen += 1
            rw = item == "rw"
        elif item in _PROPAGATION:
            prop_seen += 1
            propagation = item
        elif item in _LABEL_MODES:
            label_seen += 1
        elif item in _CONSISTENCY:
            cons_seen += 1
        elif item == "nocopy" and volume:
            continue
        else:
            raise InvalidArgument(f"invalid mode: {mode}")
    if rw_seen > 1 or prop_seen > 1 or label_seen > 1 or cons_seen > 1:
        raise InvalidArgument(f"invalid mode: {mode}")
    if propagation and volume:
        raise InvalidArgument(f"invalid mode: {mode}")
    return rw, propagation


def _is_mode_list(text: str) -> bool:
    try:
        _check_mode(text, text, volume=True)
    except InvalidArgument:
        return False
    return True


def _check_destination(dest: str, raw: str, kind: str) -> str:
    if not dest:
        raise InvalidArgument(f"invalid mount config for type \"{kind}\": field Target must not be empty")
    if not dest.startswith("/"):
        raise InvalidArgument(
            f"invalid volume specification: '{raw}': invalid mount config for type \"{kind}\": "
            f"invalid mount path: '{dest}' mount path must be absolute")
    clean = posixpath.normpath(dest)
    if clean == "/":
        raise InvalidArgument(f"invalid specification: destination can't be '/' in '{raw}'")
    return clean


def volumes_unsupported(what: str) -> InvalidArgument:
    # TODO(volume issue): named and anonymous volumes.
    return InvalidArgument(f"volumes are not supported yet: {what} (use a bind mount or a tmpfs)")


def parse_bind(raw: str) -> MountPoint:
    """One ``Binds`` entry: ``src:dst[:mode]``."""
    parts = raw.split(":")
    if len(parts) == 1 or (len(parts) == 2 and _is_mode_list(parts[1])):
        # "/data" or "/data:ro": an anonymous volume.
        if len(parts) == 2:
            raise _invalid_spec(raw)
        _check_destination(parts[0], raw, "volume")
        raise volumes_unsupported(f"anonymous volume at {parts[0]}")
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise _invalid_spec(raw)
    source, dest = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    is_volume = not source.startswith("/")
    if is_volume:
        if not _VOLUME_NAME.match(source):
            raise InvalidArgument(
                f"create {source}: \"{source}\" includes invalid characters for a local volume name, "
                f"only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host "
                f"directory, use absolute path")
    if mode == "" and len(parts) == 3:
        raise InvalidArgument(f"invalid mode: {mode}")
    rw, propagation = _check_mode(mode, raw, volume=is_volume) if mode else (True, "")
    dest = _check_destination(dest, raw, "volume" if is_volume else "bind")
    if is_volume:
        raise volumes_unsupported(f"named volume {source!r}")
    return MountPoint(type="bind", source=posixpath.normpath(source), destination=dest, rw=rw,
                      mode=mode, propagation=propagation or DEFAULT_PROPAGATION, create_source=True)


def _size_option(size: int) -> str:
    for suffix, unit in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % unit == 0:
            return f"size={size // unit}{suffix}"
    return f"size={size}"


def parse_mount(mount: dict[str, Any]) -> MountPoint:
    """One ``Mounts`` entry (the API's mount.Mount object)."""
    if not isinstance(mount, dict):
        raise InvalidArgument("invalid mount config: a mount must be an object")
    kind = mount.get("Type") or ""
    target = mount.get("Target") or ""
    source = mount.get("Source") or ""
    read_only = bool(mount.get("ReadOnly"))
    prefix = f"invalid mount config for type \"{kind}\""
    if kind not in ("bind", "tmpfs", "volume", "npipe", "cluster"):
        raise InvalidArgument(f"{prefix}: mount type unknown")
    if kind in ("npipe", "cluster"):
        raise InvalidArgument(f"{prefix}: mount type not supported on this platform")
    if not target:
        raise InvalidArgument(f"{prefix}: field Target must not be empty")
    if not target.startswith("/"):
        raise InvalidArgument(f"{prefix}: invalid mount path: '{target}' mount path must be absolute")
    target = posixpath.normpath(target)
    if target == "/":
        raise InvalidArgument(f"{prefix}: invalid specification: destination can't be '/'")
    for field, allowed in (("BindOptions", "bind"), ("TmpfsOptions", "tmpfs"), ("VolumeOptions", "volume")):
        if mount.get(field) and kind != allowed:
            raise InvalidArgument(f"{prefix}: field {field} must not be specified")
    if kind == "bind":
        if not source:
            raise InvalidArgument(f"{prefix}: field Source must not be empty")
        if not source.startswith("/"):
            raise InvalidArgument(f"{prefix}: invalid mount path: '{source}' mount path must be absolute")
        options = mount.get("BindOptions") or {}
        propagation = options.get("Propagation") or DEFAULT_PROPAGATION
        if propagation not in _PROPAGATION:
            raise InvalidArgument(f"{prefix}: invalid propagation mode: {propagation}")
        return MountPoint(type="bind", source=posixpath.normpath(source), destination=target,
                          rw=not read_only, propagation=propagation,
                          recursive=not options.get("NonRecursive"),
                          create_source=bool(options.get("CreateMountpoint")))
    if kind == "tmpfs":
        if source:
            raise InvalidArgument(f"{prefix}: field Source must not be specified")
        options = mount.get("TmpfsOptions") or {}
        data = ["nosuid", "nodev", "noexec"]
        size = options.get("SizeBytes") or 0
        if not isinstance(size, int) or size < 0:
            raise InvalidArgument(f"{prefix}: invalid tmpfs size: {size}")
        if size:
            data.append(_size_option(size))
        mode = options.get("Mode") or 0
        if not isinstance(mode, int) or mode < 0:
            raise InvalidArgument(f"{prefix}: invalid tmpfs mode: {mode}")
        if mode:
            data.append(f"mode={mode & 0o7777:o}")
        return MountPoint(type="tmpfs", destination=target, rw=not read_only, data=tuple(data))
    raise volumes_unsupported(f"volume mount at {target}")


# tmpfs flag pairs: the later of a pair wins when defaults and user options merge.
_FLAG_GROUPS = [{"ro", "rw"}, {"exec", "noexec"}, {"suid", "nosuid"}, {"dev", "nodev"},
                {"atime", "noatime"}, {"diratime", "nodiratime"}, {"relatime", "norelatime"},
                {"strictatime", "nostrictatime"}, {"sync", "async"}]
_TMPFS_DATA_KEYS = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol", "huge"}


def merge_tmpfs_options(defaults: Iterable[str], user: Iterable[str]) -> list[str]:
    """Docker's --tmpfs rule: user flags override their opposites from the
    defaults, data keys are unique."""
    result: list[str] = []
    for opt in list(defaults) + list(user):
        key = opt.split("=", 1)[0]
        group = next((g for g in _FLAG_GROUPS if opt in g), None)
        if group is not None:
            result = [o for o in result if o not in group]
        elif "=" in opt:
            result = [o for o in result if o.split("=", 1)[0] != key]
        elif opt in result:
            continue
        result.append(opt)
    return result


def parse_tmpfs(dest: str, options: str) -> MountPoint:
    """One ``Tmpfs`` map entry: ``{"/run": "rw,size=64m"}``."""
    raw = f"{dest}:{options}" if options else dest
    clean = _check_destination(dest, raw, "tmpfs")
    user = [o.strip() for o in (options or "").split(",") if o.strip()]
    for opt in user:
        key = opt.split("=", 1)[0]
        if "=" in opt and key not in _TMPFS_DATA_KEYS:
            raise InvalidArgument(f"invalid tmpfs option {opt!r} for {dest}")
        if "=" not in opt and not any(opt in g for g in _FLAG_GROUPS) and opt not in (
                "bind", "rbind", "private", "rprivate", "shared", "rshared", "slave", "rslave"):
            raise InvalidArgument(f"invalid tmpfs option {opt!r} for {dest}")
    merged = merge_tmpfs_options(["noexec", "nosuid", "nodev"], user)
    rw = "ro" not in merged
    data = tuple(o for o in merged if o not in ("ro", "rw"))
    return MountPoint(type="tmpfs", destination=clean, rw=rw, data=data)


def parse_host_mounts(host_config: dict[str, Any]) -> list[MountPoint]:
    """All user mounts of a HostConfig, validated; duplicates refused."""
    points: list[MountPoint] = []
    binds = host_config.get("Binds") or []
    if not isinstance(binds, list):
        raise InvalidArgument("invalid Binds: expected a list of strings")
    for raw in binds:
        if not isinstance(raw, str):
            raise InvalidArgument("invalid Binds: expected a list of strings")
        points.append(parse_bind(raw))
    for mount in host_config.get("Mounts") or []:
        points.append(parse_mount(mount))
    tmpfs = host_config.get("Tmpfs") or {}
    if not isinstance(tmpfs, dict):
        raise InvalidArgument("invalid Tmpfs: expected an object of path -> options")
    for dest, options in tmpfs.items():
        points.append(parse_tmpfs(dest, options or ""))
    seen: set[str] = set()
    for point in points:
        if point.destination in seen:
            raise InvalidArgument(f"Duplicate mount point: {point.destination}")
        seen.add(point.destination)
    return points
