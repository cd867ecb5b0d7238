"""Fixtures: a real dockyardd per test module, for driving the CLI."""

from __future__ import annotations

import pytest

from daemon.rootconf import require_root
from daemon.harness import Dockyardd, new_daemon


@pytest.fixture(scope="module")
def dockyardd() -> Dockyardd:
    require_root()
    daemon = new_daemon()
    try:
        yield daemon
    finally:
        daemon.cleanup()
