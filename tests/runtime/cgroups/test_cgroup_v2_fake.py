"""The v2 backend against a fake cgroupfs tree: the files a cgroup2
directory has, as plain files, so every write can be asserted.  (The real
cgroup2 mount of this hybrid host has no controllers enabled; the shared
suite covers what it can do.)"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytest

from dockyard.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from dockyard.runtime.cgroups import base, open_cgroup
from dockyard.runtime.cgroups.v2 import CONTROLLERS, parse_io_stat

MiB = 1 << 20


def content(cg, name: str) -> str:
    return (Path(cg.dir) / name).read_text()


def test_create_enables_controllers_in_every_ancestor(fake_v2, tmp_path):
    root, make = fake_v2
    # Only the ancestors exist, as they would on a host; the leaf is new.
    make("/dockyard")
    cg = open_cgroup("/dockyard/ctr", "ctr", root=root, version="v2")
    (root / "cgroup.controllers").write_text("cpu io memory pids hugetlb\n")
    cg.create()
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +io +memory +hugetlb +pids"
    assert (root / "dockyard" / "cgroup.subtree_control").read_text() == " ".join(f"+{c}" for c in CONTROLLERS)
    assert (root / "dockyard" / "ctr").is_dir()


def test_create_skips_controllers_already_enabled(fake_v2):
    root, make = fake_v2
    (root / "cgroup.subtree_control").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    make("/dockyard", files={"cgroup.subtree_control": "cpuset cpu io memory hugetlb pids rdma misc\n"})
    cg = make("/dockyard/ctr")
    cg.create()
    # Nothing was (re)written.
    assert (root / "cgroup.subtree_control").read_text() == "cpuset cpu io memory hugetlb pids rdma misc\n"
    assert (root / "dockyard" / "cgroup.subtree_control").read_text() == "cpuset cpu io memory hugetlb pids rdma misc\n"


def test_set_writes_converted_values(fake_v2):
    root, make = fake_v2
    cg = make()
    cg.set({
        "memory": {"limit": 512 * MiB, "reservation": 256 * MiB, "swap": 768 * MiB},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 10000, "cpus": "0-1", "mems": "0", "idle": 0},
        "pids": {"limit": 100},
        "blockIO": {
            "weight": 500,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
            "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 400}],
        },
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
        "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
    })
    assert content(cg, "memory.max") == str(512 * MiB)
    assert content(cg, "memory.low") == str(256 * MiB)
    assert content(cg, "memory.swap.max") == str(256 * MiB)  # OCI swap is memory+swap
    assert content(cg, "cpu.weight") == "39"                  # 1 + (1024-2)*9999/262142
    assert content(cg, "cpu.max") == "50000 100000"
    assert content(cg, "cpu.max.burst") == "10000"
    assert content(cg, "cpuset.cpus") == "0-1"
    assert content(cg, "cpuset.mems") == "0"
    assert content(cg, "cpu.idle") == "0"
    assert content(cg, "pids.max") == "100"
    # io.bfq.weight exists in the fake, so it wins and takes v1's range; the
    # per-device entry is the last write to that file.
    assert content(cg, "io.bfq.weight") == "8:0 100"
    assert content(cg, "io.weight") == "default 100\n"  # untouched
    assert content(cg, "io.max") == "8:16 riops=300"     # last device written
    assert content(cg, "hugetlb.2MB.max") == str(4 * MiB)
    assert content(cg, "hugetlb.2MB.rsvd.max") == str(4 * MiB)
    assert content(cg, "rdma.max") == "mlx5_1 hca_handle=3 hca_object=10000"


def test_io_max_combines_every_throttle_of_a_device(fake_v2, monkeypatch):
    _, make = fake_v2
    cg = make()
    writes: list[tuple[str, str]] = []
    real_write = base.write_text
    monkeypatch.setattr(base, "write_text", lambda path, value: (writes.append((path.rsplit("/", 1)[1], value)),
                                                                 real_write(path, value))[1])
    cg.set({"blockIO": {
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 0}],
    }})
    assert writes == [("io.max", "8:0 rbps=1048576 wbps=2097152 wiops=max"), ("io.max", "8:16 riops=300")]


def test_io_weight_without_bfq_is_converted(fake_v2):
    _, make = fake_v2
    cg = make(omit=("io.bfq",))
    cg.set({"blockIO": {"weight": 10}})
    assert content(cg, "io.weight") == "default 1"
    cg.set({"blockIO": {"weight": 1000}})
    assert content(cg, "io.weight") == "default 10000"
    cg.set({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 500}]}})
    assert content(cg, "io.weight") == "8:0 4950"


def test_cpu_period_alone_keeps_the_quota(fake_v2):
    _, make = fake_v2
    cg = make(files={"cpu.max": "20000 100000\n"})
    cg.set({"cpu": {"period": 50000}})
    assert content(cg, "cpu.max") == "20000 50000"
    cg.set({"cpu": {"quota": -1}})
    assert content(cg, "cpu.max") == "max"  # the kernel keeps the period


def test_unlimited_values(fake_v2):
    _, make = fake_v2
    cg = make()
    cg.set({"memory": {"limit": -1, "swap": -1}, "pids": {"limit": -1}})
    assert content(cg, "memory.max") == "max"
    assert content(cg, "memory.swap.max") == "max"
    assert content(cg, "pids.max") == "max"


def test_swap_equal_to_limit_means_no_swap(fake_v2):
    _, make = fake_v2
    cg = make()
    cg.set({"memory": {"limit": 64 * MiB, "swap": 64 * MiB}})
    assert content(cg, "memory.swap.max") == "0"


def test_swap_without_limit_is_invalid(fake_v2):
    _, make = fake_v2
    cg = make()
    with pytest.raises(InvalidArgument, match=r"memory\.swap needs memory\.limit"):
        cg.set({"memory": {"swap": 64 * MiB}})


def test_unified_keys_are_written_last_and_raw(fake_v2):
    _, make = fake_v2
    cg = make()
    cg.set({"memory": {"limit": 64 * MiB}, "unified": {"memory.max": "33554432", "cgroup.freeze": "0"}})
    assert content(cg, "memory.max") == "33554432"


def test_unified_key_for_a_missing_controller_fails(fake_v2):
    _, make = fake_v2
    cg = make(omit=("memory",))
    with pytest.raises(InvalidArgument, match=r"unified\['memory\.high'\].*memory"):
        cg.set({"unified": {"memory.high": "1000000"}})


@pytest.mark.parametrize("key", ["../escape", "memory/max", "", "noperiod", ".hidden"])
def test_unified_key_must_be_a_control_file_name(fake_v2, key):
    _, make = fake_v2
    cg = make()
    with pytest.raises(InvalidArgument, match="unified"):
        cg.set({"unified": {key: "1"}})


def test_converted_value_for_a_missing_controller_warns(fake_v2, caplog):
    _, make = fake_v2
    cg = make(omit=("hugetlb",))
    with caplog.at_level(logging.WARNING, logger="dockyard.runtime.cgroups"):
        cg.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MiB}], "pids": {"limit": 5}})
    assert content(cg, "pids.max") == "5"
    assert "hugepageLimits[0].limit" in caplog.text


def test_v1_only_fields_warn_on_v2(fake_v2, caplog):
    _, make = fake_v2
    cg = make()
    with caplog.at_level(logging.WARNING, logger="dockyard.runtime.cgroups"):
        cg.set({"memory": {"swappiness": 60, "kernel": 1048576, "disableOOMKiller": False},
                "cpu": {"realtimeRuntime": 950000}})
    assert "memory.swappiness" in caplog.text
    assert "memory.kernel" in caplog.text
    assert "cpu.realtimeRuntime" in caplog.text
    assert "disableOOMKiller" not in caplog.text  # false is the default: nothing to warn about


def test_invalid_value_writes_nothing(fake_v2):
    _, make = fake_v2
    cg = make()
    with pytest.raises(InvalidArgument, match=r"linux\.resources\.pids\.limit"):
        cg.set({"memory": {"limit": 64 * MiB}, "pids": {"limit": "lots"}})
    assert content(cg, "memory.max") == "max\n"


def test_check_before_update(fake_v2):
    _, make = fake_v2
    cg = make(files={"memory.current": str(100 * MiB)})
    with pytest.raises(FailedPrecondition, match="below the current usage"):
        cg.set({"memory": {"limit": 64 * MiB, "checkBeforeUpdate": True}})
    assert content(cg, "memory.max") == "max\n"
    cg.set({"memory": {"limit": 64 * MiB}})  # without the check v2 takes it (and would reclaim/OOM)
    assert content(cg, "memory.max") == str(64 * MiB)


def test_freeze_writes_cgroup_freeze_and_waits_for_events(fake_v2, monkeypatch):
    _, make = fake_v2
    cg = make(files={"cgroup.events": "populated 1\nfrozen 1\n"})
    cg.freeze()
    assert content(cg, "cgroup.freeze") == "1"
    assert cg.is_frozen()
    cg.thaw()
    assert content(cg, "cgroup.freeze") == "0"

    monkeypatch.setattr(base, "FREEZE_TIMEOUT", 0.05)
    stuck = make("/dockyard/stuck")
    with pytest.raises(Unavailable, match="did not freeze"):
        stuck.freeze()
    assert content(stuck, "cgroup.freeze") == "0"  # gave up: thawed again


def test_freeze_without_cgroup_freeze_is_unavailable(fake_v2):
    _, make = fake_v2
    cg = make(omit=("cgroup.freeze",))
    with pytest.raises(Unavailable, match="cgroup.freeze"):
        cg.freeze()


def test_kill_all_sigkill_uses_cgroup_kill(fake_v2):
    _, make = fake_v2
    cg = make()
    cg.kill_all(signal.SIGKILL)
    assert content(cg, "cgroup.kill") == "1"


def test_stats_parse_v2_files(fake_v2):
    _, make = fake_v2
    cg = make(files={
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 250\n",
        "memory.current": "4096\n",
        "memory.peak": "8192\n",
        "memory.max": "1048576\n",
        "memory.swap.current": "0\n",
        "memory.swap.max": "max\n",
        "memory.events": "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n",
        "memory.stat": "anon 4096\nfile 0\ninactive_file 0\n",
        "pids.current": "3\n",
        "pids.max": "10\n",
        "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
        "hugetlb.2MB.current": "2097152\n",
        "hugetlb.2MB.events": "max 1\n",
    })
    stats = cg.stats()
    assert stats.cpu.usage_total == 1_500_000
    assert stats.cpu.usage_user == 1_000_000 and stats.cpu.usage_system == 500_000
    assert (stats.cpu.nr_periods, stats.cpu.nr_throttled, stats.cpu.throttled_time) == (10, 4, 250_000)
    assert stats.cpu.per_cpu == ()
    m = stats.memory
    assert (m.usage, m.max_usage, m.limit, m.swap_usage, m.swap_limit) == (4096, 8192, 1048576, 0, None)
    assert (m.failcnt, m.oom_kill_count) == (3, 2)
    assert m.stat["anon"] == 4096
    assert (stats.pids.current, stats.pids.limit) == (3, 10)
    ops = {(e.op, e.value) for e in stats.blkio.io_service_bytes}
    assert ops == {("Read", 4096), ("Write", 8192), ("Discard", 0), ("Total", 12288)}
    assert {(e.op, e.value) for e in stats.blkio.io_serviced} == {("Read", 1), ("Write", 2), ("Discard", 0), ("Total", 3)}
    assert stats.hugetlb["2MB"].usage == 2097152 and stats.hugetlb["2MB"].failcnt == 1
    assert cg.oom_kill_count() == 2


def test_stats_without_controllers(fake_v2):
    _, make = fake_v2
    cg = make(omit=("memory", "pids", "io", "hugetlb"))
    stats = cg.stats()
    assert stats.cpu is not None
    assert stats.memory is None and stats.pids is None and stats.blkio is None
    assert stats.hugetlb == {}
    assert cg.oom_kill_count() == 0
    assert cg.oom_event_fd() is None


def test_oom_event_fd_is_readable_after_memory_events_changes(fake_v2):
    import os
    import select

    _, make = fake_v2
    cg = make()
    fd = cg.oom_event_fd()
    assert fd is not None
    try:
        assert select.select([fd], [], [], 0)[0] == []
        with open(Path(cg.dir) / "memory.events", "w") as f:
            f.write("oom_kill 1\n")
        assert select.select([fd], [], [], 2)[0] == [fd]
        os.read(fd, 4096)
        assert cg.oom_kill_count() == 1
    finally:
        os.close(fd)


def test_add_to_missing_cgroup_is_not_found(fake_v2):
    root, _ = fake_v2
    cg = open_cgroup("/nowhere", "x", root=root, version="v2")
    with pytest.raises(NotFound):
        cg.add(1)


def test_parse_io_stat_several_devices():
    stats = parse_io_stat("8:0 rbytes=1 wbytes=2 rios=3 wios=4\n8:16 rbytes=5 wbytes=6 rios=7 wios=8 dbytes=9 dios=10\n")
    assert [(e.major, e.minor, e.op, e.value) for e in stats.io_service_bytes] == [
        (8, 0, "Read", 1), (8, 0, "Write", 2), (8, 0, "Total", 3),
        (8, 16, "Read", 5), (8, 16, "Write", 6), (8, 16, "Discard", 9), (8, 16, "Total", 20),
    ]
