"""linux.inotify against the real kernel: a watched file's fd turns readable
when the file is written, and only then."""

from __future__ import annotations

import errno
import os
import select
from pathlib import Path

import pytest

from dockyard.linux.inotify import inotify_watch


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_watch_turns_readable_on_write(tmp_path: Path) -> None:
    path = tmp_path / "memory.events"
    path.write_text("oom_kill 0\n")
    fd = inotify_watch(path)
    try:
        assert os.get_inheritable(fd) is False
        assert os.get_blocking(fd) is False
        assert not _readable(fd, 0.05)
        path.write_text("oom_kill 1\n")
        assert _readable(fd, 5)
    finally:
        os.close(fd)


def test_watch_of_a_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(OSError) as info:
        inotify_watch(missing)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(missing)
