"""The migration warmer: a no-op move of the caller into its own cgroup,
repeated while held and not otherwise."""

from __future__ import annotations

import os
import time

from cgroup_testlib import wait_for

from dockyard.runtime.cgroups.warmup import INTERVAL, MigrationWarmer, own_procs_file


def test_own_procs_file_lists_this_process():
    procs = own_procs_file()
    assert procs is not None and procs.endswith("/cgroup.procs")
    with open(procs) as f:
        assert str(os.getpid()) in f.read().split()


def test_writes_own_pid_only_while_held(tmp_path):
    # A regular file stands in for cgroup.procs, so each write is visible.
    procs = tmp_path / "cgroup.procs"
    procs.write_bytes(b"")
    warmer = MigrationWarmer(str(procs))
    with warmer.held():
        assert wait_for(lambda: procs.stat().st_size > 0, interval=0.005)
        # repeated while held (each write goes to offset 0 of a fresh open)
        procs.write_bytes(b"")
        assert wait_for(lambda: procs.stat().st_size > 0, interval=0.005)
        assert procs.read_text() == str(os.getpid())
    time.sleep(INTERVAL * 5)  # a write in flight at release may still land
    procs.write_bytes(b"")
    time.sleep(INTERVAL * 10)
    assert procs.read_bytes() == b""


def test_the_real_no_op_migration_changes_nothing():
    procs = own_procs_file()
    with open("/proc/self/cgroup") as f:
        before = f.read()
    warmer = MigrationWarmer(procs)
    with warmer.held():
        time.sleep(INTERVAL * 5)
    with open("/proc/self/cgroup") as f:
        assert f.read() == before


def test_an_unwritable_file_ends_the_thread_quietly(tmp_path):
    warmer = MigrationWarmer(str(tmp_path / "missing" / "cgroup.procs"))
    with warmer.held():
        assert wait_for(lambda: not warmer._thread.is_alive(), interval=0.005)


def test_one_shared_warmer_per_process():
    from dockyard.runtime.cgroups import warmup

    assert warmup.shared() is warmup.shared()
