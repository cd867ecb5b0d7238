"""The v1 backend against this machine's real hierarchies: limits land in
the right files and the kernel enforces them."""

from __future__ import annotations

import logging
import os
import select
import signal
import sys

import pytest
from cgroup_testlib import CGROUP_ROOT, cpu_ticks, wait_for

from dockyard.errors import Internal, InvalidArgument
from dockyard.runtime.cgroups import CgroupV1
from dockyard.runtime.cgroups.v1 import hierarchies, parse_blkio

MiB = 1 << 20


def read(cg: CgroupV1, controller: str, file: str) -> str:
    with open(f"{cg.dirs[controller]}/{file}") as f:
        return f.read().strip()


def block_device() -> tuple[int, int] | None:
    """major:minor of a real disk (throttles need one that exists)."""
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith(("loop", "ram", "zram")):
            continue
        with open(f"/sys/block/{name}/dev") as f:
            major, minor = f.read().strip().split(":")
        return int(major), int(minor)
    return None


def test_hierarchies_found_on_this_host():
    found = hierarchies(CGROUP_ROOT)
    for controller in ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"):
        if os.path.isdir(f"{CGROUP_ROOT}/{controller}"):
            assert controller in found


def test_limits_land_in_the_right_files(v1_factory):
    cg = v1_factory()
    cg.create()
    resources = {
        "memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 96 * MiB, "swappiness": 10,
                   "disableOOMKiller": True},
        "cpu": {"shares": 512, "quota": 25000, "period": 50000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
        "blockIO": {"weight": 300},
    }
    dev = block_device()
    if dev:
        resources["blockIO"]["throttleReadBpsDevice"] = [{"major": dev[0], "minor": dev[1], "rate": 10 * MiB}]
        resources["blockIO"]["throttleWriteIOPSDevice"] = [{"major": dev[0], "minor": dev[1], "rate": 100}]
    cg.set(resources)
    assert read(cg, "memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert read(cg, "memory", "memory.soft_limit_in_bytes") == str(32 * MiB)
    if os.path.exists(f"{cg.dirs['memory']}/memory.memsw.limit_in_bytes"):
        assert read(cg, "memory", "memory.memsw.limit_in_bytes") == str(96 * MiB)
    assert read(cg, "memory", "memory.swappiness") == "10"
    assert "oom_kill_disable 1" in read(cg, "memory", "memory.oom_control")
    assert read(cg, "cpu", "cpu.shares") == "512"
    assert read(cg, "cpu", "cpu.cfs_quota_us") == "25000"
    assert read(cg, "cpu", "cpu.cfs_period_us") == "50000"
    assert read(cg, "cpuset", "cpuset.cpus") == "0"
    assert read(cg, "cpuset", "cpuset.mems") == "0"
    assert read(cg, "pids", "pids.max") == "42"
    blkio = cg.dirs["blkio"]
    weight_file = next(f for f in ("blkio.weight", "blkio.bfq.weight") if os.path.exists(f"{blkio}/{f}"))
    assert read(cg, "blkio", weight_file).split()[-1] == "300"
    if dev:
        assert read(cg, "blkio", "blkio.throttle.read_bps_device") == f"{dev[0]}:{dev[1]} {10 * MiB}"
        assert read(cg, "blkio", "blkio.throttle.write_iops_device") == f"{dev[0]}:{dev[1]} 100"

    # Unlimited again: -1 means no limit, pids 0 means "max".
    cg.set({"memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1}, "pids": {"limit": 0}})
    assert int(read(cg, "memory", "memory.limit_in_bytes")) >= 1 << 62
    assert read(cg, "cpu", "cpu.cfs_quota_us") == "-1"
    assert read(cg, "pids", "pids.max") == "max"


def test_memory_and_swap_raise_and_lower_in_a_valid_order(v1_factory):
    cg = v1_factory()
    cg.create()
    if not os.path.exists(f"{cg.dirs['memory']}/memory.memsw.limit_in_bytes"):
        pytest.skip("no swap accounting (memory.memsw.*) on this kernel")
    steps = [(64, 128), (256, 512), (32, 32), (48, 1024), (40, 40)]
    for limit, swap in steps:
        # Written in the wrong order one of these steps would hit EINVAL
        # (memsw must stay >= memory at every moment).
        cg.set({"memory": {"limit": limit * MiB, "swap": swap * MiB}})
        assert read(cg, "memory", "memory.limit_in_bytes") == str(limit * MiB)
        assert read(cg, "memory", "memory.memsw.limit_in_bytes") == str(swap * MiB)


def test_cpuset_levels_are_filled_from_the_parent(v1_factory):
    cg = v1_factory("a/b/c")
    cg.create()
    parent_cpus = read_root("cpuset", "cpuset.cpus")
    d = cg.dirs["cpuset"]
    while d != f"{CGROUP_ROOT}/cpuset":
        with open(f"{d}/cpuset.cpus") as f:
            assert f.read().strip() == parent_cpus, d
        d = os.path.dirname(d)


def read_root(controller: str, file: str) -> str:
    with open(f"{CGROUP_ROOT}/{controller}/{file}") as f:
        return f.read().strip()


def test_memory_limit_is_enforced_and_oom_kill_reported(v1_factory, gated):
    cg = v1_factory()
    cg.create()
    cg.set({"memory": {"limit": 32 * MiB}})
    fd = cg.oom_event_fd()
    assert fd is not None
    try:
        hog = gated("", argv=[sys.executable, "-c",
                              "import sys; sys.stdin.readline(); b = b'x' * (256 << 20); print('survived')"])
        cg.add(hog.pid)
        hog.release()
        rc, out, _ = hog.wait()
        assert rc == -signal.SIGKILL
        assert "survived" not in out
        assert cg.oom_kill_count() == 1
        assert select.select([fd], [], [], 5)[0] == [fd]
        assert int.from_bytes(os.read(fd, 8), "little") >= 1
    finally:
        os.close(fd)
    stats = cg.stats()
    assert stats.memory is not None
    assert stats.memory.oom_kill_count == 1
    assert stats.memory.failcnt > 0
    assert stats.memory.limit == 32 * MiB
    assert 16 * MiB < stats.memory.max_usage <= 32 * MiB
    assert "total_rss" in stats.memory.stat


def test_pids_limit_stops_forks(v1_factory, gated):
    cg = v1_factory()
    cg.create()
    cg.set({"pids": {"limit": 4}})
    forker = gated("for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; sleep 0.2; echo done")
    cg.add(forker.pid)
    forker.release()
    assert wait_for(lambda: int(read(cg, "pids", "pids.current")) >= 4)
    assert wait_for(lambda: "max" in read(cg, "pids", "pids.events")
                    and int(read(cg, "pids", "pids.events").split()[-1]) > 0)
    stats = cg.stats()
    assert stats.pids is not None and stats.pids.limit == 4
    assert stats.pids.current <= 4
    # The shell writes its "can't fork" after the kernel counted the
    # failure: let it finish its script before its sleeps are killed (they
    # hold its stderr open), or the kill can beat the message.
    assert wait_for(lambda: forker.proc.poll() is not None, timeout=10)
    cg.kill_all(signal.SIGKILL)
    _, _, err = forker.wait()
    assert "fork" in err.lower()


def test_cpu_quota_throttles(v1_factory, gated):
    cg = v1_factory()
    cg.create()
    cg.set({"cpu": {"quota": 5000, "period": 100000}})  # 5% of one CPU
    busy = gated("while :; do :; done")
    cg.add(busy.pid)
    busy.release()
    assert wait_for(lambda: cg.stats().cpu.nr_throttled >= 3, timeout=5)
    stats = cg.stats().cpu
    assert stats.nr_periods >= stats.nr_throttled >= 3
    assert stats.throttled_time > 0
    # 5% of CPU: well under half a second of CPU time in the ~0.4 s elapsed.
    assert cpu_ticks(busy.pid) < 30
    assert len(stats.per_cpu) == os.cpu_count()


def test_devices_rules_land_in_devices_list(v1_factory):
    cg = v1_factory()
    cg.create()
    cg.set({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
        {"allow": True, "type": "b", "access": "m"},
    ]})
    assert read(cg, "devices", "devices.list").splitlines() == ["c 1:3 rw", "b *:* m"]


def test_failed_create_leaves_no_directory(tmp_path):
    # A fake v1 root in tmp whose last hierarchy cannot hold directories.
    mounts = {}
    for name in ("cpu", "memory", "pids"):
        (tmp_path / name).mkdir()
        mounts[name] = str(tmp_path / name)
    (tmp_path / "freezer").write_text("not a directory")
    mounts["freezer"] = str(tmp_path / "freezer")
    cg = CgroupV1("/dockyard/ctr", str(tmp_path), mounts=mounts)
    with pytest.raises(Internal, match="creating cgroup /dockyard/ctr"):
        cg.create()
    assert [d for d in cg.all_dirs if os.path.isdir(d)] == []


def test_invalid_values_write_nothing(v1_factory):
    cg = v1_factory()
    cg.create()
    before = read(cg, "memory", "memory.limit_in_bytes")
    with pytest.raises(InvalidArgument, match=r"linux\.resources\.cpu\.period"):
        cg.set({"memory": {"limit": 64 * MiB}, "cpu": {"period": 10}})
    assert read(cg, "memory", "memory.limit_in_bytes") == before


def test_kernel_rejection_names_the_field(v1_factory):
    cg = v1_factory()
    cg.create()
    with pytest.raises(InvalidArgument, match=r"linux\.resources\.cpu\.cpus.*cpuset\.cpus"):
        cg.set({"cpu": {"cpus": f"{os.cpu_count() + 7}"}})


def test_unified_is_refused_on_v1(v1_factory):
    cg = v1_factory()
    cg.create()
    with pytest.raises(InvalidArgument, match="unified"):
        cg.set({"unified": {"memory.max": "1"}})


def test_unsupported_knob_warns_and_continues(v1_factory, caplog):
    cg = v1_factory()
    cg.create()
    with caplog.at_level(logging.WARNING, logger="dockyard.runtime.cgroups"):
        cg.set({"blockIO": {"leafWeight": 500}, "pids": {"limit": 9}})
    assert read(cg, "pids", "pids.max") == "9"
    assert "blockIO.leafWeight" in caplog.text


def test_stats_of_an_idle_cgroup(v1_factory, gated):
    cg = v1_factory()
    cg.create()
    proc = gated("sleep 30")
    cg.add(proc.pid)
    stats = cg.stats()
    assert stats.pids is not None and stats.pids.current == 1 and stats.pids.limit is None
    assert stats.memory is not None and stats.memory.limit is None
    assert stats.memory.oom_kill_count == 0
    assert stats.blkio is not None
    assert stats.cpu is not None and stats.cpu.nr_throttled == 0


def test_parse_blkio():
    text = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n"
    entries = parse_blkio(text)
    assert [(e.major, e.minor, e.op, e.value) for e in entries] == [
        (8, 0, "Read", 4096), (8, 0, "Write", 8192), (8, 0, "Sync", 0),
        (8, 0, "Async", 12288), (8, 0, "Discard", 0), (8, 0, "Total", 12288),
    ]


def test_cpuset_level_made_empty_by_someone_else_is_filled(v1_factory):
    # An intermediate level that exists already but was left empty (made by
    # another tool without clone_children) is filled on the way down too.
    first = v1_factory("shared/x")
    parent_dir = os.path.dirname(first.dirs["cpuset"])
    os.makedirs(parent_dir)
    assert open(f"{parent_dir}/cpuset.cpus").read().strip() == ""
    first.create()
    cpus = read_root("cpuset", "cpuset.cpus")
    assert open(f"{parent_dir}/cpuset.cpus").read().strip() == cpus
    assert read(first, "cpuset", "cpuset.cpus") == cpus
    assert read(first, "cpuset", "cpuset.mems") == read_root("cpuset", "cpuset.mems")
    # creating it again is fine (every directory exists)
    first.create()


def test_destroy_with_a_child_cgroup_and_a_busy_leaf(v1_factory, gated):
    cg = v1_factory("tree")
    cg.create()
    child = v1_factory("tree/child")
    child.create()
    proc = gated("sleep 60")
    child.add(proc.pid)
    from dockyard.errors import FailedPrecondition
    from dockyard.runtime.cgroups import base
    saved = base.DESTROY_TIMEOUT
    base.DESTROY_TIMEOUT = 0.2
    try:
        with pytest.raises(FailedPrecondition, match="still has processes"):
            cg.destroy()
    finally:
        base.DESTROY_TIMEOUT = saved
    proc.stop()
    cg.destroy()
    assert not cg.exists() and not child.exists()


def test_layout_is_looked_up_again_when_a_hierarchy_appears(tmp_path):
    from dockyard.runtime.cgroups import open_cgroup

    (tmp_path / "memory").mkdir()
    first = open_cgroup("/dockyard/c1", "c1", root=tmp_path)
    assert set(first.dirs) == {"memory"}
    again = open_cgroup("/dockyard/c2", "c2", root=tmp_path)
    assert set(again.dirs) == {"memory"}  # from the cache, same answer
    (tmp_path / "pids").mkdir()
    later = open_cgroup("/dockyard/c3", "c3", root=tmp_path)
    assert set(later.dirs) == {"memory", "pids"}
    # and a cgroup's own directory map is its own (callers may not share it)
    later.dirs.pop("pids")
    assert set(open_cgroup("/dockyard/c4", "c4", root=tmp_path).dirs) == {"memory", "pids"}
