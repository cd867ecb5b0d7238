"""The env fixture's teardown leaves no process behind, even for a test
that failed with its containers running."""

from __future__ import annotations

import os


def test_teardown_stops_the_zygote_and_supervisors_left_behind(tmp_path, test_id):
    """The env fixture's teardown, for a test that failed with a container
    still running and a service that can no longer remove it."""
    from container.cleanup import supervisor_processes
    from container.conftest import Env
    from testlib import require_root, wait_for

    require_root()
    env = Env(tmp_path, test_id, "native")
    try:
        cid = env.create(["sleep", "300"])
        env.run(env.service.start(cid))
        pid = env.inspect(cid)["State"]["Pid"]
        # the zygote and the container's supervisor (the set-up child that
        # made the start exits on its own, just after it)
        wait_for(lambda: len(supervisor_processes(env.supervisor_root)) == 2, 5,
                 what="the zygote and one supervisor")
        env.service._records.clear()  # as if its removal failed: the service knows nothing to remove
    finally:
        env.teardown()
    assert supervisor_processes(env.supervisor_root) == []
    assert not os.path.exists(f"/proc/{pid}")
