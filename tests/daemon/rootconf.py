"""Re-export of the shared test helpers for the daemon and CLI tests."""

from testlib import need_tool, require_root, unmount_under

__all__ = ["need_tool", "require_root", "unmount_under"]
