"""OCI ``linux.resources`` -> the control-file writes that enforce it.

Pure planning, no I/O: :func:`plan_v1` and :func:`plan_v2` validate the
whole object and return the writes in the order they must happen, so a bad
value is reported (``InvalidArgument`` naming the field) before anything
is written.

OCI fields map to files by tables, one per backend and section.  A table
row is ``(OCI key, file, converter, strict)``; the converter validates the
value and renders what the kernel expects, or returns ``None`` for "leave
unset" (OCI, like runc, treats 0 as unset for limits, shares and quotas).
The few values that span several fields (v2 ``cpu.max`` = quota and
period, ``memory.swap.max`` = swap - limit, ``io.max`` = every throttle of
one device) are built by small functions after the tables.

Units and special values (kernel cgroup docs, v1 -> v2):

- memory.limit, bytes: memory.limit_in_bytes (-1 = none) -> memory.max ("max")
- memory.reservation: memory.soft_limit_in_bytes -> memory.low
- memory.swap, memory+swap total: memory.memsw.limit_in_bytes
  -> memory.swap.max = swap - limit
- cpu.shares, 2..262144: cpu.shares -> cpu.weight = 1 + (shares-2)*9999/262142
- cpu.quota/period, microseconds: cpu.cfs_quota_us, cpu.cfs_period_us
  -> cpu.max "quota period"
- pids.limit (<= 0: none): pids.max -> pids.max
- blockIO.weight, 10..1000: blkio.weight or blkio.bfq.weight
  -> io.bfq.weight (same range) or io.weight = 1 + (w-10)*9999/990
- blockIO.throttle*Device: blkio.throttle.{read,write}_{bps,iops}_device
  -> io.max "MAJ:MIN rbps=.. wbps=.. riops=.. wiops=.."
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from dockyard.errors import InvalidArgument

from .devices import DeviceRule, parse_devices

#: A value to write, or a function of the file's current content that
#: returns it (for partial updates such as changing only the cpu period).
Value = str | Callable[[str], str]


class Setting(NamedTuple):
    """One planned write.

    ``choices`` are alternative files (with the value each wants); the
    first that exists is written.  ``strict``: a kernel rejection is an
    error (else a warning, for deprecated knobs).  ``missing``: what to do
    when no file exists: "warn" (not supported here), "error" (the spec
    requires failure, as for ``unified``) or "skip" (optional extra).
    """

    field: str
    choices: tuple[tuple[str, Value], ...]
    strict: bool = True
    missing: str = "warn"

    @property
    def controller(self) -> str:
        return self.choices[0][0].split(".", 1)[0]


class Plan(NamedTuple):
    settings: tuple[Setting, ...]
    devices: tuple[DeviceRule, ...] | None  # None: leave the device list alone
    unsupported: tuple[str, ...]            # OCI fields this backend cannot enforce


# --------------------------------------------------------------------------
# Value converters: (field, value) -> rendered string or None (unset)


def _int(field: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"linux.resources.{field} must be an integer, got {value!r}")
    if lo is not None and value < lo or hi is not None and value > hi:
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise InvalidArgument(f"linux.resources.{field} must be {bounds}, got {value}")
    return value


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"linux.resources.{field} must be a boolean, got {value!r}")
    return value


def _bytes_v1(field: str, value: Any) -> str | None:
    v = _int(field, value, lo=-1)
    return None if v == 0 else str(v)


def _bytes_v2(field: str, value: Any) -> str | None:
    v = _int(field, value, lo=-1)
    return None if v == 0 else ("max" if v == -1 else str(v))


def _swappiness(field: str, value: Any) -> str | None:
    v = _int(field, value, lo=-1, hi=100)
    return None if v == -1 else str(v)


def _flag(field: str, value: Any) -> str:
    return "1" if _bool(field, value) else "0"


def _shares(field: str, value: Any) -> str | None:
    v = _int(field, value, lo=0)
    return None if v == 0 else str(v)


def _shares_to_weight(shares: int) -> int:
    # runc/crun's mapping of the v1 range [2, 262144] onto v2's [1, 10000];
    # clamp first, as the v1 kernel would, so the division stays in range.
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def _weight_v2(field: str, value: Any) -> str | None:
    v = _int(field, value, lo=0)
    return None if v == 0 else str(_shares_to_weight(v))


def _period(field: str, value: Any) -> str | None:
    v = _int(field, value, lo=0)
    if v == 0:
        return None
    _int(field, v, lo=1000, hi=1_000_000)
    return str(v)


def _quota(field: str, value: Any) -> int | None:
    v = _int(field, value, lo=-1)
    if v == 0:
        return None
    if v != -1 and v < 1000:
        raise InvalidArgument(f"linux.resources.{field} must be -1 (no limit) or at least 1000 microseconds, got {v}")
    return v


def _quota_v1(field: str, value: Any) -> str | None:
    v = _quota(field, value)
    return None if v is None else str(v)


def _uint(field: str, value: Any) -> str:
    return str(_int(field, value, lo=0))


def _nonzero(field: str, value: Any) -> str | None:
    v = _int(field, value, lo=0)
    return None if v == 0 else str(v)


def _rt_runtime(field: str, value: Any) -> str | None:
    v = _int(field, value, lo=-1)
    return None if v == 0 else str(v)


_CPU_LIST = re.compile(r"^\s*(\d+(-\d+)?)(,\d+(-\d+)?)*\s*$")


def _cpu_list(field: str, value: Any) -> str | None:
    if not isinstance(value, str):
        raise InvalidArgument(f"linux.resources.{field} must be a string like '0-3,5', got {value!r}")
    if value == "":
        return None
    if not _CPU_LIST.match(value):
        raise InvalidArgument(f"linux.resources.{field}: {value!r} is not a list like '0-3,5'")
    return value.strip()


def _idle(field: str, value: Any) -> str:
    return str(_int(field, value, lo=0, hi=1))


def _pids(field: str, value: Any) -> str:
    v = _int(field, value)
    # OCI and Docker use 0 and -1 for "no limit".
    return "max" if v <= 0 else str(v)


def _blkio_weight(field: str, value: Any) -> int | None:
    v = _int(field, value, lo=0, hi=1000)
    if v == 0:
        return None
    return _int(field, v, lo=10, hi=1000)


def _blkio_weight_v1(field: str, value: Any) -> str | None:
    v = _blkio_weight(field, value)
    return None if v is None else str(v)


def _io_weight_v2(weight: int) -> int:
    # runc/crun's mapping of blkio [10, 1000] onto io.weight [1, 10000].
    return 1 + (weight - 10) * 9999 // 990


def _classid(field: str, value: Any) -> str:
    return str(_int(field, value, lo=0, hi=0xFFFFFFFF))


# --------------------------------------------------------------------------
# Tables: (OCI key, file, converter, strict)

Row = tuple[str, str, Callable[[str, Any], "str | None"], bool]

V1_MEMORY: tuple[Row, ...] = (
    ("reservation", "memory.soft_limit_in_bytes", _bytes_v1, True),
    ("limit", "memory.limit_in_bytes", _bytes_v1, True),
    ("swap", "memory.memsw.limit_in_bytes", _bytes_v1, True),
    ("kernel", "memory.kmem.limit_in_bytes", _bytes_v1, False),
    ("kernelTCP", "memory.kmem.tcp.limit_in_bytes", _bytes_v1, False),
    ("swappiness", "memory.swappiness", _swappiness, True),
    ("disableOOMKiller", "memory.oom_control", _flag, True),
    ("useHierarchy", "memory.use_hierarchy", _flag, False),  # always on since 5.x; writing 0 fails
)

V2_MEMORY: tuple[Row, ...] = (
    ("reservation", "memory.low", _bytes_v2, True),
    ("limit", "memory.max", _bytes_v2, True),
    # swap: memory.swap.max, computed below from swap and limit
)

V1_CPU: tuple[Row, ...] = (
    ("shares", "cpu.shares", _shares, True),
    # period before quota: the kernel checks quota against the period in force
    ("period", "cpu.cfs_period_us", _period, True),
    ("quota", "cpu.cfs_quota_us", _quota_v1, True),
    ("burst", "cpu.cfs_burst_us", _uint, True),
    ("realtimePeriod", "cpu.rt_period_us", _nonzero, True),
    ("realtimeRuntime", "cpu.rt_runtime_us", _rt_runtime, True),
    ("cpus", "cpuset.cpus", _cpu_list, True),
    ("mems", "cpuset.mems", _cpu_list, True),
    ("idle", "cpu.idle", _idle, True),
)

V2_CPU: tuple[Row, ...] = (
    ("shares", "cpu.weight", _weight_v2, True),
    # quota + period: cpu.max, computed below
    ("burst", "cpu.max.burst", _uint, True),
    ("cpus", "cpuset.cpus", _cpu_list, True),
    ("mems", "cpuset.mems", _cpu_list, True),
    ("idle", "cpu.idle", _idle, True),
)

PIDS: tuple[Row, ...] = (("limit", "pids.max", _pids, True),)

#: OCI fields a backend cannot enforce, with the values that mean "unset"
#: (those do not deserve a warning).
V1_UNSUPPORTED: dict[str, tuple[Any, ...]] = {}
V2_UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "memory.kernel": (0, -1),
    "memory.kernelTCP": (0, -1),
    "memory.swappiness": (-1,),
    "memory.disableOOMKiller": (False,),
    "memory.useHierarchy": (True,),
    "cpu.realtimePeriod": (0,),
    "cpu.realtimeRuntime": (0,),
    "blockIO.leafWeight": (0,),
    "network.classID": (0,),
    "network.priorities": ((),),
}

#: v1 throttle files and v2 io.max keys, by OCI field.
THROTTLES: tuple[tuple[str, str, str], ...] = (
    ("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
    ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
    ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
    ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"),
)

_PAGE_SIZE = re.compile(r"^[1-9][0-9]*[KMG]B$")


# --------------------------------------------------------------------------
# Planning


def _section(resources: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = resources.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"linux.resources.{key} must be an object, got {type(value).__name__}")
    return value


def _list(field: str, value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"linux.resources.{field} must be an array, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InvalidArgument(f"linux.resources.{field}[{i}] must be an object")
    return value


def _rows(section_name: str, section: Mapping[str, Any], rows: tuple[Row, ...]) -> list[Setting]:
    out = []
    for key, file, convert, strict in rows:
        if key in section and section[key] is not None:
            field = f"{section_name}.{key}"
            value = convert(field, section[key])
            if value is not None:
                out.append(Setting(field, ((file, value),), strict=strict))
    return out


def _device(field: str, entry: Mapping[str, Any]) -> str:
    major = _int(f"{field}.major", entry.get("major"), lo=0)
    minor = _int(f"{field}.minor", entry.get("minor"), lo=0)
    return f"{major}:{minor}"


def _check_memory(memory: Mapping[str, Any]) -> None:
    limit, swap = memory.get("limit"), memory.get("swap")
    if isinstance(limit, int) and isinstance(swap, int) and limit > 0 and swap > 0 and swap < limit:
        raise InvalidArgument(
            f"linux.resources.memory.swap ({swap}) must be at least memory.limit ({limit}): "
            "OCI swap is the memory+swap total"
        )


def _check_cpu(cpu: Mapping[str, Any]) -> None:
    quota, burst = cpu.get("quota"), cpu.get("burst")
    if isinstance(quota, int) and isinstance(burst, int) and quota > 0 and burst > quota:
        raise InvalidArgument(f"linux.resources.cpu.burst ({burst}) must not exceed cpu.quota ({quota})")


def _hugepages(resources: Mapping[str, Any], limit_files: tuple[str, str]) -> list[Setting]:
    out = []
    for i, entry in enumerate(_list("hugepageLimits", resources.get("hugepageLimits"))):
        field = f"hugepageLimits[{i}]"
        size = entry.get("pageSize")
        if not isinstance(size, str) or not _PAGE_SIZE.match(size):
            raise InvalidArgument(f"linux.resources.{field}.pageSize must look like 2MB or 1GB, got {size!r}")
        limit = str(_int(f"{field}.limit", entry.get("limit"), lo=0))
        usage_file, reservation_file = (f.format(size=size) for f in limit_files)
        out.append(Setting(f"{field}.limit", ((usage_file, limit),)))
        # Reservation accounting is newer (5.7); limit it too where it exists.
        out.append(Setting(f"{field}.limit", ((reservation_file, limit),), missing="skip"))
    return out


def _rdma(resources: Mapping[str, Any]) -> list[Setting]:
    rdma = _section(resources, "rdma")
    out = []
    for device, limits in rdma.items():
        field = f"rdma.{device}"
        if not isinstance(limits, Mapping):
            raise InvalidArgument(f"linux.resources.{field} must be an object")
        parts = [device]
        for key, kernel_key in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
            if limits.get(key) is not None:
                parts.append(f"{kernel_key}={_int(f'{field}.{key}', limits[key], lo=0, hi=0xFFFFFFFF)}")
        if len(parts) == 1:
            raise InvalidArgument(f"linux.resources.{field}: give hcaHandles or hcaObjects")
        out.append(Setting(field, (("rdma.max", " ".join(parts)),)))
    return out


def _network(resources: Mapping[str, Any]) -> list[Setting]:
    network = _section(resources, "network")
    out = []
    if network.get("classID") is not None:
        out.append(Setting("network.classID", (("net_cls.classid", _classid("network.classID", network["classID"])),)))
    for i, entry in enumerate(_list("network.priorities", network.get("priorities"))):
        field = f"network.priorities[{i}]"
        name = entry.get("name")
        if not isinstance(name, str) or not name or " " in name:
            raise InvalidArgument(f"linux.resources.{field}.name must be an interface name, got {name!r}")
        prio = _int(f"{field}.priority", entry.get("priority"), lo=0, hi=0xFFFFFFFF)
        out.append(Setting(field, (("net_prio.ifpriomap", f"{name} {prio}"),)))
    return out


def _unsupported(resources: Mapping[str, Any], table: Mapping[str, tuple[Any, ...]]) -> list[str]:
    out = []
    for dotted, unset in table.items():
        section, key = dotted.split(".", 1)
        value = _section(resources, section).get(key)
        if value is None or value in unset or value == [] or value == {}:
            continue
        out.append(dotted)
    return out


def plan_v1(resources: Mapping[str, Any]) -> Plan:
    if not isinstance(resources, Mapping):
        raise InvalidArgument("linux.resources must be an object")
    settings: list[Setting] = []

    memory = _section(resources, "memory")
    _check_memory(memory)
    settings += _rows("memory", memory, V1_MEMORY)

    cpu = _section(resources, "cpu")
    _check_cpu(cpu)
    settings += _rows("cpu", cpu, V1_CPU)

    settings += _rows("pids", _section(resources, "pids"), PIDS)

    blkio = _section(resources, "blockIO")
    if blkio.get("weight") is not None:
        w = _blkio_weight_v1("blockIO.weight", blkio["weight"])
        if w is not None:
            settings.append(Setting("blockIO.weight", (("blkio.weight", w), ("blkio.bfq.weight", w))))
    if blkio.get("leafWeight") is not None:
        w = _blkio_weight_v1("blockIO.leafWeight", blkio["leafWeight"])
        if w is not None:  # CFQ only; gone with CFQ in 5.0
            settings.append(Setting("blockIO.leafWeight", (("blkio.leaf_weight", w),), strict=False))
    for i, entry in enumerate(_list("blockIO.weightDevice", blkio.get("weightDevice"))):
        field = f"blockIO.weightDevice[{i}]"
        dev = _device(field, entry)
        if entry.get("weight") is None and entry.get("leafWeight") is None:
            raise InvalidArgument(f"linux.resources.{field}: give weight or leafWeight")
        if entry.get("weight") is not None:
            w = _blkio_weight_v1(f"{field}.weight", entry["weight"])
            if w is not None:
                settings.append(Setting(f"{field}.weight", (("blkio.weight_device", f"{dev} {w}"),
                                                            ("blkio.bfq.weight_device", f"{dev} {w}"))))
        if entry.get("leafWeight") is not None:
            w = _blkio_weight_v1(f"{field}.leafWeight", entry["leafWeight"])
            if w is not None:
                settings.append(Setting(f"{field}.leafWeight", (("blkio.leaf_weight_device", f"{dev} {w}"),),
                                        strict=False))
    for key, file, _ in THROTTLES:
        for i, entry in enumerate(_list(f"blockIO.{key}", blkio.get(key))):
            field = f"blockIO.{key}[{i}]"
            rate = _int(f"{field}.rate", entry.get("rate"), lo=0)
            settings.append(Setting(field, ((file, f"{_device(field, entry)} {rate}"),)))

    settings += _hugepages(resources, ("hugetlb.{size}.limit_in_bytes", "hugetlb.{size}.rsvd.limit_in_bytes"))

    settings += _network(resources)
    settings += _rdma(resources)

    if resources.get("unified"):
        raise InvalidArgument("linux.resources.unified needs cgroup v2; this host runs cgroup v1")

    devices = parse_devices(resources.get("devices")) if resources.get("devices") is not None else None
    return Plan(tuple(settings), devices, tuple(_unsupported(resources, V1_UNSUPPORTED)))


def _cpu_max(cpu: Mapping[str, Any]) -> Setting | None:
    quota = _quota("cpu.quota", cpu["quota"]) if cpu.get("quota") is not None else None
    period = _period("cpu.period", cpu["period"]) if cpu.get("period") is not None else None
    quota_text = None if quota is None else ("max" if quota == -1 else str(quota))
    if quota_text is not None and period is not None:
        return Setting("cpu.quota", (("cpu.max", f"{quota_text} {period}"),))
    if quota_text is not None:
        return Setting("cpu.quota", (("cpu.max", quota_text),))  # the kernel keeps the period
    if period is not None:
        # Only the period changes: keep the quota in force.
        return Setting("cpu.period", (("cpu.max", lambda current: f"{current.split()[0]} {period}"),))
    return None


def _swap_max(memory: Mapping[str, Any]) -> Setting | None:
    if memory.get("swap") is None:
        return None
    swap = _int("memory.swap", memory["swap"], lo=-1)
    if swap == 0:
        return None
    if swap == -1:
        return Setting("memory.swap", (("memory.swap.max", "max"),))
    limit = memory.get("limit")
    limit = _int("memory.limit", limit, lo=-1) if limit is not None else 0
    if limit <= 0:
        raise InvalidArgument("linux.resources.memory.swap needs memory.limit on cgroup v2 "
                              "(memory.swap.max is swap - limit)")
    return Setting("memory.swap", (("memory.swap.max", str(swap - limit)),))


def _io_max(blkio: Mapping[str, Any]) -> list[Setting]:
    per_device: dict[str, list[str]] = {}
    first_field: dict[str, str] = {}
    for key, _, io_key in THROTTLES:
        for i, entry in enumerate(_list(f"blockIO.{key}", blkio.get(key))):
            field = f"blockIO.{key}[{i}]"
            rate = _int(f"{field}.rate", entry.get("rate"), lo=0)
            dev = _device(field, entry)
            # 0 means "no limit" in v1's files; io.max spells that "max".
            per_device.setdefault(dev, []).append(f"{io_key}={rate if rate else 'max'}")
            first_field.setdefault(dev, field)
    return [Setting(first_field[dev], (("io.max", f"{dev} {' '.join(limits)}"),)) for dev, limits in per_device.items()]


def plan_v2(resources: Mapping[str, Any]) -> Plan:
    if not isinstance(resources, Mapping):
        raise InvalidArgument("linux.resources must be an object")
    settings: list[Setting] = []

    memory = _section(resources, "memory")
    _check_memory(memory)
    # v2 cannot express these; validate them anyway so a bad config fails
    # the same way on every host.
    for key, file, convert, _ in V1_MEMORY:
        if memory.get(key) is not None:
            convert(f"memory.{key}", memory[key])
    settings += _rows("memory", memory, V2_MEMORY)
    swap = _swap_max(memory)
    if swap:
        settings.append(swap)

    cpu = _section(resources, "cpu")
    _check_cpu(cpu)
    for key, file, convert, _ in V1_CPU:
        if cpu.get(key) is not None:
            convert(f"cpu.{key}", cpu[key])
    settings += _rows("cpu", cpu, V2_CPU)
    cpu_max = _cpu_max(cpu)
    if cpu_max:
        settings.append(cpu_max)

    settings += _rows("pids", _section(resources, "pids"), PIDS)

    blkio = _section(resources, "blockIO")
    if blkio.get("weight") is not None:
        w = _blkio_weight("blockIO.weight", blkio["weight"])
        if w is not None:
            settings.append(Setting("blockIO.weight", (("io.bfq.weight", str(w)),
                                                       ("io.weight", f"default {_io_weight_v2(w)}"))))
    if blkio.get("leafWeight") is not None:
        _blkio_weight("blockIO.leafWeight", blkio["leafWeight"])
    for i, entry in enumerate(_list("blockIO.weightDevice", blkio.get("weightDevice"))):
        field = f"blockIO.weightDevice[{i}]"
        dev = _device(field, entry)
        if entry.get("weight") is None and entry.get("leafWeight") is None:
            raise InvalidArgument(f"linux.resources.{field}: give weight or leafWeight")
        if entry.get("weight") is not None:
            w = _blkio_weight(f"{field}.weight", entry["weight"])
            if w is not None:
                settings.append(Setting(f"{field}.weight", (("io.bfq.weight", f"{dev} {w}"),
                                                            ("io.weight", f"{dev} {_io_weight_v2(w)}"))))
    settings += _io_max(blkio)

    settings += _hugepages(resources, ("hugetlb.{size}.max", "hugetlb.{size}.rsvd.max"))

    _network(resources)  # net_cls/net_prio have no v2 counterpart; validate only

    settings += _rdma(resources)

    unified = resources.get("unified")
    if unified is not None:
        if not isinstance(unified, Mapping):
            raise InvalidArgument("linux.resources.unified must be an object of file name -> value")
        # Last, so raw keys override what was converted from v1 fields.
        for key, value in unified.items():
            field = f"unified[{key!r}]"
            if not isinstance(key, str) or not key or "/" in key or key.startswith(".") or "." not in key:
                raise InvalidArgument(f"linux.resources.{field}: not a cgroup control file name")
            if not isinstance(value, str):
                raise InvalidArgument(f"linux.resources.{field} must be a string, got {value!r}")
            settings.append(Setting(field, ((key, value),), missing="error"))

    devices = parse_devices(resources.get("devices")) if resources.get("devices") is not None else None
    return Plan(tuple(settings), devices, tuple(_unsupported(resources, V2_UNSUPPORTED)))
