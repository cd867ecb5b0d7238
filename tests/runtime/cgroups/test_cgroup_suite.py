"""The shared suite: every check here runs against each real backend (the
``backend`` fixture: v1 hierarchies, and v2 on the host's cgroup2 mount).
Only what both can do on any host is here; controller limits are in the
per-backend files."""

from __future__ import annotations

import os
import select
import signal
import time

import pytest
from cgroup_testlib import cpu_ticks, wait_for

from dockyard.errors import FailedPrecondition, InvalidArgument, NotFound
from dockyard.runtime.cgroups import Cgroup, CgroupStats, base, provision


def test_create_is_idempotent_and_destroy_removes_every_directory(backend):
    cg: Cgroup = backend("nested/deeper/ctr")
    assert not cg.exists()
    cg.create()
    cg.create()
    assert cg.exists()
    for d in cg.all_dirs:
        assert os.path.isdir(d), d
        assert os.path.exists(f"{d}/cgroup.procs"), d
    cg.destroy()
    assert not cg.exists()
    for d in cg.all_dirs:
        assert not os.path.exists(d), d
    cg.destroy()  # gone already: fine


def test_add_moves_process_into_every_hierarchy(backend, gated):
    cg = backend()
    cg.create()
    proc = gated("sleep 30")
    cg.add(proc.pid)
    assert cg.procs() == [proc.pid]
    for d in cg.all_dirs:
        with open(f"{d}/cgroup.procs") as f:
            assert str(proc.pid) in f.read().split(), d
    with open(f"/proc/{proc.pid}/cgroup") as f:
        memberships = f.read()
    assert cg.path in memberships


def test_children_forked_inside_are_listed_and_descendant_cgroups_count(backend, gated):
    # Processes only in leaves: on v2 a cgroup whose children have
    # controllers enabled cannot hold processes itself.
    cg = backend("ctr")
    first, second = backend("ctr/a"), backend("ctr/b")
    first.create()
    second.create()
    parent = gated("sleep 30 & sleep 30 & wait")
    first.add(parent.pid)
    parent.release()
    assert wait_for(lambda: len(first.procs()) == 3)
    lone = gated("sleep 30")
    second.add(lone.pid)
    assert second.procs() == [lone.pid]
    assert set(cg.procs()) == set(first.procs()) | {lone.pid}
    assert len(cg.procs()) == 4


def test_add_errors(backend, gated):
    cg = backend()
    proc = gated("sleep 30")
    with pytest.raises(NotFound, match="create it first"):
        cg.add(proc.pid)
    cg.create()
    dead = gated("true", argv=["/bin/true"])
    dead.wait()
    with pytest.raises(NotFound, match="no such process"):
        cg.add(dead.pid)


def test_freeze_stops_a_busy_process_and_thaw_resumes_it(backend, gated):
    cg = backend()
    cg.create()
    busy = gated("while :; do :; done")
    cg.add(busy.pid)
    busy.release()
    assert wait_for(lambda: cpu_ticks(busy.pid) > 5)
    cg.freeze()
    assert cg.is_frozen()
    frozen_at = cpu_ticks(busy.pid)
    time.sleep(0.3)
    assert cpu_ticks(busy.pid) == frozen_at
    cg.thaw()
    assert not cg.is_frozen()
    assert wait_for(lambda: cpu_ticks(busy.pid) > frozen_at + 5, timeout=3)


def test_kill_all_sigkill_kills_the_tree(backend, gated):
    cg = backend()
    cg.create()
    tree = gated("sleep 30 & sleep 30 & sleep 30 & wait")
    cg.add(tree.pid)
    tree.release()
    assert wait_for(lambda: len(cg.procs()) == 4)
    cg.kill_all(signal.SIGKILL)
    rc, _, _ = tree.wait()
    assert rc == -signal.SIGKILL
    assert wait_for(lambda: cg.procs() == [])
    cg.destroy()
    assert not cg.exists()


def test_kill_all_other_signal_reaches_every_process(backend, gated):
    cg = backend()
    cg.create()
    # No traps: a signal landing between fork and exec must not be lost.
    tree = gated("sleep 30 & sleep 30 & wait")
    cg.add(tree.pid)
    tree.release()
    assert wait_for(lambda: len(cg.procs()) == 3)
    cg.kill_all(signal.SIGTERM)
    rc, _, _ = tree.wait()
    assert rc == -signal.SIGTERM
    assert wait_for(lambda: cg.procs() == [])  # the orphaned sleeps got it too
    assert not cg.is_frozen()


