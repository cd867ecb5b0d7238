"""Planning OCI linux.resources into writes (pure), path resolution,
backend selection and the device filter program."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dockyard.errors import InvalidArgument, Unavailable
from dockyard.runtime.cgroups import CgroupV1, CgroupV2, DeviceRule, detect_version, open_cgroup, resolve_path
from dockyard.runtime.cgroups.devices import assemble, parse_devices
from dockyard.runtime.cgroups.resources import _io_weight_v2, _shares_to_weight, plan_v1, plan_v2


def writes(plan) -> list[tuple[str, str]]:
    return [s.choices[0] for s in plan.settings]


# -- conversions -------------------------------------------------------------


@pytest.mark.parametrize("shares, weight", [(2, 1), (1, 1), (1024, 39), (512, 20), (262144, 10000), (10**9, 10000)])
def test_shares_to_weight(shares, weight):
    assert _shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio, io", [(10, 1), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert _io_weight_v2(blkio) == io


def test_plan_v1_order_and_files():
    plan = plan_v1({
        "memory": {"limit": 100, "reservation": 50, "swap": 200, "disableOOMKiller": True},
        "cpu": {"quota": 20000, "period": 100000, "shares": 0},
        "pids": {"limit": -1},
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
    })
    assert writes(plan) == [
        ("memory.soft_limit_in_bytes", "50"),
        ("memory.limit_in_bytes", "100"),
        ("memory.memsw.limit_in_bytes", "200"),
        ("memory.oom_control", "1"),
        ("cpu.cfs_period_us", "100000"),   # before the quota
        ("cpu.cfs_quota_us", "20000"),
        ("pids.max", "max"),
        ("net_cls.classid", "1048577"),
        ("net_prio.ifpriomap", "eth0 5"),
    ]
    assert plan.devices is None


def test_zero_means_unset():
    plan = plan_v1({"memory": {"limit": 0, "reservation": 0}, "cpu": {"shares": 0, "quota": 0, "period": 0}})
    assert writes(plan) == []


def test_plan_v1_blkio_alternatives():
    plan = plan_v1({"blockIO": {"weight": 200, "weightDevice": [{"major": 8, "minor": 0, "weight": 300}]}})
    assert [s.choices for s in plan.settings] == [
        (("blkio.weight", "200"), ("blkio.bfq.weight", "200")),
        (("blkio.weight_device", "8:0 300"), ("blkio.bfq.weight_device", "8:0 300")),
    ]


def test_plan_hugepages_limits_usage_and_reservation():
    plan = plan_v1({"hugepageLimits": [{"pageSize": "1GB", "limit": 1 << 30}]})
    assert writes(plan) == [("hugetlb.1GB.limit_in_bytes", str(1 << 30)), ("hugetlb.1GB.rsvd.limit_in_bytes", str(1 << 30))]
    assert plan.settings[1].missing == "skip"


@pytest.mark.parametrize("resources, field", [
    ({"memory": {"limit": "1g"}}, "memory.limit"),
    ({"memory": {"limit": -5}}, "memory.limit"),
    ({"memory": {"limit": True}}, "memory.limit"),
    ({"memory": {"limit": 100, "swap": 50}}, "memory.swap"),
    ({"memory": {"swappiness": 101}}, "memory.swappiness"),
    ({"memory": {"disableOOMKiller": "yes"}}, "memory.disableOOMKiller"),
    ({"memory": []}, "memory"),
    ({"cpu": {"shares": -1}}, "cpu.shares"),
    ({"cpu": {"quota": 500}}, "cpu.quota"),
    ({"cpu": {"period": 999}}, "cpu.period"),
    ({"cpu": {"period": 2_000_000}}, "cpu.period"),
    ({"cpu": {"quota": 10000, "burst": 20000}}, "cpu.burst"),
    ({"cpu": {"cpus": "0-a"}}, "cpu.cpus"),
    ({"cpu": {"mems": 0}}, "cpu.mems"),
    ({"cpu": {"idle": 2}}, "cpu.idle"),
    ({"pids": {"limit": 1.5}}, "pids.limit"),
    ({"blockIO": {"weight": 5}}, "blockIO.weight"),
    ({"blockIO": {"weight": 1001}}, "blockIO.weight"),
    ({"blockIO": {"weightDevice": [{"major": 8, "minor": 0}]}}, "blockIO.weightDevice[0]"),
    ({"blockIO": {"weightDevice": [{"minor": 0, "weight": 100}]}}, "blockIO.weightDevice[0].major"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}}, "blockIO.throttleReadBpsDevice[0].rate"),
    ({"blockIO": {"throttleReadBpsDevice": {"major": 8}}}, "blockIO.throttleReadBpsDevice"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "hugepageLimits[0].pageSize"),
    ({"hugepageLimits": [{"pageSize": "2MB"}]}, "hugepageLimits[0].limit"),
    ({"network": {"priorities": [{"name": "", "priority": 1}]}}, "network.priorities[0].name"),
    ({"rdma": {"mlx5_1": {}}}, "rdma.mlx5_1"),
    ({"devices": [{"access": "rwm"}]}, "devices[0].allow"),
    ({"devices": [{"allow": True, "type": "x"}]}, "devices[0].type"),
    ({"devices": [{"allow": True, "access": "rwx"}]}, "devices[0].access"),
    ({"devices": [{"allow": True, "major": 5000}]}, "devices[0].major"),
    ({"devices": {"allow": True}}, "devices"),
])
@pytest.mark.parametrize("planner", [plan_v1, plan_v2], ids=["v1", "v2"])
def test_invalid_values_name_the_field(planner, resources, field):
    with pytest.raises(InvalidArgument, match=rf"linux\.resources\.{_escape(field)}"):
        planner(resources)


def _escape(field: str) -> str:
    return field.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")


def test_resources_must_be_an_object():
    with pytest.raises(InvalidArgument, match="linux.resources must be an object"):
        plan_v2(["memory"])


def test_plan_v2_unified_after_everything():
    plan = plan_v2({"unified": {"memory.high": "100"}, "pids": {"limit": 5}})
    assert writes(plan) == [("pids.max", "5"), ("memory.high", "100")]
    assert plan.settings[-1].missing == "error"


def test_plan_v2_reports_v1_only_fields():
    plan = plan_v2({"memory": {"swappiness": 0, "kernel": -1, "useHierarchy": True},
                    "network": {"classID": 7}, "blockIO": {"leafWeight": 100}})
    assert set(plan.unsupported) == {"memory.swappiness", "network.classID", "blockIO.leafWeight"}


# -- cgroupsPath ------------------------------------------------------------------


@pytest.mark.parametrize("given, expected", [
    ("", "/dockyard/abc"),
    ("/docker/abc", "/docker/abc"),
    ("/a//b/./c/", "/a/b/c"),
    ("pods/abc", "/dockyard/pods/abc"),
])
def test_resolve_path(given, expected):
    assert resolve_path(given, "abc") == expected


@pytest.mark.parametrize("given, message", [
    ("system.slice:docker:abc", "systemd"),
    ("/a/../../etc", r"\.\."),
    ("/", "root"),
    ("/a\nb", "newline"),
])
def test_resolve_path_rejects(given, message):
    with pytest.raises(InvalidArgument, match=message):
        resolve_path(given, "abc")


def test_empty_path_needs_a_usable_id():
    with pytest.raises(InvalidArgument, match="container id"):
        resolve_path("", "../x")


# -- backend selection ---------------------------------------------------------------


def test_detect_version(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpu memory\n")
    hybrid = tmp_path / "hybrid"
    (hybrid / "memory").mkdir(parents=True)
    (hybrid / "unified").mkdir()
    (hybrid / "unified" / "cgroup.controllers").write_text("")
    assert detect_version(v2) == "v2"
    assert detect_version(str(hybrid)) == "v1"
    with pytest.raises(Unavailable):
        detect_version(tmp_path / "missing")


def test_open_cgroup_picks_the_backend(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("")
    cg = open_cgroup("/x/y", "y", root=v2)
    assert isinstance(cg, CgroupV2) and cg.dir == f"{v2}/x/y" and cg.path == "/x/y"

    v1 = tmp_path / "v1"
    for name in ("cpu,cpuacct", "memory", "systemd", "unified"):
        (v1 / name).mkdir(parents=True)
    (v1 / "cpu").symlink_to("cpu,cpuacct")
    (v1 / "cpuacct").symlink_to("cpu,cpuacct")
    (v1 / "unified" / "cgroup.procs").write_text("")
    cg = open_cgroup("", "ctr", root=v1)
    assert isinstance(cg, CgroupV1)
    assert cg.dirs == {"cpu": f"{v1}/cpu,cpuacct/dockyard/ctr", "cpuacct": f"{v1}/cpu,cpuacct/dockyard/ctr",
                       "memory": f"{v1}/memory/dockyard/ctr", "systemd": f"{v1}/systemd/dockyard/ctr"}
    # One directory per hierarchy, plus the hybrid host's cgroup2 one.
    assert sorted(cg.all_dirs) == sorted([f"{v1}/cpu,cpuacct/dockyard/ctr", f"{v1}/memory/dockyard/ctr",
                                          f"{v1}/systemd/dockyard/ctr", f"{v1}/unified/dockyard/ctr"])

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Unavailable, match="no cgroup v1 controller"):
        open_cgroup("/x", "x", root=empty, version="v1")
    with pytest.raises(InvalidArgument, match="version"):
        open_cgroup("/x", "x", root=v2, version="v3")


def test_import_is_light():
    # The runtime imports this on its fork path: no ctypes, no threads.
    code = ("import sys, threading; import dockyard.runtime.cgroups; "
            "print('ctypes' in sys.modules, threading.active_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "1"]


# -- devices ----------------------------------------------------------------------


def test_parse_devices_defaults_and_v1_lines():
    rules = parse_devices([
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "wr"},
        {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
    ])
    assert rules[0] == DeviceRule(False, "a", None, None, "rwm")
    assert [(r.v1_file, r.v1_line()) for r in rules] == [
        ("devices.deny", "a *:* rwm"),
        ("devices.allow", "c 1:3 rw"),
        ("devices.allow", "b *:* m"),
    ]


def test_assemble_layout():
    program = assemble([DeviceRule(False), DeviceRule(True, "c", 1, 3, "rwm")])
    assert len(program) % 8 == 0
    # prologue (6) + allow c 1:3 (type, major, minor checks + mov + exit = 5)
    # + deny all (mov + exit = 2); no default tail after a catch-all.
    assert len(program) // 8 == 6 + 5 + 2
    # Without a catch-all the default (allow) closes the program.
    # type, access (mov, and, jne), major, minor, verdict (mov, exit) = 8
    assert len(assemble([DeviceRule(True, "c", 1, 3, "r")])) // 8 == 6 + 8 + 2


@pytest.mark.parametrize("rules", [
    [],
    [DeviceRule(False)],
    [DeviceRule(True)],
    [DeviceRule(False), DeviceRule(True, "c", 1, 3, "rw"), DeviceRule(True, "b", None, None, "m")],
    [DeviceRule(True, "c", 136, None, "rwm"), DeviceRule(False, "c", 5, 1, "w"), DeviceRule(False), DeviceRule(True, "c", 10, 200)],
])
def test_kernel_verifier_accepts_the_program(rules):
    if os.geteuid() != 0:
        pytest.skip("loading eBPF programs needs root")
    from dockyard.linux import bpf

    fd = bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, assemble(rules))
    os.close(fd)


def test_verifier_rejection_carries_its_log():
    if os.geteuid() != 0:
        pytest.skip("loading eBPF programs needs root")
    from dockyard.linux import bpf

    with pytest.raises(OSError, match="R0"):
        bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, bytes.fromhex("9500000000000000"))  # exit, r0 unset