def test_kill_all_other_signal_keeps_a_paused_container_paused(backend, gated):
    cg = backend()
    cg.create()
    proc = gated("sleep 30")
    cg.add(proc.pid)
    proc.release()
    assert wait_for(lambda: len(cg.procs()) >= 1)
    cg.freeze()
    cg.kill_all(signal.SIGTERM)
    assert cg.is_frozen()
    cg.thaw()
    rc, _, _ = proc.wait()
    assert rc == -signal.SIGTERM


def test_destroy_refuses_while_processes_remain(backend, gated, monkeypatch):
    monkeypatch.setattr(base, "DESTROY_TIMEOUT", 0.2)
    cg = backend()
    cg.create()
    proc = gated("sleep 30")
    cg.add(proc.pid)
    with pytest.raises(FailedPrecondition, match=str(proc.pid)):
        cg.destroy()
    assert cg.exists()
    assert cg.procs() == [proc.pid]


def test_provision_removes_the_cgroup_when_setup_fails(backend, gated):
    cg = backend()
    proc = gated("sleep 30")
    with pytest.raises(InvalidArgument):
        with provision(cg):
            cg.add(proc.pid)
            cg.set({"pids": {"limit": "many"}})
    assert not cg.exists()
    rc, _, _ = proc.wait()
    assert rc == -signal.SIGKILL


def test_devices_deny_all_blocks_opening_a_device_node(backend, gated):
    cg = backend()
    cg.create()
    cg.set({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # /dev/zero
    ]})
    probe = gated("head -c 1 /dev/zero; cat /dev/null && echo opened-null")
    cg.add(probe.pid)
    probe.release()
    rc, out, err = probe.wait()
    assert "opened-null" not in out
    assert "/dev/null" in err and "Operation not permitted" in err
    assert out.startswith("\0")  # /dev/zero stayed allowed

    # A later set replaces the rules: allow everything again.
    cg.set({"devices": [{"allow": True, "access": "rwm"}]})
    probe = gated("cat /dev/null && echo opened-null")
    cg.add(probe.pid)
    probe.release()
    rc, out, err = probe.wait()
    assert rc == 0 and "opened-null" in out, err


def test_devices_partial_access_rule(backend, gated):
    cg = backend()
    cg.create()
    # /dev/null readable but not writable.
    cg.set({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
    ]})
    probe = gated("cat /dev/null && echo read-ok; echo x > /dev/null && echo write-ok")
    cg.add(probe.pid)
    probe.release()
    rc, out, err = probe.wait()
    assert "read-ok" in out
    assert "write-ok" not in out, (out, err)


def test_stats_count_cpu_time(backend, gated):
    cg = backend()
    cg.create()
    busy = gated("while :; do :; done")
    cg.add(busy.pid)
    busy.release()
    assert wait_for(lambda: cpu_ticks(busy.pid) >= 20)  # 200 ms at USER_HZ 100
    stats = cg.stats()
    assert isinstance(stats, CgroupStats)
    assert stats.cpu is not None
    assert 0.1e9 <= stats.cpu.usage_total <= 60e9
    assert stats.cpu.usage_user + stats.cpu.usage_system > 0


def test_oom_kill_count_starts_at_zero(backend):
    cg = backend()
    cg.create()
    assert cg.oom_kill_count() == 0
    fd = cg.oom_event_fd()
    if fd is not None:
        try:
            assert select.select([fd], [], [], 0)[0] == []
        finally:
            os.close(fd)


def test_freeze_of_missing_cgroup_is_not_found(backend):
    cg = backend()
    with pytest.raises(NotFound):
        cg.freeze()
    assert not cg.is_frozen()
    assert cg.procs() == []
    cg.kill_all(signal.SIGKILL)  # nothing to do, no error


def test_kill_all_sigkill_kills_a_paused_container(backend, gated):
    cg = backend()
    cg.create()
    tree = gated("sleep 30 & wait")
    cg.add(tree.pid)
    tree.release()
    assert wait_for(lambda: len(cg.procs()) == 2)
    cg.freeze()
    cg.kill_all(signal.SIGKILL)
    rc, _, _ = tree.wait(timeout=5)
    assert rc == -signal.SIGKILL
    assert wait_for(lambda: cg.procs() == [])
    cg.destroy()
